//! Which Python the app asks for, and which available version serves that request.
//!
//! Precedence: `.python-version` > `requires-python` in `pyproject.toml` > the newest available
//! version. `runtime.txt` is refused, as Heroku's Python CNB refuses it.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};

/// The oldest minor version this buildpack still builds. Heroku's policy
/// (<https://devcenter.heroku.com/articles/python-support#supported-python-versions>, and
/// heroku/buildpacks-python's `python_version.rs`): a line past its upstream end of life
/// (<https://devguide.python.org/versions/>) still builds, with a deprecation warning, until
/// the buildpack's announced removal date; older lines are refused.
pub const OLDEST_SUPPORTED_MINOR: u16 = 10;
/// The newest minor version released upstream that this buildpack knows of.
pub const NEWEST_KNOWN_MINOR: u16 = 15;

/// Lines that still build but are past their upstream end of life: (minor, end of life,
/// Heroku's removal date).
const DEPRECATED: &[(u16, &str, &str)] = &[(10, "October 2026", "6 January 2027")];

/// The newest patch release of each line this buildpack knows of (Heroku's `LATEST_PYTHON_3_*`
/// where it lists the line). A source may have newer ones, and they are used; only when no
/// source has a requested `3.X.Y` does a patch beyond these count as not existing.
const LATEST_KNOWN_PATCH: &[(u16, u16)] =
    &[(10, 20), (11, 15), (12, 13), (13, 13), (14, 5), (15, 0)];

/// The warning for a version of a deprecated line, if it is one.
pub fn deprecation(v: &PythonVersion) -> Option<String> {
    let (minor, eol, removal) = DEPRECATED
        .iter()
        .find(|(minor, _, _)| v.major == 3 && *minor == v.minor)?;
    // The nearest line is the oldest one above it that is not deprecated: the smallest move.
    let nearest = (minor + 1..=NEWEST_KNOWN_MINOR)
        .find(|m| !DEPRECATED.iter().any(|(d, _, _)| d == m))
        .unwrap_or(NEWEST_KNOWN_MINOR);
    Some(format!(
        "Python 3.{minor} reached its upstream end of life in {eol} and no longer receives \
         security updates (https://devguide.python.org/versions/). Heroku removes it from its \
         Python buildpack on {removal}; slugc follows; {}.",
        slugc_diagnostics::nearest_supported(
            &format!("3.{nearest}"),
            &format!("`3.{nearest}` in .python-version")
        )
    ))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PythonVersion {
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
}

impl PythonVersion {
    pub fn new(major: u16, minor: u16, patch: u16) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// `3.X.Y` only; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        let version = Self::new(
            parse_number(parts.next()?)?,
            parse_number(parts.next()?)?,
            parse_number(parts.next()?)?,
        );
        parts.next().is_none().then_some(version)
    }

    fn pep440(&self) -> Version {
        Version::new([self.major, self.minor, self.patch].map(u64::from))
    }

    /// `3.X` of this version.
    pub fn minor_string(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

impl fmt::Display for PythonVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

fn parse_number(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// What the app asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionRequest {
    /// `3.X`: the newest available `3.X.Y`.
    Minor { major: u16, minor: u16 },
    /// `3.X.Y`: exactly that.
    Exact(PythonVersion),
    /// A PEP 440 specifier set from `requires-python`.
    Specifier(VersionSpecifiers),
    /// No request: the newest available supported version.
    Default,
}

/// Where the request came from, for the log and error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestOrigin {
    PythonVersionFile,
    RuntimeTxt,
    PyprojectRequiresPython,
    Default,
}

impl fmt::Display for RequestOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PythonVersionFile => ".python-version",
            Self::RuntimeTxt => "runtime.txt",
            Self::PyprojectRequiresPython => "requires-python in pyproject.toml",
            Self::Default => "the buildpack default (newest available)",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestedVersion {
    pub request: VersionRequest,
    pub origin: RequestOrigin,
    /// The text as the user wrote it (for messages).
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("{}", .0)]
    Read(slugc_fs::input::InputError),
    #[error("{file}: {reason}")]
    Malformed { file: String, reason: String },
    /// `runtime.txt` is refused, alone or beside `.python-version`, as Heroku's Python CNB
    /// refuses it (its `runtime_txt` tests): the version goes in `.python-version`.
    #[error("runtime.txt is not supported: the Python version goes in .python-version")]
    RuntimeTxt {
        /// The `3.X` line runtime.txt asks for, when it parses.
        line: Option<String>,
        /// What `.python-version` says, when the app has one too.
        python_version_file: Option<String>,
    },
}

