//! Reading a slug for `slug image` and `slug manifests`: find its release manifest, check the
//! file against its name and checksum, and, in one streaming pass, compute what an image
//! layer needs (the digest of the gzip bytes, the digest of the uncompressed tar) and collect
//! its `.profile.d` scripts.

use crate::slug::manifest::{ManifestError, Release};
use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SlugError {
    #[error("{path}: not a slug: expected a file named sha256-<hex>.tgz (or its sha256-<hex>.json manifest)")]
    Name { path: PathBuf },
    #[error("cannot read slug {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: not a slug: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: the file's SHA-256 is {actual}, but {expected_from} says {expected}")]
    Checksum {
        path: PathBuf,
        actual: String,
        expected: String,
        expected_from: String,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// A slug file and its release manifest.
pub struct Slug {
    pub path: PathBuf,
    pub release: Release,
    pub release_path: PathBuf,
}

/// Open `path`, given as the `.tgz` or as its `.json` manifest, and read the manifest
/// (`manifest` overrides where it is looked for).
pub fn open(path: &Path, manifest: Option<&Path>) -> Result<Slug, SlugError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| SlugError::Name {
            path: path.to_path_buf(),
        })?;
    let (stem, slug_path) = if let Some(stem) = name.strip_suffix(".tgz") {
        (stem, path.to_path_buf())
    } else if let Some(stem) = name.strip_suffix(".json") {
        (stem, path.with_file_name(format!("{stem}.tgz")))
    } else {
        return Err(SlugError::Name {
            path: path.to_path_buf(),
        });
    };
    let named_hex = stem
        .strip_prefix("sha256-")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    let release_path = match manifest {
        Some(m) => m.to_path_buf(),
        None if named_hex.is_some() => slug_path.with_file_name(format!("{stem}.json")),
        None => {
            return Err(SlugError::Name {
                path: path.to_path_buf(),
            })
        }
    };
    if !slug_path.is_file() {
        return Err(SlugError::Read {
            path: slug_path,
            source: io::Error::new(io::ErrorKind::NotFound, "no such file"),
        });
    }
    let release = Release::read(&release_path)?;
    Ok(Slug {
        path: slug_path,
        release,
        release_path,
    })
}

/// What one pass over the slug's bytes yields.
pub struct Scan {
    /// Hex SHA-256 of the file (the gzip bytes): the layer blob's digest.
    pub sha256_hex: String,
    pub size: u64,
    /// `sha256:<hex>` of the uncompressed tar: the layer's diff_id.
    pub diff_id: String,
    /// `app/.profile.d/*.sh` scripts, sorted by name, as (name, text).
    pub profile_scripts: Vec<(String, String)>,
}

struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

impl Slug {
    /// Stream the slug once: both digests, the `./app/` layout check, the profile scripts;
    /// then check the digest against the file name and the manifest's `checksum`.
    pub fn scan(&self) -> Result<Scan, SlugError> {
        let path = &self.path;
        let read_err = |source| SlugError::Read {
            path: path.clone(),
            source,
        };
        let format_err = |reason: String| SlugError::Format {
            path: path.clone(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let compressed = HashReader {
            inner: io::BufReader::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            count: 0,
        };
        let tar_bytes = HashReader {
            inner: MultiGzDecoder::new(compressed),
            hasher: Sha256::new(),
            count: 0,
        };
        let mut archive = tar::Archive::new(tar_bytes);
        let mut profile_scripts = Vec::new();
        let entries = archive
            .entries()
            .map_err(|e| format_err(format!("not a gzip tar: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| format_err(format!("not a gzip tar: {e}")))?;
            let raw = entry.path_bytes().into_owned();
            let rel = raw.strip_prefix(b"./").unwrap_or(&raw);
            if !(rel == b"app" || rel == b"app/" || rel.starts_with(b"app/")) {
                return Err(format_err(format!(
                    "entry {:?} is outside ./app/",
                    String::from_utf8_lossy(&raw)
                )));
            }
            let script_name = rel
                .strip_prefix(b"app/.profile.d/")
                .filter(|n| n.ends_with(b".sh") && !n.contains(&b'/'));
            if let Some(name) = script_name {
                if entry.header().entry_type().is_file() {
                    let name = String::from_utf8_lossy(name).into_owned();
                    let mut text = Vec::new();
                    entry.read_to_end(&mut text).map_err(read_err)?;
                    profile_scripts.push((name, String::from_utf8_lossy(&text).into_owned()));
                }
            }
        }
        // The tar reader stops at the end-of-archive blocks: hash what follows them too, or
        // the digests would not cover the whole file.
        let mut tar_bytes = archive.into_inner();
        io::copy(&mut tar_bytes, &mut io::sink())
            .map_err(|e| format_err(format!("not a gzip tar: {e}")))?;
        let diff_id = format!("sha256:{:x}", tar_bytes.hasher.finalize());
        let mut compressed = tar_bytes.inner.into_inner();
        io::copy(&mut compressed, &mut io::sink()).map_err(read_err)?;
        let sha256_hex = format!("{:x}", compressed.hasher.finalize());
        profile_scripts.sort();

        let named = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("sha256-"))
            .and_then(|n| n.strip_suffix(".tgz"));
        if let Some(named) = named {
            if named != sha256_hex {
                return Err(SlugError::Checksum {
                    path: path.clone(),
                    actual: sha256_hex,
                    expected: named.to_string(),
                    expected_from: "its file name".to_string(),
                });
            }
        }
        if self.release.sha256_hex() != sha256_hex {
            return Err(SlugError::Checksum {
                path: path.clone(),
                actual: sha256_hex,
                expected: self.release.sha256_hex().to_string(),
                expected_from: format!("{}", self.release_path.display()),
            });
        }
        Ok(Scan {
            sha256_hex,
            size: compressed.count,
            diff_id,
            profile_scripts,
        })
    }
}
