//! The slug: deterministic tar (`archive`), parallel gzip (`gzip`), the content-addressed
//! store (`store`) and the release manifest (`manifest`). [`export`] ties the first three
//! together: parts → tar → gzip members → `<store>/sha256-<hex>.tgz`.
//!
//! The slug file is a run of gzip members per part (one per `gzip::CHUNK` of its tar) plus
//! one for the end-of-archive blocks, which every gzip reader (GNU tar, Python's tarfile,
//! `gzip -t`) reads as one stream. Because a part's members depend only on that part's tar
//! bytes, an unchanged part's compressed bytes can be taken from `part_cache` instead of
//! being compressed again. Formats and figures:
//! `docs/export.md`.

pub mod archive;
pub mod gzip;
pub mod manifest;
pub mod reuse;
pub mod store;

pub use archive::{ArchiveError, Part};

use crate::exit;
use manifest::LayerEntry;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use store::{Staged, StoreError};

/// The mtime of every entry when `SOURCE_DATE_EPOCH` is not set: 1980-01-01T00:00:00Z, the
/// earliest time that zip files and Python wheels can hold, so tools that repackage slug
/// contents never meet a date they reject (0 trips some of them).
pub const DEFAULT_MTIME: u64 = 315_532_800;

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The mtime of every entry: `SOURCE_DATE_EPOCH` if set, else [`DEFAULT_MTIME`]
    /// (see [`mtime_from_env`]).
    pub mtime: u64,
    /// Compressing threads; default: available parallelism.
    pub threads: usize,
    /// Refuse a slug larger than this many bytes (compressed): error, no file left under a
    /// final name.
    pub max_size: Option<u64>,
    /// Directory of compressed parts keyed by the part's uncompressed tar digest.
    pub part_cache: Option<PathBuf>,
    /// Show an indicatif bar on stderr (the caller decides: a terminal and no `CI`).
    pub progress: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            mtime: DEFAULT_MTIME,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_size: None,
            part_cache: None,
            progress: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// `<store>/sha256-<hex>.tgz`
    pub path: PathBuf,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// Size of the file in bytes.
    pub size: u64,
    /// One per part, in order: path without `./`, `sha256:<hex>` of its uncompressed tar
    /// bytes, their size.
    pub parts: Vec<LayerEntry>,
    /// Skipped entries (each naming the path and why), and part-cache problems.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the slug is larger than the limit of {limit} bytes ({} MB); make it smaller (.slugignore) or raise --max-size", limit / 1_000_000)]
    TooLarge { limit: u64 },
    #[error("cannot write slug {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("compression failed: {0}")]
    Deflate(String),
    #[error("cannot copy cached part {path} into {slug}: {source}")]
    CachedPart {
        path: PathBuf,
        slug: PathBuf,
        source: io::Error,
    },
    #[error("nothing to export: no parts given")]
    NoParts,
    #[error("SOURCE_DATE_EPOCH must be a number of seconds since 1970, got `{0}`")]
    BadSourceDateEpoch(String),
}

impl exit::ExitCode for ExportError {
    fn exit_code(&self) -> i32 {
        match self {
            // What is in the app is the user's to fix.
            ExportError::Archive(
                ArchiveError::Unreadable { .. }
                | ArchiveError::ReadDir { .. }
                | ArchiveError::Changed { .. },
            )
            | ExportError::TooLarge { .. }
            | ExportError::BadSourceDateEpoch(_) => exit::INVALID_INPUT,
            _ => exit::OTHER,
        }
    }
}

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org) when set and not empty, else
/// [`DEFAULT_MTIME`].
pub fn mtime_from_env() -> Result<u64, ExportError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| ExportError::BadSourceDateEpoch(v)),
        _ => Ok(DEFAULT_MTIME),
    }
}

