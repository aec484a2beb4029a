//! The one way to read a slug: find it (a file, its manifest, or a digest prefix in the
//! store), check its bytes against its name and manifest, and stream its entries through
//! the unpack rules. `slug run`, `exec`, `inspect`, `image` and `manifests` all read slugs
//! through here, so they accept the same arguments and refuse the same hostile slugs.
//!
//! Order of checks: the file's SHA-256 against the manifest's `checksum` and the
//! `sha256-<hex>.tgz` name first ([`SlugRef::open`]), then every tar entry as it streams by
//! ([`Slug::read_entries`]), which hashes the file again as it reads it and refuses it if
//! the bytes are not those checked first. Nothing is trusted from the archive:
//!
//! - every path must be relative, without `..`, and under `./app/`;
//! - only directories, regular files and symlinks; hard links, devices and FIFOs are refused;
//! - no setuid, setgid or sticky bit, nothing world-writable (other modes are normalised:
//!   only the executable bit survives);
//! - no path appears twice (but a directory), nothing lies under a file or a symlink, and no
//!   file or symlink takes the place of a directory an earlier entry lies in;
//! - symlinks keep the one rule of [`crate::link`] (absolute targets are the stack's;
//!   relative ones resolve inside `app/`, followed through the archive's other links);
//! - at most [`Limits`] file bytes and entries (a small gzip can hold a huge file of zeros);
//! - the gzip stream must be whole up to its last byte.
//!
//! [`Slug::unpack`] creates symlinks last, after every file, so no file is ever written
//! through a link; it works in a fresh temporary dir beside the target, which is removed on
//! any error, and a marker file written last and an atomic rename publish the result, so a
//! half unpacked dir is never reused.

use crate::link::{self, LinkError};
use crate::release::{BuildRelease, ManifestError, Release, EMBEDDED_PATH};
use crate::{hex, is_hex};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Written last into a complete unpack dir; holds the slug's hex digest.
pub const MARKER: &str = ".slugc-unpacked";

/// Modes refused on files and directories: setuid, setgid, sticky, world-writable.
const REFUSED_MODE_BITS: u32 = 0o7002;

/// PAX records the exporter may write; any other (xattrs, capabilities, owners) makes the
/// slug's bytes unfit to be an image layer as they are (see [`Summary::canonical`]).
const CANONICAL_PAX_KEYS: [&str; 5] = ["path", "linkpath", "size", "mtime", "hdrcharset"];

/// Limits given instead of the defaults of [`Limits::from_release`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitOverride {
    pub max_bytes: Option<u64>,
    pub max_entries: Option<u64>,
}

/// How much a slug may unpack to: the sum of its files' sizes and the number of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_entries: u64,
}

impl Limits {
    /// Without a manifest that gives the parts' sizes (a bare tarball from elsewhere).
    pub const WITHOUT_MANIFEST: Limits = Limits {
        max_bytes: 4 << 30,
        max_entries: 1_000_000,
    };

    /// These limits with the ones given (a command-line flag) in place of the defaults.
    pub fn overridden(self, by: LimitOverride) -> Limits {
        Limits {
            max_bytes: by.max_bytes.unwrap_or(self.max_bytes),
            max_entries: by.max_entries.unwrap_or(self.max_entries),
        }
    }

