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
//!
//! A cached layer is *lent* to a build: its dir is renamed into the build root (the work dir
//! is inside the cache, on the same filesystem) instead of copied as a tree of hardlinks,
//! which cost a `mkdir` per directory and a `link` per file (a venv: 5,000 and 10,000, most
//! of a warm build on a slow disk). `<layer>.lent` beside `<layer>.toml` records where it
//! went, when, and what cannot be read from timestamps (the layer's own mode, its top-level
//! names, its CNB env dirs by content). A build that succeeds saves the layers
//! into `layers.new` as before, so the records go with the replaced `layers`. A build that
//! fails or is killed gives each lent layer back if it is unchanged ([`Loan::unchanged`]:
//! no entry's ctime is as late as the loan's)
//! ([`Cache::settle_loans`], run by the failing build before its work dir is removed, and by
//! the next build's [`Cache::open`] after a kill); a layer the failed build changed is
//! forgotten, metadata and all, so only that layer's next build is cold.

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
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
    #[error("cannot lend cached layer {path} to the build: {source}")]
    Lend {
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

/// `<layer>.lent`: where a cached layer was lent to, when, and what of its tree the ctimes
/// under it cannot tell.
#[derive(Debug, Serialize, Deserialize)]
struct Loan {
    at: PathBuf,
    /// The record's ctime as it was created, `(seconds, nanoseconds)`: the filesystem's
    /// clock. Every change to an entry (a write in place, `chmod`, a link, or an entry added,
    /// removed or renamed in its dir) sets that entry's ctime, so an entry whose ctime is not
    /// earlier than this may have changed since the loan.
    since: (i64, i64),
    /// The layer dir's mode: moving the dir sets its own ctime, so it is checked apart.
    mode: u32,
    /// The layer dir's entries but its env dirs, sorted: the dir's own ctime cannot tell an
    /// entry removed or added (it is set by the move, and by the env dirs' rewrite).
    names: Vec<Vec<u8>>,
    /// The CNB env dirs (`env`, `env.build`, `env.launch`) by content: buildpacks remove and
    /// write them again on every build, with the same content when nothing changed.
    env: String,
}

/// The layer dir's own entries that buildpacks rewrite on every build.
const ENV_DIRS: [&str; 3] = ["env", "env.build", "env.launch"];

impl Loan {
    /// Writes the record of lending `cached` to `at` (the record first: its ctime is the
    /// loan's time).
    fn record(cached: &Path, at: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let record = loan_path(cached);
        let mut file = File::create(&record)?;
        let created = file.metadata()?;
        let root = std::fs::symlink_metadata(cached)?;
        let loan = Loan {
            at: at.to_path_buf(),
            since: (created.ctime(), created.ctime_nsec()),
            mode: root.mode(),
            names: top_level_names(cached)?,
            env: env_digest(cached)?,
        };
        file.write_all(&serde_json::to_vec(&loan)?)
    }

    /// Whether the tree at `self.at` is as it was lent. Reads every entry's metadata: only a
    /// failed or killed build pays for it.
    fn unchanged(&self) -> std::io::Result<bool> {
        let root = std::fs::symlink_metadata(&self.at)?;
        if root.mode() != self.mode
            || top_level_names(&self.at)? != self.names
            || env_digest(&self.at)? != self.env
        {
            return Ok(false);
        }
        // The top-level names are the recorded ones (checked above): the walk starts there.
        let mut stack: Vec<PathBuf> = self
            .names
            .iter()
            .map(|name| self.at.join(std::ffi::OsStr::from_bytes(name)))
            .collect();
        while let Some(path) = stack.pop() {
            let meta = std::fs::symlink_metadata(&path)?;
            if (meta.ctime(), meta.ctime_nsec()) >= self.since {
                return Ok(false);
            }
            if meta.is_dir() {
                for entry in std::fs::read_dir(&path)? {
                    stack.push(entry?.path());
                }
            }
        }
        Ok(true)
    }
}

/// The names in `dir` but [`ENV_DIRS`], sorted.
fn top_level_names(dir: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if !ENV_DIRS.iter().any(|d| name == *d) {
            names.push(name.as_bytes().to_vec());
        }
    }
    names.sort();
    Ok(names)
}

