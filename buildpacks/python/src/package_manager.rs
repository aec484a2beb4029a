//! Which files make this a Python app (detect), and which installer its files choose.

use slugc_fs::input;
use std::fmt;
use std::path::Path;

/// Any of these at the app root makes it a Python app.
pub const DETECT_FILES: &[&str] = &[
    "requirements.txt",
    "pyproject.toml",
    "uv.lock",
    "poetry.lock",
    "Pipfile",
    "Pipfile.lock",
    "setup.py",
    ".python-version",
    "runtime.txt",
    "manage.py",
    "app.py",
    "main.py",
];

/// Of [`DETECT_FILES`], those the buildpack reads: any entry by that name counts (a FIFO,
/// a symlink out of the app), so that reading it reports it instead of detection passing it
/// over. The others must be regular files.
const READ_FILES: &[&str] = &[
    "requirements.txt",
    "pyproject.toml",
    "uv.lock",
    "poetry.lock",
    "Pipfile",
    "Pipfile.lock",
    ".python-version",
    "runtime.txt",
];

pub fn detected_files(app_dir: &Path) -> Vec<&'static str> {
    DETECT_FILES
        .iter()
        .copied()
        .filter(|f| {
            if READ_FILES.contains(f) {
                input::exists(app_dir, f)
            } else {
                input::is_app_file(app_dir, f)
            }
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackageManager {
    /// `requirements.txt`: pip semantics.
    Requirements,
    /// `poetry.lock`: its main group.
    Poetry,
    /// `uv.lock`: `uv sync --locked`.
    Uv,
    /// `Pipfile.lock`: its `default` packages.
    Pipenv,
}

impl PackageManager {
    /// The file that selects this installer (and whose content keys the dependency cache).
    pub fn file(&self) -> &'static str {
        match self {
            Self::Requirements => "requirements.txt",
            Self::Poetry => "poetry.lock",
            Self::Uv => "uv.lock",
            Self::Pipenv => "Pipfile.lock",
        }
    }
}

impl fmt::Display for PackageManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PackageManagerError {
    #[error("more than one package manager file: {}", .0.join(", "))]
    Multiple(Vec<&'static str>),
    #[error("Pipfile has no Pipfile.lock beside it")]
    PipfileWithoutLock,
    #[error("pyproject.toml uses Poetry ([tool.poetry]) but there is no poetry.lock")]
    PoetryWithoutLock,
    #[error(
        "pyproject.toml declares [project] dependencies but there is no uv.lock, poetry.lock, \
         Pipfile.lock or requirements.txt"
    )]
    ProjectWithoutLock,
}

/// The one installer the app's files choose, or `None` when the app declares no dependencies.
pub fn determine(app_dir: &Path) -> Result<Option<PackageManager>, PackageManagerError> {
    let found: Vec<PackageManager> = [
        PackageManager::Requirements,
        PackageManager::Poetry,
        PackageManager::Uv,
        PackageManager::Pipenv,
    ]
    .into_iter()
    .filter(|pm| input::exists(app_dir, pm.file()))
    .collect();
    match found.as_slice() {
        [] if input::is_app_file(app_dir, "Pipfile") => {
            Err(PackageManagerError::PipfileWithoutLock)
        }
        [] if uses_poetry(app_dir) => Err(PackageManagerError::PoetryWithoutLock),
        // Heroku refuses an app without a package manager file rather than guess an
        // installer (<https://github.com/heroku/buildpacks-python>, `pyproject_toml_only`);
        // building it with no packages would go green and fail at import.
        [] if declares_dependencies(app_dir) => Err(PackageManagerError::ProjectWithoutLock),
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(PackageManagerError::Multiple(
            many.iter().map(PackageManager::file).collect(),
        )),
    }
}

/// `pyproject.toml`, parsed; `None` when it is absent or unreadable (which `check_input`
/// reports on its own).
fn pyproject(app_dir: &Path) -> Option<toml::Table> {
    input::read_app_text(app_dir, "pyproject.toml", input::MANIFEST_CAP)
        .ok()
        .flatten()
        .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
}

fn uses_poetry(app_dir: &Path) -> bool {
    pyproject(app_dir)
        .and_then(|t| t.get("tool")?.get("poetry").map(|_| ()))
        .is_some()
}

/// A non-empty `[project] dependencies` list (PEP 621).
fn declares_dependencies(app_dir: &Path) -> bool {
    pyproject(app_dir)
        .and_then(|t| {
            t.get("project")?
                .get("dependencies")?
                .as_array()
                .map(|deps| !deps.is_empty())
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        dir
    }

    #[test]
    fn detects_known_files_only() {
        assert!(detected_files(app(&[("README.md", "")]).path()).is_empty());
        assert_eq!(
            detected_files(app(&[("manage.py", ""), ("uv.lock", "")]).path()),
            vec!["uv.lock", "manage.py"]
        );
    }

    #[test]
    fn one_lockfile_chooses_its_installer() {
        let pick = |f| determine(app(&[(f, "")]).path()).unwrap();
        assert_eq!(pick("requirements.txt"), Some(PackageManager::Requirements));
        assert_eq!(pick("poetry.lock"), Some(PackageManager::Poetry));
        assert_eq!(pick("uv.lock"), Some(PackageManager::Uv));
        assert_eq!(pick("Pipfile.lock"), Some(PackageManager::Pipenv));
        assert_eq!(pick("app.py"), None);
    }

    #[test]
    fn two_lockfiles_are_an_error() {
        let err = determine(app(&[("poetry.lock", ""), ("uv.lock", "")]).path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "more than one package manager file: poetry.lock, uv.lock"
        );
        assert!(matches!(
            determine(app(&[("Pipfile", "")]).path()),
            Err(PackageManagerError::PipfileWithoutLock)
        ));
        assert!(matches!(
            determine(app(&[("pyproject.toml", "[tool.poetry]\nname='x'\n")]).path()),
            Err(PackageManagerError::PoetryWithoutLock)
        ));
        assert!(matches!(
            determine(app(&[("pyproject.toml", "[project]\ndependencies = ['flask']\n")]).path()),
            Err(PackageManagerError::ProjectWithoutLock)
        ));
        let no_deps = app(&[(
            "pyproject.toml",
            "[project]\nname = 'x'\ndependencies = []\n",
        )]);
        assert_eq!(determine(no_deps.path()).unwrap(), None);
    }
}