    /// The default for a slug: the uncompressed tar sizes its manifest gives, plus a quarter
    /// and 1 MiB (a file's bytes, and one 512-byte header per entry, fit in the tar's);
    /// [`Limits::WITHOUT_MANIFEST`] when there are none.
    pub fn from_release(release: Option<&Release>) -> Limits {
        let tar: u64 = release
            .map(|r| {
                r.layers
                    .iter()
                    .map(|l| l.size)
                    .fold(0u64, u64::saturating_add)
            })
            .unwrap_or(0);
        if tar == 0 {
            return Limits::WITHOUT_MANIFEST;
        }
        let headroom = |n: u64| n.saturating_add(n / 4);
        Limits {
            max_bytes: headroom(tar).saturating_add(1 << 20),
            max_entries: headroom(tar / 512).saturating_add(64),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no slug {arg:?}: not a file, and no sha256-{prefix}*.tgz in the store {store}")]
    NotFound {
        arg: String,
        prefix: String,
        store: PathBuf,
    },
    #[error("no slug file {0}")]
    NoFile(PathBuf),
    #[error("slug prefix {prefix:?} is ambiguous in {store}: {candidates}; give more digits")]
    Ambiguous {
        prefix: String,
        store: PathBuf,
        candidates: String,
    },
    #[error("cannot read the slug store {store}: {source}")]
    Store { store: PathBuf, source: io::Error },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path}: checksum {checksum:?} is not SHA256:<64 hex digits>")]
    BadChecksumField { path: PathBuf, checksum: String },
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
    #[error("cannot unpack into {dir}: the disk is full ({source})")]
    DiskFull { dir: PathBuf, source: io::Error },
}

/// A write error, told apart when it is a full disk or quota (a local problem, exit 1,
/// never a bad slug).
fn write_error(dir: &Path, source: io::Error) -> ReadError {
    let full = matches!(
        source.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT)
    );
    if full {
        ReadError::DiskFull {
            dir: dir.to_path_buf(),
            source,
        }
    } else {
        ReadError::Write {
            dir: dir.to_path_buf(),
            source,
        }
    }
}

impl ReadError {
    /// Hostile or corrupt slug content, or a manifest that does not fit it (exit 30), as
    /// opposed to a slug that was not found (a usage error) or a local I/O problem.
    pub fn is_bad_slug(&self) -> bool {
        matches!(
            self,
            Self::Checksum { .. }
                | Self::Hostile { .. }
                | Self::Corrupt { .. }
                | Self::BadChecksumField { .. }
                | Self::Manifest(_)
        )
    }

    /// The argument names no slug.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::NotFound { .. } | Self::NoFile(_) | Self::Ambiguous { .. }
        )
    }
}

/// A slug file and what is known of it before reading it.
#[derive(Debug, Clone)]
pub struct SlugRef {
    pub path: PathBuf,
    /// The release manifest beside the slug (`sha256-<hex>.json`), when there is one.
    pub release: Option<Release>,
    pub manifest_path: Option<PathBuf>,
}

