//! Every constraint the app states on its Python version, beside the one request that
//! `python_version` reads by precedence: `[project] requires-python` and `[tool.poetry.dependencies]
//! python` in `pyproject.toml`, `[requires] python_version`/`python_full_version` in `Pipfile`.
//! The version chosen must satisfy all of them, as Poetry and Pipenv refuse an interpreter
//! their project excludes; a request no version can satisfy together with them is invalid app
//! input, reported before anything is installed.

use crate::python_version::{
    PythonVersion, RequestedVersion, VersionRequest, NEWEST_KNOWN_MINOR, OLDEST_SUPPORTED_MINOR,
};
use pep440_rs::{Version, VersionSpecifiers};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// One stated constraint: any of its alternatives (Poetry's `||`) allows a version.
#[derive(Clone, Debug)]
pub struct Constraint {
    /// The file, and where in it.
    pub origin: &'static str,
    /// As the app wrote it.
    pub text: String,
    alternatives: Vec<VersionSpecifiers>,
}

impl Constraint {
    pub fn allows(&self, v: &PythonVersion) -> bool {
        let version = Version::new([v.major, v.minor, v.patch].map(u64::from));
        self.alternatives.iter().any(|s| s.contains(&version))
    }

    /// The file alone (`pyproject.toml`), for the error's first line.
    fn file(&self) -> &'static str {
        self.origin.split(' ').next().unwrap_or(self.origin)
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {}",
            self.origin,
            slugc_fs::input::quote(&self.text)
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConstraintError {
    #[error("{}", .0)]
    Read(slugc_fs::input::InputError),
    #[error("{file}: {reason}")]
    Malformed { file: &'static str, reason: String },
    /// No Python satisfies the request and every constraint together.
    #[error("no Python version satisfies every constraint in {}", files(.requested, .constraints))]
    Conflict {
        requested: Box<RequestedVersion>,
        constraints: Vec<Constraint>,
        /// A `3.X` that satisfies the constraints, if any, for the hint.
        suggestion: Option<String>,
    },
}

fn files(requested: &RequestedVersion, constraints: &[Constraint]) -> String {
    let mut files: Vec<String> = Vec::new();
    if requested.request != VersionRequest::Default {
        files.push(requested.origin.to_string());
    }
    for c in constraints {
        let file = c.file().to_string();
        if !files.iter().any(|f| f.starts_with(&file)) {
            files.push(file);
        }
    }
    files.join(", ")
}

impl ConstraintError {
    /// The lines after the first: what each file says, and the fix.
    pub fn detail(&self) -> String {
        let Self::Conflict {
            requested,
            constraints,
            suggestion,
        } = self
        else {
            return String::new();
        };
        let mut lines = Vec::new();
        if requested.request != VersionRequest::Default {
            lines.push(format!(
                "{} asks for {}",
                requested.origin,
                slugc_fs::input::quote(&requested.text)
            ));
        }
        lines.extend(constraints.iter().map(ToString::to_string));
        let fix = match (suggestion, &requested.origin) {
            (Some(s), crate::python_version::RequestOrigin::Default) => {
                format!("Fix: make the constraints agree, e.g. on Python {s}.")
            }
            (Some(s), origin) => {
                format!("Fix: request `{s}` in {origin}, or widen the constraints.")
            }
            (None, _) => {
                "Fix: make the constraints agree on a supported Python (3.11 or newer).".to_string()
            }
        };
        format!("{}\n{fix}", lines.join("\n"))
    }
}

#[derive(serde::Deserialize)]
struct Pyproject {
    project: Option<Project>,
    tool: Option<Tool>,
}

#[derive(serde::Deserialize)]
struct Project {
    #[serde(rename = "requires-python")]
    requires_python: Option<String>,
}

#[derive(serde::Deserialize)]
struct Tool {
    poetry: Option<Poetry>,
}

#[derive(serde::Deserialize)]
struct Poetry {
    dependencies: Option<toml::Table>,
}

#[derive(serde::Deserialize)]
struct Pipfile {
    requires: Option<PipfileRequires>,
}

#[derive(serde::Deserialize)]
struct PipfileRequires {
    python_version: Option<String>,
    python_full_version: Option<String>,
}

/// The constraints of `app_dir`, in file order.
pub fn read(app_dir: &Path) -> Result<Vec<Constraint>, ConstraintError> {
    let mut out = Vec::new();
    let read = |name| {
        slugc_fs::input::read_app_text(app_dir, name, slugc_fs::input::MANIFEST_CAP)
            .map_err(ConstraintError::Read)
    };
    if let Some(text) = read("pyproject.toml")? {
        let malformed = |reason: String| ConstraintError::Malformed {
            file: "pyproject.toml",
            reason,
        };
        let pyproject: Pyproject = toml::from_str(&text)
            .map_err(|e| malformed(slugc_fs::input::clip_message(&e.to_string())))?;
        if let Some(spec) = pyproject.project.and_then(|p| p.requires_python) {
            // PEP 440 wants an operator, but Poetry reads this field in its own syntax
            // (poetry-core `Factory`: `parse_constraint`), where `3.12.*` is a release line:
            // read it so when PEP 440 cannot, rather than refuse what Poetry accepts.
            let origin = "pyproject.toml [project] requires-python";
            out.push(
                pep440(origin, "pyproject.toml", spec.clone())
                    .or_else(|e| poetry(origin, spec).map_err(|_| e))?,
            );
        }
        let poetry_python = pyproject
            .tool
            .and_then(|t| t.poetry)
            .and_then(|p| p.dependencies)
            .and_then(|d| d.get("python").cloned());
        match poetry_python {
            Some(toml::Value::String(spec)) => out.push(poetry(
                "pyproject.toml [tool.poetry.dependencies] python",
                spec,
            )?),
            Some(_) => {
                return Err(malformed(
                    "[tool.poetry.dependencies] python must be a version constraint string \
                     (e.g. \"^3.12\")"
                        .to_string(),
                ))
            }
            None => {}
        }
    }
    if let Some(text) = read("Pipfile")? {
        let pipfile: Pipfile = toml::from_str(&text).map_err(|e| ConstraintError::Malformed {
            file: "Pipfile",
            reason: slugc_fs::input::clip_message(&e.to_string()),
        })?;
        if let Some(requires) = pipfile.requires {
            // The full version is the stricter of the two when both are there.
            if let Some(full) = requires.python_full_version {
                out.push(pep440(
                    "Pipfile [requires] python_full_version",
                    "Pipfile",
                    format!("=={full}"),
                )?);
            } else if let Some(minor) = requires.python_version {
                out.push(pep440(
                    "Pipfile [requires] python_version",
                    "Pipfile",
                    format!("=={minor}.*"),
                )?);
            }
        }
    }
    Ok(out)
}

/// `origin` without its file's name, which the error's display puts first.
fn key_of<'a>(origin: &'a str, file: &str) -> &'a str {
    origin.strip_prefix(file).unwrap_or(origin).trim_start()
}

