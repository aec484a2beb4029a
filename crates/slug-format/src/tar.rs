//! The deterministic tar of a slug.
//!
//! A slug is a list of [`Part`]s (the app, then each launch layer), each a directory on disk
//! placed at a path under `./app`. [`Archiver::write_part`] streams one part's tar entries
//! into any writer, so the bytes can be hashed and compressed as they are made, and
//! nothing is held in memory but the listings of the directories being walked. A part's
//! bytes depend only on its own tree (and where its absolute symlinks point), never on the
//! parts before it: the app part writes the `.layers/<buildpack>/` directories above the
//! layer parts, so each layer part is the same bytes in every slug it goes into, which is
//! what lets the part cache share it between apps.
//!
//! Rules, each chosen so that the same tree gives the same bytes anywhere, at any time:
//! - POSIX ustar headers; a PAX extended header (`././@PaxHeader`) only where a field does
//!   not fit: paths over ustar's 100+155 bytes, link targets over 100, sizes over 8 GiB.
//! - Entries sorted bytewise by their full path within a part, which puts every directory
//!   before its contents; parts in the given order.
//! - One mtime for every entry; uid/gid 0, empty user and group names; mode 0755 for
//!   directories and for files with any executable bit, 0644 for other files, 0777 for
//!   symlinks.
//! - Symlinks: an absolute target into a part's source directory is rewritten to the
//!   equivalent relative one, and one elsewhere in the build's work dir (beside the app's
//!   source) fails the export; then every link must keep the one rule of [`crate::link`]
//!   (absolute targets are kept for the stack, relative ones must resolve inside `./app`,
//!   followed through the slug's other links as the reader follows them), else the export
//!   fails naming the link.
//! - Hardlinks become regular files (each path gets its own copy of the bytes); sockets,
//!   fifos and devices are skipped with a warning; a file that cannot be read is an error.

use crate::link::{self, LinkError};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// One directory on disk placed at `prefix` in the slug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The directory on disk.
    pub source: PathBuf,
    /// Its path in the tar: `./app` or a path under it, such as
    /// `./app/.layers/slugc_python/runtime`.
    pub prefix: String,
    /// Paths relative to `source` (`a/b`) left out, with everything under them.
    pub exclude: Vec<String>,
    /// Paths relative to `source` written as a bare directory entry: what lies under them is
    /// brought by other parts (the app part lists `.layers/<buildpack>`, whose layers are
    /// parts of their own).
    pub shallow: Vec<String>,
    /// A run of one of its files that goes in as a download's own deflate blocks.
    pub reuse: Option<crate::reuse::Reuse>,
}

impl Part {
    /// A directory at `prefix`, all of it.
    pub fn new(source: impl Into<PathBuf>, prefix: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            prefix: prefix.into(),
            exclude: Vec::new(),
            shallow: Vec::new(),
            reuse: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("invalid slug path `{prefix}`: a part's prefix must be `./app` or a path under it, without `.`, `..` or empty components")]
    BadPrefix { prefix: String },
    #[error("{path} is not a directory: cannot put it in the slug as {prefix}")]
    NotADirectory { path: PathBuf, prefix: String },
    #[error("cannot read directory {path}: {source}")]
    ReadDir { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error(
        "{path} changed while it was being archived: expected {expected} bytes, found {found}"
    )]
    Changed {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("cannot write the archive: {0}")]
    Write(io::Error),
    #[error("{slug} (from {path}) {reason}; a relative symlink must stay inside the app (an absolute target is kept, for the stack)")]
    Symlink {
        path: PathBuf,
        slug: String,
        reason: crate::link::LinkError,
    },
}

/// Called by [`Archiver::walk`] with each entry's path on disk and in the slug; `false`
/// stops the walk.
type Visit<'v> = dyn FnMut(&Path, &[u8]) -> Result<bool, ArchiveError> + 'v;

