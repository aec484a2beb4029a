//! The content-addressed store: slugs live as `<store>/sha256-<hex>.tgz`, named by the
//! SHA-256 of their own bytes. Slugs are found again by [`crate::reader::locate`].
//!
//! A file only ever appears under its final name complete and synced: it is written under a
//! temporary name in the same directory (so the rename cannot cross filesystems), fsynced,
//! renamed, and the directory is fsynced so that the rename itself survives a crash. A build
//! that fails or is killed leaves at most a `.tmp-*` file behind, never a `sha256-*` one.
//!
//! Those leftovers are swept on the next write. A writer holds an exclusive `flock(2)` on
//! its own temporary file for as long as it exists, and creates it while holding a shared
//! lock on the directory itself. Before that, it tries for an exclusive lock on the
//! directory: with it, no temporary file is being created, so one whose lock it can take has
//! no live writer (the kernel drops a killed process's locks) and is removed. No age or pid
//! guess is needed, and live builds never hold the sweep off for longer than they take to
//! create a file.

use fs4::fs_std::FileExt;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The prefix of temporary files.
pub const TEMP_PREFIX: &str = ".tmp-";

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
    #[error("the store {path} has {} MiB free, and this build needs about {} MiB (free some space, or use another --output)", free / (1 << 20), needed.div_ceil(1 << 20))]
    NoRoom {
        path: PathBuf,
        free: u64,
        needed: u64,
    },
}

/// What a sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    pub files: u64,
    pub bytes: u64,
}

/// Sweeps dead writers' temporary files when no file is being created (module docs), then
/// takes `dir`'s lock shared, for creating one. The returned file holds that lock.
fn lock_for_create(dir: &Path) -> std::io::Result<(File, Swept)> {
    // flock(2) takes directories too: no lock file is left in the store.
    let lock = File::open(dir)?;
    let mut swept = Swept::default();
    if FileExt::try_lock_exclusive(&lock).unwrap_or(false) {
        swept = sweep_temps(dir);
        // Not converted in place: flock(2) may drop the lock while converting.
        FileExt::unlock(&lock)?;
    }
    FileExt::lock_shared(&lock)?;
    Ok((lock, swept))
}

/// Removes every temporary file in `dir` whose lock can be taken: its writer is gone. Call
/// only under the exclusive lock on `dir`.
fn sweep_temps(dir: &Path) -> Swept {
    let mut swept = Swept::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return swept;
    };
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .as_encoded_bytes()
            .starts_with(TEMP_PREFIX.as_bytes())
        {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        if !FileExt::try_lock_exclusive(&file).unwrap_or(false) {
            continue; // a live writer's
        }
        let bytes = file.metadata().map_or(0, |m| m.len());
        if std::fs::remove_file(entry.path()).is_ok() {
            swept.files += 1;
            swept.bytes += bytes;
        }
    }
    swept
}

/// Checks, before a build, that `dir` can take a file of about `needed` bytes: that it can
/// be created and written (a temporary file is made and removed, which also sweeps dead
/// builds' leftovers), and that the filesystem has that much free for us.
pub fn check_room(dir: &Path, needed: u64) -> Result<Swept, StoreError> {
    let mut staged = Staged::new(dir)?;
    let write_err = |source| StoreError::Write {
        path: dir.to_path_buf(),
        source,
    };
    staged.file().write_all(b"slugc").map_err(write_err)?;
    staged.file().sync_all().map_err(write_err)?;
    let free = fs4::available_space(dir).map_err(write_err)?;
    if free < needed {
        return Err(StoreError::NoRoom {
            path: dir.to_path_buf(),
            free,
            needed,
        });
    }
    Ok(staged.swept.clone())
}

/// A file being written into a store directory under a temporary name. Dropping it without
/// [`Staged::commit`] removes the temporary file.
pub struct Staged {
    dir: PathBuf,
    /// Locked exclusively by this writer while it exists (module docs).
    file: tempfile::NamedTempFile,
    /// What the sweep before this file removed.
    pub swept: Swept,
}