fn pep440(
    origin: &'static str,
    file: &'static str,
    text: String,
) -> Result<Constraint, ConstraintError> {
    let specifiers = VersionSpecifiers::from_str(&text)
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConstraintError::Malformed {
            file,
            reason: format!(
                "{}: {} is not a version specifier (e.g. \">=3.11\")",
                key_of(origin, file),
                slugc_fs::input::quote(&text)
            ),
        })?;
    Ok(Constraint {
        origin,
        text,
        alternatives: vec![specifiers],
    })
}

/// `[tool.poetry.dependencies] python`, in Poetry's constraint syntax
/// (<https://python-poetry.org/docs/dependency-specification/#version-constraints>).
fn poetry(origin: &'static str, text: String) -> Result<Constraint, ConstraintError> {
    let alternatives = text
        .split("||")
        .flat_map(|a| a.split('|'))
        .map(poetry_alternative)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ConstraintError::Malformed {
            file: "pyproject.toml",
            reason: format!(
                "{}: {} is not a Poetry version constraint (e.g. \"^3.12\")",
                key_of(origin, "pyproject.toml"),
                slugc_fs::input::quote(&text)
            ),
        })?;
    Ok(Constraint {
        origin,
        text,
        alternatives,
    })
}

/// One alternative: terms joined by `,` or blanks, all of which must hold.
fn poetry_alternative(text: &str) -> Option<VersionSpecifiers> {
    let mut terms = Vec::new();
    let mut pending_op: Option<&str> = None;
    for token in text.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
        // `>= 3.11`: an operator written apart from its version.
        if token.bytes().all(|b| b"<>=!~^".contains(&b)) {
            pending_op = Some(token);
            continue;
        }
        let token = match pending_op.take() {
            Some(op) => format!("{op}{token}"),
            None => token.to_string(),
        };
        terms.push(poetry_term(&token)?);
    }
    if pending_op.is_some() {
        return None;
    }
    if terms.is_empty() {
        return None;
    }
    VersionSpecifiers::from_str(&terms.join(",")).ok()
}