/// What [`Archiver::fingerprint`] saw of a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hex SHA-256 of the walk.
    pub digest: String,
    /// The latest ctime of any entry, as (seconds, nanoseconds) since 1970.
    pub newest_ctime: (i64, i64),
}

/// The two 512-byte zero blocks that end a tar archive.
pub const END_OF_ARCHIVE: [u8; 1024] = [0; 1024];

const BLOCK: u64 = 512;
/// Largest value an 11-digit octal ustar field holds.
const OCTAL11_MAX: u64 = 0o77_777_777_777;

/// A part's walk rules, as relative paths in bytes.
struct Rules {
    exclude: HashSet<Vec<u8>>,
    shallow: HashSet<Vec<u8>>,
}

/// Makes the tar of a slug's parts, one part at a time.
pub struct Archiver<'a> {
    parts: &'a [Part],
    /// Each part's prefix, as path components (`[b"app", b".layers", ...]`).
    prefixes: Vec<Vec<Vec<u8>>>,
    rules: Vec<Rules>,
    /// Each part's source as absolute normalised paths (as given and canonical) for mapping
    /// absolute symlink targets into the slug.
    roots: Vec<(Vec<Vec<u8>>, usize)>,
    /// The directories holding the app part's source (the build's work dir): an absolute
    /// target there but in no part names what the slug does not hold, by a path that changes
    /// with every build.
    work_dirs: Vec<Vec<Vec<u8>>>,
    mtime: u64,
}

impl<'a> Archiver<'a> {
    pub fn new(parts: &'a [Part], mtime: u64) -> Result<Self, ArchiveError> {
        let mut prefixes = Vec::with_capacity(parts.len());
        let mut rules = Vec::with_capacity(parts.len());
        let mut roots = Vec::new();
        let cwd = std::env::current_dir().ok();
        for (i, part) in parts.iter().enumerate() {
            prefixes.push(parse_prefix(&part.prefix)?);
            let set = |paths: &[String]| {
                paths
                    .iter()
                    .map(|p| join_rel(&components(p.as_bytes())))
                    .collect()
            };
            rules.push(Rules {
                exclude: set(&part.exclude),
                shallow: set(&part.shallow),
            });
            let absolute = match (&cwd, part.source.is_absolute()) {
                (_, true) => Some(part.source.clone()),
                (Some(cwd), false) => Some(cwd.join(&part.source)),
                (None, false) => None,
            };
            for path in absolute
                .into_iter()
                .chain(fs::canonicalize(&part.source).ok())
            {
                let comps = normalise_absolute(path.as_os_str().as_bytes());
                if !roots.iter().any(|(r, j)| r == &comps && *j == i) {
                    roots.push((comps, i));
                }
            }
        }
        let work_dirs = roots
            .iter()
            .filter(|(r, i)| prefixes[*i].len() == 1 && r.len() > 1)
            .map(|(r, _)| r[..r.len() - 1].to_vec())
            .collect();
        Ok(Self {
            parts,
            prefixes,
            rules,
            roots,
            work_dirs,
            mtime,
        })
    }

    /// Writes part `index`: the prefix directory itself, then everything below it, walked
    /// from its source directory. Returns the skipped entries, each naming the path and why.
    /// The parts in order, then [`END_OF_ARCHIVE`], make the slug's tar.
    pub fn write_part(
        &self,
        index: usize,
        out: &mut dyn Write,
    ) -> Result<Vec<String>, ArchiveError> {
        self.write_part_announcing(index, out, &mut |_, _| {})
    }

