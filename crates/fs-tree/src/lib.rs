//! Directory trees, for the engine and the built-in buildpacks alike: copying (hardlinked or
//! copied, symlinks kept or followed, filtered), moving across filesystems, removing, and
//! spreading independent trees' work over the cores. Also what both need to treat an app as
//! untrusted input: bounded reads of its files ([`input`]) and credentials kept out of the
//! log ([`redact`]).

pub mod input;
pub mod redact;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot copy {path}: {source}")]
pub struct CopyError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// The I/O error alone, for callers that report the tree they were copying themselves.
impl From<CopyError> for std::io::Error {
    fn from(e: CopyError) -> Self {
        e.source
    }
}

/// What becomes of regular files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Files {
    /// Copied.
    #[default]
    Copy,
    /// Hardlinked, falling back to a copy (across filesystems, say).
    Link,
}

/// What becomes of symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Symlinks {
    /// Copied as symlinks, pointing where they pointed.
    #[default]
    Keep,
    /// Replaced by a copy of what they point to; dangling ones are left out.
    Follow,
}

/// How [`copy_tree`] copies. The default: files copied, symlinks kept, new dirs with the
/// process's default mode, nothing left out.
#[derive(Clone, Copy, Default)]
pub struct Options<'a> {
    pub files: Files,
    pub symlinks: Symlinks,
    /// Each dir gets its source's permissions, set once its entries are in (so that a
    /// read-only dir can be filled).
    pub dir_modes: bool,
    /// What is copied below `src`: called with each entry's path relative to `src` and
    /// whether it is a dir (after following, under [`Symlinks::Follow`]); a dir left out is
    /// left out whole.
    pub filter: Option<&'a Filter>,
}

/// `(path relative to the source, is a dir) -> copy it`; `Sync`, so that one copy's options
/// serve trees copied side by side ([`spread`]).
pub type Filter = dyn Fn(&Path, bool) -> bool + Sync;

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> CopyError + '_ {
    move |source| CopyError {
        path: path.to_path_buf(),
        source,
    }
}

enum Kind {
    Dir {
        mode: u32,
    },
    /// `via_symlink`: a followed symlink, which a hardlink would not follow.
    File {
        via_symlink: bool,
    },
    Symlink,
    /// Sockets, fifos, devices: never copied.
    Other,
}

/// What `path` is to the copy; `None` for a symlink to follow that leads nowhere.
fn kind_of(path: &Path, symlinks: Symlinks) -> Result<Option<Kind>, CopyError> {
    let mut meta = std::fs::symlink_metadata(path).map_err(err(path))?;
    let via_symlink = meta.file_type().is_symlink();
    if via_symlink {
        if symlinks == Symlinks::Keep {
            return Ok(Some(Kind::Symlink));
        }
        let Ok(target) = std::fs::metadata(path) else {
            return Ok(None);
        };
        meta = target;
    }
    let ft = meta.file_type();
    Ok(Some(if ft.is_dir() {
        Kind::Dir {
            mode: meta.permissions().mode(),
        }
    } else if ft.is_file() {
        Kind::File { via_symlink }
    } else {
        Kind::Other
    }))
}

/// Copy `src` (a dir's tree, a file or a symlink) to `dst`, as `how` says. Dirs are created
/// with their parents as needed, so a copy into an existing dir adds to it. Entries are
/// copied in name order.
pub fn copy_tree(src: &Path, dst: &Path, how: &Options) -> Result<(), CopyError> {
    let kind = kind_of(src, how.symlinks)?.ok_or_else(|| CopyError {
        path: src.to_path_buf(),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    copy(src, dst, Path::new(""), kind, how)
}

fn copy(src: &Path, dst: &Path, rel: &Path, kind: Kind, how: &Options) -> Result<(), CopyError> {
    match kind {
        Kind::Symlink => {
            let target = std::fs::read_link(src).map_err(err(src))?;
            std::os::unix::fs::symlink(target, dst).map_err(err(dst))?;
        }
        Kind::File { via_symlink } => {
            let linked =
                how.files == Files::Link && !via_symlink && std::fs::hard_link(src, dst).is_ok();
            if !linked {
                std::fs::copy(src, dst).map_err(err(src))?;
            }
        }
        Kind::Dir { mode } => {
            std::fs::create_dir_all(dst).map_err(err(dst))?;
            let mut entries: Vec<_> = std::fs::read_dir(src)
                .map_err(err(src))?
                .collect::<Result<_, _>>()
                .map_err(err(src))?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let name = entry.file_name();
                let (from, rel) = (entry.path(), rel.join(&name));
                let Some(kind) = kind_of(&from, how.symlinks)? else {
                    continue;
                };
                let is_dir = matches!(kind, Kind::Dir { .. });
                if how.filter.is_some_and(|keep| !keep(&rel, is_dir)) {
                    continue;
                }
                copy(&from, &dst.join(&name), &rel, kind, how)?;
            }
            if how.dir_modes {
                std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))
                    .map_err(err(dst))?;
            }
        }
        Kind::Other => {}
    }
    Ok(())
}