/// One Poetry term as PEP 440 specifiers.
fn poetry_term(term: &str) -> Option<String> {
    if term == "*" {
        return Some(">=0".to_string());
    }
    let release = |v: &str| -> Option<Vec<u64>> {
        v.split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<Vec<u64>>>()
    };
    let join = |parts: &[u64]| {
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".")
    };
    if let Some(v) = term.strip_prefix('^') {
        // The leftmost non-zero part may not change.
        let parts = release(v)?;
        let keep = parts
            .iter()
            .position(|&p| p != 0)
            .unwrap_or(parts.len() - 1);
        let mut upper = parts[..=keep].to_vec();
        upper[keep] += 1;
        return Some(format!(">={v},<{}", join(&upper)));
    }
    if let Some(v) = term.strip_prefix("~=") {
        return Some(format!("~={v}"));
    }
    if let Some(v) = term.strip_prefix('~') {
        // `~3.12` and `~3.12.1`: the minor may not change; `~3`: the major may not.
        let parts = release(v)?;
        let keep = if parts.len() == 1 { 0 } else { 1 };
        let mut upper = parts[..=keep].to_vec();
        upper[keep] += 1;
        return Some(format!(">={v},<{}", join(&upper)));
    }
    for op in ["==", "!=", ">=", "<=", ">", "<"] {
        if let Some(v) = term.strip_prefix(op) {
            return Some(format!("{op}{v}"));
        }
    }
    if term.ends_with(".*") {
        return Some(format!("=={term}"));
    }
    // A bare `3.12` is a release line (all of 3.12.*), and `3.12.4` that exact version.
    match release(term)?.len() {
        1 | 2 => Some(format!("=={term}.*")),
        _ => Some(format!("=={term}")),
    }
}

/// The versions this buildpack could install at all (patches up to a bound no release line
/// reaches), and an exact request's own version.
fn known_versions(request: &VersionRequest) -> Vec<PythonVersion> {
    let mut all: Vec<PythonVersion> = (OLDEST_SUPPORTED_MINOR..=NEWEST_KNOWN_MINOR)
        .flat_map(|minor| (0..=60).map(move |patch| PythonVersion::new(3, minor, patch)))
        .collect();
    if let VersionRequest::Exact(v) = request {
        all.push(*v);
    }
    all
}