    /// [`Archiver::write_part`], telling `on_file` of each regular file (its path on disk and
    /// size) between its header and its data: the compressor splices a file's run there.
    pub fn write_part_announcing(
        &self,
        index: usize,
        out: &mut dyn Write,
        on_file: &mut dyn FnMut(&Path, u64),
    ) -> Result<Vec<String>, ArchiveError> {
        let part = &self.parts[index];
        let prefix = &self.prefixes[index];
        let root_meta = fs::metadata(&part.source).map_err(|source| ArchiveError::Unreadable {
            path: part.source.clone(),
            source,
        })?;
        if !root_meta.is_dir() {
            return Err(ArchiveError::NotADirectory {
                path: part.source.clone(),
                prefix: part.prefix.clone(),
            });
        }
        let mut warnings = Vec::new();
        let mut w = EntryWriter {
            out,
            mtime: self.mtime,
            buf: vec![0; 128 * 1024],
            on_file,
        };
        w.dir(&join(prefix)).map_err(ArchiveError::Write)?;
        self.walk(index, &mut |disk, slug| {
            self.entry(&mut w, disk, slug, &mut warnings)?;
            Ok(true)
        })?;
        Ok(warnings)
    }

    /// A digest of what part `index`'s tar is made from, by a walk that only stats: the
    /// prefix, mtime and rules, and each entry's path, type, mode, size, inode, mtime and
    /// ctime (any write, `chmod`, link or rename sets a ctime). `None` when the part has more
    /// than `max_entries` entries (then the walk costs about what hashing its bytes does),
    /// holds a symlink (its bytes would depend on the other parts) or anything that is not
    /// a file or directory, or cannot be walked (the pass that reads it reports why).
    pub fn fingerprint(&self, index: usize, max_entries: usize) -> Option<Fingerprint> {
        let part = &self.parts[index];
        if !fs::metadata(&part.source).is_ok_and(|m| m.is_dir()) {
            return None;
        }
        let mut sha = Sha256::new();
        sha.update(b"slugc part fingerprint 1\0");
        sha.update(part.prefix.as_bytes());
        sha.update(self.mtime.to_le_bytes());
        for rule in [&part.exclude, &part.shallow] {
            let mut rule = rule.clone();
            rule.sort();
            sha.update(rule.len().to_le_bytes());
            for path in rule {
                sha.update(path.as_bytes());
                sha.update([0]);
            }
        }
        let mut entries = 0;
        let mut whole = true;
        let mut newest_ctime = (i64::MIN, 0);
        let walked = self.walk(index, &mut |disk, slug| {
            entries += 1;
            let meta = fs::symlink_metadata(disk).ok();
            let Some(meta) = meta.filter(|m| {
                entries <= max_entries && (m.file_type().is_dir() || m.file_type().is_file())
            }) else {
                whole = false;
                return Ok(false);
            };
            sha.update(slug);
            sha.update([0]);
            for field in [
                u64::from(meta.mode()),
                meta.size(),
                meta.dev(),
                meta.ino(),
                meta.mtime() as u64,
                meta.mtime_nsec() as u64,
                meta.ctime() as u64,
                meta.ctime_nsec() as u64,
            ] {
                sha.update(field.to_le_bytes());
            }
            newest_ctime = newest_ctime.max((meta.ctime(), meta.ctime_nsec()));
            Ok(true)
        });
        (walked.is_ok() && whole).then(|| Fingerprint {
            digest: crate::hex(&sha.finalize()),
            newest_ctime,
        })
    }

