//! Unpacking a slug safely into a per-digest directory, reused while intact.
//!
//! Order of checks: the file's SHA-256 against the manifest (and the `sha256-<hex>.tgz` name)
//! first, then every tar entry as it streams by. Nothing is trusted from the archive:
//!
//! - every path must be relative, without `..`, and under `./app/`;
//! - only directories, regular files and symlinks; hard links, devices and FIFOs are refused;
//! - symlinks must resolve inside `app/`, following the other symlinks of the archive the way
//!   the kernel would (a lexical check is not enough: `s -> .` then `t -> s/..` escapes);
//! - symlinks are created last, after every file, so no file is ever written through a link.
//!
//! The work happens in a fresh temporary dir beside the target, which is removed on any
//! error; a marker file written last and an atomic rename publish the result, so a half
//! unpacked dir is never reused.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Written last into a complete unpack dir; holds the slug's hex digest.
pub const MARKER: &str = ".slugc-unpacked";

/// Symlink hops allowed while resolving one link, as Linux's `MAXSYMLINKS`.
const MAX_HOPS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(
        "{slug}: checksum mismatch: the file's SHA-256 is {actual}, {source_name} says {expected}"
    )]
    Checksum {
        slug: PathBuf,
        actual: String,
        expected: String,
        source_name: String,
    },
    #[error("{slug}: refused: entry {entry:?} {reason}")]
    Hostile {
        slug: PathBuf,
        entry: String,
        reason: String,
    },
    #[error("{slug}: corrupt slug: {message}")]
    Corrupt { slug: PathBuf, message: String },
    #[error("cannot read slug {slug}: {source}")]
    Read { slug: PathBuf, source: io::Error },
    #[error("cannot unpack into {dir}: {source}")]
    Write { dir: PathBuf, source: io::Error },
}

impl UnpackError {
    /// Hostile or corrupt slug content (exit 30), as opposed to a local I/O problem.
    pub fn is_bad_slug(&self) -> bool {
        matches!(
            self,
            Self::Checksum { .. } | Self::Hostile { .. } | Self::Corrupt { .. }
        )
    }
}