impl VersionError {
    /// The lines after the first, for [`VersionError::RuntimeTxt`]: the fix.
    pub fn runtime_txt_fix(&self) -> Option<String> {
        let Self::RuntimeTxt {
            line,
            python_version_file,
        } = self
        else {
            return None;
        };
        Some(match (python_version_file, line) {
            (Some(text), _) => format!(
                ".python-version already asks for {}, and it is what counts: delete runtime.txt.",
                slugc_fs::input::quote(text)
            ),
            (None, Some(line)) => format!(
                "Delete runtime.txt and create .python-version holding just `{line}` (the line \
                 runtime.txt asks for; a patch version would stop security updates)."
            ),
            (None, None) => format!(
                "Delete runtime.txt and create .python-version holding just the version, e.g. \
                 `3.{NEWEST_KNOWN_MINOR}` (runtime.txt's `python-3.X` or `python-3.X.Y` becomes \
                 `3.X`)."
            ),
        })
    }
}

/// Read the app's request, by precedence. `_warnings` is for deprecation notices; no
/// version source gives one today.
pub fn read_requested_version(
    app_dir: &Path,
    _warnings: &mut Vec<String>,
) -> Result<RequestedVersion, VersionError> {
    let python_version_file = read_optional(app_dir, ".python-version")?;
    if let Some(text) = read_optional(app_dir, "runtime.txt")? {
        let line = parse_runtime_txt(&text).ok().and_then(|r| match r.request {
            VersionRequest::Minor { major, minor } => Some(format!("{major}.{minor}")),
            VersionRequest::Exact(v) => Some(v.minor_string()),
            _ => None,
        });
        let python_version_file = match python_version_file {
            Some(text) => Some(parse_python_version_file(&text)?.text),
            None => None,
        };
        return Err(VersionError::RuntimeTxt {
            line,
            python_version_file,
        });
    }
    if let Some(text) = python_version_file {
        return parse_python_version_file(&text);
    }
    if let Some(text) = read_optional(app_dir, "pyproject.toml")? {
        if let Some(requested) = parse_pyproject_requires_python(&text)? {
            return Ok(requested);
        }
    }
    Ok(RequestedVersion {
        request: VersionRequest::Default,
        origin: RequestOrigin::Default,
        text: String::new(),
    })
}

fn read_optional(app_dir: &Path, name: &str) -> Result<Option<String>, VersionError> {
    slugc_fs::input::read_app_text(app_dir, name, slugc_fs::input::MANIFEST_CAP)
        .map_err(VersionError::Read)
}

/// `.python-version`: one `3.X` or `3.X.Y` line; comments (`#`) and blank lines ignored.
pub fn parse_python_version_file(text: &str) -> Result<RequestedVersion, VersionError> {
    let malformed = |reason: String| VersionError::Malformed {
        file: ".python-version".to_string(),
        reason,
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let line = match lines.as_slice() {
        [line] => *line,
        [] => return Err(malformed("the file holds no version".to_string())),
        _ => {
            return Err(malformed(format!(
                "the file holds {} versions ({}); it must hold exactly one",
                lines.len(),
                slugc_fs::input::clip(&lines.join(", "))
            )))
        }
    };
    let request = parse_version_text(line).ok_or_else(|| {
        malformed(format!(
            "{} is not a Python version; write `3.X` or `3.X.Y`, e.g. `3.12`",
            slugc_fs::input::quote(line)
        ))
    })?;
    Ok(RequestedVersion {
        request,
        origin: RequestOrigin::PythonVersionFile,
        text: line.to_string(),
    })
}

/// `runtime.txt`: `python-3.X.Y` (or `python-3.X`).
pub fn parse_runtime_txt(text: &str) -> Result<RequestedVersion, VersionError> {
    let line = text.trim();
    let request = line
        .strip_prefix("python-")
        .and_then(parse_version_text)
        .ok_or_else(|| VersionError::Malformed {
            file: "runtime.txt".to_string(),
            reason: format!(
                "{} is not a Python version; write `python-3.X` or `python-3.X.Y`",
                slugc_fs::input::quote(line)
            ),
        })?;
    Ok(RequestedVersion {
        request,
        origin: RequestOrigin::RuntimeTxt,
        text: line.to_string(),
    })
}

fn parse_version_text(text: &str) -> Option<VersionRequest> {
    let parts: Vec<&str> = text.split('.').collect();
    match parts.as_slice() {
        [major, minor] => Some(VersionRequest::Minor {
            major: parse_number(major)?,
            minor: parse_number(minor)?,
        }),
        [_, _, _] => PythonVersion::parse(text).map(VersionRequest::Exact),
        _ => None,
    }
}

#[derive(serde::Deserialize)]
struct Pyproject {
    project: Option<PyprojectProject>,
}

#[derive(serde::Deserialize)]
struct PyprojectProject {
    #[serde(rename = "requires-python")]
    requires_python: Option<String>,
}

/// `[project] requires-python` of `pyproject.toml`, if any.
pub fn parse_pyproject_requires_python(
    text: &str,
) -> Result<Option<RequestedVersion>, VersionError> {
    let malformed = |reason: String| VersionError::Malformed {
        file: "pyproject.toml".to_string(),
        reason,
    };
    let pyproject: Pyproject = toml::from_str(text)
        .map_err(|e| malformed(slugc_fs::input::clip_message(&e.to_string())))?;
    let Some(spec) = pyproject.project.and_then(|p| p.requires_python) else {
        return Ok(None);
    };
    let specifiers = parse_specifier(&spec).ok_or_else(|| {
        malformed(format!(
            "requires-python = {} is not a version specifier (e.g. \">=3.11\")",
            slugc_fs::input::quote(&spec)
        ))
    })?;
    Ok(Some(RequestedVersion {
        request: VersionRequest::Specifier(specifiers),
        origin: RequestOrigin::PyprojectRequiresPython,
        text: spec,
    }))
}

/// `None` for text that is not a PEP 440 specifier set, and for an empty one: an empty
/// `requires-python` is a mistake rather than a request for any Python.
fn parse_specifier(spec: &str) -> Option<VersionSpecifiers> {
    VersionSpecifiers::from_str(spec)
        .ok()
        .filter(|specifiers| !specifiers.is_empty())
}

/// Why a request cannot be served from the available versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unserved {
    /// The request names a Python that has reached end of life.
    EndOfLife,
    /// The request names a Python that does not exist (or is newer than this buildpack knows).
    Unknown,
    /// A supported Python, but none of the sources has it.
    NotAvailable,
}