    /// Part `index`'s entries below its prefix, depth-first in tar order: `visit(path on
    /// disk, path in the slug)` for each, until it returns `false`.
    fn walk(&self, index: usize, visit: &mut Visit<'_>) -> Result<(), ArchiveError> {
        let part = &self.parts[index];
        let prefix = &self.prefixes[index];
        // Depth-first, each directory's listing sorted by the key its entries have in a
        // bytewise sort of full paths: a directory's own entry sorts as its name, its
        // contents as `name/...`, so `a`, `a-b`, `a/c` come out in that order.
        let mut stack = vec![Frame {
            disk: part.source.clone(),
            slug: join(prefix),
            rel: Vec::new(),
            items: self.list(&part.source, &[], index)?,
        }];
        while let Some(frame) = stack.last_mut() {
            let Some(item) = frame.items.pop() else {
                stack.pop();
                continue;
            };
            let disk = frame.disk.join(item.name());
            let mut slug = frame.slug.clone();
            slug.push(b'/');
            slug.extend_from_slice(item.name().as_bytes());
            let mut rel = frame.rel.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(item.name().as_bytes());
            if item.contents() {
                let items = self.list(&disk, &rel, index)?;
                stack.push(Frame {
                    disk,
                    slug,
                    rel,
                    items,
                });
            } else if !visit(&disk, &slug)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The entries of `dir` (at `rel` in the part), sorted last-first for popping.
    fn list(&self, dir: &Path, rel: &[u8], index: usize) -> Result<Vec<Item>, ArchiveError> {
        let read_err = |source| ArchiveError::ReadDir {
            path: dir.to_path_buf(),
            source,
        };
        let rules = &self.rules[index];
        let mut items = Vec::new();
        for entry in fs::read_dir(dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let name = entry.file_name().into_vec();
            let mut path = rel.to_vec();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            if rules.exclude.contains(&path) {
                continue;
            }
            let is_dir = entry.file_type().map_err(read_err)?.is_dir();
            if is_dir && !rules.shallow.contains(&path) {
                let mut key = name.clone();
                key.push(b'/');
                items.push(Item { key });
            }
            items.push(Item { key: name });
        }
        items.sort_unstable_by(|a, b| b.key.cmp(&a.key));
        Ok(items)
    }

    fn entry(
        &self,
        w: &mut EntryWriter,
        disk: &Path,
        slug: &[u8],
        warnings: &mut Vec<String>,
    ) -> Result<(), ArchiveError> {
        let unreadable = |source| ArchiveError::Unreadable {
            path: disk.to_path_buf(),
            source,
        };
        let meta = fs::symlink_metadata(disk).map_err(unreadable)?;
        let ft = meta.file_type();
        let shown = String::from_utf8_lossy(slug);
        if ft.is_dir() {
            w.dir(slug).map_err(ArchiveError::Write)
        } else if ft.is_file() {
            // Never through a link: the entry was a file when it was listed.
            let file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(disk)
                .map_err(unreadable)?;
            let meta = file.metadata().map_err(unreadable)?;
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            w.file(slug, mode, meta.len(), file, disk)
        } else if ft.is_symlink() {
            let target = fs::read_link(disk).map_err(unreadable)?;
            let kept = self
                .symlink_target(slug, target.as_os_str().as_bytes())
                .map_err(|reason| ArchiveError::Symlink {
                    path: disk.to_path_buf(),
                    slug: shown.into_owned(),
                    reason,
                })?;
            w.symlink(slug, &kept).map_err(ArchiveError::Write)
        } else {
            let what = if ft.is_fifo() {
                "a fifo"
            } else if ft.is_socket() {
                "a socket"
            } else if ft.is_block_device() || ft.is_char_device() {
                "a device file"
            } else {
                "not a file, directory or symlink"
            };
            warnings.push(format!("skipped {shown}: {what} cannot go into a slug"));
            Ok(())
        }
    }

    /// The target to store for a symlink at `link` (a slug path, `./app/...`) whose target
    /// on disk is `target`: an absolute one into a part's source made relative, then checked
    /// against the one rule ([`crate::link`]).
    fn symlink_target(&self, link: &[u8], target: &[u8]) -> Result<Vec<u8>, LinkError> {
        let link_comps = components(link.strip_prefix(b"./").unwrap_or(link));
        let stored = self.stored_target(&link_comps, target);
        if stored.starts_with(b"/") {
            let abs = normalise_absolute(&stored);
            if self
                .work_dirs
                .iter()
                .any(|w| abs.len() > w.len() && abs[..w.len()] == w[..])
            {
                return Err(LinkError::IntoBuild(
                    String::from_utf8_lossy(target).into_owned(),
                ));
            }
        }
        let as_path = |b: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(b));
        link::check(&as_path(&join_rel(&link_comps)), &as_path(&stored), |p| {
            self.link_at(p)
        })?;
        Ok(stored)
    }

    /// `target` as it goes into the slug for a link at `link_comps`: an absolute target into
    /// a part's source, relative to the link's directory; any other as it is.
    fn stored_target(&self, link_comps: &[Vec<u8>], target: &[u8]) -> Vec<u8> {
        if !target.starts_with(b"/") {
            return target.to_vec();
        }
        let link_dir = &link_comps[..link_comps.len().saturating_sub(1)];
        let abs = normalise_absolute(target);
        let into_part = self
            .roots
            .iter()
            .filter(|(r, _)| abs.len() >= r.len() && abs[..r.len()] == r[..])
            .max_by_key(|(r, _)| r.len());
        match into_part {
            Some((root, part)) => {
                let mut inside = self.prefixes[*part].clone();
                inside.extend(abs[root.len()..].iter().cloned());
                relative(link_dir, &inside)
            }
            None => target.to_vec(),
        }
    }

    /// The stored target of the symlink at slug path `path` (`app/...`), when the parts put
    /// one there: what the reader will see at that path.
    fn link_at(&self, path: &Path) -> Option<PathBuf> {
        let comps = components(path.as_os_str().as_bytes());
        let (index, prefix) = self
            .prefixes
            .iter()
            .enumerate()
            .filter(|(_, p)| comps.len() > p.len() && comps[..p.len()] == p[..])
            .max_by_key(|(_, p)| p.len())?;
        let rel = &comps[prefix.len()..];
        let rules = &self.rules[index];
        let left_out = (1..=rel.len()).any(|n| {
            let sub = join_rel(&rel[..n]);
            rules.exclude.contains(&sub) || (n < rel.len() && rules.shallow.contains(&sub))
        });
        if left_out {
            return None;
        }
        let mut disk = self.parts[index].source.clone();
        for c in rel {
            disk.push(std::ffi::OsStr::from_bytes(c));
        }
        let target = fs::read_link(&disk).ok()?;
        let stored = self.stored_target(&comps, target.as_os_str().as_bytes());
        Some(PathBuf::from(std::ffi::OsString::from_vec(stored)))
    }
}

struct Frame {
    disk: PathBuf,
    slug: Vec<u8>,
    /// The path relative to the part's source, for its rules.
    rel: Vec<u8>,
    items: Vec<Item>,
}

/// One entry of a listing, by its sort key: the name for the entry itself, `name/` for a
/// directory's contents. One allocation per entry: listings are what memory grows with.
struct Item {
    key: Vec<u8>,
}

impl Item {
    /// The directory's contents rather than an entry.
    fn contents(&self) -> bool {
        self.key.last() == Some(&b'/')
    }

