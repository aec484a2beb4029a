//! The slug's layer. A slug whose every header is as `slug build` writes it (modes
//! 0644/0755, owner 0:0, no extended attributes: `Summary::canonical`) is its own layer, so
//! the layer's digest is the slug's. Any other slug that the reader accepts is written
//! again, entry by entry as the reader checks them, into a new gzip tar with the modes
//! normalised the way `slug run` unpacks (only the executable bit survives), owner 0:0, one
//! mtime and nothing else: a slug from elsewhere never brings its own modes, owners or
//! attributes into an image. The new layer is streamed to a temporary file; nothing is held
//! in memory.

use sha2::{Digest, Sha256};
use slug_format::reader::{EntryKind, ReadError, Slug};
use std::io::{self, Write};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Slug(#[from] ReadError),
    #[error("cannot write the image's slug layer {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: io::Error,
    },
}

/// A layer written again from a slug's checked entries.
pub struct Rewritten {
    /// The gzip file; removed when this is dropped.
    pub file: tempfile::NamedTempFile,
    /// Hex SHA-256 of the gzip bytes.
    pub sha256_hex: String,
    pub size: u64,
    /// `sha256:<hex>` of the uncompressed tar.
    pub diff_id: String,
}

/// Hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
    count: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The slug's entries as a normalised layer, in a temporary file in `dir`.
pub fn rewrite(slug: &Slug, dir: &Path) -> Result<Rewritten, LayerError> {
    let write_err = |source| LayerError::Write {
        path: dir.to_path_buf(),
        source,
    };
    let file = tempfile::Builder::new()
        .prefix(".slugc-layer-")
        .tempfile_in(dir)
        .map_err(write_err)?;
    let out = Hashing {
        inner: io::BufWriter::new(file.as_file().try_clone().map_err(write_err)?),
        sha: Sha256::new(),
        count: 0,
    };
    // flate2's header has no name and time 0: the same entries give the same bytes.
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::new(6));
    let tar_out = Hashing {
        inner: gz,
        sha: Sha256::new(),
        count: 0,
    };
    let mut builder = tar::Builder::new(tar_out);
    builder.mode(tar::HeaderMode::Deterministic);
    // Errors of the visitor are the reader's; a write error is kept to be told apart.
    let mut failed: Option<io::Error> = None;
    slug.read_entries(|entry| {
        let path = Path::new(".").join(&entry.path);
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(slug_format::DEFAULT_MTIME);
        let done = match entry.kind.clone() {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, &path, io::empty())
            }
            EntryKind::File { executable, size } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if executable { 0o755 } else { 0o644 });
                header.set_size(size);
                builder.append_data(&mut header, &path, &mut *entry)
            }
            EntryKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, &path, &target)
            }
        };
        if let Err(e) = done {
            let shown = entry.path.display().to_string();
            failed = Some(e);
            // Stop reading; the real error is `failed`.
            return Err(ReadError::Corrupt {
                slug: slug.path.clone(),
                message: format!("cannot copy {shown} into the image layer"),
            });
        }
        Ok(())
    })
    .map_err(|e| match failed.take() {
        Some(source) => write_err(source),
        None => LayerError::Slug(e),
    })?;
    let tar_out = builder.into_inner().map_err(write_err)?;
    let diff_id = format!("sha256:{}", slug_format::hex(&tar_out.sha.finalize()));
    let mut out = tar_out.inner.finish().map_err(write_err)?;
    out.flush().map_err(write_err)?;
    out.inner
        .into_inner()
        .map_err(|e| write_err(e.into_error()))?
        .sync_all()
        .map_err(write_err)?;
    Ok(Rewritten {
        file,
        sha256_hex: slug_format::hex(&out.sha.finalize()),
        size: out.count,
        diff_id,
    })
}
