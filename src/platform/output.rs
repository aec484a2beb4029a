//! Running a buildpack executable with its output shown Heroku style: header lines
//! (`-----> ...`) and warnings (`warning: ...`) as they are, every other line indented by 7
//! spaces, all on stderr (stdout is kept for `--json`). The last lines are kept for error
//! messages. Every line is scrubbed first: URL credentials and the config vars' values never
//! reach the log. Each executable runs under a guard that ends its whole process tree with it
//! (`process`).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

const KEEP_LINES: usize = 200;
/// Config var values shorter than this are not masked: they would hide ordinary words
/// (`true`, `1`, `false`); tokens and passwords are longer.
const MASK_MIN: usize = 8;

/// The values no log line may show: the build's config vars (set once per build).
static SECRETS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Mask these values (the config vars) in every buildpack line shown or kept from now on:
/// the engine cannot know which of a third-party buildpack's lines quote one. A URL value
/// is not masked whole: its secret part, the userinfo, is redacted wherever a URL appears,
/// and the rest (which registry, which index) is what a failure needs to show.
pub fn set_secrets(values: impl IntoIterator<Item = String>) {
    let mut values: Vec<String> = values
        .into_iter()
        .filter(|v| v.len() >= MASK_MIN && !v.contains("://"))
        .collect();
    // Longest first, so that a value holding another is masked whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let _ = SECRETS.set(values);
}

/// A buildpack's line as the log may show it: URL credentials and config var values masked.
pub fn scrub(line: &str) -> String {
    let mut line = slugc_fs::redact::redact(line);
    for secret in SECRETS.get().into_iter().flatten() {
        if line.contains(secret.as_str()) {
            line = line.replace(secret.as_str(), "***");
        }
    }
    line
}
pub const INDENT: &str = "       ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Print each line (indented) as it comes.
    Stream,
    /// Print nothing; keep the output for the caller.
    Quiet,
}

pub struct Finished {
    pub status: ExitStatus,
    /// The last lines of stdout and stderr, interleaved as they arrived.
    pub output: Vec<String>,
    /// What the output says went wrong, if it says (`failure_cause`).
    pub cause: Option<String>,
    /// All of stdout, when asked for (classic `bin/release`, `bin/detect` names).
    pub stdout: String,
}

/// Which pipe a kept line came from. The two pipes are read apart, so lines of one stream can
/// arrive between lines the program wrote together on the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
    /// Both on one pipe, in the order written.
    Merged,
}

/// The warning lines the buildpacks printed in this process, in order (`slug test` shows them
/// again beside a failure they may explain).
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The warning lines printed so far by buildpacks in this process.
pub fn warnings() -> Vec<String> {
    WARNINGS.lock().map(|w| w.clone()).unwrap_or_default()
}

/// Print one log line the way the build log shows buildpack output: headers and warnings
/// (`warning: …`, see `slugc_diagnostics`) at column 0, so that a warning stands out.
pub fn log_line(line: &str) {
    let warning = line.starts_with(slugc_diagnostics::PREFIX);
    if warning {
        if let Ok(mut w) = WARNINGS.lock() {
            w.push(line.to_string());
        }
    }
    let mut err = std::io::stderr().lock();
    if line.starts_with("----->") || warning || line.is_empty() {
        let _ = writeln!(err, "{line}");
    } else {
        let _ = writeln!(err, "{INDENT}{line}");
    }
}

fn pump<R: Read + Send + 'static>(
    reader: R,
    stream: Stream,
    show: Show,
    keep: Arc<Mutex<VecDeque<(Stream, String)>>>,
    collect: bool,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut all = String::new();
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = scrub(String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']));
            let line = line.as_str();
            if collect {
                all.push_str(line);
                all.push('\n');
            }
            if show == Show::Stream {
                log_line(line);
            }
            if let Ok(mut k) = keep.lock() {
                if k.len() == KEEP_LINES {
                    k.pop_front();
                }
                k.push_back((stream, line.to_string()));
            }
        }
        all
    })
}