    fn name(&self) -> &std::ffi::OsStr {
        let name = self.key.strip_suffix(b"/").unwrap_or(&self.key);
        std::ffi::OsStr::from_bytes(name)
    }
}

/// About how many tar bytes the parts make (headers plus padded file sizes), from a walk
/// that only stats: the length of the progress bar. Unreadable entries count as empty; the
/// real pass reports them.
pub fn estimated_size(parts: &[Part]) -> u64 {
    let mut total = 0;
    for part in parts {
        let listed = |rules: &[String], rel: &Path| rules.iter().any(|e| Path::new(e) == rel);
        let mut dirs = vec![PathBuf::new()];
        while let Some(rel) = dirs.pop() {
            let Ok(entries) = fs::read_dir(part.source.join(&rel)) else {
                continue;
            };
            for entry in entries.flatten() {
                let child = rel.join(entry.file_name());
                let meta = entry.metadata();
                if listed(&part.exclude, &child) {
                    continue;
                }
                total += BLOCK;
                match meta {
                    Ok(m) if m.is_dir() && !listed(&part.shallow, &child) => dirs.push(child),
                    Ok(m) if m.is_file() => total += m.len().div_ceil(BLOCK) * BLOCK,
                    _ => {}
                }
            }
        }
    }
    total
}

/// Validates `./app[/...]` and splits it into components.
fn parse_prefix(prefix: &str) -> Result<Vec<Vec<u8>>, ArchiveError> {
    let bad = || ArchiveError::BadPrefix {
        prefix: prefix.to_string(),
    };
    let rest = prefix.strip_prefix("./").unwrap_or(prefix);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let comps: Vec<Vec<u8>> = rest.split('/').map(|c| c.as_bytes().to_vec()).collect();
    if comps.first().map(Vec::as_slice) != Some(b"app")
        || comps
            .iter()
            .any(|c| c.is_empty() || c == b"." || c == b"..")
    {
        return Err(bad());
    }
    Ok(comps)
}

/// `./` followed by the components joined with `/`.
fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b".".to_vec();
    for c in comps {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    out
}

/// Components joined with `/`, no leading `./`: a path relative to a part's source.
fn join_rel(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect()
}

/// Lexical normalisation of an absolute path: `.` dropped, `..` pops (and stays at `/`).
fn normalise_absolute(path: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in Path::new(std::ffi::OsStr::from_bytes(path)).components() {
        match c {
            Component::Normal(c) => out.push(c.as_bytes().to_vec()),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The relative path from directory `from` to `to` (both slug component lists).
fn relative(from: &[Vec<u8>], to: &[Vec<u8>]) -> Vec<u8> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&[u8]> = vec![b".."; from.len() - common];
    parts.extend(to[common..].iter().map(Vec::as_slice));
    if parts.is_empty() {
        return b".".to_vec();
    }
    parts.join(&b'/')
}

/// Writes tar entries with the slug's fixed metadata.
struct EntryWriter<'w> {
    out: &'w mut dyn Write,
    mtime: u64,
    buf: Vec<u8>,
    on_file: &'w mut dyn FnMut(&Path, u64),
}

impl EntryWriter<'_> {
    fn dir(&mut self, path: &[u8]) -> io::Result<()> {
        let mut p = path.to_vec();
        p.push(b'/');
        self.header(&p, 0o755, 0, b'5', b"")
    }

    fn symlink(&mut self, path: &[u8], target: &[u8]) -> io::Result<()> {
        self.header(path, 0o777, 0, b'2', target)
    }

    /// A regular file: header, exactly `size` bytes of `file`, padding.
    fn file(
        &mut self,
        path: &[u8],
        mode: u32,
        size: u64,
        mut file: File,
        disk: &Path,
    ) -> Result<(), ArchiveError> {
        self.header(path, mode, size, b'0', b"")
            .map_err(ArchiveError::Write)?;
        (self.on_file)(disk, size);
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(ArchiveError::Changed {
                        path: disk.to_path_buf(),
                        expected: size,
                        found: size - left,
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ArchiveError::Unreadable {
                        path: disk.to_path_buf(),
                        source,
                    })
                }
            };
            self.out
                .write_all(&self.buf[..n])
                .map_err(ArchiveError::Write)?;
            left -= n as u64;
        }
        self.pad(size).map_err(ArchiveError::Write)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % BLOCK) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; 512][..512 - rem])?;
        }
        Ok(())
    }

    /// A ustar header, preceded by a PAX header for whatever does not fit.
    fn header(
        &mut self,
        path: &[u8],
        mode: u32,
        size: u64,
        typeflag: u8,
        link: &[u8],
    ) -> io::Result<()> {
        let mut pax = Vec::new();
        let (name, prefix): (&[u8], &[u8]) = match split_ustar_path(path) {
            Some(split) => split,
            None => {
                pax_record(&mut pax, b"path", path);
                (truncated(path, 100), b"")
            }
        };
        let link_field = if link.len() > 100 {
            pax_record(&mut pax, b"linkpath", link);
            truncated(link, 100)
        } else {
            link
        };
        let size_field = if size > OCTAL11_MAX {
            pax_record(&mut pax, b"size", size.to_string().as_bytes());
            0
        } else {
            size
        };
        let mtime_field = if self.mtime > OCTAL11_MAX {
            pax_record(&mut pax, b"mtime", self.mtime.to_string().as_bytes());
            0
        } else {
            self.mtime
        };
        if !pax.is_empty() {
            if std::str::from_utf8(path).is_err() || std::str::from_utf8(link).is_err() {
                // Values are UTF-8 by default; say so when the names are raw bytes.
                let mut with_charset = Vec::new();
                pax_record(&mut with_charset, b"hdrcharset", b"BINARY");
                with_charset.extend_from_slice(&pax);
                pax = with_charset;
            }
            let h = ustar(
                b"././@PaxHeader",
                b"",
                0o644,
                pax.len() as u64,
                mtime_field,
                b'x',
                b"",
            );
            self.out.write_all(&h)?;
            self.out.write_all(&pax)?;
            self.pad(pax.len() as u64)?;
        }
        let h = ustar(
            name,
            prefix,
            mode,
            size_field,
            mtime_field,
            typeflag,
            link_field,
        );
        self.out.write_all(&h)
    }
}

