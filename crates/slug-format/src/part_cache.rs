//! Compressed slug parts by content, shared by every build on the machine
//! (`$XDG_CACHE_HOME/slugc/content/parts` by default).
//!
//! `<dir>/part-<engine>-<sha256 of the part's tar>.gz` holds a part's gzip members and beside
//! it `.sum` the SHA-256 of those bytes and the tar's length. A part's tar depends only on
//! its own tree (`crate::tar`), so Node.js 22.23.5's runtime layer is one entry for every app
//! that uses it: a new app on a machine that built another one pays nothing to compress it.
//!
//! `<engine>` fingerprints the compressor (chunk size, levels, and the bytes it makes of a
//! fixed sample), so a different libdeflate, level or chunk size never serves bytes that a
//! fresh compression would not give: the same input gives the same slug, cache or not. A hit
//! is checked by hashing the members (cheap: they are the compressed size) against `.sum`.
//!
//! Safe under concurrent builds without a lock: entries are written under a temporary name
//! and renamed (the `.gz` first, so a `.sum` never names missing bytes), two builds writing
//! the same entry write the same bytes, and a reader that loses an entry to [`PartCache::gc`]
//! between its two opens only misses. Bounded: each use touches the entry's mtime, and
//! [`PartCache::gc`] removes the least recently used entries above a size cap.

use crate::content::{self, Collected, Entry};
use crate::export::Hashing;
use crate::store::{self, Staged, StoreError};
use crate::{gzip, hex};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Seek};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub struct PartCache {
    dir: PathBuf,
    engine: String,
}

impl PartCache {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            engine: engine_fingerprint(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn name(&self, digest: &str) -> String {
        format!("part-{}-{digest}", self.engine)
    }

    /// Where [`crate::digest_memo`] keeps this compressor's memos.
    pub(crate) fn memo_prefix(&self) -> String {
        format!("memo-{}-", self.engine)
    }

    pub fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{}.gz", self.name(digest)))
    }