/// Resolves what a user gives: an existing file (the slug, or its `.json` manifest), else a
/// hex prefix (optionally `sha256-`/`sha256:`/`SHA256:`) of exactly one slug in `store`.
pub fn locate(arg: &str, store: &Path) -> Result<SlugRef, ReadError> {
    let as_path = Path::new(arg);
    if as_path.is_file() {
        let (slug, manifest) = if arg.ends_with(".json") {
            (as_path.with_extension("tgz"), as_path.to_path_buf())
        } else {
            (as_path.to_path_buf(), as_path.with_extension("json"))
        };
        if !slug.is_file() {
            return Err(ReadError::NoFile(slug));
        }
        return with_manifest(slug, manifest);
    }
    let trimmed = arg.trim();
    let prefix = trimmed
        .strip_prefix("sha256-")
        .or_else(|| trimmed.strip_prefix("sha256:"))
        .or_else(|| trimmed.strip_prefix("SHA256:"))
        .unwrap_or(trimmed)
        .to_ascii_lowercase();
    // Something that looks like a path but is not a file is a missing file, not a prefix.
    if !is_hex(&prefix) || prefix.len() > 64 || arg.contains('/') || arg.ends_with(".tgz") {
        return Err(ReadError::NoFile(as_path.to_path_buf()));
    }
    let wanted = format!("sha256-{prefix}");
    let mut found: Vec<PathBuf> = Vec::new();
    let store_err = |source| ReadError::Store {
        store: store.to_path_buf(),
        source,
    };
    match fs::read_dir(store) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(store_err)?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let digest = name
                    .strip_prefix("sha256-")
                    .and_then(|n| n.strip_suffix(".tgz"));
                if name.starts_with(&wanted) && digest.is_some_and(|d| d.len() == 64) {
                    found.push(entry.path());
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(store_err(source)),
    }
    found.sort();
    match found.len() {
        0 => Err(ReadError::NotFound {
            arg: arg.to_string(),
            prefix,
            store: store.to_path_buf(),
        }),
        1 => {
            let slug = found.remove(0);
            let manifest = slug.with_extension("json");
            with_manifest(slug, manifest)
        }
        _ => Err(ReadError::Ambiguous {
            prefix,
            store: store.to_path_buf(),
            candidates: found
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// [`locate`], then [`SlugRef::open`]: the slug `arg` names, verified, with its release
/// manifest read from `manifest` when given (else from beside it, if there is one).
pub fn open(arg: &str, store: &Path, manifest: Option<&Path>) -> Result<Slug, ReadError> {
    let mut found = locate(arg, store)?;
    if let Some(m) = manifest {
        found = found.with_manifest_file(m)?;
    }
    found.open()
}

fn with_manifest(slug: PathBuf, manifest: PathBuf) -> Result<SlugRef, ReadError> {
    if !manifest.is_file() {
        return Ok(SlugRef {
            path: slug,
            release: None,
            manifest_path: None,
        });
    }
    SlugRef {
        path: slug,
        release: None,
        manifest_path: None,
    }
    .with_manifest_file(&manifest)
}

impl SlugRef {
    /// Takes the release manifest from `manifest` instead of beside the slug.
    pub fn with_manifest_file(mut self, manifest: &Path) -> Result<Self, ReadError> {
        let release = Release::read(manifest)?;
        let hex = release.sha256_hex();
        if !release.checksum.starts_with("SHA256:") || hex.len() != 64 || !is_hex(hex) {
            return Err(ReadError::BadChecksumField {
                path: manifest.to_path_buf(),
                checksum: release.checksum.clone(),
            });
        }
        self.release = Some(release);
        self.manifest_path = Some(manifest.to_path_buf());
        Ok(self)
    }

    /// The digests the slug's bytes must have: from the manifest's `checksum` and from a
    /// `sha256-<hex>.tgz` file name. Each names where it came from, for the error message.
    pub fn expected_digests(&self) -> Vec<(String, String)> {
        let mut expected = Vec::new();
        if let (Some(release), Some(path)) = (&self.release, &self.manifest_path) {
            expected.push((
                release.sha256_hex().to_ascii_lowercase(),
                format!("the manifest {}", path.display()),
            ));
        }
        if let Some(hex) = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("sha256-"))
            .and_then(|n| n.strip_suffix(".tgz"))
            .filter(|h| is_hex(h) && h.len() == 64)
        {
            expected.push((
                hex.to_ascii_lowercase(),
                format!("its file name {}", self.path.display()),
            ));
        }
        expected
    }

    /// Hashes the file and checks it against [`SlugRef::expected_digests`].
    pub fn open(self) -> Result<Slug, ReadError> {
        let (actual, size) = sha256_file(&self.path)?;
        for (want, source_name) in self.expected_digests() {
            if want != actual {
                return Err(ReadError::Checksum {
                    slug: self.path,
                    actual,
                    expected: want,
                    source_name,
                });
            }
        }
        Ok(Slug {
            path: self.path,
            hex: actual,
            size,
            limits: Limits::from_release(self.release.as_ref()),
            release: self.release,
            manifest_path: self.manifest_path,
        })
    }
}

/// SHA-256 and length of a file, streamed.
fn sha256_file(path: &Path) -> Result<(String, u64), ReadError> {
    let read_err = |source| ReadError::Read {
        slug: path.to_path_buf(),
        source,
    };
    let mut file = fs::File::open(path).map_err(read_err)?;
    let mut hasher = HashReader::new(&mut file);
    io::copy(&mut hasher, &mut io::sink()).map_err(read_err)?;
    let (hex, size) = hasher.finish();
    Ok((hex, size))
}

/// A slug whose bytes are those its name and manifest say.
#[derive(Debug, Clone)]
pub struct Slug {
    pub path: PathBuf,
    /// Hex SHA-256 of the file.
    pub hex: String,
    /// Size of the file in bytes.
    pub size: u64,
    pub release: Option<Release>,
    pub manifest_path: Option<PathBuf>,
    /// What reading it may unpack to; [`Limits::from_release`] unless changed.
    pub limits: Limits,
}

/// What an accepted entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File {
        executable: bool,
        size: u64,
    },
    /// A relative target; that it resolves inside the app is checked once every entry is
    /// read (a later entry may be a link it goes through).
    Symlink(PathBuf),
}

/// One entry that passed the rules, with its data for a file.
pub struct Entry<'a> {
    /// `app/...`, relative, normalised.
    pub path: PathBuf,
    pub kind: EntryKind,
    data: &'a mut dyn Read,
}

