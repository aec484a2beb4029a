//! `.env` files for `--env-file`, in the syntax foreman, `heroku local` and the dotenv
//! libraries share:
//!
//! ```text
//! # a comment
//! export DATABASE_URL=postgres://localhost/app   # `export` prefix allowed, trailing comment
//! GREETING='single quotes: literal, $NOT_EXPANDED'
//! MOTD="double quotes: \n \t \" \\ escapes,
//! and values may span lines"
//! EMPTY=
//! ```
//!
//! No `$VAR` interpolation: a value is what the file says, so the same file gives the same
//! environment whatever the caller's shell has set. The `dotenvy` crate (0.15) cannot serve:
//! it expands `$VAR`, from the process environment first, refuses unquoted values with spaces
//! and the `\t` escape, and its errors echo the line (which may hold a secret) but not its number.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot read env file {}", .0)]
    Read(slugc_fs::input::InputError),
}

/// The largest env file read (README, "Reliability").
pub const CAP: u64 = slugc_fs::input::MANIFEST_CAP;

/// Read and parse one env file (a regular file of at most [`CAP`] bytes); pairs in file order
/// (a later duplicate wins when applied).
pub fn read(path: &Path) -> Result<Vec<(String, String)>, DotenvError> {
    let text = slugc_fs::input::read_text(path, CAP).map_err(DotenvError::Read)?;
    parse(&text).map_err(|(line, message)| DotenvError::Syntax {
        path: path.to_path_buf(),
        line,
        message,
    })
}

/// A build's config var name (`slug build --env`, `slug detect --env`): as [`valid_key`], and
/// also `-` and `.` after the first character, for tools whose settings are read from such
/// names — npm's `npm_config_foreground-scripts`, which Heroku's Node.js CNB suite sets
/// (<https://docs.npmjs.com/cli/v10/using-npm/config#environment-variables>). The build hands
/// config vars over as files (`<platform>/env/<name>`) and in the environment of the
/// processes it starts, which take any name without `=`; they are not part of the release, so
/// no shell ever has to `export` one.
pub fn valid_build_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

pub fn valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parse env file text. Errors carry the 1-based line where the bad construct starts.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        // Leading blanks, then a blank line or a comment line.
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t' || chars[i] == '\r') {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        if chars[i] == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        if chars[i] == '#' {
            skip_to_eol(&chars, &mut i);
            continue;
        }
        let start_line = line;
        let mut key = take_word(&chars, &mut i);
        if key == "export" && i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            skip_blanks(&chars, &mut i);
            key = take_word(&chars, &mut i);
        }
        skip_blanks(&chars, &mut i);
        if i >= chars.len() || chars[i] != '=' {
            // The line is not echoed: it may be a secret with a typo in it.
            return Err((
                start_line,
                "expected KEY=VALUE, a # comment or a blank line (the line is not shown: it may hold a secret)".to_string(),
            ));
        }
        if !valid_key(&key) {
            return Err((
                start_line,
                format!("invalid variable name {}: use letters, digits and '_', not starting with a digit", slugc_fs::input::quote(&key)),
            ));
        }
        i += 1; // '='
        skip_blanks(&chars, &mut i);
        let value = match chars.get(i) {
            Some('\'') => {
                i += 1;
                let mut v = String::new();
                loop {
                    match chars.get(i) {
                        None => {
                            return Err((
                                start_line,
                                format!(
                                    "unterminated ' quote in the value of {}",
                                    slugc_fs::input::clip(&key)
                                ),
                            ))
                        }
                        Some('\'') => break,
                        Some(&c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            v.push(c);
                        }
                    }
                    i += 1;
                }
                i += 1;
                trailing(&chars, &mut i, start_line, &key)?;
                v
            }
            Some('"') => {
                i += 1;
                let mut v = String::new();
                loop {
                    match chars.get(i) {
                        None => {
                            return Err((
                                start_line,
                                format!(
                                    "unterminated \" quote in the value of {}",
                                    slugc_fs::input::clip(&key)
                                ),
                            ))
                        }
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some('n') => v.push('\n'),
                                Some('r') => v.push('\r'),
                                Some('t') => v.push('\t'),
                                Some(&c @ ('"' | '\\' | '$' | '\'')) => v.push(c),
                                Some('\n') => line += 1, // line continuation
                                Some(&c) => {
                                    v.push('\\');
                                    v.push(c);
                                }
                                None => {
                                    return Err((
                                        start_line,
                                        format!(
                                            "unterminated \" quote in the value of {}",
                                            slugc_fs::input::clip(&key)
                                        ),
                                    ))
                                }
                            }
                        }
                        Some(&c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            v.push(c);
                        }
                    }
                    i += 1;
                }
                i += 1;
                trailing(&chars, &mut i, start_line, &key)?;
                v
            }
            _ => {
                // Unquoted: to the end of the line; ` #` starts a comment.
                let mut v = String::new();
                while i < chars.len() && chars[i] != '\n' {
                    if chars[i] == '#' && (v.is_empty() || v.ends_with([' ', '\t'])) {
                        skip_to_eol(&chars, &mut i);
                        break;
                    }
                    v.push(chars[i]);
                    i += 1;
                }
                v.trim_end().to_string()
            }
        };
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn take_word(chars: &[char], i: &mut usize) -> String {
    let mut w = String::new();
    while *i < chars.len() && !matches!(chars[*i], '=' | ' ' | '\t' | '\n' | '\r') {
        w.push(chars[*i]);
        *i += 1;
    }
    w
}

