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

/// `[package.source]`: absent for PyPI; `legacy` for another index; `git`, `directory`,
/// `file`, `url` for a direct reference (poetry-core `Package.source_type`).
#[derive(Deserialize)]
struct PoetrySource {
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
    /// What the manifest asked for (a branch, tag or commit).
    reference: Option<String>,
    /// The commit that `reference` was when locked: what Poetry installs.
    resolved_reference: Option<String>,
    subdirectory: Option<String>,
}

const GIT_FIX_POETRY: &str =
    "Serve the repository over https:// or ssh://, name that URL in pyproject.toml and run \
     `poetry lock`.";
const GIT_FIX_PIPENV: &str =
    "Serve the repository over https:// or ssh://, name that URL in the Pipfile and run \
     `pipenv lock`.";

fn unsupported(
    file: &'static str,
    package: &str,
    source_desc: String,
    why: String,
    fix: &str,
) -> PythonBuildpackError {
    PythonBuildpackError::UnsupportedSource {
        file,
        package: clip(package).into_owned(),
        source_desc,
        why,
        fix: fix.to_string(),
    }
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
        let marker = match &p.markers {
            Some(PoetryMarkers::One(m)) => Some(m.clone()),
            Some(PoetryMarkers::PerGroup(m)) => m.get("main").cloned(),
            None => None,
        };
        let source = p.source.as_ref().filter(|s| s.kind != "legacy");
        match source {
            None => {
                let hashes: Vec<String> = p.files.iter().map(|f| f.hash.clone()).collect();
                lines.push_str(&requirement_line(
                    &p.name,
                    &format!("=={}", p.version),
                    marker.as_deref(),
                    &hashes,
                ));
            }
            Some(source) if source.kind == "git" => {
                // Poetry's installer checks out `resolved_reference`, else `reference`
                // (`Executor._prepare_git_archive`); a `develop = true` checkout is editable,
                // which a slug cannot carry: installed as a plain package, like `-e` lines.
                let url = source.url.as_deref().unwrap_or_default();
                let rev = source
                    .resolved_reference
                    .as_deref()
                    .or(source.reference.as_deref());
                let line = crate::vcs::git_requirement(
                    &p.name,
                    &[],
                    url,
                    rev,
                    source.subdirectory.as_deref(),
                )
                .map_err(|why| {
                    unsupported(
                        "poetry.lock",
                        &p.name,
                        clip(url).into_owned(),
                        why.to_string(),
                        GIT_FIX_POETRY,
                    )
                })?;
                lines.push_str(&with_marker(line, marker.as_deref()));
            }
            Some(source) => return Err(unsupported(
                "poetry.lock",
                &p.name,
                format!(
                    "a {} source ({})",
                    clip(&source.kind),
                    clip(source.url.as_deref().unwrap_or_default())
                ),
                "the buildpack installs poetry.lock packages from package indexes and git \
                     repositories only"
                    .to_string(),
                "Depend on it from a package index or a git repository, then run `poetry lock`.",
            )),
        }
    }
    Ok(lines)
}

#[derive(Deserialize)]
struct PipfileLock {
    #[serde(default)]
    default: BTreeMap<String, PipfileEntry>,
}

/// One package of a `Pipfile.lock` section: pinned from an index (`version`, `hashes`), or a
/// VCS checkout (`git` and `ref`, `subdirectory`), or a local `path`/`file`.
#[derive(Deserialize)]
struct PipfileEntry {
    version: Option<String>,
    #[serde(default)]
    hashes: Vec<String>,
    markers: Option<String>,
    #[serde(default)]
    extras: Vec<String>,
    git: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    subdirectory: Option<String>,
    hg: Option<String>,
    svn: Option<String>,
    bzr: Option<String>,
    path: Option<String>,
    file: Option<String>,
}