/// Writes the slug of `parts` into `store_dir` as `sha256-<hex>.tgz`.
pub fn export(
    parts: &[Part],
    store_dir: &Path,
    opts: &ExportOptions,
) -> Result<Exported, ExportError> {
    if parts.is_empty() {
        return Err(ExportError::NoParts);
    }
    let mut archiver = archive::Archiver::new(parts, opts.mtime)?;
    let mut staged = Staged::new(store_dir)?;
    let temp_path = staged.temp_path().to_path_buf();
    let bar = opts
        .progress
        .then(|| progress_bar(archive::estimated_size(parts)));
    let mut layers = Vec::with_capacity(parts.len());
    let mut warnings = Vec::new();
    let file = staged
        .file()
        .try_clone()
        .map_err(|source| ExportError::Write {
            path: temp_path.clone(),
            source,
        })?;
    let mut slug = SlugWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        sha: Sha256::new(),
        size: 0,
        max: opts.max_size,
        too_large: false,
    };
    let write_err = |slug: &SlugWriter<_>, source| {
        if slug.too_large {
            ExportError::TooLarge {
                limit: opts.max_size.unwrap_or(0),
            }
        } else {
            ExportError::Write {
                path: temp_path.clone(),
                source,
            }
        }
    };
    let cache = opts.part_cache.as_deref().map(PartCache::new);
    // Body digests of the parts this slug is made of: what the part cache keeps.
    let mut used = Vec::with_capacity(parts.len());

    for (index, part) in parts.iter().enumerate() {
        // A part is its head (the prefix directories no earlier part wrote, tiny), as a member
        // of its own, then its body's members; only the body is cached, keyed by its own
        // digest, because only the body can be compressed before the export knows the parts
        // before it (`precompress`).
        let mut head = Vec::new();
        let head_outcome = archiver.write_head(index, &mut head)?;
        if !head.is_empty() {
            let member =
                gzip::compress_small(&head).map_err(|e| ExportError::Deflate(e.to_string()))?;
            slug.write_all(&member).map_err(|e| write_err(&slug, e))?;
        }
        if let Some(bar) = &bar {
            bar.inc(head.len() as u64);
        }
        let fragments = reuse::find(part);
        if let Some(cache) = &cache {
            // A first pass only hashes the tar (files read at disk speed); compressing is
            // the cost worth skipping.
            let mut hashing = Digests::new(io::sink(), &head);
            let mut outcome = head_outcome.clone();
            archiver.write_body(index, &mut hashing, &mut outcome)?;
            let digests = hashing.finish();
            let key = fragments.cache_key(&digests.body);
            if let Some(cached) = cache.lookup(&key, digests.body_len) {
                let copied = cached.and_then(|mut f| io::copy(&mut f, &mut slug));
                match copied {
                    Ok(_) => {
                        if let Some(bar) = &bar {
                            bar.inc(digests.body_len);
                        }
                        layers.push(layer_entry(part, &digests));
                        used.push(key);
                        warnings.extend(outcome.warnings.iter().cloned());
                        archiver.accept(&outcome);
                        continue;
                    }
                    Err(e) if slug.too_large => return Err(write_err(&slug, e)),
                    // The slug file may already hold part of the cached members: the export
                    // cannot go on (a new one would start afresh).
                    Err(source) => {
                        return Err(ExportError::CachedPart {
                            path: cache.path(&key),
                            slug: temp_path.clone(),
                            source,
                        })
                    }
                }
            }
        }

        let mut cache_file = match &cache {
            Some(cache) => match cache.stage() {
                Ok(s) => Some(s),
                Err(e) => {
                    warnings.push(format!("part cache: {e}"));
                    None
                }
            },
            None => None,
        };
        let mut tee = Tee {
            main: &mut slug,
            copy: cache_file.as_mut().map(|s| BufWriter::new(s.file())),
            copy_sha: Sha256::new(),
            copy_failed: None,
        };
        let produced = compress_body(
            &archiver,
            index,
            &head,
            head_outcome,
            (opts.threads, fragments.validated()),
            &mut tee,
            &bar,
        );
        let copied = tee.finish();
        let (outcome, digests) =
            produced.map_err(|e| gzip_error(e, |source| write_err(&slug, source)))?;
        let key = fragments.cache_key(&digests.body);
        if let (Some(cache), Some(staged_part)) = (&cache, cache_file) {
            let saved = match copied {
                Err(e) => Err(e.to_string()),
                Ok(member_sha) => cache
                    .commit(staged_part, &key, digests.body_len, &member_sha)
                    .map_err(|e| e.to_string()),
            };
            if let Err(e) = saved {
                warnings.push(format!("part cache: cannot save {}: {e}", part.prefix));
            }
        }
        layers.push(layer_entry(part, &digests));
        used.push(key);
        warnings.extend(outcome.warnings.iter().cloned());
        archiver.accept(&outcome);
    }
    if let Some(cache) = &cache {
        cache.keep_only(&used);
    }

    let end = gzip::compress_small(&archive::END_OF_ARCHIVE)
        .map_err(|e| ExportError::Deflate(e.to_string()))?;
    slug.write_all(&end).map_err(|e| write_err(&slug, e))?;
    slug.inner.flush().map_err(|e| write_err(&slug, e))?;
    let SlugWriter {
        inner, sha, size, ..
    } = slug;
    // Closes our descriptor of the staged file (flushed above); `commit` syncs and renames.
    drop(inner);
    let sha256 = hex(&sha.finalize());
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let path = staged.commit(&store::slug_file_name(&sha256))?;
    Ok(Exported {
        path,
        sha256,
        size,
        parts: layers,
        warnings,
    })
}

