//! Reading files an untrusted app supplies (its Procfile, `.slugignore`, version files,
//! `package.json`, lockfiles) and the `--env-file`s, boundedly. Every such read goes through
//! [`read_app_file`] or [`read_file`], so that the same rules hold for the engine and the
//! built-in buildpacks:
//!
//! - a symlink is followed only while it stays inside the app dir (one to `/etc/passwd` or
//!   `/proc/self/environ` is refused, so nothing outside the app is read as app input);
//! - the file must be a regular file: a FIFO would block the open or the read forever, and
//!   a character device such as `/dev/zero` never ends; the open uses `O_NONBLOCK` so that
//!   even a FIFO swapped in after the check cannot block it
//!   (<https://man7.org/linux/man-pages/man7/fifo.7.html>);
//! - at most `cap` bytes are read: one more means the file is refused, not truncated.
//!
//! Errors name the file (relative to the app dir) and never quote its contents.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// A Procfile, `.slugignore`, a version file, `.npmrc`, `.yarnrc.yml`, `pyproject.toml`,
/// `package.json`, `requirements.txt`, an `--env-file`.
pub const MANIFEST_CAP: u64 = 1 << 20;
/// A lockfile (`package-lock.json`, `yarn.lock`, `pnpm-lock.yaml`, `poetry.lock`,
/// `Pipfile.lock`, `uv.lock`): large apps have lockfiles of several MiB, none near this.
pub const LOCKFILE_CAP: u64 = 64 << 20;

/// How many bytes of untrusted text a message may quote.
pub const QUOTE_MAX: usize = 200;

/// The number of symlinks followed when resolving one app path, as Linux's `MAXSYMLINKS`
/// (<https://man7.org/linux/man-pages/man7/path_resolution.7.html>).
const MAX_LINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{name}: a symlink that leaves the app (app input is only read from inside the app)")]
    OutsideApp { name: String },
    #[error("{name}: a symlink that does not resolve ({reason})")]
    BadLink { name: String, reason: String },
    #[error("{name}: not a regular file (it is {kind})")]
    NotRegular { name: String, kind: &'static str },
    #[error("{name}: larger than the {} limit for this file", human(*cap))]
    TooLarge { name: String, cap: u64 },
    #[error("{name}: not valid UTF-8 (at byte {offset})")]
    NotUtf8 { name: String, offset: usize },
    #[error("{name}: cannot read: {source}")]
    Io {
        name: String,
        source: std::io::Error,
    },
}

impl InputError {
    /// The same error naming the file `name` (an absolute path, say) instead.
    pub fn renamed(mut self, new: String) -> Self {
        match &mut self {
            Self::OutsideApp { name }
            | Self::BadLink { name, .. }
            | Self::NotRegular { name, .. }
            | Self::TooLarge { name, .. }
            | Self::NotUtf8 { name, .. }
            | Self::Io { name, .. } => *name = new,
        }
        self
    }

    /// The file, as the message names it.
    pub fn name(&self) -> &str {
        match self {
            Self::OutsideApp { name }
            | Self::BadLink { name, .. }
            | Self::NotRegular { name, .. }
            | Self::TooLarge { name, .. }
            | Self::NotUtf8 { name, .. }
            | Self::Io { name, .. } => name,
        }
    }
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

fn kind_of(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symlink"
    } else {
        "not a regular file"
    }
}

/// Whether the app has an entry `rel` at all (a file, a dir, a FIFO, a symlink, dangling or
/// not): what detection asks, so that a hostile entry is reported rather than passed over.
pub fn exists(app_dir: &Path, rel: &str) -> bool {
    std::fs::symlink_metadata(app_dir.join(rel)).is_ok()
}

/// Whether `rel` is a regular file inside the app (after in-app symlinks).
pub fn is_app_file(app_dir: &Path, rel: &str) -> bool {
    resolve_in_app(app_dir, rel)
        .ok()
        .flatten()
        .and_then(|p| std::fs::metadata(p).ok())
        .is_some_and(|m| m.is_file())
}

