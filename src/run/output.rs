//! Prefixed, coloured, timestamped output lines, as foreman prints them:
//! `14:02:11 web.1    | Listening on 5000`. Whole lines are written under one lock so that
//! processes never interleave inside a line.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;

/// The longest line printed as one: a longer run of bytes without a newline is printed as
/// several lines of this many bytes, so that a process writing endlessly without a newline
/// costs `slug run` no more memory than this.
pub const MAX_LINE: usize = 64 * 1024;

/// Reads one line into `line` (cleared first), without its `\n` or `\r\n`, at most
/// [`MAX_LINE`] bytes of it; `false` at the end of the stream.
pub fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<bool> {
    line.clear();
    let mut newline = false;
    while line.len() < MAX_LINE {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        let room = &buf[..buf.len().min(MAX_LINE - line.len())];
        let (take, found) = match room.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (room.len(), false),
        };
        line.extend_from_slice(&room[..take]);
        reader.consume(take);
        if found {
            newline = true;
            break;
        }
    }
    if newline {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    Ok(newline || !line.is_empty())
}

/// foreman's palette: one colour per process, in start order; `system` lines are uncoloured.
const COLORS: [&str; 12] = [
    "36", "33", "32", "35", "31", "34", "96", "93", "92", "95", "91", "94",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and `NO_COLOR` is not set
    Auto,
    Always,
    Never,
}

pub struct Output {
    out: Mutex<std::io::Stdout>,
    width: usize,
    color: bool,
}

impl Output {
    /// `width` is the longest prefix name; every prefix is padded to it (and to `system`).
    pub fn new(width: usize, choice: ColorChoice) -> Self {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        Self {
            out: Mutex::new(std::io::stdout()),
            width: width.max("system".len()),
            color,
        }
    }

    /// One line of a process's output; `index` picks its colour.
    pub fn process_line(&self, name: &str, index: usize, text: &[u8]) {
        self.write(name, Some(COLORS[index % COLORS.len()]), text);
    }

    /// One line from `slug run` itself.
    pub fn system(&self, text: &str) {
        self.write("system", None, text.as_bytes());
    }

    fn write(&self, name: &str, color: Option<&str>, text: &[u8]) {
        let mut line = Vec::with_capacity(text.len() + self.width + 16);
        let prefix = format!("{} {:<width$} |", clock(), name, width = self.width);
        match (self.color, color) {
            (true, Some(c)) => {
                line.extend_from_slice(format!("\x1b[{c}m{prefix}\x1b[0m ").as_bytes())
            }
            _ => line.extend_from_slice(format!("{prefix} ").as_bytes()),
        }
        line.extend_from_slice(text);
        line.push(b'\n');
        // A closed stdout (`slug run | head`) must not stop the supervisor: ignore errors.
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(&line);
            let _ = out.flush();
        }
    }
}

/// Local wall-clock time, `HH:MM:SS`.
fn clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let t = now as libc::time_t;
    // SAFETY: localtime_r writes only into the `tm` we own; both pointers are valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    } else {
        let s = now % 86_400;
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_split_and_line_ends_dropped() {
        let mut input = b"short\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE * 2 + 5));
        input.extend_from_slice(b"\nlast");
        let mut reader = std::io::BufReader::with_capacity(1000, &input[..]);
        let mut line = Vec::new();
        let mut lines = Vec::new();
        while read_line(&mut reader, &mut line).unwrap() {
            lines.push(line.clone());
        }
        let lens: Vec<usize> = lines.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![5, MAX_LINE, MAX_LINE, 5, 4]);
        assert_eq!(lines[0], b"short");
        assert_eq!(lines[4], b"last");
    }

    #[test]
    fn clock_is_hh_mm_ss() {
        let c = clock();
        assert_eq!(c.len(), 8);
        assert_eq!(c.as_bytes()[2], b':');
        assert_eq!(c.as_bytes()[5], b':');
    }
}
