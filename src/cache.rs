//! The per-app build cache: cached layers per buildpack, classic buildpacks' `CACHE_DIR`s,
//! build work dirs, and a lock so two builds of one app take turns.
//!
//! Layers are saved into `layers.new` and swapped in with renames only after a build
//! succeeds, so a build that fails or is killed leaves the previous `layers` in place.
//!
//! The layers a commit replaces go to `trash/`, and the next build of the app removes them
//! on a thread of its own while its buildpacks run: removing thousands of files is slow on
//! some disks (a warm build would otherwise spend most of its time there), and nothing reads
//! them again.

use fs4::fs_std::FileExt;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot use cache dir {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The file in the cache dir holding the last slug's size in bytes.
const LAST_SLUG_SIZE: &str = "last-slug-size";

/// `$XDG_CACHE_HOME/slugc/<name>-<hash of the app's absolute path>`.
pub fn default_dir(app_dir: &Path) -> PathBuf {
    let base = crate::dirs::cache();
    let abs = std::fs::canonicalize(app_dir).unwrap_or_else(|_| app_dir.to_path_buf());
    let hash =
        slug_format::hex(&Sha256::digest(abs.to_string_lossy().as_bytes()))[..16].to_string();
    let name: String = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    base.join(format!("{name}-{hash}"))
}

/// An open, locked cache dir. The lock is released when this is dropped, once the removal
/// of `trash/` is done.
pub struct Cache {
    root: PathBuf,
    sweeping: Mutex<Option<JoinHandle<()>>>,
    _lock: File,
}

impl Drop for Cache {
    fn drop(&mut self) {
        // Before the lock goes: the next build must not list a trash entry being removed.
        self.finish_sweep();
        crate::platform::process::release_from_guards(self._lock.as_raw_fd());
    }
}

impl Cache {
    /// Open (creating) and lock the cache dir; waits for another build holding it.
    pub fn open(root: &Path) -> Result<Self, CacheError> {
        std::fs::create_dir_all(root).map_err(io(root))?;
        // Absolute: paths under it go to buildpacks, which run in the app dir.
        let root = &std::fs::canonicalize(root).map_err(io(root))?;
        let lock_path = root.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        if !FileExt::try_lock_exclusive(&lock).unwrap_or(false) {
            crate::say!(
                "-----> Waiting for another build using the cache {}",
                root.display()
            );
            FileExt::lock_exclusive(&lock).map_err(io(&lock_path))?;
        }
        // Buildpacks' guards keep the lock: a killed build's processes hold it until they
        // are gone, so the next build cannot clean the work dir under them.
        crate::platform::process::hold_in_guards(lock.as_raw_fd());
        let cache = Cache {
            root: root.to_path_buf(),
            sweeping: Mutex::new(None),
            _lock: lock,
        };
        cache.recover()?;
        cache.sweep_trash();
        Ok(cache)
    }

    fn trash_dir(&self) -> PathBuf {
        self.root.join("trash")
    }

    /// Starts removing what earlier builds put in `trash/` (best effort: what is left is
    /// tried again by the next build).
    fn sweep_trash(&self) {
        let trash = self.trash_dir();
        let Ok(entries) = std::fs::read_dir(&trash) else {
            return;
        };
        let doomed: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        if doomed.is_empty() {
            return;
        }
        let handle = std::thread::spawn(move || {
            for path in doomed {
                let _ = slugc_fs::remove_spread(&path);
            }
        });
        if let Ok(mut sweeping) = self.sweeping.lock() {
            *sweeping = Some(handle);
        }
    }

    /// Waits for the removal of `trash/` to end.
    fn finish_sweep(&self) {
        let handle = match self.sweeping.lock() {
            Ok(mut sweeping) => sweeping.take(),
            Err(_) => None,
        };
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    /// Undo what an interrupted build left: a half-done swap, a half-written save, work dirs.
    fn recover(&self) -> Result<(), CacheError> {
        let layers = self.layers_dir();
        let old = self.root.join("layers.old");
        if !layers.exists() && old.exists() {
            std::fs::rename(&old, &layers).map_err(io(&old))?;
        }
        for stale in [old, self.root.join("layers.new"), self.root.join("work")] {
            slugc_fs::remove(&stale).map_err(io(&stale))?;
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Committed cached layers: `<id_>/<layer>/` and `<id_>/<layer>.toml`.
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// A fresh dir to save this build's cached layers into, before `commit_layers`.
    pub fn new_layers_dir(&self) -> Result<PathBuf, CacheError> {
        let dir = self.root.join("layers.new");
        slugc_fs::remove(&dir).map_err(io(&dir))?;
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(dir)
    }

    /// Swap `layers.new` in for `layers`; the replaced layers go to `trash/`.
    pub fn commit_layers(&self) -> Result<(), CacheError> {
        let layers = self.layers_dir();
        let new = self.root.join("layers.new");
        let old = self.root.join("layers.old");
        if layers.exists() {
            std::fs::rename(&layers, &old).map_err(io(&layers))?;
        }
        std::fs::rename(&new, &layers).map_err(io(&new))?;
        if old.exists() {
            let trash = self.trash_dir();
            std::fs::create_dir_all(&trash).map_err(io(&trash))?;
            // A name no other commit of this cache has used: the lock serialises commits.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let doomed = trash.join(format!("layers-{nanos}-{}", std::process::id()));
            std::fs::rename(&old, &doomed).map_err(io(&old))?;
        }
        Ok(())
    }

    /// Remove everything cached (the lock, held, stays).
    pub fn clear(&self) -> Result<(), CacheError> {
        self.finish_sweep();
        let remove = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Remove { path, source }
        };
        let entries = std::fs::read_dir(&self.root).map_err(remove(&self.root))?;
        for entry in entries.flatten() {
            if entry.file_name() != "lock" {
                slugc_fs::remove(&entry.path()).map_err(remove(&entry.path()))?;
            }
        }
        Ok(())
    }

    /// The size of the last slug built with this cache, recorded by
    /// [`Cache::record_slug_size`]: the estimate of the next one's.
    pub fn last_slug_size(&self) -> Option<u64> {
        std::fs::read_to_string(self.root.join(LAST_SLUG_SIZE))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Remembers the size of the slug just built. Only an estimate rests on it, so a
    /// failure to write it is not the build's.
    pub fn record_slug_size(&self, bytes: u64) {
        let _ = std::fs::write(self.root.join(LAST_SLUG_SIZE), format!("{bytes}\n"));
    }

    /// The persistent `CACHE_DIR` of a classic buildpack.
    pub fn classic_dir(&self, key: &str) -> Result<PathBuf, CacheError> {
        let dir = self.root.join("classic").join(key);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(dir)
    }

    /// A fresh, private, locked work dir inside the cache (same filesystem, so layers
    /// hardlink), at the same path on every build of this cache: build steps that record
    /// their absolute path (bundlers, `tsc`'s build info) then give a warm build the bytes of
    /// the cold one. The cache's lock keeps it to one build at a time.
    pub fn work_dir(&self) -> Result<crate::workdir::WorkDir, CacheError> {
        let base = self.root.join("work");
        crate::workdir::WorkDir::create_named(&base, crate::workdir::CACHE_STABLE)
            .map_err(io(&base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit_with(cache: &Cache, file: &str) {
        let new = cache.new_layers_dir().unwrap();
        std::fs::create_dir_all(new.join("bp/layer")).unwrap();
        std::fs::write(new.join("bp/layer").join(file), file).unwrap();
        cache.commit_layers().unwrap();
    }

    #[test]
    fn replaced_layers_go_to_the_trash_and_the_next_build_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        commit_with(&cache, "one");
        commit_with(&cache, "two");
        assert!(cache.layers_dir().join("bp/layer/two").is_file());
        assert!(!cache.layers_dir().join("bp/layer/one").exists());
        let trash = cache.trash_dir();
        assert_eq!(std::fs::read_dir(&trash).unwrap().count(), 1);
        drop(cache);

        let cache = Cache::open(dir.path()).unwrap();
        drop(cache);
        assert_eq!(std::fs::read_dir(&trash).unwrap().count(), 0);
        let cache = Cache::open(dir.path()).unwrap();
        assert!(cache.layers_dir().join("bp/layer/two").is_file());
    }
}