/// The path `rel` leads to, symlinks resolved one component at a time without ever leaving
/// `app_dir`; `Ok(None)` when there is no such entry.
fn resolve_in_app(app_dir: &Path, rel: &str) -> Result<Option<PathBuf>, InputError> {
    let name = rel.to_string();
    let root = std::fs::canonicalize(app_dir).map_err(|source| InputError::Io {
        name: name.clone(),
        source,
    })?;
    // Components still to walk, last first; `at` is the resolved, real prefix.
    let mut todo: Vec<std::ffi::OsString> = Path::new(rel)
        .components()
        .rev()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let mut at = root.clone();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        let part_path = PathBuf::from(&part);
        match part_path.components().next() {
            Some(Component::CurDir) | None => continue,
            Some(Component::ParentDir) => {
                if at == root {
                    return Err(InputError::OutsideApp { name });
                }
                at.pop();
                continue;
            }
            Some(Component::RootDir) | Some(Component::Prefix(_)) => {
                return Err(InputError::OutsideApp { name });
            }
            Some(Component::Normal(_)) => {}
        }
        let next = at.join(&part);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(m) => m,
            // Missing before any symlink: the app has no such file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && links == 0 => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(InputError::BadLink {
                    name,
                    reason: "it points to nothing".to_string(),
                })
            }
            Err(source) => return Err(InputError::Io { name, source }),
        };
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(InputError::BadLink {
                    name,
                    reason: "too many levels of symlinks".to_string(),
                });
            }
            let target = std::fs::read_link(&next).map_err(|source| InputError::Io {
                name: name.clone(),
                source,
            })?;
            if target.is_absolute() {
                // Absolute targets count only when they name a path inside the app.
                let Ok(inside) = target.strip_prefix(&root) else {
                    return Err(InputError::OutsideApp { name });
                };
                at = root.clone();
                todo.extend(
                    inside
                        .components()
                        .rev()
                        .map(|c| c.as_os_str().to_os_string()),
                );
            } else {
                todo.extend(
                    target
                        .components()
                        .rev()
                        .map(|c| c.as_os_str().to_os_string()),
                );
            }
            continue;
        }
        at = next;
    }
    Ok(Some(at))
}

/// Read `rel` (a path relative to `app_dir`) under the rules above; `Ok(None)` when the app
/// has no such entry.
pub fn read_app_file(app_dir: &Path, rel: &str, cap: u64) -> Result<Option<Vec<u8>>, InputError> {
    let Some(path) = resolve_in_app(app_dir, rel)? else {
        return Ok(None);
    };
    read_regular(&path, rel.to_string(), cap, true).map(Some)
}

/// [`read_app_file`], as UTF-8 text.
pub fn read_app_text(app_dir: &Path, rel: &str, cap: u64) -> Result<Option<String>, InputError> {
    match read_app_file(app_dir, rel, cap)? {
        Some(bytes) => utf8(bytes, rel.to_string()).map(Some),
        None => Ok(None),
    }
}

/// A file named by the user rather than by the app (an `--env-file`): symlinks are followed
/// (the path is the caller's choice), the other rules hold. Errors name `path` as given.
pub fn read_file(path: &Path, cap: u64) -> Result<Vec<u8>, InputError> {
    read_regular(path, path.display().to_string(), cap, false)
}

/// [`read_file`], as UTF-8 text.
pub fn read_text(path: &Path, cap: u64) -> Result<String, InputError> {
    utf8(read_file(path, cap)?, path.display().to_string())
}

fn utf8(bytes: Vec<u8>, name: String) -> Result<String, InputError> {
    String::from_utf8(bytes).map_err(|e| InputError::NotUtf8 {
        name,
        offset: e.utf8_error().valid_up_to(),
    })
}

fn read_regular(
    path: &Path,
    name: String,
    cap: u64,
    no_follow: bool,
) -> Result<Vec<u8>, InputError> {
    let io = |source| InputError::Io {
        name: name.clone(),
        source,
    };
    let mut flags = libc::O_NONBLOCK;
    if no_follow {
        // `path` is resolved already: a symlink here was swapped in since.
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(InputError::NotRegular {
                name,
                kind: "a symlink",
            })
        }
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            // A FIFO without a writer, opened for reading with O_NONBLOCK, opens fine; ENXIO
            // is a socket or a device without a driver.
            return Err(InputError::NotRegular {
                name,
                kind: "not a regular file",
            });
        }
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(InputError::NotRegular {
            name,
            kind: kind_of(&meta.file_type()),
        });
    }
    if meta.len() > cap {
        return Err(InputError::TooLarge { name, cap });
    }
    // The size can change under us (a file still being written): read one byte past the cap.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > cap {
        return Err(InputError::TooLarge { name, cap });
    }
    Ok(bytes)
}

