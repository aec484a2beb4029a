//! Build log lines, Heroku style: the engine indents non-header lines by 7 spaces.

use std::io::Write;

pub fn header(text: impl AsRef<str>) {
    println!("-----> {}", text.as_ref());
    let _ = std::io::stdout().flush();
}

pub fn info(text: impl AsRef<str>) {
    println!("{}", text.as_ref());
    let _ = std::io::stdout().flush();
}

pub fn warning(text: impl AsRef<str>) {
    println!("warning: {}", text.as_ref());
    let _ = std::io::stdout().flush();
}
