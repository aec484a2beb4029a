//! The source snapshot: the app dir copied into a fresh build root, leaving out what
//! `.slugignore` (gitignore syntax, as on Heroku: read from the app's root, applied before the
//! build), `project.toml`'s `include`/`exclude` (gitignore patterns too, `crate::project`) and
//! the fixed list exclude. The user's tree is never written to.

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The largest `.slugignore` read (README, "Reliability").
pub const SLUGIGNORE_CAP: u64 = slugc_fs::input::MANIFEST_CAP;

/// Never copied: version control, and the dir the engine keeps layers in.
const ALWAYS_EXCLUDED: &[&str] = &[".git", ".hg", ".svn", ".layers"];

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("app dir {0} does not exist")]
    Missing(PathBuf),
    #[error("app dir {0} is not a directory")]
    NotADir(PathBuf),
    #[error("cannot read {path} in the app: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: [io.buildpacks] include/exclude: {message}", path.display())]
    BadProjectPattern { path: PathBuf, message: String },
    #[error("{}:{line}: {message}", path.display())]
    BadSlugignore {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}", .0)]
    Input(slugc_fs::input::InputError),
    #[error("{}: {kind}, not a regular file, directory or symlink (list it in .slugignore to leave it out of the app)", path.display())]
    Special { path: PathBuf, kind: &'static str },
    /// The slug's one symlink rule (`slug_format::link`), checked before anything runs so
    /// that the refusal is the build's first line.
    #[error("{}: {reason}", path.display())]
    Link {
        path: PathBuf,
        reason: slug_format::link::LinkError,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub fn check_app_dir(dir: &Path) -> Result<PathBuf, AppError> {
    match std::fs::metadata(dir) {
        Err(_) => Err(AppError::Missing(dir.to_path_buf())),
        Ok(m) if !m.is_dir() => Err(AppError::NotADir(dir.to_path_buf())),
        Ok(_) => std::fs::canonicalize(dir).map_err(|source| AppError::Unreadable {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// `project.toml`'s `[io.buildpacks]` `include` and `exclude` patterns (at most one of them
/// non-empty), and the file they come from.
#[derive(Debug, Clone, Default)]
pub struct ProjectRules {
    pub source: PathBuf,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

fn special_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

struct Walk<'a> {
    root: &'a Path,
    ignore: Gitignore,
    /// Only what this matches (or lies under a match) is copied.
    include: Option<Gitignore>,
    exclude: &'a [PathBuf],
}

impl Walk<'_> {
    fn excluded(&self, path: &Path, is_dir: bool) -> bool {
        if self.exclude.iter().any(|e| e == path) {
            return true;
        }
        let rel = path.strip_prefix(self.root).unwrap_or(path);
        if rel.components().count() == 1 && ALWAYS_EXCLUDED.iter().any(|n| rel.as_os_str() == *n) {
            return true;
        }
        self.ignore.matched(rel, is_dir).is_ignore()
    }

    /// Whether `path` is named by `include` (true when there is no `include`).
    fn included(&self, path: &Path, is_dir: bool) -> bool {
        let rel = path.strip_prefix(self.root).unwrap_or(path);
        self.include
            .as_ref()
            .is_none_or(|inc| inc.matched(rel, is_dir).is_ignore())
    }

    /// Copy `src` into `dst` (existing); `included`: an ancestor is named by `include`.
    fn copy_dir(&mut self, src: &Path, dst: &Path, included: bool) -> Result<(), AppError> {
        let unreadable = |source| AppError::Unreadable {
            path: src.to_path_buf(),
            source,
        };
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .map_err(unreadable)?
            .collect::<Result<_, _>>()
            .map_err(|source| AppError::Unreadable {
                path: src.to_path_buf(),
                source,
            })?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let to = dst.join(entry.file_name());
            let meta = std::fs::symlink_metadata(&path).map_err(|source| AppError::Unreadable {
                path: path.clone(),
                source,
            })?;
            let ft = meta.file_type();
            if self.excluded(&path, ft.is_dir()) {
                continue;
            }
            let included = included || self.included(&path, ft.is_dir());
            if !included && !ft.is_dir() {
                continue;
            }
            let write = |source| AppError::Write {
                path: to.clone(),
                source,
            };
            if ft.is_dir() {
                std::fs::create_dir(&to).map_err(write)?;
                self.copy_dir(&path, &to, included)?;
                if !included && std::fs::read_dir(&to).map_err(write)?.next().is_none() {
                    // Nothing under it was included: the dir is not part of the build.
                    std::fs::remove_dir(&to).map_err(|source| AppError::Write {
                        path: to.clone(),
                        source,
                    })?;
                    continue;
                }
                std::fs::set_permissions(
                    &to,
                    std::fs::Permissions::from_mode(meta.permissions().mode() | 0o700),
                )
                .map_err(|source| AppError::Write {
                    path: to.clone(),
                    source,
                })?;
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|source| AppError::Unreadable {
                    path: path.clone(),
                    source,
                })?;
                let root = self.root;
                let rel = path.strip_prefix(root).unwrap_or(&path);
                slug_format::link::check(&Path::new("app").join(rel), &target, |p| {
                    std::fs::read_link(root.join(p.strip_prefix("app").ok()?)).ok()
                })
                .map_err(|reason| AppError::Link {
                    path: path.clone(),
                    reason,
                })?;
                std::os::unix::fs::symlink(target, &to).map_err(write)?;
            } else if ft.is_file() {
                let mut from =
                    std::fs::File::open(&path).map_err(|source| AppError::Unreadable {
                        path: path.clone(),
                        source,
                    })?;
                let mut out = std::fs::File::create(&to).map_err(write)?;
                std::io::copy(&mut from, &mut out).map_err(|source| AppError::Unreadable {
                    path: path.clone(),
                    source,
                })?;
                out.set_permissions(std::fs::Permissions::from_mode(
                    meta.permissions().mode() & 0o7777,
                ))
                .map_err(|source| AppError::Write {
                    path: to.clone(),
                    source,
                })?;
            } else {
                // A FIFO, socket or device cannot be part of a slug, and a buildpack reading
                // it would block or never reach its end: refused, unless `.slugignore` names it.
                return Err(AppError::Special {
                    path,
                    kind: special_kind(&ft),
                });
            }
        }
        Ok(())
    }
}

fn matcher(root: &Path, source: &Path, patterns: &[String]) -> Result<Gitignore, AppError> {
    let bad = |e: ignore::Error| AppError::BadProjectPattern {
        path: source.to_path_buf(),
        message: slugc_fs::input::clip(&e.to_string()).into_owned(),
    };
    let mut builder = GitignoreBuilder::new(root);
    for p in patterns {
        builder
            .add_line(Some(source.to_path_buf()), p)
            .map_err(bad)?;
    }
    builder.build().map_err(bad)
}

/// Copy `src` (an existing dir) into `dest` (created). `exclude` holds absolute paths to
/// leave out (the cache and output dirs when they sit inside the app).
pub fn snapshot(
    src: &Path,
    dest: &Path,
    exclude: &[PathBuf],
    project: &ProjectRules,
) -> Result<(), AppError> {
    let mut builder = GitignoreBuilder::new(src);
    for p in &project.exclude {
        builder
            .add_line(Some(project.source.clone()), p)
            .map_err(|e| AppError::BadProjectPattern {
                path: project.source.clone(),
                message: slugc_fs::input::clip(&e.to_string()).into_owned(),
            })?;
    }
    let slugignore = src.join(".slugignore");
    // Read boundedly and added line by line: `GitignoreBuilder::add` would follow any symlink
    // and read without a limit.
    let text = slugc_fs::input::read_app_text(src, ".slugignore", SLUGIGNORE_CAP)
        .map_err(|e| AppError::Input(e.renamed(slugignore.display().to_string())))?;
    for (index, line) in text.as_deref().unwrap_or_default().lines().enumerate() {
        builder
            .add_line(Some(slugignore.clone()), line)
            .map_err(|e| AppError::BadSlugignore {
                path: slugignore.clone(),
                line: index + 1,
                message: slugc_fs::input::clip(&e.to_string()).into_owned(),
            })?;
    }
    let ignore = builder.build().map_err(|e| AppError::BadSlugignore {
        path: slugignore.clone(),
        line: 0,
        message: slugc_fs::input::clip(&e.to_string()).into_owned(),
    })?;
    std::fs::create_dir_all(dest).map_err(|source| AppError::Write {
        path: dest.to_path_buf(),
        source,
    })?;
    let include = if project.include.is_empty() {
        None
    } else {
        Some(matcher(src, &project.source, &project.include)?)
    };
    let mut walk = Walk {
        root: src,
        ignore,
        include,
        exclude,
    };
    walk.copy_dir(src, dest, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugignore_and_fixed_excludes() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        std::fs::create_dir_all(app.join(".git/objects")).unwrap();
        std::fs::create_dir_all(app.join("docs/deep")).unwrap();
        std::fs::create_dir_all(app.join("src")).unwrap();
        std::fs::write(app.join(".slugignore"), "docs/\n*.log\n!keep.log\n").unwrap();
        std::fs::write(app.join("docs/deep/a.md"), "x").unwrap();
        std::fs::write(app.join("src/a.log"), "x").unwrap();
        std::fs::write(app.join("src/keep.log"), "x").unwrap();
        std::fs::write(app.join("src/main.py"), "x").unwrap();
        std::fs::write(app.join(".env"), "x").unwrap();
        let out = tmp.path().join("out");
        snapshot(&app, &out, &[], &ProjectRules::default()).unwrap();
        assert!(!out.join(".git").exists());
        assert!(!out.join("docs").exists());
        assert!(!out.join("src/a.log").exists());
        assert!(out.join("src/keep.log").exists());
        assert!(out.join("src/main.py").exists());
        assert!(
            out.join(".env").exists(),
            "hidden files are part of the app"
        );
    }
}