    fn sum_path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{}.sum", self.name(digest)))
    }

    /// The cached members for this tar digest and length, if their bytes are those recorded
    /// when they were saved (a damaged entry is removed and ignored).
    pub fn lookup(&self, digest: &str, len: u64) -> Option<io::Result<File>> {
        let path = self.path(digest);
        let sum = std::fs::read_to_string(self.sum_path(digest)).ok()?;
        // One open for the check and the copy: the bytes copied are the bytes checked, even
        // if another build renames the same entry into place or `gc` removes it meanwhile.
        let valid = (|| {
            let (member_sha, tar_len) = sum.trim().split_once(' ')?;
            if tar_len.parse::<u64>().ok()? != len {
                return None;
            }
            let mut file = File::open(&path).ok()?;
            let mut check = Hashing::new(io::sink());
            io::copy(&mut file, &mut check).ok()?;
            (check.finish().0 == member_sha).then_some(file)
        })();
        let Some(mut file) = valid else {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(self.sum_path(digest));
            return None;
        };
        let now = SystemTime::now();
        for p in [&path, &self.sum_path(digest)] {
            // Recency for `gc`; a cache on a read-only disk still serves.
            let _ = File::options()
                .append(true)
                .open(p)
                .and_then(|f| f.set_modified(now));
        }
        Some(file.seek(io::SeekFrom::Start(0)).map(|_| file))
    }

    /// Whether an entry for this tar digest and length is recorded (its bytes are checked
    /// when it is used, by [`PartCache::lookup`]).
    pub fn contains(&self, digest: &str, len: u64) -> bool {
        std::fs::read_to_string(self.sum_path(digest)).is_ok_and(|sum| {
            sum.split_whitespace().nth(1) == Some(len.to_string().as_str())
                && self.path(digest).is_file()
        })
    }

    pub fn stage(&self) -> Result<Staged, StoreError> {
        Staged::new(&self.dir)
    }

    /// Saves the members, then their `.sum` (an entry without one is a miss).
    pub fn commit(
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

    /// Removes the least recently used entries until the rest fit in `max_bytes`, entries of
    /// another compressor (no build of this slugc can use them), and temporary files of dead
    /// builds. [`crate::content::ContentCache::gc`] bounds this together with the downloads.
    pub fn gc(&self, max_bytes: u64) -> io::Result<Collected> {
        let mut removed_bytes = 0;
        let entries = self.entries(&mut removed_bytes)?;
        let mut collected = content::keep_newest(entries, max_bytes);
        collected.removed_bytes += removed_bytes;
        Ok(collected)
    }

    /// Every entry of this compressor; removes the others' entries and temporary files of
    /// dead builds on the way (their bytes are added to `removed_bytes`).
    pub(crate) fn entries(&self, removed_bytes: &mut u64) -> io::Result<Vec<Entry>> {
        let ours = format!("part-{}-", self.engine);
        let our_memos = self.memo_prefix();
        let foreign = |name: &str| {
            (name.starts_with("part-") && !name.starts_with(&ours))
                || (name.starts_with("memo-") && !name.starts_with(&our_memos))
        };
        let files = content::listing(&self.dir, foreign, removed_bytes)?;
        let (memos, files): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|(_, name, _, _)| name.starts_with(&our_memos));
        // A memo names a part by its key (`digest len key`); it goes with it (memos are a
        // few bytes: not counted).
        for (path, _, bytes, _) in memos {
            let part_left = std::fs::read_to_string(&path).is_ok_and(|text| {
                text.split_whitespace()
                    .nth(2)
                    .is_some_and(|key| crate::is_hex(key) && self.path(key).is_file())
            });
            if !part_left && std::fs::remove_file(&path).is_ok() {
                *removed_bytes += bytes;
            }
        }
        Ok(files
            .into_iter()
            .filter_map(|(_, name, bytes, last_use)| {
                let digest = name.strip_prefix(&ours)?.strip_suffix(".gz")?;
                let sum = std::fs::metadata(self.sum_path(digest)).map_or(0, |m| m.len());
                Some(Entry {
                    last_use,
                    bytes: bytes + sum,
                    // The .sum first: without it the entry is a miss.
                    files: vec![self.sum_path(digest), self.path(digest)],
                    name: digest.to_string(),
                })
            })
            .collect())
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
            sha.update(format!("chunk {} level {}\n", gzip::CHUNK, gzip::LEVEL).as_bytes());
            sha.update(&bytes);
            hex(&sha.finalize())[..12].to_string()
        }
        Err(_) => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn put(cache: &PartCache, digest: &str, bytes: &[u8]) {
        let mut staged = cache.stage().unwrap();
        staged.file().write_all(bytes).unwrap();
        let sha = hex(&Sha256::digest(bytes));
        cache.commit(staged, digest, 7, &sha).unwrap();
    }

    fn age(cache: &PartCache, digest: &str, secs_ago: u64) {
        let t = SystemTime::now() - Duration::from_secs(secs_ago);
        for p in [cache.path(digest), cache.sum_path(digest)] {
            File::options()
                .append(true)
                .open(p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
    }

    #[test]
    fn a_hit_is_verified_and_a_damaged_entry_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PartCache::new(dir.path());
        put(&cache, "aa", b"members");
        assert!(cache.lookup("aa", 7).is_some());
        assert!(cache.lookup("aa", 8).is_none(), "another length is a miss");
        put(&cache, "bb", b"members");
        std::fs::write(cache.path("bb"), b"changed").unwrap();
        assert!(cache.lookup("bb", 7).is_none());
        assert!(!cache.path("bb").exists());
    }

    #[test]
    fn gc_keeps_the_most_recently_used_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PartCache::new(dir.path());
        let body = vec![b'x'; 1000];
        for (d, ago) in [("old", 300), ("mid", 200), ("new", 100)] {
            put(&cache, d, &body);
            age(&cache, d, ago);
        }
        // Using "old" makes it the most recent.
        assert!(cache.lookup("old", 7).is_some());
        let entry = 1000 + std::fs::metadata(cache.sum_path("old")).unwrap().len();
        let c = cache.gc(2 * entry).unwrap();
        assert_eq!((c.kept_entries, c.removed_entries), (2, 1));
        assert!(cache.lookup("old", 7).is_some());
        assert!(cache.lookup("new", 7).is_some());
        assert!(!cache.path("mid").exists() && !cache.sum_path("mid").exists());
    }

    #[test]
    fn gc_removes_other_compressors_entries_and_dead_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PartCache::new(dir.path());
        std::fs::write(dir.path().join("part-000000000000-aa.gz"), b"x").unwrap();
        let temp = dir.path().join(".tmp-dead");
        std::fs::write(&temp, b"x").unwrap();
        File::options()
            .append(true)
            .open(&temp)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(7 * 3600))
            .unwrap();
        let live_temp = dir.path().join(".tmp-live");
        std::fs::write(&live_temp, b"x").unwrap();
        cache.gc(u64::MAX).unwrap();
        assert!(!dir.path().join("part-000000000000-aa.gz").exists());
        assert!(!temp.exists());
        assert!(live_temp.exists(), "a build may still be writing it");
    }
}