impl Read for Entry<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.data.read(buf)
    }
}

/// What a whole pass over the slug's entries saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `sha256:<hex>` of the uncompressed tar (an OCI layer's diff_id).
    pub diff_id: String,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
    /// The symlinks, by path: each keeps the rule of [`crate::link`].
    pub symlinks: BTreeMap<PathBuf, PathBuf>,
    /// Every header is as the exporter writes it (modes 0644/0755 for files, 0755 for
    /// directories, owner 0:0, no PAX records but path, link, size and time): the file's
    /// bytes can serve as they are where the normalised modes matter (an image layer).
    pub canonical: bool,
    /// File bytes and entries read.
    pub file_bytes: u64,
    pub entries: u64,
}

/// What was seen at a path, for the rules on later entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Dir,
    File,
    Symlink,
}

/// Unpacked slugs: `<root>/<hex>/app`.
#[derive(Debug)]
pub struct Unpacked {
    /// `<unpack root>/<hex>`.
    pub dir: PathBuf,
    /// `<dir>/app`: `HOME` and the working dir of every process.
    pub app: PathBuf,
    pub hex: String,
    pub reused: bool,
}

impl Slug {
    fn corrupt(&self, message: String) -> ReadError {
        ReadError::Corrupt {
            slug: self.path.clone(),
            message,
        }
    }

