//! A build's work dir (the snapshot, the platform dir with the config vars, the buildpacks):
//! private to the user (0700), locked for as long as its build lives, and removed by any
//! later build once that build is dead.
//!
//! A build killed with SIGKILL cannot clean up, and its work dir holds the config vars. The
//! lock is an `flock(2)` on a file inside the dir, which the kernel releases when the process
//! dies however it dies (<https://man7.org/linux/man-pages/man2/flock.2.html>): a work dir
//! whose lock can be taken belongs to no live build. Every build sweeps the temp dir's and
//! the caches' work dirs that way before it starts.

use fs4::fs_std::FileExt;
use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The lock file inside each work dir.
const LOCK: &str = ".slugc-lock";
/// Work dirs in the temp dir: `--no-cache` builds and `slug detect`.
pub const BUILD_PREFIX: &str = "slugc-build-";
pub const DETECT_PREFIX: &str = "slugc-detect-";
/// A build's own temp dir in the temp dir: `<TMP_PREFIX><key>/tmp` is its `TMPDIR`.
pub const TMP_PREFIX: &str = "slugc-tmp-";
/// Work dirs under a cache's `work/`.
pub const CACHE_PREFIX: &str = "build-";
/// The work dir under a cache's `work/` that every build of that cache gets when it is free.
pub const CACHE_STABLE: &str = "build-app";

/// A live work dir: removed when dropped, its lock released with it.
pub struct WorkDir {
    // Dropped in field order: the dir goes first, then the lock.
    dir: tempfile::TempDir,
    _lock: File,
}

impl WorkDir {
    /// A fresh, locked work dir `<base>/<prefix><random>`, mode 0700 (`base` is created 0700
    /// when missing).
    pub fn create_in(base: &Path, prefix: &str) -> std::io::Result<WorkDir> {
        Self::create(base, prefix, true)
    }