/// Compresses part `index`'s body into `out` on `threads`, with the part's validated
/// fragments put in as they are, hashing it on the way.
fn compress_body(
    archiver: &archive::Archiver,
    index: usize,
    head: &[u8],
    mut outcome: archive::PartOutcome,
    (threads, splices): (usize, Vec<reuse::Splice>),
    out: &mut dyn Write,
    bar: &Option<indicatif::ProgressBar>,
) -> Result<(archive::PartOutcome, PartDigests), gzip::GzipError<ArchiveError>> {
    gzip::compress_part(
        move |sink: &mut gzip::ChunkSink| {
            let mut hashing = Digests::new(sink, head);
            archiver.write_body(index, &mut hashing, &mut outcome)?;
            Ok::<_, ArchiveError>((outcome, hashing.finish()))
        },
        threads,
        splices,
        out,
        &mut |n| {
            if let Some(bar) = bar {
                bar.inc(n);
            }
        },
    )
    .map(|(value, _stats)| value)
}

/// Compresses part `index`'s body into `opts.part_cache` (nothing to do without one), so that
/// a later [`export`] of the same body copies it instead of compressing it. A build calls
/// this while a buildpack still works, for a layer that is complete (`slug
/// precompress-layer`); `parts` need only hold the parts whose sources absolute symlinks in
/// this one may point into. If the body changes before the export, its digest does too and
/// the export compresses it as usual: a wrong guess costs time, never bytes.
pub fn precompress(parts: &[Part], index: usize, opts: &ExportOptions) -> Result<(), ExportError> {
    let Some(dir) = &opts.part_cache else {
        return Ok(());
    };
    let cache = PartCache::new(dir);
    let archiver = archive::Archiver::new(parts, opts.mtime)?;
    let fragments = reuse::find(&parts[index]);
    let mut staged = cache.stage()?;
    let mut tee = Tee {
        main: &mut io::sink(),
        copy: Some(BufWriter::new(staged.file())),
        copy_sha: Sha256::new(),
        copy_failed: None,
    };
    let produced = compress_body(
        &archiver,
        index,
        &[],
        archive::PartOutcome::default(),
        (opts.threads, fragments.validated()),
        &mut tee,
        &None,
    );
    let member_sha = tee.finish().map_err(|source| ExportError::Write {
        path: dir.clone(),
        source,
    })?;
    let (_, digests) = produced.map_err(|e| {
        gzip_error(e, |source| ExportError::Write {
            path: dir.clone(),
            source,
        })
    })?;
    let key = fragments.cache_key(&digests.body);
    cache.commit(staged, &key, digests.body_len, &member_sha)?;
    Ok(())
}

/// A compression error as the export reports it; `output` says what a failed write means.
fn gzip_error(
    e: gzip::GzipError<ArchiveError>,
    output: impl FnOnce(io::Error) -> ExportError,
) -> ExportError {
    match e {
        gzip::GzipError::Input(e) => e.into(),
        gzip::GzipError::Output(source) => output(source),
        gzip::GzipError::Deflate(e) => ExportError::Deflate(e),
    }
}

fn layer_entry(part: &Part, digests: &PartDigests) -> LayerEntry {
    LayerEntry {
        path: archive::entry_path(&part.prefix),
        digest: format!("sha256:{}", digests.full),
        size: digests.full_len,
    }
}