    fn hostile(&self, entry: &str, reason: &str) -> ReadError {
        ReadError::Hostile {
            slug: self.path.clone(),
            entry: entry.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Streams every entry through the rules (module docs), calling `visit` for each one
    /// accepted, in the archive's order; a file's data is read from the entry. Returns after
    /// the last byte of the file, once every rule that needs the whole archive held.
    pub fn read_entries(
        &self,
        mut visit: impl FnMut(&mut Entry) -> Result<(), ReadError>,
    ) -> Result<Summary, ReadError> {
        let file = fs::File::open(&self.path).map_err(|source| ReadError::Read {
            slug: self.path.clone(),
            source,
        })?;
        // Concatenated gzip members (one per slug part) are one stream: MultiGzDecoder. The
        // file is hashed again as it is read, so the entries checked are the bytes whose
        // digest was checked, even if the file changed since `SlugRef::open`.
        let gz = flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(
            1 << 20,
            HashReader::new(file),
        ));
        let mut archive = tar::Archive::new(HashReader::new(gz));
        let mut seen: BTreeMap<PathBuf, Seen> = BTreeMap::new();
        let mut symlinks: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        let mut canonical = true;
        let (mut file_bytes, mut count) = (0u64, 0u64);
        let entries = archive
            .entries()
            .map_err(|e| self.corrupt(format!("not a gzip tar archive: {e}")))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| self.corrupt(format!("bad gzip or tar data: {e}")))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let rel = checked_path(&raw).map_err(|reason| self.hostile(&raw, reason))?;
            count += 1;
            if count > self.limits.max_entries {
                return Err(self.hostile(
                    &raw,
                    &format!(
                        "is one entry more than the unpack limit of {} entries \
                         (--max-unpacked-entries)",
                        self.limits.max_entries
                    ),
                ));
            }
            let Some(rel) = rel else { continue }; // the `./` entry itself
            let header = entry.header();
            let mode = header
                .mode()
                .map_err(|e| self.corrupt(format!("bad mode in {raw:?}: {e}")))?;
            canonical &= owned_by_root(header);
            use tar::EntryType as T;
            let kind = match header.entry_type() {
                T::Directory => {
                    canonical &= mode & 0o7777 == 0o755;
                    EntryKind::Dir
                }
                T::Regular | T::Continuous => {
                    canonical &= matches!(mode & 0o7777, 0o644 | 0o755);
                    let size = entry.size();
                    file_bytes = file_bytes.saturating_add(size);
                    if file_bytes > self.limits.max_bytes {
                        return Err(self.hostile(
                            &raw,
                            &format!(
                                "is {size} bytes, past the unpack limit of {} file bytes \
                                 (--max-unpacked)",
                                self.limits.max_bytes
                            ),
                        ));
                    }
                    // Only the executable bit survives (module docs).
                    EntryKind::File {
                        executable: mode & 0o111 != 0,
                        size,
                    }
                }
                T::Symlink => {
                    let link = entry
                        .link_name()
                        .map_err(|e| self.corrupt(format!("bad link name in {raw:?}: {e}")))?
                        .map(|l| l.into_owned())
                        .filter(|l| !l.as_os_str().is_empty())
                        .ok_or_else(|| self.hostile(&raw, &LinkError::Empty.to_string()))?;
                    EntryKind::Symlink(link)
                }
                T::Link => return Err(self.hostile(&raw, "is a hard link")),
                T::Char | T::Block => return Err(self.hostile(&raw, "is a device file")),
                T::Fifo => return Err(self.hostile(&raw, "is a FIFO")),
                // A global PAX header carries no file; the tar crate applies local ones itself.
                T::XGlobalHeader => continue,
                other => {
                    return Err(self.hostile(
                        &raw,
                        &format!(
                            "has an unsupported tar entry type {:?}",
                            other.as_byte() as char
                        ),
                    ))
                }
            };
            if !matches!(kind, EntryKind::Symlink(_)) && mode & REFUSED_MODE_BITS != 0 {
                let what = if mode & 0o7000 != 0 {
                    "setuid, setgid or sticky"
                } else {
                    "world-writable"
                };
                return Err(self.hostile(&raw, &format!("has mode {:04o}: {what}", mode & 0o7777)));
            }
            if let Some(pax) = entry
                .pax_extensions()
                .map_err(|e| self.corrupt(format!("bad PAX header of {raw:?}: {e}")))?
            {
                for ext in pax {
                    let ext =
                        ext.map_err(|e| self.corrupt(format!("bad PAX record of {raw:?}: {e}")))?;
                    canonical &= ext.key().is_ok_and(|k| CANONICAL_PAX_KEYS.contains(&k));
                }
            }
            self.check_place(&raw, &rel, &kind, &seen)?;
            let now = match &kind {
                EntryKind::Dir => Seen::Dir,
                EntryKind::File { .. } => Seen::File,
                EntryKind::Symlink(target) => {
                    symlinks.insert(rel.clone(), target.clone());
                    Seen::Symlink
                }
            };
            // What lies in a directory makes it one, listed or not: a later file or link
            // may not take its place (a link there would be written through).
            for ancestor in rel.ancestors().skip(1) {
                if ancestor.as_os_str().is_empty() || seen.contains_key(ancestor) {
                    break;
                }
                seen.insert(ancestor.to_path_buf(), Seen::Dir);
            }
            seen.insert(rel.clone(), now);
            let mut accepted = Entry {
                path: rel,
                kind,
                data: &mut entry,
            };
            visit(&mut accepted)?;
            // What the visitor left unread is read here, so a damaged entry is noticed.
            io::copy(&mut entry, &mut io::sink())
                .map_err(|e| self.corrupt(format!("bad data in {raw:?}: {e}")))?;
        }
        // The tar reader stops at the end-of-archive blocks; read the rest of the gzip stream
        // too, so that a truncated or damaged tail is noticed rather than ignored.
        let mut tar_bytes = archive.into_inner();
        io::copy(&mut tar_bytes, &mut io::sink())
            .map_err(|e| self.corrupt(format!("bad gzip data after the tar archive: {e}")))?;
        if seen.is_empty() {
            return Err(self.corrupt("no ./app/ entries".to_string()));
        }
        for (rel, target) in &symlinks {
            link::check(rel, target, |p| symlinks.get(p).cloned())
                .map_err(|e| self.hostile(&rel.to_string_lossy(), &e.to_string()))?;
        }
        let (gz, digest, tar_size) = tar_bytes.into_parts();
        let mut raw = gz.into_inner();
        io::copy(&mut raw, &mut io::sink()).map_err(|source| ReadError::Read {
            slug: self.path.clone(),
            source,
        })?;
        let (file_hex, _) = raw.into_inner().finish();
        if file_hex != self.hex {
            return Err(ReadError::Checksum {
                slug: self.path.clone(),
                actual: file_hex,
                expected: self.hex.clone(),
                source_name: "its digest when it was opened".to_string(),
            });
        }
        Ok(Summary {
            diff_id: format!("sha256:{digest}"),
            tar_size,
            symlinks,
            canonical,
            file_bytes,
            entries: count,
        })
    }

    /// The rules on where an entry may be, given what came before it.
    fn check_place(
        &self,
        raw: &str,
        rel: &Path,
        kind: &EntryKind,
        seen: &BTreeMap<PathBuf, Seen>,
    ) -> Result<(), ReadError> {
        if rel == Path::new("app") && *kind != EntryKind::Dir {
            return Err(self.hostile(raw, "replaces the app directory"));
        }
        for ancestor in rel.ancestors().skip(1) {
            match seen.get(ancestor) {
                Some(Seen::File) => return Err(self.hostile(raw, "lies under an earlier file")),
                Some(Seen::Symlink) => {
                    return Err(self.hostile(
                        raw,
                        &format!("lies under the symlink {}", ancestor.display()),
                    ))
                }
                _ => {}
            }
        }
        match (seen.get(rel), kind) {
            (None, _) | (Some(Seen::Dir), EntryKind::Dir) => Ok(()),
            (Some(Seen::Dir), _) => Err(self.hostile(raw, "replaces an earlier directory")),
            (Some(_), _) => Err(self.hostile(raw, "replaces an earlier entry")),
        }
    }

    /// Writes the slug's entries into `dest` (which must exist), symlinks last.
    pub fn unpack_into(&self, dest: &Path) -> Result<(), ReadError> {
        let write_err = |path: &Path, source| write_error(path, source);
        let summary = self.read_entries(|entry| {
            let target = dest.join(&entry.path);
            match entry.kind {
                EntryKind::Dir => {
                    fs::create_dir_all(&target).map_err(|e| write_err(&target, e))?;
                    fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
                        .map_err(|e| write_err(&target, e))
                }
                EntryKind::File { executable, .. } => {
                    if let Some(parent) = target.parent() {
                        fs::create_dir_all(parent).map_err(|e| write_err(parent, e))?;
                    }
                    let mut out = fs::File::create(&target).map_err(|e| write_err(&target, e))?;
                    io::copy(entry, &mut out).map_err(|e| match e.kind() {
                        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                            self.corrupt(format!("bad data in {}: {e}", target.display()))
                        }
                        _ => write_err(&target, e),
                    })?;
                    let mode = if executable { 0o755 } else { 0o644 };
                    fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                        .map_err(|e| write_err(&target, e))
                }
                // After every file: no file is ever written through a link.
                EntryKind::Symlink(_) => Ok(()),
            }
        })?;
        for (rel, link) in &summary.symlinks {
            let target = dest.join(rel);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| write_err(parent, e))?;
                // The place rules keep links out of every parent; check the disk agrees
                // before creating anything there, so nothing is made through a link.
                let is_dir = fs::symlink_metadata(parent).is_ok_and(|m| m.is_dir());
                if !is_dir {
                    return Err(self.hostile(
                        &rel.to_string_lossy(),
                        "lies under something that is not a directory",
                    ));
                }
            }
            std::os::unix::fs::symlink(link, &target).map_err(|e| write_err(&target, e))?;
        }
        Ok(())
    }

    /// Unpacks the slug under `root/<hex>`, or reuses that dir when its marker says it is
    /// complete.
    pub fn unpack(&self, root: &Path) -> Result<Unpacked, ReadError> {
        let dir = root.join(&self.hex);
        let write_err = |source| write_error(&dir, source);
        if is_complete(&dir, &self.hex) {
            return Ok(Unpacked {
                app: dir.join("app"),
                dir,
                hex: self.hex.clone(),
                reused: true,
            });
        }
        fs::create_dir_all(root).map_err(write_err)?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.tmp-", self.hex))
            .tempdir_in(root)
            .map_err(write_err)?;
        self.unpack_into(tmp.path())?;
        fs::write(tmp.path().join(MARKER), format!("{}\n", self.hex)).map_err(write_err)?;
        if dir.exists() && !is_complete(&dir, &self.hex) {
            // A leftover from an interrupted unpack, or tampered with.
            fs::remove_dir_all(&dir).map_err(write_err)?;
        }
        match fs::rename(tmp.path(), &dir) {
            Ok(()) => {
                // Published: keep it (do not let the TempDir guard delete it).
                let _ = tmp.keep();
            }
            // Another `slug run` of the same slug finished first: use its copy; ours is dropped.
            Err(_) if is_complete(&dir, &self.hex) => {}
            Err(source) => return Err(write_err(source)),
        }
        Ok(Unpacked {
            app: dir.join("app"),
            dir,
            hex: self.hex.clone(),
            reused: false,
        })
    }
}