/// The env dirs of the layer at `root`: each entry's path, type and mode, and each file's
/// bytes.
fn env_digest(root: &Path) -> std::io::Result<String> {
    let mut sha = Sha256::new();
    let mut stack: Vec<(PathBuf, PathBuf)> = ENV_DIRS
        .iter()
        .map(|d| (root.join(d), PathBuf::from(d)))
        .collect();
    while let Some((path, rel)) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        sha.update(rel.as_os_str().as_bytes());
        sha.update([0]);
        sha.update(meta.mode().to_le_bytes());
        if meta.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&path)?.collect::<Result<_, _>>()?;
            entries.sort_by_key(|e| e.file_name());
            // Popped last-first: pushed in reverse so the digest reads them in order.
            for entry in entries.into_iter().rev() {
                stack.push((entry.path(), rel.join(entry.file_name())));
            }
        } else if meta.is_file() {
            sha.update(std::fs::read(&path)?);
        } else if meta.file_type().is_symlink() {
            sha.update(std::fs::read_link(&path)?.as_os_str().as_bytes());
        }
    }
    Ok(slug_format::hex(&sha.finalize()))
}

/// The suffix of a loan record beside `<layer>.toml`.
const LENT: &str = "lent";

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

    /// Moves each cached layer dir `(cached, into)` (`cached` under [`Cache::layers_dir`])
    /// into the build root, recording the loan first. Falls back to nothing: a layer that
    /// cannot be lent is an error, as a failed copy was.
    pub fn lend(&self, dirs: &[(PathBuf, PathBuf)]) -> Result<(), CacheError> {
        slugc_fs::spread(dirs, |(cached, into)| {
            let failed = |source| CacheError::Lend {
                path: cached.clone(),
                source,
            };
            // Recorded before the move: a build killed in between leaves a record whose
            // layer is still in place, which settling drops.
            Loan::record(cached, into).map_err(failed)?;
            std::fs::rename(cached, into).map_err(failed)
        })
    }

    /// Gives back every layer still lent (to a build that failed or was killed) whose tree
    /// is as it was lent; forgets the others (dir, metadata and record), so that no build
    /// sees a layer a failed build half changed under its old metadata. Best effort: what
    /// cannot be given back is forgotten.
    pub fn settle_loans(&self) {
        settle_loans_in(&self.layers_dir());
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
        // A killed build's loans are in its work dir: given back before it goes.
        self.settle_loans();
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

/// Settles the loans of the cache at `root` when no build holds it: another app's cache,
/// whose killed build's work dir (holding the lent layers) is about to be swept.
pub fn settle_if_free(root: &Path) {
    let Ok(lock) = File::options().write(true).open(root.join("lock")) else {
        return;
    };
    if FileExt::try_lock_exclusive(&lock).unwrap_or(false) {
        settle_loans_in(&root.join("layers"));
    }
}

fn settle_loans_in(layers: &Path) {
    let Ok(buildpacks) = std::fs::read_dir(layers) else {
        return;
    };
    for entry in buildpacks.flatten() {
        let Ok(files) = std::fs::read_dir(entry.path()) else {
            continue;
        };
        for file in files.flatten() {
            let record = file.path();
            if record.extension().and_then(|e| e.to_str()) == Some(LENT) {
                settle(&record);
            }
        }
    }
}

/// Settles the cache's loans ([`Cache::settle_loans`]) when dropped: held by a build for as
/// long as its work dir lives.
pub struct SettleLoans<'a>(pub &'a Cache);

impl Drop for SettleLoans<'_> {
    fn drop(&mut self) {
        self.0.settle_loans();
    }
}

/// `<layer>.lent` for the cached layer dir `<layer>`.
fn loan_path(cached: &Path) -> PathBuf {
    let mut name = cached.as_os_str().to_os_string();
    name.push(".");
    name.push(LENT);
    PathBuf::from(name)
}

