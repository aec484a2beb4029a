//! Verified downloads by content, shared by every build on the machine
//! (`$XDG_CACHE_HOME/slugc/content/downloads` by default).
//!
//! A buildpack that has downloaded an archive and checked it against the digest its source
//! publishes (npm's `dist.integrity`, a `SHA256SUMS` line) keeps it here as
//! `<dir>/<algorithm>-<hex digest>`; the next build of any app that wants the same digest
//! reads it from here instead of the network. The name is the digest of the bytes, so an
//! entry can only ever serve the bytes its source vouched for: every read hashes the file
//! again, and a damaged entry is removed and reported as a miss.
//!
//! Safe under concurrent builds without a lock: entries are written under a temporary name and
//! renamed, and two builds writing one entry write the same bytes. Entries are not synced: a
//! crash can leave a torn entry, which the next read rejects. Bounded with the part cache by
//! [`crate::content::ContentCache::gc`] (each read touches the entry's mtime).

use crate::content::{self, Entry};
use crate::hex;
use sha2::{Digest as _, Sha256, Sha512};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A digest a download is verified against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    Sha256([u8; 32]),
    Sha512([u8; 64]),
}

impl Integrity {
    /// A SHA-256 written as 64 hex digits (as `SHA256SUMS` files and PEP 691 indexes give it).
    pub fn sha256_from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !crate::is_hex(hex) {
            return None;
        }
        let mut digest = [0u8; 32];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Integrity::Sha256(digest))
    }

    /// The digest of `bytes` in the same algorithm as `self`.
    fn of_same_kind(&self, bytes: &[u8]) -> Integrity {
        match self {
            Integrity::Sha256(_) => Integrity::Sha256(Sha256::digest(bytes).into()),
            Integrity::Sha512(_) => Integrity::Sha512(Sha512::digest(bytes).into()),
        }
    }

    /// Whether `bytes` have this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.of_same_kind(bytes) == *self
    }

    /// `sha256-<hex>` / `sha512-<hex>`: the entry's file name.
    pub fn file_name(&self) -> String {
        match self {
            Integrity::Sha256(d) => format!("sha256-{}", hex(d)),
            Integrity::Sha512(d) => format!("sha512-{}", hex(d)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadsError {
    #[error("cannot keep a download in {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("refusing to keep a download whose bytes are not {expected}")]
    Mismatch { expected: String },
}

pub struct Downloads {
    dir: PathBuf,
}

impl Downloads {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, integrity: &Integrity) -> PathBuf {
        self.dir.join(integrity.file_name())
    }

    /// The kept bytes with this digest, if any (checked again on every read: a damaged entry
    /// is removed and is a miss).
    pub fn get(&self, integrity: &Integrity) -> Option<Vec<u8>> {
        let path = self.path(integrity);
        let mut bytes = Vec::new();
        File::open(&path).ok()?.read_to_end(&mut bytes).ok()?;
        if !integrity.matches(&bytes) {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // Recency for `gc`; a cache on a read-only disk still serves.
        let _ = File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        Some(bytes)
    }

    /// Keeps `bytes` under `integrity`, which they must have (checked here too: an entry
    /// never holds bytes other than its name says).
    pub fn put(&self, integrity: &Integrity, bytes: &[u8]) -> Result<(), DownloadsError> {
        if !integrity.matches(bytes) {
            return Err(DownloadsError::Mismatch {
                expected: integrity.file_name(),
            });
        }
        let target = self.path(integrity);
        let write_err = |source| DownloadsError::Write {
            path: self.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(write_err)?;
        let mut temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)
            .map_err(write_err)?;
        temp.write_all(bytes).map_err(write_err)?;
        // Not synced (see the module's doc): a torn entry is a miss, never wrong bytes.
        temp.persist(&target).map_err(|e| write_err(e.error))?;
        Ok(())
    }

    /// Every entry, for [`crate::content::ContentCache::gc`]; removes temporary files of dead
    /// builds on the way (their bytes are added to `removed_bytes`).
    pub(crate) fn entries(&self, removed_bytes: &mut u64) -> io::Result<Vec<Entry>> {
        let files = content::listing(&self.dir, |_| false, removed_bytes)?;
        Ok(files
            .into_iter()
            .filter(|(_, name, _, _)| name.starts_with("sha256-") || name.starts_with("sha512-"))
            .map(|(path, name, bytes, last_use)| Entry {
                last_use,
                bytes,
                files: vec![path],
                name,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha512_of(bytes: &[u8]) -> Integrity {
        Integrity::Sha512(Sha512::digest(bytes).into())
    }

    #[test]
    fn a_kept_download_is_served_and_a_damaged_one_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let downloads = Downloads::new(&dir.path().join("downloads"));
        let id = sha512_of(b"node tarball");
        assert_eq!(downloads.get(&id), None);
        downloads.put(&id, b"node tarball").unwrap();
        assert_eq!(downloads.get(&id).as_deref(), Some(&b"node tarball"[..]));
        std::fs::write(downloads.path(&id), b"node tarbalL").unwrap();
        assert_eq!(downloads.get(&id), None);
        assert!(
            !downloads.path(&id).exists(),
            "the damaged entry is removed"
        );
    }

    #[test]
    fn a_hex_sha256_reads_back_as_its_name() {
        let hex = "ab".repeat(32);
        let id = Integrity::sha256_from_hex(&hex).unwrap();
        assert_eq!(id.file_name(), format!("sha256-{hex}"));
        for bad in ["ab", &"zz".repeat(32), &"a".repeat(65)] {
            assert_eq!(Integrity::sha256_from_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn bytes_that_are_not_the_digest_are_never_kept() {
        let dir = tempfile::tempdir().unwrap();
        let downloads = Downloads::new(dir.path());
        let id = Integrity::Sha256(Sha256::digest(b"wheel").into());
        assert!(matches!(
            downloads.put(&id, b"whee1"),
            Err(DownloadsError::Mismatch { .. })
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        downloads.put(&id, b"wheel").unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }
}