/// The `default` packages of a `Pipfile.lock` as requirement lines.
pub fn pipenv_requirements(text: &str) -> Result<String, PythonBuildpackError> {
    let lock: PipfileLock = serde_json::from_str(text)
        .map_err(|e| lock_error("Pipfile.lock", clip_message(&e.to_string())))?;
    let mut lines = String::new();
    for (name, entry) in lock.default {
        if let Some(url) = &entry.git {
            lines.push_str(&with_marker(
                pipenv_git_requirement(&name, &entry, url)?,
                entry.markers.as_deref(),
            ));
            continue;
        }
        let other_vcs = [("hg", &entry.hg), ("svn", &entry.svn), ("bzr", &entry.bzr)];
        if let Some((vcs, Some(url))) = other_vcs.iter().find(|(_, url)| url.is_some()) {
            return Err(unsupported(
                "Pipfile.lock",
                &name,
                format!("{vcs}+{}", clip(url)),
                "uv installs from git repositories only".to_string(),
                "Depend on it from a git repository or a package index, then run `pipenv lock`.",
            ));
        }
        if let Some(path) = entry.path.as_ref().or(entry.file.as_ref()) {
            return Err(unsupported(
                "Pipfile.lock",
                &name,
                format!("the local path {}", clip(path)),
                "the buildpack installs Pipfile.lock packages from package indexes and git \
                 repositories only"
                    .to_string(),
                "Depend on it from a package index or a git repository, then run `pipenv lock`.",
            ));
        }
        let version = entry.version.ok_or_else(|| {
            lock_error(
                "Pipfile.lock",
                format!("{} has no pinned version", clip(&name)),
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

/// Pipenv's VCS line (`requirement_from_lockfile`): the locked `ref`, else one written after
/// an `@` in the URL's path (`normalize_vcs_url`); a `#subdirectory=` in the URL counts like
/// the `subdirectory` key. An `editable` checkout is installed as a plain package, as `-e`
/// lines of requirements.txt are.
fn pipenv_git_requirement(
    name: &str,
    entry: &PipfileEntry,
    url: &str,
) -> Result<String, PythonBuildpackError> {
    let (url, fragment) = url.split_once('#').unwrap_or((url, ""));
    let fragment_subdirectory = fragment
        .split('&')
        .find_map(|kv| kv.strip_prefix("subdirectory="));
    let (url, url_ref) = match url.split_once("://") {
        Some((_, rest)) if rest.split_once('/').is_some_and(|(_, p)| p.contains('@')) => {
            match url.rsplit_once('@') {
                Some((url, reference)) => (url, Some(reference)),
                None => (url, None),
            }
        }
        _ => (url, None),
    };
    let rev = entry.reference.as_deref().or(url_ref);
    let subdirectory = entry.subdirectory.as_deref().or(fragment_subdirectory);
    crate::vcs::git_requirement(name, &entry.extras, url, rev, subdirectory).map_err(|why| {
        unsupported(
            "Pipfile.lock",
            name,
            clip(url).into_owned(),
            why.to_string(),
            GIT_FIX_PIPENV,
        )
    })
}

fn with_marker(mut line: String, marker: Option<&str>) -> String {
    if let Some(marker) = marker {
        line.push_str(&format!(" ; {marker}"));
    }
    line.push('\n');
    line
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

/// The lines with hashes (installed with `--require-hashes`) and those without (a git
/// checkout has no hash to check; an index without file hashes), for two installs: pip turns
/// hash checking on for every line once one has a hash, and then refuses a git line.
pub fn split_by_hashes(requirements: &str) -> (String, String) {
    let (mut hashed, mut unhashed) = (String::new(), String::new());
    for line in requirements.lines().filter(|l| !l.trim().is_empty()) {
        let part = if line.contains(" --hash=") {
            &mut hashed
        } else {
            &mut unhashed
        };
        part.push_str(line);
        part.push('\n');
    }
    (hashed, unhashed)
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
        assert_eq!(
            split_by_hashes("flask==3.1.0 --hash=sha256:aa\na @ git+https://h/a@1\n"),
            (
                "flask==3.1.0 --hash=sha256:aa\n".to_string(),
                "a @ git+https://h/a@1\n".to_string()
            )
        );
    }

    #[test]
    fn git_sources_install_the_locked_commit() {
        let lock = r#"
[[package]]
name = "extension.dist"
version = "0.1"
groups = ["main"]
files = []
develop = true

[package.source]
type = "git"
url = "https://github.com/pypa/wheel.git"
reference = "0.44.0"
resolved_reference = "7bb46d7727e6e89fe56b3c78297b3af2672bbbe2"
subdirectory = "tests/testdata/extension.dist"
"#;
        assert_eq!(
            poetry_requirements(lock).unwrap(),
            "extension.dist @ git+https://github.com/pypa/wheel.git\
             @7bb46d7727e6e89fe56b3c78297b3af2672bbbe2#subdirectory=tests/testdata/extension.dist\n"
        );
        let refused = poetry_requirements(&lock.replace("https://", "git://")).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "poetry.lock: cannot install extension.dist from git://github.com/pypa/wheel.git: \
             uv does not fetch git over git:// (only over https://, http://, ssh:// and file://)"
        );
        assert!(refused.is_invalid_input());
        let directory = r#"
[[package]]
name = "local"
version = "0.1"
groups = ["main"]
files = []
[package.source]
type = "directory"
url = "../local"
"#;
        assert!(poetry_requirements(directory)
            .unwrap_err()
            .to_string()
            .starts_with("poetry.lock: cannot install local from a directory source (../local)"));

        let lock = r#"{"default": {
            "greeting-lib": {"editable": true, "git": "file://localhost/r", "ref": "86cd64cf",
                             "markers": "python_version >= '3.8'"},
            "b": {"git": "git+https://h/b.git@v2#egg=b&subdirectory=pkg", "extras": ["x"]}}}"#;
        assert_eq!(
            pipenv_requirements(lock).unwrap(),
            "b[x] @ git+https://h/b.git@v2#subdirectory=pkg\n\
             greeting-lib @ git+file://localhost/r@86cd64cf ; python_version >= '3.8'\n"
        );
        let hg = r#"{"default": {"c": {"hg": "https://h/c", "ref": "1"}}}"#;
        assert_eq!(
            pipenv_requirements(hg).unwrap_err().to_string(),
            "Pipfile.lock: cannot install c from hg+https://h/c: uv installs from git \
             repositories only"
        );
    }
}
