//! Parts → tar → gzip members → `<store>/sha256-<hex>.tgz`.
//!
//! The slug file is a run of gzip members per part (one per `gzip::CHUNK` of its tar) plus
//! one for the end-of-archive blocks, which every gzip reader (GNU tar, Python's tarfile,
//! `gzip -t`) reads as one stream. A part's members depend only on that part's tar bytes
//! (`tar`: a part never depends on the parts before it), so an unchanged part's compressed
//! bytes are taken from the [`PartCache`] instead of being compressed again, whichever app
//! they were first made for.

use crate::digest_memo::{self, Recall, Settle};
use crate::gzip;
use crate::part_cache::PartCache;
use crate::store::{self, Staged, StoreError};
use crate::tar::{self as slug_tar, ArchiveError, Archiver, Part};
use crate::{hex, release::LayerEntry};
use sha2::{Digest, Sha256};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The mtime of every entry when `SOURCE_DATE_EPOCH` is not set: 1980-01-01T00:00:00Z, the
/// earliest time that zip files and Python wheels can hold, so tools that repackage slug
/// contents never meet a date they reject (0 trips some of them).
pub const DEFAULT_MTIME: u64 = 315_532_800;

pub struct ExportOptions<'a> {
    /// The mtime of every entry: `SOURCE_DATE_EPOCH` if set, else [`DEFAULT_MTIME`]
    /// (see [`mtime_from_env`]).
    pub mtime: u64,
    /// Compressing threads; default: available parallelism.
    pub threads: usize,
    /// Refuse a slug larger than this many bytes (compressed): error, no file left under a
    /// final name.
    pub max_size: Option<u64>,
    /// Compressed parts by content, shared by every build on the machine.
    pub part_cache: Option<&'a PartCache>,
    /// Told the uncompressed bytes done so far as they go by (a progress bar).
    pub progress: Option<&'a dyn Fn(u64)>,
}

impl Default for ExportOptions<'_> {
    fn default() -> Self {
        Self {
            mtime: DEFAULT_MTIME,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_size: None,
            part_cache: None,
            progress: None,
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

impl ExportError {
    /// Whether what failed is the app's to fix (an unreadable or changing file, a slug over
    /// its size limit, a bad `SOURCE_DATE_EPOCH`), rather than the machine's.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            ExportError::Archive(
                ArchiveError::Unreadable { .. }
                    | ArchiveError::ReadDir { .. }
                    | ArchiveError::Changed { .. }
                    | ArchiveError::Symlink { .. },
            ) | ExportError::TooLarge { .. }
                | ExportError::BadSourceDateEpoch(_)
        )
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
    let archiver = Archiver::new(parts, opts.mtime)?;
    let mut staged = Staged::new(store_dir)?;
    let temp_path = staged.temp_path().to_path_buf();
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
    let mut done = 0u64;
    let mut advance = |n: u64| {
        done += n;
        if let Some(progress) = opts.progress {
            progress(done);
        }
    };
    let mut layers = Vec::with_capacity(parts.len());
    let mut warnings = Vec::new();

    for (index, part) in parts.iter().enumerate() {
        if let Some(cache) = opts.part_cache {
            // A first pass only hashes the tar (files read at disk speed), unless a memo
            // knows the digest; compressing is the cost worth skipping.
            let (digest, len, part_warnings) =
                digest_of(cache, &archiver, part, index, Settle::NoWait)?;
            if let Some(cached) = cache.lookup(&cache_key(part, &digest), len) {
                match cached.and_then(|mut f| io::copy(&mut f, &mut slug)) {
                    Ok(_) => {
                        advance(len);
                        layers.push(layer_entry(part, digest, len));
                        warnings.extend(part_warnings);
                        continue;
                    }
                    Err(e) if slug.too_large => return Err(write_err(&slug, e)),
                    // The slug file may already hold part of the cached members: the export
                    // cannot go on (a new one would start afresh).
                    Err(source) => {
                        return Err(ExportError::CachedPart {
                            path: cache.path(&cache_key(part, &digest)),
                            slug: temp_path.clone(),
                            source,
                        })
                    }
                }
            }
        }

        let mut cache_file = match opts.part_cache.map(PartCache::stage) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                warnings.push(format!("part cache: {e}"));
                None
            }
            None => None,
        };
        let mut tee = Tee {
            main: &mut slug,
            copy: cache_file.as_mut().map(|s| BufWriter::new(s.file())),
            copy_sha: Sha256::new(),
            copy_failed: None,
        };
        let produced = compress_part(&archiver, part, index, opts.threads, &mut tee, &mut advance);
        let copied = tee.finish();
        let (part_warnings, digest, len) =
            produced.map_err(|e| gzip_error(e, |source| write_err(&slug, source)))?;
        if let (Some(cache), Some(staged_part)) = (opts.part_cache, cache_file) {
            let saved = match copied {
                Err(e) => Err(e.to_string()),
                Ok(member_sha) => cache
                    .commit(staged_part, &cache_key(part, &digest), len, &member_sha)
                    .map_err(|e| e.to_string()),
            };
            if let Err(e) = saved {
                warnings.push(format!("part cache: cannot save {}: {e}", part.prefix));
            }
        }
        layers.push(layer_entry(part, digest, len));
        warnings.extend(part_warnings);
    }

    let end = gzip::compress_small(&slug_tar::END_OF_ARCHIVE)
        .map_err(|e| ExportError::Deflate(e.to_string()))?;
    slug.write_all(&end).map_err(|e| write_err(&slug, e))?;
    slug.inner.flush().map_err(|e| write_err(&slug, e))?;
    let SlugWriter {
        inner, sha, size, ..
    } = slug;
    // Closes our descriptor of the staged file (flushed above); `commit` syncs and renames.
    drop(inner);
    let sha256 = hex(&sha.finalize());
    let path = staged.commit(&store::slug_file_name(&sha256))?;
    Ok(Exported {
        path,
        sha256,
        size,
        parts: layers,
        warnings,
    })
}