/// Gives back or forgets the layer of one loan record, then removes the record.
fn settle(record: &Path) {
    let cached = record.with_extension("");
    let loan: Option<Loan> = std::fs::read(record)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let given_back = cached.is_dir()
        || loan.is_some_and(|loan| {
            loan.unchanged().unwrap_or(false) && std::fs::rename(&loan.at, &cached).is_ok()
        });
    if !given_back {
        let _ = slugc_fs::remove(&cached);
        let mut toml = cached.into_os_string();
        toml.push(".toml");
        let _ = std::fs::remove_file(toml);
    }
    let _ = std::fs::remove_file(record);
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

    /// A cached layer `bp/layer` (a nested file, a top-level file, an env dir) lent into
    /// `work/`, with `change` applied to it there, then settled: whether it came back.
    fn given_back_after(change: impl FnOnce(&Path)) -> bool {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let cached = cache.layers_dir().join("bp/layer");
        std::fs::create_dir_all(cached.join("lib/pkg")).unwrap();
        std::fs::create_dir_all(cached.join("env")).unwrap();
        std::fs::write(cached.join("lib/pkg/mod.py"), "x = 1\n").unwrap();
        std::fs::write(cached.join("top"), "top").unwrap();
        std::fs::write(cached.join("env/PATH.prepend"), "/layer/bin").unwrap();
        std::fs::set_permissions(cached.join("top"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        std::fs::write(cache.layers_dir().join("bp/layer.toml"), "[metadata]\n").unwrap();
        // Past the filesystem clock's tick: what the earlier build wrote is older than the
        // loan (an entry in the loan's own tick counts as changed).
        std::thread::sleep(std::time::Duration::from_millis(50));
        let into = dir.path().join("work/layer");
        std::fs::create_dir_all(into.parent().unwrap()).unwrap();
        cache.lend(&[(cached.clone(), into.clone())]).unwrap();
        assert!(!cached.exists());
        change(&into);
        cache.settle_loans();
        let back = cached.join("lib/pkg/mod.py").is_file();
        assert_eq!(
            back,
            cache.layers_dir().join("bp/layer.toml").is_file(),
            "a forgotten layer loses its metadata too"
        );
        assert!(!cache.layers_dir().join("bp/layer.lent").exists());
        back
    }

    #[test]
    fn a_lent_layer_comes_back_when_only_its_env_dirs_were_written_again_alike() {
        assert!(given_back_after(|_| {}));
        assert!(given_back_after(|layer| {
            std::fs::remove_dir_all(layer.join("env")).unwrap();
            std::fs::create_dir(layer.join("env")).unwrap();
            std::fs::write(layer.join("env/PATH.prepend"), "/layer/bin").unwrap();
        }));
        assert!(given_back_after(|layer| {
            std::fs::read(layer.join("lib/pkg/mod.py")).unwrap();
        }));
    }

    #[test]
    fn a_lent_layer_changed_in_any_way_is_forgotten() {
        use std::os::unix::fs::PermissionsExt;
        type Change = (&'static str, fn(&Path));
        let changes: [Change; 8] = [
            ("file written in place", |l| {
                std::fs::write(l.join("lib/pkg/mod.py"), "x = 2\n").unwrap()
            }),
            ("file added deep", |l| {
                std::fs::write(l.join("lib/pkg/new.py"), "").unwrap()
            }),
            ("file removed deep", |l| {
                std::fs::remove_file(l.join("lib/pkg/mod.py")).unwrap()
            }),
            ("top-level file removed", |l| {
                std::fs::remove_file(l.join("top")).unwrap()
            }),
            ("top-level file added", |l| {
                std::fs::write(l.join("new"), "").unwrap()
            }),
            ("mode changed", |l| {
                std::fs::set_permissions(l.join("top"), std::fs::Permissions::from_mode(0o755))
                    .unwrap()
            }),
            ("env changed", |l| {
                std::fs::write(l.join("env/PATH.prepend"), "/other/bin").unwrap()
            }),
            ("layer dir's mode changed", |l| {
                std::fs::set_permissions(l, std::fs::Permissions::from_mode(0o700)).unwrap()
            }),
        ];
        for (what, change) in changes {
            assert!(!given_back_after(change), "{what}: given back");
        }
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