impl VersionRequest {
    pub fn matches(&self, v: &PythonVersion) -> bool {
        match self {
            Self::Minor { major, minor } => v.major == *major && v.minor == *minor,
            Self::Exact(exact) => v == exact,
            Self::Specifier(specifiers) => specifiers.contains(&v.pep440()),
            Self::Default => true,
        }
    }

    /// Classify a request no available version satisfies.
    pub fn classify_unserved(&self) -> Unserved {
        let (major, minor) = match self {
            Self::Minor { major, minor } => (*major, *minor),
            Self::Exact(v) => (v.major, v.minor),
            Self::Specifier(_) | Self::Default => return Unserved::NotAvailable,
        };
        let beyond_latest_patch = match self {
            Self::Exact(v) => LATEST_KNOWN_PATCH
                .iter()
                .any(|(m, latest)| *m == v.minor && v.patch > *latest),
            _ => false,
        };
        if major < 3 || (major == 3 && minor < OLDEST_SUPPORTED_MINOR) {
            Unserved::EndOfLife
        } else if major > 3 || minor > NEWEST_KNOWN_MINOR || beyond_latest_patch {
            Unserved::Unknown
        } else {
            Unserved::NotAvailable
        }
    }
}

/// Is `v` a version this buildpack will install at all?
pub fn is_supported(v: &PythonVersion) -> bool {
    v.major == 3 && (OLDEST_SUPPORTED_MINOR..=NEWEST_KNOWN_MINOR).contains(&v.minor)
}