fn truncated(b: &[u8], n: usize) -> &[u8] {
    &b[..b.len().min(n)]
}

/// Splits a path into ustar's `name` (≤ 100 bytes) and `prefix` (≤ 155 bytes) at a `/`,
/// or `None` when it cannot be.
fn split_ustar_path(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= 100 {
        return Some((path, b""));
    }
    if path.len() > 256 {
        return None;
    }
    // The first `/` that leaves a name short enough: the longest name, the shortest prefix.
    let slashes = path.iter().enumerate().filter(|(_, &b)| b == b'/');
    for (i, _) in slashes {
        let (prefix, name) = (&path[..i], &path[i + 1..]);
        if name.len() <= 100 && prefix.len() <= 155 && !name.is_empty() && !prefix.is_empty() {
            return Some((name, prefix));
        }
    }
    None
}

/// Appends one `<len> <key>=<value>\n` record, `len` counting the whole record.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn octal(field: &mut [u8], value: u64) {
    // `width-1` octal digits, zero-padded, then NUL.
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

fn ustar(
    name: &[u8],
    prefix: &[u8],
    mode: u32,
    size: u64,
    mtime: u64,
    typeflag: u8,
    link: &[u8],
) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], mode as u64);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], 0);
    octal(&mut h[337..345], 0);
    h[345..345 + prefix.len()].copy_from_slice(prefix);
    // The checksum is computed with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// A part's path as the manifest lists it (`LayerEntry.path`): `app/...`, without `./`.