impl Staged {
    /// Creates the directory if needed and opens a fresh `.tmp-*` file in it.
    pub fn new(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let write_err = |source| StoreError::Write {
            path: dir.to_path_buf(),
            source,
        };
        let (dir_lock, swept) = lock_for_create(dir).map_err(write_err)?;
        let file = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)
            .map_err(write_err)?;
        FileExt::lock_exclusive(file.as_file()).map_err(write_err)?;
        // Locked: from here a sweep sees a live writer's file.
        drop(dir_lock);
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            swept,
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
        if keep_existing && target.exists() {
            // Dropping the NamedTempFile deletes it, unsynced: syncing bytes that are thrown
            // away is a warm rebuild's largest write (its slug is usually the one in store).
            return Ok(target);
        }
        // Temporary files are private (0600); a slug is meant to be read by whoever runs it.
        self.file
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(write_err)?;
        self.file.as_file().sync_all().map_err(write_err)?;
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

/// Writes `bytes` to `<dir>/<final_name>` atomically, replacing what was there; a file that
/// holds these bytes already is left alone (syncing it again would wait for every other
/// write the filesystem has pending, as a journal commit does).
pub fn replace_atomic(dir: &Path, final_name: &str, bytes: &[u8]) -> Result<PathBuf, StoreError> {
    let target = dir.join(final_name);
    let same_len = std::fs::metadata(&target).is_ok_and(|m| m.len() == bytes.len() as u64);
    if same_len && std::fs::read(&target).is_ok_and(|there| there == bytes) {
        return Ok(target);
    }
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
        // The same bytes again: the file is left as it is (same inode); the same length
        // with other bytes replaces it.
        use std::os::unix::fs::MetadataExt;
        let inode = || std::fs::metadata(dir.path().join("x.json")).unwrap().ino();
        let before = inode();
        replace_atomic(dir.path(), "x.json", b"second").unwrap();
        assert_eq!(inode(), before);
        replace_atomic(dir.path(), "x.json", b"secont").unwrap();
        assert_eq!(std::fs::read(dir.path().join("x.json")).unwrap(), b"secont");
        assert_ne!(inode(), before);
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

    #[test]
    fn dead_writers_temps_are_swept_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // A dead build's leftover: a temp file whose writer holds no lock.
        std::fs::write(dir.path().join(".tmp-dead"), b"0123456789").unwrap();
        let mut live = Staged::new(dir.path()).unwrap();
        assert_eq!(
            live.swept,
            Swept {
                files: 1,
                bytes: 10
            }
        );
        live.file().write_all(b"in progress").unwrap();
        // A live writer holds its file's lock: the next writer sweeps nothing, and a file
        // being created (the directory's lock held shared) holds the sweep off.
        let second = Staged::new(dir.path()).unwrap();
        assert_eq!(second.swept, Swept::default());
        assert!(live.temp_path().exists());
        std::fs::write(dir.path().join(".tmp-dead2"), b"x").unwrap();
        let creating = File::open(dir.path()).unwrap();
        FileExt::lock_shared(&creating).unwrap();
        assert_eq!(Staged::new(dir.path()).unwrap().swept, Swept::default());
        drop(creating);
        assert_eq!(
            Staged::new(dir.path()).unwrap().swept,
            Swept { files: 1, bytes: 1 }
        );
        drop(second);
        live.commit("done.bin").unwrap();
        assert_eq!(names(dir.path()), vec!["done.bin"]);
    }

    #[test]
    fn check_room_refuses_more_than_the_free_space() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_room(dir.path(), 1).is_ok());
        let err = check_room(dir.path(), u64::MAX / 2).unwrap_err();
        assert!(matches!(err, StoreError::NoRoom { .. }), "{err}");
        assert!(names(dir.path()).is_empty());
    }
}