/// Untrusted text for a message: at most [`QUOTE_MAX`] bytes (cut at a char boundary), with
/// the length of what was left out.
pub fn quote(text: &str) -> String {
    if text.len() <= QUOTE_MAX {
        return format!("{text:?}");
    }
    let mut end = QUOTE_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes in all)", &text[..end], text.len())
}

/// A parser's message about untrusted text (which may quote the offending line, as TOML's
/// does): each line clipped, at most 12 lines.
pub fn clip_message(text: &str) -> String {
    let mut lines: Vec<String> = text
        .lines()
        .take(12)
        .map(|l| clip(l).into_owned())
        .collect();
    if text.lines().count() > 12 {
        lines.push("…".to_string());
    }
    lines.join("\n")
}

/// Untrusted text for a log line, unquoted: at most [`QUOTE_MAX`] bytes, then `…`.
pub fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= QUOTE_MAX {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = QUOTE_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}… ({} bytes in all)", &text[..end], text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn app() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/real"), "web: x\n").unwrap();
        dir
    }

    #[test]
    fn in_app_links_are_followed_and_others_refused() {
        let dir = app();
        let d = dir.path();
        symlink("sub/real", d.join("rel")).unwrap();
        symlink(d.join("sub/real"), d.join("abs")).unwrap();
        symlink("sub/../sub/./real", d.join("dots")).unwrap();
        symlink("/etc/passwd", d.join("passwd")).unwrap();
        symlink("../../../../../../etc/passwd", d.join("up")).unwrap();
        symlink("/dev/zero", d.join("zero")).unwrap();
        symlink("missing", d.join("dangling")).unwrap();
        symlink("loop", d.join("loop")).unwrap();
        for ok in ["rel", "abs", "dots", "sub/real"] {
            assert_eq!(
                read_app_file(d, ok, 100).unwrap().unwrap(),
                b"web: x\n",
                "{ok}"
            );
        }
        for out in ["passwd", "up", "zero"] {
            assert!(
                matches!(
                    read_app_file(d, out, 100),
                    Err(InputError::OutsideApp { .. })
                ),
                "{out}"
            );
        }
        assert!(matches!(
            read_app_file(d, "dangling", 100),
            Err(InputError::BadLink { .. })
        ));
        assert!(matches!(
            read_app_file(d, "loop", 100),
            Err(InputError::BadLink { .. })
        ));
        assert!(read_app_file(d, "none", 100).unwrap().is_none());
        assert!(matches!(
            read_app_file(d, "sub", 100),
            Err(InputError::NotRegular { .. })
        ));
    }

    #[test]
    fn caps_fifos_and_utf8() {
        let dir = app();
        let d = dir.path();
        std::fs::write(d.join("big"), vec![b'a'; 101]).unwrap();
        let e = read_app_file(d, "big", 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "big: larger than the 100 bytes limit for this file"
        );
        assert_eq!(read_app_file(d, "big", 101).unwrap().unwrap().len(), 101);
        let fifo = std::ffi::CString::new(d.join("fifo").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let e = read_app_file(d, "fifo", 100).unwrap_err();
        assert_eq!(e.to_string(), "fifo: not a regular file (it is a FIFO)");
        assert!(matches!(
            read_file(Path::new("/dev/zero"), 100),
            Err(InputError::NotRegular { .. })
        ));
        std::fs::write(d.join("latin1"), b"caf\xe9").unwrap();
        let e = read_app_text(d, "latin1", 100).unwrap_err();
        assert_eq!(e.to_string(), "latin1: not valid UTF-8 (at byte 3)");
    }

    #[test]
    fn quotes_are_bounded() {
        assert_eq!(quote("web"), "\"web\"");
        let long = "é".repeat(1000);
        let q = quote(&long);
        assert!(q.len() < QUOTE_MAX + 40, "{}", q.len());
        assert!(q.ends_with("(2000 bytes in all)"));
    }
}
