//! The build log on stderr. A reader that goes away (`slug build 2>&1 | head -1`) must not
//! stop a build half way: `eprintln!` panics when stderr is a closed pipe (exit 101), so
//! every log line goes through [`line`], which drops what it cannot write.

use std::io::Write;

/// Writes one line to stderr; a write error (a closed pipe, a full disk) is ignored.
pub fn line(args: std::fmt::Arguments) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args);
    let _ = err.write_all(b"\n");
}

/// Writes `bytes` to stdout; a closed pipe is ignored, like [`line`].
pub fn stdout(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// `eprintln!` that never panics: see the module docs.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::log::line(format_args!($($arg)*))
    };
}