#[derive(Debug)]
pub struct Unpacked {
    /// `<unpack root>/<hex>`.
    pub dir: PathBuf,
    /// `<dir>/app`: `HOME` and the working dir of every process.
    pub app: PathBuf,
    pub hex: String,
    pub reused: bool,
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, UnpackError> {
    let read_err = |source| UnpackError::Read {
        slug: path.to_path_buf(),
        source,
    };
    let mut file = fs::File::open(path).map_err(read_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Verify `slug` against `expected` digests (value, where it came from), then unpack it under
/// `root/<hex>`, or reuse that dir when its marker says it is complete.
pub fn prepare(
    slug: &Path,
    expected: &[(String, String)],
    root: &Path,
) -> Result<Unpacked, UnpackError> {
    let actual = sha256_file(slug)?;
    for (want, source_name) in expected {
        if *want != actual {
            return Err(UnpackError::Checksum {
                slug: slug.to_path_buf(),
                actual,
                expected: want.clone(),
                source_name: source_name.clone(),
            });
        }
    }
    let dir = root.join(&actual);
    let write_err = |source| UnpackError::Write {
        dir: dir.clone(),
        source,
    };
    if is_complete(&dir, &actual) {
        return Ok(Unpacked {
            app: dir.join("app"),
            dir,
            hex: actual,
            reused: true,
        });
    }
    fs::create_dir_all(root).map_err(write_err)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{actual}.tmp-"))
        .tempdir_in(root)
        .map_err(write_err)?;
    extract(slug, tmp.path())?;
    fs::write(tmp.path().join(MARKER), format!("{actual}\n")).map_err(write_err)?;
    if dir.exists() && !is_complete(&dir, &actual) {
        // A leftover from an interrupted unpack of an older slugc, or tampered with.
        fs::remove_dir_all(&dir).map_err(write_err)?;
    }
    match fs::rename(tmp.path(), &dir) {
        Ok(()) => {
            // Published: keep it (do not let the TempDir guard delete it).
            let _ = tmp.keep();
        }
        // Another `slug run` of the same slug finished first: use its copy; ours is dropped.
        Err(_) if is_complete(&dir, &actual) => {}
        Err(source) => return Err(write_err(source)),
    }
    Ok(Unpacked {
        app: dir.join("app"),
        dir,
        hex: actual,
        reused: false,
    })
}

fn is_complete(dir: &Path, hex: &str) -> bool {
    fs::read_to_string(dir.join(MARKER)).is_ok_and(|m| m.trim() == hex) && dir.join("app").is_dir()
}

/// Stream the slug's entries into `dest`, checking each one.
pub fn extract(slug: &Path, dest: &Path) -> Result<(), UnpackError> {
    let file = fs::File::open(slug).map_err(|source| UnpackError::Read {
        slug: slug.to_path_buf(),
        source,
    })?;
    let corrupt = |message: String| UnpackError::Corrupt {
        slug: slug.to_path_buf(),
        message,
    };
    let hostile = |entry: &str, reason: &str| UnpackError::Hostile {
        slug: slug.to_path_buf(),
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    let write_err = |path: &Path, source| UnpackError::Write {
        dir: path.to_path_buf(),
        source,
    };
    // Concatenated gzip members (one per slug part) are one stream: MultiGzDecoder.
    let gz = flate2::read::MultiGzDecoder::new(io::BufReader::new(file));
    let mut archive = tar::Archive::new(gz);
    let mut symlinks: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    let mut saw_app = false;
    let entries = archive
        .entries()
        .map_err(|e| corrupt(format!("not a gzip tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(format!("bad gzip or tar data: {e}")))?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = checked_path(&raw_path).map_err(|reason| hostile(&raw_path, reason))?;
        let Some(rel) = rel else { continue }; // the `./` entry itself
        saw_app = true;
        let kind = entry.header().entry_type();
        let target = dest.join(&rel);
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                if symlinks.contains_key(&rel) {
                    return Err(hostile(&raw_path, "is both a symlink and a directory"));
                }
                if target.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                    return Err(hostile(&raw_path, "is a directory over an earlier file"));
                }
                fs::create_dir_all(&target).map_err(|e| write_err(&target, e))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
                    .map_err(|e| write_err(&target, e))?;
            }
            T::Regular | T::Continuous => {
                if symlinks.contains_key(&rel) {
                    return Err(hostile(&raw_path, "is both a symlink and a file"));
                }
                if rel == Path::new("app") {
                    return Err(hostile(&raw_path, "replaces the app directory with a file"));
                }
                if target.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                    return Err(hostile(&raw_path, "is a file over an earlier directory"));
                }
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(|e| {
                        if e.kind() == io::ErrorKind::AlreadyExists
                            || e.raw_os_error() == Some(libc::ENOTDIR)
                        {
                            hostile(&raw_path, "lies under an earlier file")
                        } else {
                            write_err(parent, e)
                        }
                    })?;
                }
                // Modes are normalised as the exporter writes them: only the executable bit
                // survives (no setuid, no group/other write).
                let executable = entry
                    .header()
                    .mode()
                    .map(|m| m & 0o111 != 0)
                    .unwrap_or(false);
                let mut out = fs::File::create(&target).map_err(|e| write_err(&target, e))?;
                io::copy(&mut entry, &mut out)
                    .map_err(|e| corrupt(format!("bad data in {raw_path:?}: {e}")))?;
                let mode = if executable { 0o755 } else { 0o644 };
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(|e| write_err(&target, e))?;
            }
            T::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|e| corrupt(format!("bad link name in {raw_path:?}: {e}")))?
                    .ok_or_else(|| hostile(&raw_path, "is a symlink without a target"))?
                    .into_owned();
                if link.as_os_str().is_empty() {
                    return Err(hostile(&raw_path, "is a symlink without a target"));
                }
                if link.is_absolute() {
                    return Err(hostile(
                        &raw_path,
                        &format!("is a symlink to the absolute path {}", link.display()),
                    ));
                }
                if rel == Path::new("app") {
                    return Err(hostile(
                        &raw_path,
                        "replaces the app directory with a symlink",
                    ));
                }
                if target.symlink_metadata().is_ok() {
                    return Err(hostile(&raw_path, "is a symlink over an existing entry"));
                }
                symlinks.insert(rel, link);
            }
            T::Link => return Err(hostile(&raw_path, "is a hard link")),
            T::Char | T::Block => return Err(hostile(&raw_path, "is a device file")),
            T::Fifo => return Err(hostile(&raw_path, "is a FIFO")),
            // A global PAX header carries no file; the tar crate applies local ones itself.
            T::XGlobalHeader => {}
            other => {
                return Err(hostile(
                    &raw_path,
                    &format!(
                        "has an unsupported tar entry type {:?}",
                        other.as_byte() as char
                    ),
                ))
            }
        }
    }
    // The tar reader stops at the end-of-archive blocks; read the rest of the gzip stream too
    // so that a truncated or damaged tail is noticed rather than ignored.
    io::copy(&mut archive.into_inner(), &mut io::sink())
        .map_err(|e| corrupt(format!("bad gzip data after the tar archive: {e}")))?;
    if !saw_app {
        return Err(corrupt("no ./app/ entries".to_string()));
    }

    for (rel, link) in &symlinks {
        let shown = rel.to_string_lossy();
        if let Some(parent_link) = rel.ancestors().skip(1).find(|a| symlinks.contains_key(*a)) {
            return Err(hostile(
                &shown,
                &format!("lies under the symlink {}", parent_link.display()),
            ));
        }
        if !resolves_inside(rel, &symlinks) {
            return Err(hostile(
                &shown,
                &format!(
                    "is a symlink to {} which points outside the app",
                    link.display()
                ),
            ));
        }
    }
    for (rel, link) in &symlinks {
        let target = dest.join(rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| write_err(parent, e))?;
        }
        std::os::unix::fs::symlink(link, &target).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                hostile(
                    &rel.to_string_lossy(),
                    "is a symlink over an existing entry",
                )
            } else {
                write_err(&target, e)
            }
        })?;
    }
    Ok(())
}