impl Slug {
    /// The release the build wrote into the slug ([`EMBEDDED_PATH`]), from one checked pass
    /// over its entries; `None` for a slug without one (made before slugs held it, or by
    /// hand).
    pub fn embedded_release(&self) -> Result<Option<BuildRelease>, ReadError> {
        let mut found = None;
        self.read_entries(|entry| {
            if let Some(release) = self.embedded_in(entry)? {
                found = Some(release);
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// For a visitor of [`Slug::read_entries`] that reads other entries too: the release
    /// when `entry` is the [`EMBEDDED_PATH`] file, else `None` (the entry left unread).
    pub fn embedded_in(&self, entry: &mut Entry) -> Result<Option<BuildRelease>, ReadError> {
        if entry.path != Path::new(EMBEDDED_PATH) || !matches!(entry.kind, EntryKind::File { .. }) {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| self.corrupt(format!("bad data in {EMBEDDED_PATH}: {e}")))?;
        self.parse_embedded(&bytes).map(Some)
    }

    /// Parses the bytes of the slug's [`EMBEDDED_PATH`] entry.
    pub fn parse_embedded(&self, bytes: &[u8]) -> Result<BuildRelease, ReadError> {
        BuildRelease::from_json(bytes)
            .map_err(|e| self.corrupt(format!("invalid {EMBEDDED_PATH}: {e}")))
    }
}

impl Unpacked {
    /// The release the build wrote into the slug, read from the unpacked copy; `None` when
    /// the slug has none.
    pub fn embedded_release(&self, slug: &Slug) -> Result<Option<BuildRelease>, ReadError> {
        let path = self.dir.join(EMBEDDED_PATH);
        match fs::read(&path) {
            Ok(bytes) => slug.parse_embedded(&bytes).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ReadError::Read { slug: path, source }),
        }
    }
}

fn is_complete(dir: &Path, hex: &str) -> bool {
    fs::read_to_string(dir.join(MARKER)).is_ok_and(|m| m.trim() == hex) && dir.join("app").is_dir()
}

/// Hashes and counts what is read through it.
struct HashReader<R> {
    inner: R,
    sha: Sha256,
    count: u64,
}

impl<R> HashReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            sha: Sha256::new(),
            count: 0,
        }
    }