    /// The locked work dir `<base>/<name>`, the same path on every build that gets it, so
    /// that what a build step records of its path (bundlers, `tsc`'s build info) is the same
    /// on every build; `<base>/<name><random>` when that name is taken (a build killed with
    /// its processes still alive holds it). Only for a base that one build at a time uses
    /// (a cache's, under its lock), after [`sweep`] has removed dead builds' dirs.
    pub fn create_named(base: &Path, name: &str) -> std::io::Result<WorkDir> {
        match Self::create(base, name, false) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::create(base, name, true)
            }
            other => other,
        }
    }

    fn create(base: &Path, prefix: &str, random: bool) -> std::io::Result<WorkDir> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(base)?;
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .rand_bytes(if random { 6 } else { 0 })
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(base)?;
        // Locked before it has its name, so that a sweep never sees it unlocked.
        let staged = dir.path().join(format!("{LOCK}.new"));
        let lock = File::options()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&staged)?;
        FileExt::lock_exclusive(&lock)?;
        std::fs::rename(&staged, dir.path().join(LOCK))?;
        Ok(WorkDir { dir, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A build's private temp dir, given to every buildpack and tool as `TMPDIR`: what they leave
/// there (Yarn 1's `v8-compile-cache-<uid>`, kept by path and never removed, is one) goes
/// with the build, as a fresh container's `/tmp` does under `pack` or on Heroku,
/// instead of gathering in the caller's. It is `<temp dir>/slugc-tmp-<key>/tmp`, empty, mode
/// 0700 (the lock is beside it, not in it): short, so that a unix socket made in it keeps
/// under the 108-byte path limit (a cache's work dir can be far deeper), and for a cache the
/// same path on every build (`key` from the cache's root, as the work dir is stable), since
/// build steps may record where they ran; random without one. Removed when dropped, swept
/// like a work dir when its build died.
pub fn create_tmp(cache_root: Option<&Path>) -> std::io::Result<(WorkDir, PathBuf)> {
    let base = std::env::temp_dir();
    let dir = match cache_root {
        Some(root) => {
            use sha2::{Digest, Sha256};
            let key = slug_format::hex(&Sha256::digest(root.as_os_str().as_encoded_bytes()));
            WorkDir::create_named(&base, &format!("{TMP_PREFIX}{}", &key[..12]))?
        }
        None => WorkDir::create_in(&base, TMP_PREFIX)?,
    };
    let tmp = dir.path().join("tmp");
    std::fs::DirBuilder::new().mode(0o700).create(&tmp)?;
    Ok((dir, tmp))
}

/// Remove the work dirs `<base>/<prefix>*` of dead builds: the user's own real dirs whose lock
/// can be taken. Dirs without a lock file are left alone (they may be a build's that has not
/// locked yet, or not slugc's at all). Returns the dirs removed.
pub fn sweep(base: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(base) else {
        return removed;
    };
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != uid {
            continue;
        }
        let Ok(lock) = File::options()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path.join(LOCK))
        else {
            continue;
        };
        if FileExt::try_lock_exclusive(&lock).unwrap_or(false) && slugc_fs::remove(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// Sweep every place work dirs are made: the temp dir, `extra_cache` (the build's own cache
/// root) and every cache under the default cache root.
pub fn sweep_all(extra_cache: Option<&Path>) {
    let tmp = std::env::temp_dir();
    sweep(&tmp, BUILD_PREFIX);
    sweep(&tmp, DETECT_PREFIX);
    sweep(&tmp, TMP_PREFIX);
    let mut caches: Vec<PathBuf> = std::fs::read_dir(crate::dirs::cache())
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    caches.extend(extra_cache.map(Path::to_path_buf));
    for cache in caches {
        // A dead build's work dir may hold layers its cache lent it.
        crate::cache::settle_if_free(&cache);
        sweep(&cache.join("work"), CACHE_PREFIX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_dir_is_the_same_path_each_time_and_random_while_taken() {
        let base = tempfile::tempdir().unwrap();
        let first = WorkDir::create_named(base.path(), "build-app").unwrap();
        let path = first.path().to_path_buf();
        assert_eq!(path, base.path().join("build-app"));
        let taken = WorkDir::create_named(base.path(), "build-app").unwrap();
        assert_ne!(taken.path(), path);
        assert!(taken.path().starts_with(base.path()));
        drop(first);
        assert!(!path.exists());
        let again = WorkDir::create_named(base.path(), "build-app").unwrap();
        assert_eq!(again.path(), path);
    }

    #[test]
    fn a_build_tmp_is_empty_private_stable_per_cache_and_removed() {
        let caches = tempfile::tempdir().unwrap();
        let (a, a_tmp) = create_tmp(Some(&caches.path().join("a"))).unwrap();
        assert_eq!(std::fs::read_dir(&a_tmp).unwrap().count(), 0);
        let mode = std::fs::metadata(&a_tmp).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(a_tmp.starts_with(std::env::temp_dir()));
        let (_b, b_tmp) = create_tmp(Some(&caches.path().join("b"))).unwrap();
        assert_ne!(a_tmp, b_tmp);
        std::fs::write(a_tmp.join("left-by-a-tool"), "x").unwrap();
        drop(a);
        assert!(!a_tmp.exists());
        let (_again, again) = create_tmp(Some(&caches.path().join("a"))).unwrap();
        assert_eq!(again, a_tmp, "the same cache, the same path");
        let (_r1, r1) = create_tmp(None).unwrap();
        let (_r2, r2) = create_tmp(None).unwrap();
        assert_ne!(r1, r2);
    }

    #[test]
    fn a_live_dir_is_kept_a_dead_one_removed() {
        let base = tempfile::tempdir().unwrap();
        let live = WorkDir::create_in(base.path(), "w-").unwrap();
        let mode = std::fs::metadata(live.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // A dead build's dir: its lock file is there, nobody holds it.
        let dead = base.path().join("w-dead");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(LOCK), "").unwrap();
        std::fs::write(dead.join("secret"), "x").unwrap();
        // Not a work dir of ours: no lock file.
        let other = base.path().join("w-other");
        std::fs::create_dir(&other).unwrap();
        assert_eq!(sweep(base.path(), "w-"), vec![dead.clone()]);
        assert!(live.path().is_dir());
        assert!(other.is_dir());
        assert!(!dead.exists());
    }
}