/// Move `src` to `dst` (which must not exist): a rename, or a copy (symlinks kept, dir
/// modes too) and removal when the two are on different filesystems.
pub fn move_tree(src: &Path, dst: &Path) -> Result<(), CopyError> {
    match std::fs::rename(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let how = Options {
                dir_modes: true,
                ..Options::default()
            };
            copy_tree(src, dst, &how)?;
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

/// `to` relative to the dir `from` (both absolute, no `..`): the target of a relative
/// symlink in `from` that leads to `to`.
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<std::path::Component> = from.components().collect();
    let to_c: Vec<std::path::Component> = to.components().collect();
    let common = from.iter().zip(&to_c).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to_c[common..] {
        out.push(c);
    }
    out
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

    #[test]
    fn copy_tree_filters_and_follows_file_symlinks() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("a/__pycache__")).unwrap();
        std::fs::write(src.path().join("a/x.py"), "x").unwrap();
        std::fs::write(src.path().join("a/__pycache__/x.pyc"), "c").unwrap();
        std::os::unix::fs::symlink(src.path().join("a/x.py"), src.path().join("link.py")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", src.path().join("dangling")).unwrap();
        let how = Options {
            symlinks: Symlinks::Follow,
            filter: Some(&|rel, _| !rel.ends_with("__pycache__")),
            ..Options::default()
        };
        copy_tree(src.path(), &dst.path().join("out"), &how).unwrap();
        let out = dst.path().join("out");
        assert_eq!(std::fs::read_to_string(out.join("a/x.py")).unwrap(), "x");
        assert!(!out.join("a/__pycache__").exists());
        assert!(!out.join("link.py").symlink_metadata().unwrap().is_symlink());
        assert!(out.join("dangling").symlink_metadata().is_err());
    }

    #[test]
    fn copy_tree_keeps_symlinks_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a/node_modules");
        std::fs::create_dir_all(src.join("x/.bin")).unwrap();
        std::fs::write(src.join("x/index.js"), "1").unwrap();
        std::os::unix::fs::symlink("../index.js", src.join("x/.bin/x")).unwrap();
        let dst = dir.path().join("b/node_modules");
        copy_tree(&src, &dst, &Options::default()).unwrap();
        assert_eq!(
            std::fs::read_link(dst.join("x/.bin/x")).unwrap(),
            Path::new("../index.js")
        );
        assert_eq!(
            std::fs::read_to_string(dst.join("x/index.js")).unwrap(),
            "1"
        );
    }

    #[test]
    fn copy_tree_links_files_and_keeps_dir_modes() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("layer");
        std::fs::create_dir_all(src.join("ro")).unwrap();
        std::fs::write(src.join("ro/f"), "f").unwrap();
        std::os::unix::fs::symlink("ro/f", src.join("link")).unwrap();
        std::fs::set_permissions(src.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
        let dst = dir.path().join("restored");
        let how = Options {
            files: Files::Link,
            dir_modes: true,
            ..Options::default()
        };
        copy_tree(&src, &dst, &how).unwrap();
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&src.join("ro/f")), ino(&dst.join("ro/f")));
        assert_eq!(
            std::fs::read_link(dst.join("link")).unwrap(),
            Path::new("ro/f")
        );
        let mode = std::fs::metadata(dst.join("ro"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o555);
        for d in [&src, &dst] {
            std::fs::set_permissions(d.join("ro"), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}