/// Compresses part `index` of `parts` into `cache` on `threads`, so that a later [`export`]
/// of the same part copies it instead of compressing it. A build calls this while a
/// buildpack still works, for a layer that is complete (`crate::precompress`); `parts` need
/// only hold the parts whose sources the part's absolute symlinks may point into. If the
/// part changes before the export, its digest does too and the export compresses it as
/// usual: a wrong guess costs time, never bytes.
pub fn precompress(
    parts: &[Part],
    index: usize,
    cache: &PartCache,
    mtime: u64,
    threads: usize,
) -> Result<(), ExportError> {
    let archiver = Archiver::new(parts, mtime)?;
    // Another build on the machine may have made it already (the same runtime for another
    // app): hashing is a fraction of compressing. Hashed here, the digest is remembered
    // for the export.
    let part = &parts[index];
    let (digest, len, _) = digest_of(cache, &archiver, part, index, Settle::Wait)?;
    if cache.contains(&cache_key(part, &digest), len) {
        return Ok(());
    }
    let mut staged = cache.stage()?;
    let dir = cache.dir().to_path_buf();
    let mut tee = Tee {
        main: &mut io::sink(),
        copy: Some(BufWriter::new(staged.file())),
        copy_sha: Sha256::new(),
        copy_failed: None,
    };
    let produced = compress_part(&archiver, part, index, threads, &mut tee, &mut |_| {});
    let member_sha = tee.finish().map_err(|source| ExportError::Write {
        path: dir.clone(),
        source,
    })?;
    let (_, digest, len) = produced.map_err(|e| {
        gzip_error(e, |source| ExportError::Write {
            path: dir.clone(),
            source,
        })
    })?;
    cache.commit(staged, &cache_key(part, &digest), len, &member_sha)?;
    Ok(())
}

/// The part cache's key for `part` of tar digest `digest`: the digest, or for a part with a
/// splice, what its members also depend on.
fn cache_key(part: &Part, digest: &str) -> String {
    match &part.reuse {
        Some(reuse) => reuse.cache_key(digest),
        None => digest.to_string(),
    }
}

/// Part `index`'s tar digest, length and warnings: remembered ([`digest_memo`]), or hashed
/// and then remembered when the part can be.
fn digest_of(
    cache: &PartCache,
    archiver: &Archiver,
    part: &Part,
    index: usize,
    settle: Settle,
) -> Result<(String, u64, Vec<String>), ExportError> {
    let fingerprint = match digest_memo::recall(cache, archiver, index, settle) {
        // A part with a fingerprint holds only files and directories: no warnings.
        Recall::Known { digest, len } => return Ok((digest, len, Vec::new())),
        Recall::Unknown(fingerprint) => fingerprint,
    };
    let mut hashing = Hashing::new(io::sink());
    let warnings = archiver.write_part(index, &mut hashing)?;
    let (digest, len) = hashing.finish();
    if let Some(fingerprint) = &fingerprint {
        digest_memo::remember(cache, fingerprint, &digest, len, &cache_key(part, &digest));
    }
    Ok((digest, len, warnings))
}