fn skip_blanks(chars: &[char], i: &mut usize) {
    while *i < chars.len() && (chars[*i] == ' ' || chars[*i] == '\t') {
        *i += 1;
    }
}

fn skip_to_eol(chars: &[char], i: &mut usize) {
    while *i < chars.len() && chars[*i] != '\n' {
        *i += 1;
    }
}

/// After a closing quote only blanks and a comment may follow on the line.
fn trailing(chars: &[char], i: &mut usize, line: usize, key: &str) -> Result<(), (usize, String)> {
    skip_blanks(chars, i);
    match chars.get(*i) {
        None | Some('\n') | Some('\r') => Ok(()),
        Some('#') => {
            skip_to_eol(chars, i);
            Ok(())
        }
        Some(_) => Err((
            line,
            format!(
                "unexpected text after the closing quote in the value of {}",
                slugc_fs::input::clip(key)
            ),
        )),
    }
}

/// A malformed `--env`: the message never shows the value, which is often a secret (clap's
/// own value-parser errors echo the whole argument, so `--env` is checked here instead).
#[derive(Debug, thiserror::Error)]
pub enum EnvArgError {
    #[error("--env expects KEY=VALUE: argument {index} of --env has no '=' (not shown: it may hold a secret)")]
    NoEquals { index: usize },
    #[error("--env: {} is not a valid variable name: use letters, digits, '_', '-' and '.', not starting with a digit or '-' (the value is not shown)", slugc_fs::input::quote(.key))]
    BadKey { key: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn build_config_vars_may_have_npms_hyphenated_names() {
        assert!(valid_build_key("npm_config_foreground-scripts"));
        assert!(valid_build_key("NPM_CONFIG_PRODUCTION"));
        assert!(!valid_build_key("-x"));
        assert!(!valid_build_key("1x"));
        assert!(!valid_build_key("a b"));
        assert!(!valid_build_key(""));
        assert!(!valid_key("npm_config_foreground-scripts"));
    }

    #[test]
    fn plain_export_comments_and_blank_lines() {
        let text = "# top\n\nA=1\nexport B=two words  # note\n  C = spaced\nD=\nE=a#b\n";
        assert_eq!(
            parse(text).unwrap(),
            kv(&[
                ("A", "1"),
                ("B", "two words"),
                ("C", "spaced"),
                ("D", ""),
                ("E", "a#b")
            ])
        );
    }

    #[test]
    fn quotes() {
        let text = "S='lit $X \\n # not comment'\nD=\"a\\nb \\\"q\\\" \\\\ $Y\" # c\nM=\"line1\nline2\"\nN=after\n";
        assert_eq!(
            parse(text).unwrap(),
            kv(&[
                ("S", "lit $X \\n # not comment"),
                ("D", "a\nb \"q\" \\ $Y"),
                ("M", "line1\nline2"),
                ("N", "after"),
            ])
        );
    }

    #[test]
    fn crlf_lines() {
        assert_eq!(
            parse("A=1\r\nB='2'\r\n").unwrap(),
            kv(&[("A", "1"), ("B", "2")])
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("A=1\nnot a pair\n").unwrap_err().0, 2);
        assert_eq!(parse("A=1\n\nB='open\n").unwrap_err().0, 3);
        assert_eq!(parse("M=\"a\nb\"\n1X=2\n").unwrap_err().0, 3);
        assert!(parse("A='x' y\n")
            .unwrap_err()
            .1
            .contains("after the closing quote"));
        assert!(parse("A-B=1\n")
            .unwrap_err()
            .1
            .contains("invalid variable name"));
    }

    #[test]
    fn errors_quote_a_bounded_part_of_the_line() {
        let long_key = "K".repeat(100_000);
        for text in [
            format!("{long_key}='open\n"),
            format!("{long_key}=\"x\" trailing\n"),
            format!("1{long_key}=x\n"),
        ] {
            let (_, message) = parse(&text).unwrap_err();
            assert!(message.len() < 400, "{} bytes", message.len());
        }
    }

    #[test]
    fn read_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.env");
        std::fs::write(&path, "OK=1\noops\n").unwrap();
        let e = read(&path).unwrap_err();
        assert!(e
            .to_string()
            .starts_with(&format!("{}:2: ", path.display())));
        let e = read(&dir.path().join("missing.env")).unwrap_err();
        assert!(
            e.to_string().contains("cannot read env file ")
                && e.to_string().contains("missing.env")
        );
    }
}
