//! `poetry.lock` (main group) and `Pipfile.lock` (`default`) as pinned, hashed requirement
//! lines, so that one installer (uv's pip interface, or pip) installs every kind of app.

use crate::errors::PythonBuildpackError;
use crate::package_manager::PackageManager;
use serde::Deserialize;
use slugc_fs::input::{self, clip, clip_message};
use std::collections::BTreeMap;
use std::path::Path;

/// The file that selects `package_manager`, read boundedly (`requirements.txt` as a manifest,
/// the others as lockfiles) and as UTF-8.
pub fn read(
    app_dir: &Path,
    package_manager: PackageManager,
) -> Result<String, PythonBuildpackError> {
    let cap = match package_manager {
        PackageManager::Requirements => input::MANIFEST_CAP,
        _ => input::LOCKFILE_CAP,
    };
    let file = package_manager.file();
    match input::read_app_text(app_dir, file, cap)? {
        Some(text) => Ok(text),
        None => Err(lock_error(file, "the file is missing")),
    }
}

/// The selecting file parses and a `poetry.lock` or `Pipfile.lock` is not stale: what
/// detection checks, so that a bad lockfile is reported before the build starts. `uv.lock` is
/// TOML; uv checks its contents (and its freshness, `--locked`).
pub fn check(app_dir: &Path, package_manager: PackageManager) -> Result<(), PythonBuildpackError> {
    let text = read(app_dir, package_manager)?;
    match package_manager {
        PackageManager::Requirements => Ok(()),
        PackageManager::Poetry => {
            poetry_requirements(&text)?;
            crate::freshness::check_poetry(app_dir, &text)
        }
        PackageManager::Pipenv => {
            pipenv_requirements(&text)?;
            crate::freshness::check_pipenv(app_dir, &text)
        }
        PackageManager::Uv => toml::from_str::<toml::Table>(&text)
            .map(drop)
            .map_err(|e| lock_error("uv.lock", clip_message(&e.to_string()))),
    }
}

#[derive(Deserialize)]
struct PoetryLock {
    #[serde(default)]
    package: Vec<PoetryPackage>,
}

#[derive(Deserialize)]
struct PoetryPackage {
    name: String,
    version: String,
    /// Poetry 1.x lockfiles.
    category: Option<String>,
    /// Poetry 2.x lockfiles.
    groups: Option<Vec<String>>,
    markers: Option<PoetryMarkers>,
    #[serde(default)]
    files: Vec<PoetryFile>,
    source: Option<PoetrySource>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PoetryMarkers {
    One(String),
    /// Per group: `{ main = "..." }`.
    PerGroup(BTreeMap<String, String>),
}

#[derive(Deserialize)]
struct PoetryFile {
    hash: String,
}

#[derive(Deserialize)]
struct PoetrySource {
    #[serde(rename = "type")]
    kind: String,
}

fn lock_error(file: &str, reason: impl Into<String>) -> PythonBuildpackError {
    PythonBuildpackError::Lockfile {
        file: file.to_string(),
        reason: reason.into(),
    }
}

/// The main group of a `poetry.lock` as requirement lines.
pub fn poetry_requirements(text: &str) -> Result<String, PythonBuildpackError> {
    let lock: PoetryLock = toml::from_str(text)
        .map_err(|e| lock_error("poetry.lock", clip_message(&e.to_string())))?;
    let mut lines = String::new();
    for p in lock.package {
        let main = match (&p.groups, &p.category) {
            (Some(groups), _) => groups.iter().any(|g| g == "main"),
            (None, Some(category)) => category == "main",
            (None, None) => true,
        };
        if !main {
            continue;
        }
        if let Some(source) = &p.source {
            if source.kind != "legacy" {
                return Err(lock_error(
                    "poetry.lock",
                    format!(
                        "{} comes from a {} source, which the buildpack cannot install",
                        clip(&p.name),
                        clip(&source.kind)
                    ),
                ));
            }
        }
        let marker = match &p.markers {
            Some(PoetryMarkers::One(m)) => Some(m.clone()),
            Some(PoetryMarkers::PerGroup(m)) => m.get("main").cloned(),
            None => None,
        };
        let hashes: Vec<String> = p.files.iter().map(|f| f.hash.clone()).collect();
        lines.push_str(&requirement_line(
            &p.name,
            &format!("=={}", p.version),
            marker.as_deref(),
            &hashes,
        ));
    }
    Ok(lines)
}

#[derive(Deserialize)]
struct PipfileLock {
    #[serde(default)]
    default: BTreeMap<String, PipfileEntry>,
}

#[derive(Deserialize)]
struct PipfileEntry {
    version: Option<String>,
    #[serde(default)]
    hashes: Vec<String>,
    markers: Option<String>,
}

/// The `default` packages of a `Pipfile.lock` as requirement lines.
pub fn pipenv_requirements(text: &str) -> Result<String, PythonBuildpackError> {
    let lock: PipfileLock = serde_json::from_str(text)
        .map_err(|e| lock_error("Pipfile.lock", clip_message(&e.to_string())))?;
    let mut lines = String::new();
    for (name, entry) in lock.default {
        let version = entry.version.ok_or_else(|| {
            lock_error(
                "Pipfile.lock",
                format!(
                    "{} has no pinned version (VCS and path entries are not supported)",
                    clip(&name)
                ),
            )
        })?;
        lines.push_str(&requirement_line(
            &name,
            &version,
            entry.markers.as_deref(),
            &entry.hashes,
        ));
    }
    Ok(lines)
}

fn requirement_line(name: &str, spec: &str, marker: Option<&str>, hashes: &[String]) -> String {
    let mut line = format!("{name}{spec}");
    if let Some(marker) = marker {
        line.push_str(&format!(" ; {marker}"));
    }
    for hash in hashes {
        line.push_str(&format!(" --hash={hash}"));
    }
    line.push('\n');
    line
}

/// Pip's `--require-hashes` mode applies only when every line has hashes.
pub fn all_hashed(requirements: &str) -> bool {
    requirements.lines().all(|l| l.contains("--hash="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poetry_main_group_only() {
        let lock = r#"
[[package]]
name = "flask"
version = "3.1.0"
groups = ["main"]
files = [{file = "f.whl", hash = "sha256:aa"}]

[[package]]
name = "pytest"
version = "8.0.0"
groups = ["dev"]
files = []

[[package]]
name = "colorama"
version = "0.4.6"
groups = ["main"]
markers = "platform_system == \"Windows\""
files = [{file = "c.whl", hash = "sha256:bb"}]
"#;
        assert_eq!(
            poetry_requirements(lock).unwrap(),
            "flask==3.1.0 --hash=sha256:aa\n\
             colorama==0.4.6 ; platform_system == \"Windows\" --hash=sha256:bb\n"
        );
        assert!(poetry_requirements("[[package]]\nname=1").is_err());
    }

    #[test]
    fn pipfile_default_only() {
        let lock = r#"{"_meta": {}, "default": {"flask": {"version": "==3.1.0", "hashes": ["sha256:aa"]}},
                       "develop": {"pytest": {"version": "==8.0.0"}}}"#;
        assert_eq!(
            pipenv_requirements(lock).unwrap(),
            "flask==3.1.0 --hash=sha256:aa\n"
        );
        assert!(all_hashed("flask==3.1.0 --hash=sha256:aa\n"));
    }
}
