//! The app's manifests as the user committed them, put back after the package manager ran.
//!
//! Installs and prunes may rewrite `package.json` and the lockfile, or write a lockfile the
//! app does not have (`npm install` without one), and only on the builds that run them: a
//! warm rebuild with an unchanged lockfile runs neither. npm's own settings decide what it
//! writes (`omit-lockfile-registry-resolved`, `lockfile-version`, `save-exact`, … in the
//! app's `.npmrc`), so the only way that a cold and a warm slug hold the same manifests is that
//! both hold the committed ones. Heroku ships whatever the install wrote; here a slug holds
//! the app's files as committed, so its bytes do not depend on whether this build installed.

use std::path::{Path, PathBuf};

/// The files a package manager may write at the app's root.
const MANIFESTS: &[&str] = &[
    "package.json",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
];

/// Each manifest's bytes before the package manager ran, or its absence.
pub struct Committed {
    app_dir: PathBuf,
    files: Vec<(&'static str, Option<Vec<u8>>)>,
}

impl Committed {
    /// Read the app's manifests (only regular files inside the app, bounded as app input).
    pub fn read(app_dir: &Path) -> Result<Self, slugc_fs::input::InputError> {
        let mut files = Vec::new();
        for name in MANIFESTS {
            let bytes =
                slugc_fs::input::read_app_file(app_dir, name, slugc_fs::input::LOCKFILE_CAP)?;
            files.push((*name, bytes));
        }
        Ok(Committed {
            app_dir: app_dir.to_path_buf(),
            files,
        })
    }

    /// Put every manifest back as it was; returns the names of those that had changed.
    pub fn restore(&self) -> std::io::Result<Vec<&'static str>> {
        let mut changed = Vec::new();
        for (name, committed) in &self.files {
            let path = self.app_dir.join(name);
            let now = match std::fs::read(&path) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            if &now == committed {
                continue;
            }
            match committed {
                Some(bytes) => std::fs::write(&path, bytes)?,
                None => std::fs::remove_file(&path)?,
            }
            changed.push(*name);
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewritten_and_created_manifests_are_put_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("package.json"), "{}").unwrap();
        std::fs::write(dir.path().join("package-lock.json"), "committed").unwrap();
        let committed = Committed::read(dir.path()).unwrap();
        assert!(committed.restore().unwrap().is_empty());
        std::fs::write(dir.path().join("package-lock.json"), "rewritten").unwrap();
        std::fs::write(dir.path().join("yarn.lock"), "created").unwrap();
        assert_eq!(
            committed.restore().unwrap(),
            ["package-lock.json", "yarn.lock"]
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("package-lock.json")).unwrap(),
            "committed"
        );
        assert!(!dir.path().join("yarn.lock").exists());
    }
}