    fn finish(self) -> (String, u64) {
        (hex(&self.sha.finalize()), self.count)
    }

    fn into_parts(self) -> (R, String, u64) {
        (self.inner, hex(&self.sha.finalize()), self.count)
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// uid and gid 0, or left blank (all NULs or spaces, which tar readers take as 0).
fn owned_by_root(header: &tar::Header) -> bool {
    let blank = |field: &[u8]| field.iter().all(|&b| b == 0 || b == b' ');
    let old = header.as_old();
    (blank(&old.uid) || header.uid().ok() == Some(0))
        && (blank(&old.gid) || header.gid().ok() == Some(0))
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

#[cfg(test)]
mod tests {
    use super::*;

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

    fn tiny_slug(text: &[u8]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        tar.append_data(&mut h, "./app/", io::empty()).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        tar.append_data(&mut h, "./app/x", text).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn entries_are_read_from_the_bytes_whose_digest_was_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slug.tgz");
        std::fs::write(&path, tiny_slug(b"first")).unwrap();
        let slug = locate(path.to_str().unwrap(), dir.path())
            .unwrap()
            .open()
            .unwrap();
        assert!(slug.read_entries(|_| Ok(())).is_ok());
        // Swapped after the check: another valid slug, refused as not the one checked.
        std::fs::write(&path, tiny_slug(b"other")).unwrap();
        let e = slug.read_entries(|_| Ok(())).unwrap_err();
        assert!(matches!(e, ReadError::Checksum { .. }), "{e}");
        assert!(e.is_bad_slug());
    }

    #[test]
    fn prefix_lookup_in_store() {
        let store = tempfile::tempdir().unwrap();
        let a = format!("sha256-ab{}.tgz", "0".repeat(62));
        let b = format!("sha256-ac{}.tgz", "0".repeat(62));
        std::fs::write(store.path().join(&a), b"x").unwrap();
        std::fs::write(store.path().join(&b), b"x").unwrap();
        let found = locate("ab", store.path()).unwrap();
        assert_eq!(found.path, store.path().join(&a));
        assert!(found.release.is_none());
        assert_eq!(
            found.expected_digests()[0].0,
            format!("ab{}", "0".repeat(62))
        );
        let found = locate("sha256:AC", store.path()).unwrap();
        assert_eq!(found.path, store.path().join(&b));
        assert!(matches!(
            locate("a", store.path()),
            Err(ReadError::Ambiguous { .. })
        ));
        let e = locate("ff", store.path()).unwrap_err();
        assert!(e.to_string().contains("no sha256-ff*.tgz in the store"));
        assert!(matches!(
            locate("./nope.tgz", store.path()),
            Err(ReadError::NoFile(_))
        ));
        // A digest is verified before anything is read from the file.
        let e = locate("ab", store.path()).unwrap().open().unwrap_err();
        assert!(matches!(e, ReadError::Checksum { .. }), "{e}");
    }
}