/// Compresses part `index` (`part`) into `out` on `threads`, hashing its tar on the way: its
/// warnings, hex digest and length. A splice whose file no longer holds its run is not used:
/// the file is compressed as any other.
fn compress_part(
    archiver: &Archiver,
    part: &Part,
    index: usize,
    threads: usize,
    out: &mut dyn Write,
    advance: &mut dyn FnMut(u64),
) -> Result<(Vec<String>, String, u64), gzip::GzipError<ArchiveError>> {
    let reuse = match &part.reuse {
        Some(r) => match r.matches() {
            Ok(true) => Some(r),
            Ok(false) => None,
            Err(e) => {
                return Err(gzip::GzipError::Input(ArchiveError::Unreadable {
                    path: r.file.clone(),
                    source: io::Error::other(e),
                }))
            }
        },
        None => None,
    };
    let splice = reuse.map(crate::reuse::Reuse::spliced);
    let file = reuse.map(|r| (r.file.clone(), r.splice.start + r.splice.len));
    gzip::compress_part(
        move |sink: &mut gzip::ChunkSink| {
            let marker = sink.marker();
            let mut hashing = Hashing::new(sink);
            let warnings =
                archiver.write_part_announcing(index, &mut hashing, &mut |disk, size| {
                    if let Some((path, needed)) = &file {
                        if disk == path && size >= *needed {
                            marker.mark();
                        }
                    }
                })?;
            let (digest, len) = hashing.finish();
            Ok::<_, ArchiveError>((warnings, digest, len))
        },
        splice,
        threads,
        out,
        advance,
    )
    .map(|(value, _stats)| value)
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

fn layer_entry(part: &Part, digest: String, size: u64) -> LayerEntry {
    LayerEntry {
        path: slug_tar::entry_path(&part.prefix),
        digest: format!("sha256:{digest}"),
        size,
    }
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

/// Hashes and counts a part's uncompressed tar on its way to `inner`.
pub(crate) struct Hashing<W> {
    inner: W,
    sha: Sha256,
    len: u64,
}

impl<W> Hashing<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            sha: Sha256::new(),
            len: 0,
        }
    }

    /// Hex digest and length.
    pub(crate) fn finish(self) -> (String, u64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_in_name_matches_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        std::fs::write(app.join("a.txt"), "hello").unwrap();
        let store = dir.path().join("store");
        let e = export(
            &[Part::new(&app, "./app")],
            &store,
            &ExportOptions::default(),
        )
        .unwrap();
        let bytes = std::fs::read(&e.path).unwrap();
        assert_eq!(hex(&Sha256::digest(&bytes)), e.sha256);
        assert_eq!(bytes.len() as u64, e.size);
        assert_eq!(e.path, store.join(format!("sha256-{}.tgz", e.sha256)));
        assert_eq!(e.parts.len(), 1);
        assert_eq!(e.parts[0].path, "app");
    }

    /// A layer whose `bin/big` came out of `gz`, with its blocks saved beside it.
    fn layer_with_blocks(dir: &Path) -> (PathBuf, Vec<u8>) {
        use std::io::{Read, Write};
        let mut data = Vec::new();
        let mut i = 0u64;
        while data.len() < 4 << 20 {
            data.extend_from_slice(format!("{i} {}\n", i * 2_654_435_761 % 9973).as_bytes());
            i += 1;
        }
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&data).unwrap();
        let gz = e.finish().unwrap();
        let mut reader = crate::reuse::BlockReader::new(&gz[..]).unwrap();
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        let ends = reader.ends().to_vec();
        let layer = dir.join("layer");
        std::fs::create_dir_all(layer.join("bin")).unwrap();
        std::fs::write(layer.join("bin/big"), &data).unwrap();
        std::fs::write(layer.join("LICENSE"), "MIT").unwrap();
        crate::reuse::Keep::new(&layer, "bin/big", &gz, &ends, 0, "sha512-test")
            .unwrap()
            .save()
            .unwrap();
        let blocks = std::fs::read(layer.join(crate::reuse::DIR).join("blocks.deflate")).unwrap();
        let mut check = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut check)
            .unwrap();
        assert_eq!(check, data);
        (layer, blocks)
    }

    fn unpacked(slug: &Path) -> Vec<u8> {
        crate::gzip::tests::gunzip(&std::fs::read(slug).unwrap())
    }

    #[test]
    fn a_splice_puts_the_downloads_blocks_in_the_slug_with_the_same_tar_at_any_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        let (layer, blocks) = layer_with_blocks(dir.path());
        let reuse = crate::reuse::find(&layer).unwrap().unwrap();
        let part = |reuse: Option<crate::reuse::Reuse>| {
            let mut p = Part::new(&layer, "./app/.layers/bp/node");
            p.exclude.push(crate::reuse::DIR.into());
            p.reuse = reuse;
            vec![Part::new(&app, "./app"), p]
        };
        let export_with = |parts: &[Part], threads: usize, store: &str| {
            let opts = ExportOptions {
                threads,
                ..ExportOptions::default()
            };
            export(parts, &dir.path().join(store), &opts).unwrap()
        };
        let plain = export_with(&part(None), 2, "plain");
        let spliced = export_with(&part(Some(reuse.clone())), 2, "spliced");
        let one = export_with(&part(Some(reuse.clone())), 1, "one");
        let many = export_with(&part(Some(reuse.clone())), 5, "many");
        // The same tar, and the same bytes at any thread count.
        assert_eq!(unpacked(&plain.path), unpacked(&spliced.path));
        assert_eq!(plain.parts, spliced.parts);
        assert_eq!(spliced.sha256, one.sha256);
        assert_eq!(spliced.sha256, many.sha256);
        assert_ne!(plain.sha256, spliced.sha256);
        // The blocks are in the slug as they are (less their last, partial byte).
        let bytes = std::fs::read(&spliced.path).unwrap();
        let whole = &blocks[..blocks.len() - 1];
        assert!(bytes.windows(whole.len()).any(|w| w == whole));
        // GNU tar reads it and finds the file whole.
        let out = dir.path().join("x");
        std::fs::create_dir(&out).unwrap();
        let status = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(&spliced.path)
            .arg("-C")
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read(out.join("app/.layers/bp/node/bin/big")).unwrap(),
            std::fs::read(layer.join("bin/big")).unwrap()
        );

        // The file changed after its blocks were saved: they are not used, the slug is
        // still right.
        let mut changed = std::fs::read(layer.join("bin/big")).unwrap();
        changed[(reuse.splice.start + 5) as usize] ^= 0x20;
        std::fs::write(layer.join("bin/big"), &changed).unwrap();
        let after = export_with(&part(Some(reuse)), 2, "after");
        let after_plain = export_with(&part(None), 2, "after-plain");
        assert_eq!(after.sha256, after_plain.sha256);
    }

    #[test]
    fn a_spliced_part_is_cached_under_its_own_key_and_copied_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        let (layer, _) = layer_with_blocks(dir.path());
        let reuse = crate::reuse::find(&layer).unwrap().unwrap();
        let mut p = Part::new(&layer, "./app/.layers/bp/node");
        p.exclude.push(crate::reuse::DIR.into());
        let plain_parts = vec![Part::new(&app, "./app"), p.clone()];
        p.reuse = Some(reuse);
        let parts = vec![Part::new(&app, "./app"), p];
        let cache = PartCache::new(&dir.path().join("parts"));
        let opts = ExportOptions {
            part_cache: Some(&cache),
            ..ExportOptions::default()
        };
        // Early compression, then the export copies it; a plain export beside it does not
        // take the spliced members, nor the spliced one the plain ones.
        precompress(&parts, 1, &cache, DEFAULT_MTIME, 2).unwrap();
        let first = export(&parts, &dir.path().join("s1"), &opts).unwrap();
        let plain = export(&plain_parts, &dir.path().join("s2"), &opts).unwrap();
        let again = export(&parts, &dir.path().join("s3"), &opts).unwrap();
        let none = export(&parts, &dir.path().join("s4"), &ExportOptions::default()).unwrap();
        assert_eq!(first.sha256, none.sha256);
        assert_eq!(again.sha256, none.sha256);
        assert_ne!(plain.sha256, none.sha256);
        assert_eq!(unpacked(&plain.path), unpacked(&none.path));
    }
}