pub fn entry_path(prefix: &str) -> String {
    let rest = prefix.strip_prefix("./").unwrap_or(prefix);
    rest.strip_suffix('/').unwrap_or(rest).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(s: &str) -> Vec<Vec<u8>> {
        components(s.as_bytes())
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, b"path", b"x");
        assert_eq!(v, b"9 path=x\n");
        let mut v = Vec::new();
        let long = vec![b'a'; 95];
        pax_record(&mut v, b"path", &long);
        // 95 + 4 + 3 = 102 plus 3 digits = 105.
        assert!(
            v.starts_with(b"105 path="),
            "{}",
            String::from_utf8_lossy(&v)
        );
        assert_eq!(v.len(), 105);
    }

    #[test]
    fn ustar_split_prefers_name_then_prefix() {
        let p = format!("./app/{}/{}", "d".repeat(120), "f".repeat(50));
        let (name, prefix) = split_ustar_path(p.as_bytes()).unwrap();
        assert_eq!(name, "f".repeat(50).as_bytes());
        assert_eq!(prefix, format!("./app/{}", "d".repeat(120)).as_bytes());
        assert!(split_ustar_path(format!("./app/{}", "x".repeat(120)).as_bytes()).is_none());
    }

    #[test]
    fn sizes_and_mtimes_past_ustar_go_to_pax() {
        let mut out = Vec::new();
        let mut w = EntryWriter {
            out: &mut out,
            mtime: OCTAL11_MAX + 1,
            buf: Vec::new(),
            on_file: &mut |_, _| {},
        };
        w.header(b"./app/big", 0o644, 9_000_000_000, b'0', b"")
            .unwrap();
        // PAX header block, its records padded to a block, then the ustar header.
        assert_eq!(out.len(), 3 * 512);
        assert_eq!(&out[..14], b"././@PaxHeader");
        assert_eq!(out[156], b'x');
        let records = String::from_utf8_lossy(&out[512..1024]);
        assert!(records.contains("size=9000000000\n"), "{records}");
        assert!(
            records.contains(&format!("mtime={}\n", OCTAL11_MAX + 1)),
            "{records}"
        );
        let ustar = &out[1024..];
        assert_eq!(&ustar[..9], b"./app/big");
        assert_eq!(&ustar[124..136], b"00000000000\0");
        assert_eq!(&ustar[257..263], b"ustar\0");
    }

    #[test]
    fn header_checksum_is_what_tar_expects() {
        let h = ustar(b"./app/x", b"", 0o644, 5, 1, b'0', b"");
        let stored = std::str::from_utf8(&h[148..154]).unwrap();
        let mut blank = h;
        blank[148..156].copy_from_slice(b"        ");
        let sum: u32 = blank.iter().map(|&b| b as u32).sum();
        assert_eq!(u32::from_str_radix(stored, 8).unwrap(), sum);
    }

    #[test]
    fn relative_paths_between_slug_dirs() {
        assert_eq!(relative(&comps("app/a/b"), &comps("app/c")), b"../../c");
        assert_eq!(relative(&comps("app"), &comps("app/c/d")), b"c/d");
        assert_eq!(relative(&comps("app/a"), &comps("app/a")), b".");
    }

    #[test]
    fn prefixes_must_be_under_app() {
        assert!(parse_prefix("./app").is_ok());
        assert!(parse_prefix("./app/.layers/x/y").is_ok());
        for bad in ["./other", "./app/../etc", "./app//x", "", "./", "./app/./x"] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn symlink_targets_keep_the_one_rule() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        fs::create_dir_all(root.join("lib")).unwrap();
        std::os::unix::fs::symlink(".", root.join("self")).unwrap();
        let parts = [Part::new(&root, "./app")];
        let a = Archiver::new(&parts, 0).unwrap();
        let link = b"./app/lib/l";
        assert_eq!(a.symlink_target(link, b"../x").unwrap(), b"../x");
        assert_eq!(a.symlink_target(link, b"x/../../y").unwrap(), b"x/../../y");
        assert!(matches!(
            a.symlink_target(link, b"../../x"),
            Err(LinkError::Outside(_))
        ));
        assert_eq!(
            a.symlink_target(link, b"../../app/x").unwrap(),
            b"../../app/x"
        );
        // Through the link `self -> .` on disk, as the reader follows it in the slug.
        assert!(a.symlink_target(link, b"../self/../x").is_err());
        assert_eq!(
            a.symlink_target(link, b"/usr/bin/python3").unwrap(),
            b"/usr/bin/python3"
        );
        let abs = root.join("bin/tool");
        assert_eq!(
            a.symlink_target(link, abs.as_os_str().as_bytes()).unwrap(),
            b"../bin/tool"
        );
        // Beside the build root, in the build's work dir: the slug cannot hold it.
        let escape = root.join("../outside");
        assert!(matches!(
            a.symlink_target(link, escape.as_os_str().as_bytes()),
            Err(LinkError::IntoBuild(_))
        ));
    }
}
