//! The content-addressed store: slugs live as `<store>/sha256-<hex>.tgz`, named by the
//! SHA-256 of their own bytes. Slugs are found again by [`crate::reader::locate`].
//!
//! A file only ever appears under its final name complete and synced: it is written under a
//! temporary name in the same directory (so the rename cannot cross filesystems), fsynced,
//! renamed, and the directory is fsynced so that the rename itself survives a crash. A build
//! that fails or is killed leaves at most a `.tmp-*` file behind, never a `sha256-*` one.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create store directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write to store {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A file being written into a store directory under a temporary name. Dropping it without
/// [`Staged::commit`] removes the temporary file.
pub struct Staged {
    dir: PathBuf,
    file: tempfile::NamedTempFile,
}

impl Staged {
    /// Creates the directory if needed and opens a fresh `.tmp-*` file in it.
    pub fn new(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let file = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(dir)
            .map_err(|source| StoreError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
        })
    }

    pub fn file(&mut self) -> &mut File {
        self.file.as_file_mut()
    }

    pub fn temp_path(&self) -> &Path {
        self.file.path()
    }

    /// Syncs the file, moves it to `final_name` and syncs the directory. When `final_name`
    /// already exists it is kept as it is (in a content-addressed store it holds the same
    /// bytes) and the temporary file is removed.
    pub fn commit(self, final_name: &str) -> Result<PathBuf, StoreError> {
        self.finish(final_name, true)
    }

    /// As [`Staged::commit`], but an existing `final_name` is replaced (a file that is not
    /// named by its own content, such as a manifest, which records the latest build).
    pub fn replace(self, final_name: &str) -> Result<PathBuf, StoreError> {
        self.finish(final_name, false)
    }

    fn finish(self, final_name: &str, keep_existing: bool) -> Result<PathBuf, StoreError> {
        let target = self.dir.join(final_name);
        let write_err = |source| StoreError::Write {
            path: target.clone(),
            source,
        };
        // Temporary files are private (0600); a slug is meant to be read by whoever runs it.
        self.file
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(write_err)?;
        self.file.as_file().sync_all().map_err(write_err)?;
        if keep_existing && target.exists() {
            // Dropping the NamedTempFile deletes it.
            return Ok(target);
        }
        self.file.persist(&target).map_err(|e| StoreError::Write {
            path: target.clone(),
            source: e.error,
        })?;
        sync_dir(&self.dir).map_err(write_err)?;
        Ok(target)
    }
}

/// Writes `bytes` to `<dir>/<final_name>` atomically (see [`Staged::commit`]).
pub fn write_atomic(dir: &Path, final_name: &str, bytes: &[u8]) -> Result<PathBuf, StoreError> {
    staged_bytes(dir, bytes)?.commit(final_name)
}

/// Writes `bytes` to `<dir>/<final_name>` atomically, replacing what was there.
pub fn replace_atomic(dir: &Path, final_name: &str, bytes: &[u8]) -> Result<PathBuf, StoreError> {
    staged_bytes(dir, bytes)?.replace(final_name)
}

fn staged_bytes(dir: &Path, bytes: &[u8]) -> Result<Staged, StoreError> {
    let mut staged = Staged::new(dir)?;
    staged
        .file()
        .write_all(bytes)
        .map_err(|source| StoreError::Write {
            path: staged.temp_path().to_path_buf(),
            source,
        })?;
    Ok(staged)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The file name of a slug with this hex digest.
pub fn slug_file_name(hex: &str) -> String {
    format!("sha256-{hex}.tgz")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_creates_the_final_name_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let p = write_atomic(&store, "x.bin", b"hello").unwrap();
        assert_eq!(p, store.join("x.bin"));
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        assert_eq!(names(&store), vec!["x.bin"]);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn an_existing_final_name_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "x.bin", b"first").unwrap();
        write_atomic(dir.path(), "x.bin", b"second").unwrap();
        assert_eq!(std::fs::read(dir.path().join("x.bin")).unwrap(), b"first");
        assert_eq!(names(dir.path()), vec!["x.bin"]);
    }

    #[test]
    fn replace_atomic_replaces() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "x.json", b"first").unwrap();
        replace_atomic(dir.path(), "x.json", b"second").unwrap();
        assert_eq!(std::fs::read(dir.path().join("x.json")).unwrap(), b"second");
        assert_eq!(names(dir.path()), vec!["x.json"]);
    }

    #[test]
    fn a_dropped_stage_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Staged::new(dir.path()).unwrap();
            s.file().write_all(b"partial").unwrap();
        }
        assert!(names(dir.path()).is_empty());
    }
}