/// Refuse a request that no version can satisfy together with every constraint. A request
/// that no supported version satisfies on its own (end of life, unknown) is left to the
/// version selection, which says so.
pub fn check(
    requested: &RequestedVersion,
    constraints: &[Constraint],
) -> Result<(), ConstraintError> {
    let known = known_versions(&requested.request);
    let allowed = |v: &PythonVersion| constraints.iter().all(|c| c.allows(v));
    let requestable = known.iter().any(|v| requested.request.matches(v));
    if !requestable
        || known
            .iter()
            .any(|v| requested.request.matches(v) && allowed(v))
    {
        return Ok(());
    }
    let suggestion = known
        .iter()
        .filter(|v| allowed(v))
        .max()
        .map(PythonVersion::minor_string);
    Err(ConstraintError::Conflict {
        requested: Box::new(requested.clone()),
        constraints: constraints.to_vec(),
        suggestion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python_version::RequestOrigin;

    const P: &str = "pyproject.toml [tool.poetry.dependencies] python";

    fn v(text: &str) -> PythonVersion {
        PythonVersion::parse(text).unwrap()
    }

    #[test]
    fn poetry_syntax() {
        let c = poetry(P, "^3.12".to_string()).unwrap();
        assert!(c.allows(&v("3.13.1")) && c.allows(&v("3.12.0")) && !c.allows(&v("3.11.9")));
        let c = poetry(P, "~3.12".to_string()).unwrap();
        assert!(c.allows(&v("3.12.7")) && !c.allows(&v("3.13.0")));
        let c = poetry(P, "3.12.*".to_string()).unwrap();
        assert!(c.allows(&v("3.12.7")) && !c.allows(&v("3.13.0")));
        let c = poetry(P, "3.12".to_string()).unwrap();
        assert!(c.allows(&v("3.12.7")) && !c.allows(&v("3.11.0")));
        let c = poetry(P, ">= 3.11, <3.13".to_string()).unwrap();
        assert!(c.allows(&v("3.12.7")) && !c.allows(&v("3.13.0")));
        let c = poetry(P, ">=3.11 <3.12 || ^3.13".to_string()).unwrap();
        assert!(c.allows(&v("3.11.2")) && !c.allows(&v("3.12.0")) && c.allows(&v("3.14.0")));
        for bad in ["", "^three", ">=", "3.x"] {
            assert!(poetry(P, bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_request_outside_the_constraints_is_refused_naming_every_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[project]\nrequires-python = \">=3.11\"\n[tool.poetry.dependencies]\npython = \"3.12.*\"\n",
        )
        .unwrap();
        let constraints = read(dir.path()).unwrap();
        assert_eq!(constraints.len(), 2);
        let requested = crate::python_version::parse_python_version_file("3.13").unwrap();
        let e = check(&requested, &constraints).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no Python version satisfies every constraint in .python-version, pyproject.toml"
        );
        assert!(
            e.detail().contains("request `3.12` in .python-version"),
            "{}",
            e.detail()
        );
        let ok = crate::python_version::parse_python_version_file("3.12").unwrap();
        assert!(check(&ok, &constraints).is_ok());
        let default = RequestedVersion {
            request: VersionRequest::Default,
            origin: RequestOrigin::Default,
            text: String::new(),
        };
        assert!(check(&default, &constraints).is_ok());
        // End of life is the selection's to report, not a conflict.
        let eol = crate::python_version::parse_python_version_file("3.9").unwrap();
        assert!(check(&eol, &constraints).is_ok());
    }

    #[test]
    fn pipfile_requires() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Pipfile"),
            "[requires]\npython_version = \"3.11\"\n",
        )
        .unwrap();
        let c = read(dir.path()).unwrap();
        assert!(c[0].allows(&v("3.11.9")) && !c[0].allows(&v("3.12.0")));
    }

    #[test]
    fn requires_python_without_an_operator_is_read_as_poetry_does() {
        let dir = tempfile::tempdir().unwrap();
        let write = |spec: &str| {
            std::fs::write(
                dir.path().join("pyproject.toml"),
                format!("[project]\nrequires-python = \"{spec}\"\n"),
            )
            .unwrap()
        };
        write("3.12.*");
        let c = read(dir.path()).unwrap();
        assert!(c[0].allows(&v("3.12.9")) && !c[0].allows(&v("3.13.0")));
        write("3.x");
        assert_eq!(
            read(dir.path()).err().unwrap().to_string(),
            "pyproject.toml: [project] requires-python: \"3.x\" is not a version specifier \
             (e.g. \">=3.11\")"
        );
    }
}