/// Run `cmd` to completion with stdin closed; `collect_stdout` also returns stdout whole.
///
/// Unless stdout is wanted apart, the program's stdout and stderr are one pipe, as a
/// terminal or Heroku's build log is: its lines then arrive in the order it wrote them, which
/// two pipes read side by side cannot promise, and `failure_cause` reads its blocks whole.
pub fn run(cmd: &mut Command, show: Show, collect_stdout: bool) -> std::io::Result<Finished> {
    cmd.stdin(Stdio::null());
    let keep = Arc::new(Mutex::new(VecDeque::new()));
    let (mut child, out, err) = if collect_stdout {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = super::process::spawn(cmd)?;
        let out = child
            .stdout
            .take()
            .map(|s| pump(s, Stream::Out, show, keep.clone(), true));
        let err = child
            .stderr
            .take()
            .map(|s| pump(s, Stream::Err, show, keep.clone(), false));
        (child, out, err)
    } else {
        let (reader, writer) = std::io::pipe()?;
        cmd.stdout(writer.try_clone()?).stderr(writer);
        let spawned = super::process::spawn(cmd);
        // The command holds the pipe's write end: let it go, or the reader never ends.
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let child = spawned?;
        let out = Some(pump(reader, Stream::Merged, show, keep.clone(), false));
        (child, out, None)
    };
    let status = super::process::wait(&mut child)?;
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    if let Some(h) = err {
        let _ = h.join();
    }
    let kept: Vec<(Stream, String)> = keep
        .lock()
        .map(|k| k.iter().cloned().collect())
        .unwrap_or_default();
    Ok(Finished {
        status,
        cause: failure_cause(&kept),
        output: kept.into_iter().map(|(_, line)| line).collect(),
        stdout,
    })
}

/// What a failed buildpack said was wrong, for the build's `error:` line: the last line of
/// its output that starts with `error: ` (the built-ins print their cause last, after any
/// tool's own `error:` lines), else the first line of the last ` !     ` block (the
/// convention of Heroku's classic buildpacks). Clipped: the text is the buildpack's.
pub fn failure_cause(output: &[(Stream, String)]) -> Option<String> {
    if let Some((_, line)) = output.iter().rev().find(|(_, l)| l.starts_with("error: ")) {
        let cause = line["error: ".len()..].trim();
        if !cause.is_empty() {
            return Some(slugc_fs::input::clip(cause).into_owned());
        }
    }
    let bang = |l: &str| l.starts_with(" !") && !l.trim_start_matches([' ', '!']).is_empty();
    let last = output.iter().rposition(|(_, l)| bang(l))?;
    // The block is read on the last bang line's own stream: the other pipe's lines may have
    // been read in between although the program wrote them before or after.
    let stream = output[last].0;
    let first = output[..=last]
        .iter()
        .rev()
        .filter(|(s, _)| *s == stream)
        .map(|(_, l)| l.as_str())
        .take_while(|l| bang(l))
        .last()?;
    let cause = first.trim_start_matches([' ', '!']).trim();
    Some(slugc_fs::input::clip(cause).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_masks_url_credentials_and_long_non_url_values() {
        set_secrets([
            "a-long-token-value".to_string(),
            "short".to_string(),
            "https://registry.example/npm/".to_string(),
        ]);
        assert_eq!(
            scrub("token a-long-token-value, short, https://u:p@registry.example/npm/x"),
            "token ***, short, https://***@registry.example/npm/x"
        );
    }

    fn lines(text: &str) -> Vec<(Stream, String)> {
        text.lines().map(|l| (Stream::Out, l.to_string())).collect()
    }

    #[test]
    fn the_cause_is_the_last_error_line_not_a_tools_earlier_one() {
        let output = lines(
            "Installing\nerror: No solution found when resolving dependencies\n  cause: x\n\
             error: installing requirements.txt failed (see requirements.txt)\nits output is above",
        );
        assert_eq!(
            failure_cause(&output).as_deref(),
            Some("installing requirements.txt failed (see requirements.txt)")
        );
    }

    #[test]
    fn a_classic_buildpacks_bang_block_gives_its_first_line() {
        let output = lines(
            "-----> Fetching\n !     Old warning\nmore\n !     Push rejected: no Gemfile.lock\n !     Run bundle install\n",
        );
        assert_eq!(
            failure_cause(&output).as_deref(),
            Some("Push rejected: no Gemfile.lock")
        );
        assert_eq!(failure_cause(&lines("just output\nerror:  \n")), None);
    }

    #[test]
    fn a_bang_block_on_stderr_is_whole_though_stdout_lines_arrived_inside_it() {
        let output = vec![
            (Stream::Err, " !     Gemfile.lock is missing".to_string()),
            (Stream::Out, "-----> Installing".to_string()),
            (Stream::Out, " !     An early warning".to_string()),
            (Stream::Out, "more output".to_string()),
            (Stream::Err, " !     (run bundle install)".to_string()),
        ];
        assert_eq!(
            failure_cause(&output).as_deref(),
            Some("Gemfile.lock is missing")
        );
    }
}
