//! Procfile parsing and validation: `type: command` lines, `#` comments, blank lines.
//!
//! Type names follow `^[A-Za-z0-9_-]{1,63}$` (stricter than Heroku's `^[-\w]{1,128}$`, so
//! that every name is also a valid DNS label part for `slug manifests`).

use slugc_fs::input::{self, quote, InputError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest Procfile read (README, "Reliability").
pub const CAP: u64 = input::MANIFEST_CAP;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Procfile {
    /// Process types in file order.
    pub processes: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcfileError {
    #[error("{path}:{line}: expected `type: command`, found {}", quote(text))]
    NoColon {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error(
        "{path}:{line}: invalid process type {}: use 1 to 63 letters, digits, '_' or '-'",
        quote(name)
    )]
    BadName {
        path: PathBuf,
        line: usize,
        name: String,
    },
    #[error("{path}:{line}: process type {name:?} has an empty command")]
    EmptyCommand {
        path: PathBuf,
        line: usize,
        name: String,
    },
    #[error("{path}:{line}: process type {name:?} is already defined on line {first}")]
    Duplicate {
        path: PathBuf,
        line: usize,
        name: String,
        first: usize,
    },
    #[error("{}", .0)]
    Read(InputError),
}

pub fn valid_type_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Procfile {
    /// Read `<app>/Procfile` (bounded, inside the app: `slugc_fs::input`); `Ok(None)` when
    /// there is none.
    pub fn read(app_dir: &Path) -> Result<Option<Self>, ProcfileError> {
        let path = app_dir.join("Procfile");
        Self::read_as(app_dir, &path)
    }

    /// Read `<app_dir>/Procfile` as [`Procfile::read`] does, naming it `path` in errors (a
    /// build root's copy is named as the user's file).
    pub fn read_as(app_dir: &Path, path: &Path) -> Result<Option<Self>, ProcfileError> {
        let text = input::read_app_text(app_dir, "Procfile", CAP)
            .map_err(|e| ProcfileError::Read(e.renamed(path.display().to_string())))?;
        match text {
            Some(text) => Self::parse(&text, path).map(Some),
            None => Ok(None),
        }
    }

    /// `path` is only used to name the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ProcfileError> {
        let mut processes: Vec<(String, String)> = Vec::new();
        let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((name, command)) = trimmed.split_once(':') else {
                return Err(ProcfileError::NoColon {
                    path: path.to_path_buf(),
                    line,
                    text: trimmed.to_string(),
                });
            };
            let name = name.trim();
            let command = command.trim();
            if !valid_type_name(name) {
                return Err(ProcfileError::BadName {
                    path: path.to_path_buf(),
                    line,
                    name: name.to_string(),
                });
            }
            if command.is_empty() {
                return Err(ProcfileError::EmptyCommand {
                    path: path.to_path_buf(),
                    line,
                    name: name.to_string(),
                });
            }
            if let Some(&first) = first_line.get(name) {
                return Err(ProcfileError::Duplicate {
                    path: path.to_path_buf(),
                    line,
                    name: name.to_string(),
                    first,
                });
            }
            first_line.insert(name.to_string(), line);
            processes.push((name.to_string(), command.to_string()));
        }
        Ok(Self { processes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Procfile, ProcfileError> {
        Procfile::parse(text, Path::new("app/Procfile"))
    }

    #[test]
    fn parses_types_comments_and_blank_lines() {
        let p =
            parse("# comment\n\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\nworker:python w.py\n")
                .unwrap();
        assert_eq!(
            p.processes,
            vec![
                ("web".into(), "gunicorn app:app --bind 0.0.0.0:$PORT".into()),
                ("worker".into(), "python w.py".into())
            ]
        );
    }

    #[test]
    fn each_rule_names_file_and_line() {
        let e = parse("web: ok\nnot a process line\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "app/Procfile:2: expected `type: command`, found \"not a process line\""
        );
        let e = parse("we b: x\n").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("app/Procfile:1: invalid process type \"we b\""));
        let e = parse(&format!("{}: x\n", "a".repeat(64))).unwrap_err();
        assert!(matches!(e, ProcfileError::BadName { line: 1, .. }));
        let e = parse("web:   \n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "app/Procfile:1: process type \"web\" has an empty command"
        );
        let e = parse("web: a\n\nweb: b\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "app/Procfile:3: process type \"web\" is already defined on line 1"
        );
    }

    #[test]
    fn names_allow_dash_underscore_digits() {
        assert!(valid_type_name("release-phase_2"));
        assert!(!valid_type_name(""));
        assert!(!valid_type_name("web.1"));
    }
}