fn progress_bar(estimate: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(estimate),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "exporting slug [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The slug file: counts, hashes and enforces the size limit as bytes go by.
struct SlugWriter<W: Write> {
    inner: W,
    sha: Sha256,
    size: u64,
    max: Option<u64>,
    too_large: bool,
}

impl<W: Write> Write for SlugWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(max) = self.max {
            if self.size + buf.len() as u64 > max {
                self.too_large = true;
                return Err(io::Error::other("slug over the size limit"));
            }
        }
        self.inner.write_all(buf)?;
        self.sha.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A part's digests: the whole part's (the manifest's `layers[].digest`) and its body's (the
/// part cache's key).
struct PartDigests {
    full: String,
    full_len: u64,
    body: String,
    body_len: u64,
}

/// Hashes a part's body on its way to `inner`, and the whole part (head first) when it has a
/// head; without one, the two digests are the same and the body's is made once. The whole
/// part's digest is made on a thread of its own: a layer such as Node's 125 MB binary is
/// hashed twice, and the export has the cores to itself.
struct Digests<W: Write> {
    body: Hashing<W>,
    full: Option<FullDigest>,
    head_len: u64,
}

enum FullDigest {
    Here(Sha256),
    Beside {
        bytes: SyncSender<Vec<u8>>,
        hasher: std::thread::JoinHandle<Sha256>,
    },
}

impl<W: Write> Digests<W> {
    fn new(inner: W, head: &[u8]) -> Self {
        let full = (!head.is_empty()).then(|| {
            let started = || {
                let mut sha = Sha256::new();
                sha.update(head);
                sha
            };
            let (bytes, rx) = sync_channel::<Vec<u8>>(16);
            let mut full = started();
            let spawned = std::thread::Builder::new()
                .name("slugc-digest".into())
                .spawn(move || {
                    for b in rx {
                        full.update(&b);
                    }
                    full
                });
            match spawned {
                Ok(hasher) => FullDigest::Beside { bytes, hasher },
                // No thread to be had: hash here.
                Err(_) => FullDigest::Here(started()),
            }
        });
        Self {
            body: Hashing::new(inner),
            full,
            head_len: head.len() as u64,
        }
    }

    fn finish(self) -> PartDigests {
        let full = self.full.map(|f| {
            let sha = match f {
                FullDigest::Here(sha) => sha,
                FullDigest::Beside { bytes, hasher } => {
                    drop(bytes);
                    match hasher.join() {
                        Ok(sha) => sha,
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
            };
            hex(&sha.finalize())
        });
        let (body, body_len) = self.body.finish();
        PartDigests {
            full: full.unwrap_or_else(|| body.clone()),
            full_len: self.head_len + body_len,
            body,
            body_len,
        }
    }
}

impl<W: Write> Write for Digests<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.body.write(buf)?;
        match &mut self.full {
            Some(FullDigest::Here(sha)) => sha.update(&buf[..n]),
            Some(FullDigest::Beside { bytes, .. }) => {
                // The thread only ends when this sender is dropped.
                let _ = bytes.send(buf[..n].to_vec());
            }
            None => {}
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.body.flush()
    }
}

/// Hashes and counts the uncompressed tar of a part on its way to `inner`.
struct Hashing<W: Write> {
    inner: W,
    sha: Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            sha: Sha256::new(),
            len: 0,
        }
    }

    fn finish(self) -> (String, u64) {
        (hex(&self.sha.finalize()), self.len)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes to the slug and, best effort, a copy to the part cache: a cache that cannot be
/// written never fails the export.
struct Tee<'a, M: Write, C: Write> {
    main: &'a mut M,
    copy: Option<C>,
    copy_sha: Sha256,
    copy_failed: Option<io::Error>,
}

impl<M: Write, C: Write> Tee<'_, M, C> {
    /// The hex SHA-256 of the cache copy, or its error (flushing included).
    fn finish(mut self) -> Result<String, io::Error> {
        if let Some(mut c) = self.copy.take() {
            if let Err(e) = c.flush() {
                self.copy_failed.get_or_insert(e);
            }
        }
        match self.copy_failed {
            Some(e) => Err(e),
            None => Ok(hex(&self.copy_sha.finalize())),
        }
    }
}

impl<M: Write, C: Write> Write for Tee<'_, M, C> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.main.write_all(buf)?;
        if let Some(c) = &mut self.copy {
            match c.write_all(buf) {
                Ok(()) => self.copy_sha.update(buf),
                Err(e) => {
                    self.copy_failed = Some(e);
                    self.copy = None;
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.main.flush()
    }
}

/// Compressed part bodies by content: `<dir>/part-<engine>-<body sha256>.gz`, each a body's
/// gzip members, and beside it `.sum`: the SHA-256 of those bytes and the body's length.
///
/// `<engine>` fingerprints the compressor (chunk size, levels, and the bytes it makes of a
/// fixed sample), so a different libdeflate, level or chunk size never serves stale bytes that
/// a fresh compression would not give: the same input still gives the same slug, cache or
/// not. A hit is checked
/// by hashing the members (cheap: they are the compressed size) against `.sum` rather than
/// by decompressing them.
struct PartCache {
    dir: PathBuf,
    engine: String,
}

impl PartCache {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            engine: engine_fingerprint(),
        }
    }

    fn name(&self, digest: &str) -> String {
        format!("part-{}-{digest}", self.engine)
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{}.gz", self.name(digest)))
    }

    fn sum_path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{}.sum", self.name(digest)))
    }

    /// The cached members for this body digest and length, if their bytes are those recorded
    /// when they were saved (a damaged entry is removed and ignored).
    fn lookup(&self, digest: &str, len: u64) -> Option<io::Result<File>> {
        let path = self.path(digest);
        let sum = std::fs::read_to_string(self.sum_path(digest)).ok()?;
        let valid = (|| {
            let (member_sha, tar_len) = sum.trim().split_once(' ')?;
            if tar_len.parse::<u64>().ok()? != len {
                return None;
            }
            let mut check = Hashing::new(io::sink());
            io::copy(&mut File::open(&path).ok()?, &mut check).ok()?;
            (check.finish().0 == member_sha).then_some(())
        })();
        if valid.is_some() {
            Some(File::open(&path))
        } else {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(self.sum_path(digest));
            None
        }
    }

    /// Removes every entry but those of `used` bodies, and leftover temp files: the cache
    /// holds the last export's parts, which is what the next build of the app can reuse
    /// (without this, each changed layer would leave its old parts behind for good). Runs
    /// while the build holds the app's cache lock, so no other export is writing here.
    fn keep_only(&self, used: &[String]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let keep: std::collections::HashSet<String> = used
            .iter()
            .flat_map(|d| {
                [
                    format!("{}.gz", self.name(d)),
                    format!("{}.sum", self.name(d)),
                ]
            })
            .collect();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if (name.starts_with("part-") || name.starts_with(".tmp-")) && !keep.contains(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn stage(&self) -> Result<Staged, StoreError> {
        Staged::new(&self.dir)
    }

    /// Saves the members, then their `.sum` (an entry without one is a miss).
    fn commit(
        &self,
        staged: Staged,
        digest: &str,
        len: u64,
        member_sha: &str,
    ) -> Result<PathBuf, StoreError> {
        let path = staged.commit(&format!("{}.gz", self.name(digest)))?;
        store::write_atomic(
            &self.dir,
            &format!("{}.sum", self.name(digest)),
            format!("{member_sha} {len}\n").as_bytes(),
        )?;
        Ok(path)
    }
}

/// First 12 hex digits of the SHA-256 of the chunk size, the levels and the member the
/// compressor makes of a fixed 64 KiB sample (which shows a libdeflate that compresses
/// differently; a bigger sample costs every build a visible 20 ms).
fn engine_fingerprint() -> String {
    let mut sample = Vec::with_capacity(64 * 1024 + 100);
    let mut i = 0u32;
    while sample.len() < 64 * 1024 {
        sample
            .extend_from_slice(format!("{i} slugc {} ", i.wrapping_mul(2_654_435_761)).as_bytes());
        i += 1;
    }
    match gzip::compress_small(&sample) {
        Ok(bytes) => {
            let mut sha = Sha256::new();
            sha.update(
                format!(
                    "chunk {} level {} elf level {}\n",
                    gzip::CHUNK,
                    gzip::LEVEL,
                    gzip::ELF_LEVEL
                )
                .as_bytes(),
            );
            sha.update(&bytes);
            hex(&sha.finalize())[..12].to_string()
        }
        Err(_) => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(source: &Path) -> Vec<Part> {
        vec![Part {
            source: source.to_path_buf(),
            prefix: "./app".into(),
            exclude: vec![],
        }]
    }

    #[test]
    fn sha_in_name_matches_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        std::fs::write(app.join("a.txt"), "hello").unwrap();
        let store = dir.path().join("store");
        let e = export(&part(&app), &store, &ExportOptions::default()).unwrap();
        let bytes = std::fs::read(&e.path).unwrap();
        assert_eq!(hex(&Sha256::digest(&bytes)), e.sha256);
        assert_eq!(bytes.len() as u64, e.size);
        assert_eq!(e.path, store.join(format!("sha256-{}.tgz", e.sha256)));
        assert_eq!(e.parts.len(), 1);
        assert_eq!(e.parts[0].path, "app");
    }
}
