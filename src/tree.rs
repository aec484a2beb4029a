//! Copying directory trees: hardlinked where possible (restoring and saving cached layers
//! between the cache and the build root, which share a filesystem), copied otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot copy {path}: {source}")]
pub struct CopyError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Hardlink regular files (falling back to a copy across filesystems).
    Link,
    /// Copy regular files.
    Copy,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> CopyError + '_ {
    move |source| CopyError {
        path: path.to_path_buf(),
        source,
    }
}

/// Copy `src` to `dst` (which must not exist): dirs, regular files, symlinks as symlinks.
/// Other file types (sockets, fifos, devices) are left out.
pub fn copy_tree(src: &Path, dst: &Path, mode: Mode) -> Result<(), CopyError> {
    let meta = std::fs::symlink_metadata(src).map_err(err(src))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(src).map_err(err(src))?;
        std::os::unix::fs::symlink(target, dst).map_err(err(dst))?;
    } else if ft.is_dir() {
        std::fs::create_dir(dst).map_err(err(dst))?;
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .map_err(err(src))?
            .collect::<Result<_, _>>()
            .map_err(err(src))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            copy_tree(&entry.path(), &dst.join(entry.file_name()), mode)?;
        }
        std::fs::set_permissions(
            dst,
            std::fs::Permissions::from_mode(meta.permissions().mode()),
        )
        .map_err(err(dst))?;
    } else if ft.is_file() {
        let linked = mode == Mode::Link && std::fs::hard_link(src, dst).is_ok();
        if !linked {
            std::fs::copy(src, dst).map_err(err(src))?;
        }
    }
    Ok(())
}

/// Move `src` to `dst` (which must not exist): a rename, or a copy and removal when the two
/// are on different filesystems.
pub fn move_tree(src: &Path, dst: &Path) -> Result<(), CopyError> {
    match std::fs::rename(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_tree(src, dst, Mode::Copy)?;
            remove(src).map_err(err(src))
        }
        Err(e) => Err(CopyError {
            path: src.to_path_buf(),
            source: e,
        }),
    }
}

/// Remove a path whatever it is; a missing path is fine.
pub fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    }
}

/// Runs `f` on every item, the items dealt in turn to one thread per core: for file-system
/// work on independent trees (linking or unlinking thousands of files is kernel time that a
/// second core halves). The first error is returned once all threads are done.
pub fn spread<T: Sync, E: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .max(1);
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = (0..threads)
            .map(|t| s.spawn(move || items.iter().skip(t).step_by(threads).try_for_each(f)))
            .collect();
        let mut first = Ok(());
        for h in handles {
            match h.join() {
                Ok(r) => first = first.and(r),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        first
    })
}

/// [`remove`], spread over the cores: the entries two levels down (a cache's
/// `<buildpack>/<layer>` dirs, thousands of files each) first, then what is left.
pub fn remove_spread(path: &Path) -> std::io::Result<()> {
    let mut work = Vec::new();
    if let Ok(top) = std::fs::read_dir(path) {
        // `file_type` does not follow symlinks: nothing outside `path` is listed.
        for entry in top
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        {
            if let Ok(below) = std::fs::read_dir(entry.path()) {
                work.extend(below.flatten().map(|e| e.path()));
            }
        }
    }
    spread(&work, |p| remove(p))?;
    remove(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_spread_removes_every_level_and_accepts_a_missing_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("layers.old");
        for bp in ["a_bp", "b_bp"] {
            for layer in ["one", "two", "three"] {
                let deep = root.join(bp).join(layer).join("x/y");
                std::fs::create_dir_all(&deep).unwrap();
                std::fs::write(deep.join("f"), "f").unwrap();
                std::os::unix::fs::symlink("x", root.join(bp).join(layer).join("link")).unwrap();
            }
            std::fs::write(root.join(bp).join("one.toml"), "").unwrap();
        }
        std::fs::write(root.join("store.toml"), "").unwrap();
        // A symlinked buildpack dir is unlinked, never followed.
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(outside.join("keep")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("c_bp")).unwrap();
        remove_spread(&root).unwrap();
        assert!(outside.join("keep").is_dir());
        assert!(!root.exists());
        remove_spread(&root).unwrap();
    }
}
