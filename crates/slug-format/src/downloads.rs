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
        let mut hasher = Hasher::of_kind(self);
        hasher.update(bytes);
        hasher.finish()
    }

    /// Whether `bytes` have this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.of_same_kind(bytes) == *self
    }

    /// The digest as its bytes (an SRI string is their base64).
    pub fn digest(&self) -> &[u8] {
        match self {
            Integrity::Sha256(d) => d,
            Integrity::Sha512(d) => d,
        }
    }

    /// `sha256-<hex>` / `sha512-<hex>`: the entry's file name.
    pub fn file_name(&self) -> String {
        match self {
            Integrity::Sha256(d) => format!("sha256-{}", hex(d)),
            Integrity::Sha512(d) => format!("sha512-{}", hex(d)),
        }
    }
}

/// A hash in the algorithm of an [`Integrity`].
enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn of_kind(integrity: &Integrity) -> Self {
        match integrity {
            Integrity::Sha256(_) => Hasher::Sha256(Sha256::new()),
            Integrity::Sha512(_) => Hasher::Sha512(Sha512::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(self) -> Integrity {
        match self {
            Hasher::Sha256(h) => Integrity::Sha256(h.finalize().into()),
            Hasher::Sha512(h) => Integrity::Sha512(h.finalize().into()),
        }
    }
}

/// A download checked as it arrives: each chunk is hashed and, when there is a download
/// cache, written to a temporary file in it at once, so that neither a second hash nor a
/// write of the whole download waits for its last byte. [`Incoming::finish`] says whether
/// the bytes have their digest and keeps them in the cache only if they do; dropped
/// unfinished, it leaves nothing.
pub struct Incoming {
    expected: Integrity,
    hasher: Hasher,
    /// The temporary file and the entry's final path; `None` without a cache, or once
    /// writing failed (`not_kept` says why).
    file: Option<(tempfile::NamedTempFile, PathBuf)>,
    not_kept: Option<DownloadsError>,
}

/// A download whose bytes are not those of its digest.
#[derive(Debug)]
pub struct Mismatch {
    pub actual: Integrity,
}

impl Incoming {
    pub fn new(expected: Integrity, downloads: Option<&Downloads>) -> Self {
        let mut not_kept = None;
        let file = downloads.and_then(|d| {
            let write_err = |source| DownloadsError::Write {
                path: d.dir.clone(),
                source,
            };
            let temp = std::fs::create_dir_all(&d.dir)
                .and_then(|()| tempfile::Builder::new().prefix(".tmp-").tempfile_in(&d.dir));
            match temp {
                Ok(temp) => Some((temp, d.path(&expected))),
                Err(e) => {
                    not_kept = Some(write_err(e));
                    None
                }
            }
        });
        Self {
            hasher: Hasher::of_kind(&expected),
            expected,
            file,
            not_kept,
        }
    }

    /// The next bytes of the download.
    pub fn write(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        if let Some((temp, target)) = &mut self.file {
            if let Err(source) = temp.write_all(bytes) {
                self.not_kept = Some(DownloadsError::Write {
                    path: target.clone(),
                    source,
                });
                self.file = None;
            }
        }
    }

    /// After the last byte: `Ok` with why the download was not kept for later builds, if it
    /// was not (never a reason to fail), or the digest the bytes have instead.
    pub fn finish(self) -> Result<Option<DownloadsError>, Mismatch> {
        let actual = self.hasher.finish();
        if actual != self.expected {
            return Err(Mismatch { actual });
        }
        match self.file {
            // Not synced (see the module's doc): a torn entry is a miss, never wrong bytes.
            Some((temp, target)) => {
                Ok(temp.persist(&target).err().map(|e| DownloadsError::Write {
                    path: target,
                    source: e.error,
                }))
            }
            None => Ok(self.not_kept),
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
        self.get_with(integrity, |_| ()).map(|((), bytes)| bytes)
    }

    /// [`Downloads::get`], with `consume` reading the bytes while another thread checks
    /// them, so that the check does not delay the unpacking. `consume` sees bytes that are
    /// not verified yet (it must put them where nothing runs them, and its work is thrown
    /// away by the caller on a miss); its value comes back only with intact bytes.
    pub fn get_with<T>(
        &self,
        integrity: &Integrity,
        consume: impl FnOnce(&[u8]) -> T,
    ) -> Option<(T, Vec<u8>)> {
        let path = self.path(integrity);
        let mut bytes = Vec::new();
        File::open(&path).ok()?.read_to_end(&mut bytes).ok()?;
        let (value, intact) = std::thread::scope(|s| {
            let check = s.spawn(|| integrity.matches(&bytes));
            let value = consume(&bytes);
            // A check that panicked vouches for nothing.
            (value, check.join().unwrap_or(false))
        });
        if !intact {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // Recency for `gc`; a cache on a read-only disk still serves.
        let _ = File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        Some((value, bytes))
    }

    /// Keeps `bytes` under `integrity`, which they must have (checked here too: an entry
    /// never holds bytes other than its name says).
    pub fn put(&self, integrity: &Integrity, bytes: &[u8]) -> Result<(), DownloadsError> {
        let mut incoming = Incoming::new(integrity.clone(), Some(self));
        incoming.write(bytes);
        match incoming.finish() {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(e),
            Err(_) => Err(DownloadsError::Mismatch {
                expected: integrity.file_name(),
            }),
        }
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
    fn an_incoming_download_is_kept_only_with_its_digest_and_in_pieces_as_it_came() {
        let dir = tempfile::tempdir().unwrap();
        let downloads = Downloads::new(&dir.path().join("downloads"));
        let id = sha512_of(b"node tarball");
        let mut incoming = Incoming::new(id.clone(), Some(&downloads));
        for piece in [&b"node "[..], b"tar", b"ball"] {
            incoming.write(piece);
        }
        assert!(matches!(incoming.finish(), Ok(None)));
        assert_eq!(downloads.get(&id).as_deref(), Some(&b"node tarball"[..]));

        let other = sha512_of(b"other tarball");
        let mut tampered = Incoming::new(other.clone(), Some(&downloads));
        tampered.write(b"other tarbal1");
        let Err(Mismatch { actual }) = tampered.finish() else {
            panic!("tampered bytes pass");
        };
        assert_eq!(actual, sha512_of(b"other tarbal1"));
        assert_eq!(downloads.get(&other), None);
        let names: Vec<_> = std::fs::read_dir(downloads.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [id.file_name()], "no temporary file is left");

        // Without a cache it still checks.
        let mut uncached = Incoming::new(id.clone(), None);
        uncached.write(b"node tarball");
        assert!(matches!(uncached.finish(), Ok(None)));
    }

    #[test]
    fn a_damaged_entry_read_with_a_consumer_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let downloads = Downloads::new(dir.path());
        let id = sha512_of(b"node tarball");
        downloads.put(&id, b"node tarball").unwrap();
        let (len, bytes) = downloads.get_with(&id, <[u8]>::len).unwrap();
        assert_eq!((len, bytes.as_slice()), (12, &b"node tarball"[..]));
        std::fs::write(downloads.path(&id), b"node tarbalL").unwrap();
        let mut consumed = false;
        assert!(downloads.get_with(&id, |_| consumed = true).is_none());
        assert!(consumed, "the consumer ran beside the check");
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
