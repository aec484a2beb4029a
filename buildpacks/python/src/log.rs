//! Build log lines, Heroku style: the engine indents non-header lines by 7 spaces. Every
//! line is redacted first: an index or mirror URL may carry credentials
//! (`PIP_INDEX_URL=https://user:token@host/simple`), which never reach the log.

use std::io::Write;

pub fn header(text: impl AsRef<str>) {
    println!("-----> {}", slugc_fs::redact::redact(text.as_ref()));
    let _ = std::io::stdout().flush();
}

pub fn info(text: impl AsRef<str>) {
    println!("{}", slugc_fs::redact::redact(text.as_ref()));
    let _ = std::io::stdout().flush();
}

pub fn warning(text: impl AsRef<str>) {
    println!("warning: {}", slugc_fs::redact::redact(text.as_ref()));
    let _ = std::io::stdout().flush();
}