/// `Ok(None)` for the root entry `./`; `Ok(Some(app/...))` for a path under `./app/`.
fn checked_path(raw: &str) -> Result<Option<PathBuf>, &'static str> {
    let path = Path::new(raw);
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::ParentDir => return Err("contains `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path"),
        }
    }
    if out.as_os_str().is_empty() {
        return Ok(None);
    }
    if out.components().next() != Some(Component::Normal("app".as_ref())) {
        return Err("is outside ./app/");
    }
    Ok(Some(out))
}

/// Resolve `link` (relative to the unpack dir, under `app/`) through the archive's symlinks as
/// the kernel would, and say whether the result stays under `app/`. Missing components are
/// taken as plain names (a dangling link inside the app is harmless).
fn resolves_inside(link: &Path, symlinks: &BTreeMap<PathBuf, PathBuf>) -> bool {
    let mut stack: Vec<OsString> = match link.parent() {
        Some(p) => p.iter().map(OsString::from).collect(),
        None => return false,
    };
    let mut pending: Vec<OsString> = match symlinks.get(link) {
        Some(t) => t.iter().rev().map(OsString::from).collect(),
        None => return false,
    };
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == "." {
            continue;
        }
        if part == ".." {
            stack.pop();
            if stack.is_empty() {
                return false; // left app/
            }
            continue;
        }
        if part == "/" {
            return false;
        }
        stack.push(part);
        let current: PathBuf = stack.iter().collect();
        if let Some(target) = symlinks.get(&current) {
            hops += 1;
            if hops > MAX_HOPS || target.is_absolute() {
                return false;
            }
            stack.pop();
            pending.extend(target.iter().rev().map(OsString::from));
        }
    }
    stack.first().is_some_and(|first| first == "app")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(pairs: &[(&str, &str)]) -> BTreeMap<PathBuf, PathBuf> {
        pairs
            .iter()
            .map(|(a, b)| (PathBuf::from(a), PathBuf::from(b)))
            .collect()
    }

    #[test]
    fn path_rules() {
        assert_eq!(checked_path("./"), Ok(None));
        assert_eq!(
            checked_path("./app/x/y"),
            Ok(Some(PathBuf::from("app/x/y")))
        );
        assert_eq!(checked_path("app"), Ok(Some(PathBuf::from("app"))));
        assert_eq!(checked_path("./app/../etc"), Err("contains `..`"));
        assert_eq!(checked_path("/etc/passwd"), Err("is an absolute path"));
        assert_eq!(checked_path("./other/x"), Err("is outside ./app/"));
    }

    #[test]
    fn symlink_resolution_follows_other_links() {
        let l = links(&[
            ("app/bin/tool", "../lib/tool.sh"),
            ("app/self", "."),
            ("app/escape", "self/.."),
            ("app/up", ".."),
            ("app/a/b", "../../.."),
            ("app/loop1", "loop2"),
            ("app/loop2", "loop1"),
            ("app/dangling", "missing/file"),
        ]);
        assert!(resolves_inside(Path::new("app/bin/tool"), &l));
        assert!(resolves_inside(Path::new("app/self"), &l));
        assert!(resolves_inside(Path::new("app/dangling"), &l));
        assert!(!resolves_inside(Path::new("app/escape"), &l));
        assert!(!resolves_inside(Path::new("app/up"), &l));
        assert!(!resolves_inside(Path::new("app/a/b"), &l));
        assert!(!resolves_inside(Path::new("app/loop1"), &l));
    }
}