/// The newest supported version in `available` that satisfies `request`.
pub fn select<'a, T>(
    request: &VersionRequest,
    available: &'a [T],
    version_of: impl Fn(&T) -> PythonVersion,
) -> Option<&'a T> {
    available
        .iter()
        .filter(|c| is_supported(&version_of(c)) && request.matches(&version_of(c)))
        // The first of equal versions wins: sources are listed in order of preference.
        .reduce(|best, c| {
            if version_of(c) > version_of(best) {
                c
            } else {
                best
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> PythonVersion {
        PythonVersion::parse(text).unwrap()
    }

    #[test]
    fn python_version_file_forms() {
        let r = parse_python_version_file("3.12\n").unwrap();
        assert_eq!(
            r.request,
            VersionRequest::Minor {
                major: 3,
                minor: 12
            }
        );
        let r = parse_python_version_file("# pinned\n\n 3.11.2 \n").unwrap();
        assert_eq!(r.request, VersionRequest::Exact(v("3.11.2")));
    }

    #[test]
    fn python_version_file_malformed() {
        for text in [
            "",
            "python3.11",
            "3",
            "3.11.x",
            "3.11.2.1",
            "pypy3.10",
            "3.11\n3.12",
        ] {
            let err = parse_python_version_file(text).unwrap_err();
            assert!(err.to_string().starts_with(".python-version: "), "{err}");
        }
    }

    #[test]
    fn runtime_txt() {
        let r = parse_runtime_txt("python-3.11.7\n").unwrap();
        assert_eq!(r.request, VersionRequest::Exact(v("3.11.7")));
        assert!(parse_runtime_txt("3.11.7").is_err());
    }

    #[test]
    fn requires_python_specifiers() {
        let spec = |s: &str| parse_specifier(s).unwrap();
        let req = VersionRequest::Specifier(spec(">=3.11,<3.13"));
        assert!(req.matches(&v("3.12.9")));
        assert!(!req.matches(&v("3.13.0")));
        assert!(!req.matches(&v("3.10.13")));
        let req = VersionRequest::Specifier(spec("~=3.12"));
        assert!(req.matches(&v("3.13.1")));
        assert!(!req.matches(&v("3.11.9")));
        let req = VersionRequest::Specifier(spec("~=3.11.2"));
        assert!(req.matches(&v("3.11.7")));
        assert!(!req.matches(&v("3.12.0")));
        let req = VersionRequest::Specifier(spec("==3.12.*"));
        assert!(req.matches(&v("3.12.1")));
        assert!(!req.matches(&v("3.11.1")));
        assert!(parse_specifier(">=3.x").is_none());
        assert!(parse_specifier(">=3.11.*").is_none());
        assert!(parse_specifier("").is_none());
    }

    #[test]
    fn pyproject_without_requires_python_is_no_request() {
        assert_eq!(
            parse_pyproject_requires_python("[project]\nname = 'x'\n").unwrap(),
            None
        );
        assert!(parse_pyproject_requires_python("[project\n").is_err());
    }

    #[test]
    fn precedence_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut warnings = Vec::new();
        let d = dir.path();
        std::fs::write(
            d.join("pyproject.toml"),
            "[project]\nrequires-python = \">=3.12\"\n",
        )
        .unwrap();
        let r = read_requested_version(d, &mut warnings).unwrap();
        assert_eq!(r.origin, RequestOrigin::PyprojectRequiresPython);
        std::fs::write(d.join(".python-version"), "3.13").unwrap();
        let r = read_requested_version(d, &mut warnings).unwrap();
        assert_eq!(r.origin, RequestOrigin::PythonVersionFile);
        assert!(warnings.is_empty());
    }

    #[test]
    fn runtime_txt_is_refused_alone_or_beside_python_version() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (text, fix) in [
            ("python-3.11.7\n", "holding just `3.11`"),
            ("python-3.12", "holding just `3.12`"),
            ("3.12", "`python-3.X` or `python-3.X.Y` becomes `3.X`"),
        ] {
            std::fs::write(d.join("runtime.txt"), text).unwrap();
            let e = read_requested_version(d, &mut Vec::new()).unwrap_err();
            assert!(
                e.to_string().starts_with("runtime.txt is not supported"),
                "{e}"
            );
            assert!(
                e.runtime_txt_fix().unwrap().contains(fix),
                "{text}: {:?}",
                e.runtime_txt_fix()
            );
        }
        std::fs::write(d.join(".python-version"), "3.13\n").unwrap();
        let e = read_requested_version(d, &mut Vec::new()).unwrap_err();
        assert!(
            e.runtime_txt_fix()
                .unwrap()
                .contains("already asks for \"3.13\""),
            "{e}"
        );
    }

    #[test]
    fn selection_and_classification() {
        let available = [v("3.11.2"), v("3.11.7"), v("3.12.1"), v("3.9.18")];
        let pick = |r: VersionRequest| select(&r, &available, |x| *x).copied();
        assert_eq!(pick(VersionRequest::Default), Some(v("3.12.1")));
        assert_eq!(
            pick(VersionRequest::Minor {
                major: 3,
                minor: 11
            }),
            Some(v("3.11.7"))
        );
        assert_eq!(pick(VersionRequest::Exact(v("3.11.2"))), Some(v("3.11.2")));
        // End-of-life versions are never selected, even when a source has them.
        let eol = VersionRequest::Minor { major: 3, minor: 9 };
        assert_eq!(pick(eol.clone()), None);
        assert_eq!(eol.classify_unserved(), Unserved::EndOfLife);
        let unknown = VersionRequest::Minor {
            major: 3,
            minor: 99,
        };
        assert_eq!(unknown.classify_unserved(), Unserved::Unknown);
        assert_eq!(
            VersionRequest::Exact(v("3.12.5")).classify_unserved(),
            Unserved::NotAvailable
        );
        // A patch beyond the newest release of its line does not exist.
        assert_eq!(
            VersionRequest::Exact(v("3.12.999")).classify_unserved(),
            Unserved::Unknown
        );
        assert!(deprecation(&v("3.10.13")).is_some_and(|w| w.contains("6 January 2027")));
        assert_eq!(deprecation(&v("3.11.2")), None);
    }
}
