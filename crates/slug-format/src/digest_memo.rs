//! Tar digests remembered by a stat fingerprint of the part's tree, so that neither the
//! export nor early compression reads and hashes a big part that has not changed (a
//! language runtime: Node.js is one 125 MB file) only to find it in the [`PartCache`].
//!
//! `<part cache>/memo-<engine>-<fingerprint>` holds `<tar digest> <length>`. Only parts of
//! at most [`MAX_ENTRIES`] files and directories are remembered: for a tree of many small
//! files the stat walk costs about what hashing its bytes does, so it would buy nothing.
//!
//! Why a fingerprint can stand for the bytes: it covers every entry's inode, size, mode,
//! mtime and ctime ([`Archiver::fingerprint`]), and the kernel sets an inode's ctime on every
//! write, `chmod`, link or rename, to the current time; no call sets it back. One gap is
//! timestamp granularity: a write within the same clock tick as the entry's last change can
//! leave its ctime as it was. So a fingerprint is remembered only when its walk started at
//! least [`SETTLE`] after the newest ctime in it (longer than a tick of any Linux clock), and
//! the tree is hashed after that walk: a write after the walk then shows as a later ctime.
//! Early compression waits out those 20 ms for the runtime it has just unpacked; the export
//! does not wait, and hashes a tree that new (the app's, a layer written last) every time.
//! What this cannot see is the system clock set back between two builds, or a filesystem
//! that does not keep ctimes (none that a build dir lives on).

use crate::part_cache::PartCache;
use crate::tar::{Archiver, Fingerprint};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parts with more entries than this are hashed every time.
pub const MAX_ENTRIES: usize = 256;
/// How long after its newest ctime a tree may be fingerprinted for remembering.
pub const SETTLE: Duration = Duration::from_millis(20);

/// What is known of a part before it is hashed.
pub enum Recall {
    /// Its tar's hex digest and length, remembered from a walk that saw the same tree.
    Known { digest: String, len: u64 },
    /// Hash it; then [`remember`] the fingerprint, if there is one.
    Unknown(Option<Fingerprint>),
}

/// Whether [`recall`] may wait for a tree changed less than [`SETTLE`] ago, so as to be able
/// to remember it: early compression, which runs beside the install, waits; the export, on
/// the build's path, does not (such a tree is then hashed and not remembered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Wait,
    NoWait,
}

/// Looks part `index` up by its fingerprint. Looking up needs no settled walk: a remembered
/// fingerprint is a settled one, so any write after it shows as a later ctime. Remembering
/// does: the [`Recall::Unknown`] fingerprint is one whose walk started at least [`SETTLE`]
/// after its newest ctime.
pub fn recall(cache: &PartCache, archiver: &Archiver, index: usize, settle: Settle) -> Recall {
    let Some((fingerprint, age)) = walk(archiver, index) else {
        return Recall::Unknown(None);
    };
    if let Some((digest, len)) = known(cache, &fingerprint) {
        return Recall::Known { digest, len };
    }
    match age {
        Some(age) if age >= SETTLE => Recall::Unknown(Some(fingerprint)),
        Some(age) if settle == Settle::Wait => {
            std::thread::sleep(SETTLE - age);
            match walk(archiver, index) {
                Some((again, Some(age))) if age >= SETTLE => Recall::Unknown(Some(again)),
                _ => Recall::Unknown(None),
            }
        }
        _ => Recall::Unknown(None),
    }
}

/// The digest and length remembered for `fingerprint`, while the part itself is still
/// cached (a memo is no use without it).
fn known(cache: &PartCache, fingerprint: &Fingerprint) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(path(cache, fingerprint)).ok()?;
    let mut fields = text.split_whitespace();
    let (digest, len, key) = (fields.next()?, fields.next()?, fields.next()?);
    let (digest, len) = (digest.to_string(), len.parse().ok()?);
    (crate::is_hex(&digest) && crate::is_hex(key) && cache.contains(key, len))
        .then_some((digest, len))
}

/// Remembers the digest and length of the tar hashed after `fingerprint`'s walk, and the
/// part cache's key for it (the digest, or for a part with reused blocks what it also
/// depends on): the memo holds while that entry does. Best effort: a memo that cannot be
/// written is a miss next time.
pub fn remember(cache: &PartCache, fingerprint: &Fingerprint, digest: &str, len: u64, key: &str) {
    let target = path(cache, fingerprint);
    // Early compression may come first on a new machine: the dir may not be there yet.
    let written = std::fs::create_dir_all(cache.dir())
        .and_then(|()| {
            tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(cache.dir())
        })
        .and_then(|mut temp| {
            temp.write_all(format!("{digest} {len} {key}\n").as_bytes())?;
            // Not synced: a torn memo does not parse, and is a miss.
            temp.persist(&target).map_err(|e| e.error)
        });
    drop(written);
}

fn path(cache: &PartCache, fingerprint: &Fingerprint) -> PathBuf {
    cache
        .dir()
        .join(format!("{}{}", cache.memo_prefix(), fingerprint.digest))
}

/// Part `index`'s fingerprint, if it can have one, and how long after its newest ctime the
/// walk started (`None`: a ctime in the future, the clock was set back; never remembered).
fn walk(archiver: &Archiver, index: usize) -> Option<(Fingerprint, Option<Duration>)> {
    let started = SystemTime::now();
    let fingerprint = archiver.fingerprint(index, MAX_ENTRIES)?;
    let (secs, nanos) = fingerprint.newest_ctime;
    let newest = UNIX_EPOCH
        + Duration::new(
            u64::try_from(secs).unwrap_or(0),
            u32::try_from(nanos).unwrap_or(0),
        );
    let age = started.duration_since(newest).ok();
    Some((fingerprint, age))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::Part;
    use std::io;

    fn digest_of(archiver: &Archiver) -> (String, u64) {
        let mut hashing = crate::export::Hashing::new(io::sink());
        archiver.write_part(0, &mut hashing).unwrap();
        hashing.finish()
    }

    fn cache_holding(dir: &std::path::Path, digest: &str, len: u64) -> PartCache {
        let cache = PartCache::new(&dir.join("parts"));
        let mut staged = cache.stage().unwrap();
        staged.file().write_all(b"members").unwrap();
        cache.commit(staged, digest, len, "00").unwrap();
        cache
    }

    #[test]
    fn a_remembered_part_is_known_until_anything_in_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("node");
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::write(tree.join("bin/node"), b"an ELF binary").unwrap();
        std::fs::write(tree.join("LICENSE"), b"MIT").unwrap();
        let parts = [Part::new(&tree, "./app/.layers/slugc_nodejs/node")];
        let archiver = Archiver::new(&parts, 0).unwrap();
        let (digest, len) = digest_of(&archiver);
        // Early compression remembers before the part cache's dir exists.
        let cache = PartCache::new(&dir.path().join("parts"));
        // Just written: the export, which does not wait, gets nothing to remember.
        assert!(matches!(
            recall(&cache, &archiver, 0, Settle::NoWait),
            Recall::Unknown(None)
        ));
        let Recall::Unknown(Some(fingerprint)) = recall(&cache, &archiver, 0, Settle::Wait) else {
            panic!("a tree never remembered is unknown, with a fingerprint to remember");
        };
        remember(&cache, &fingerprint, &digest, len, &digest);
        let cache = cache_holding(dir.path(), &digest, len);
        for settle in [Settle::NoWait, Settle::Wait] {
            assert!(matches!(
                recall(&cache, &archiver, 0, settle),
                Recall::Known { digest: ref d, len: l } if *d == digest && l == len
            ));
        }

        // Same length, other bytes: the ctime shows it.
        std::fs::write(tree.join("bin/node"), b"an ELF binarY").unwrap();
        assert!(matches!(
            recall(&cache, &archiver, 0, Settle::NoWait),
            Recall::Unknown(None)
        ));
        assert!(matches!(
            recall(&cache, &archiver, 0, Settle::Wait),
            Recall::Unknown(Some(_))
        ));
        std::fs::write(tree.join("bin/node"), b"an ELF binary").unwrap();
        let Recall::Unknown(Some(again)) = recall(&cache, &archiver, 0, Settle::Wait) else {
            panic!("rewritten with the old bytes, it is another tree by its stat data");
        };
        remember(&cache, &again, &digest, len, &digest);
        assert!(matches!(
            recall(&cache, &archiver, 0, Settle::Wait),
            Recall::Known { .. }
        ));

        // A mode, a new file: unknown.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tree.join("LICENSE"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert!(matches!(
            recall(&cache, &archiver, 0, Settle::Wait),
            Recall::Unknown(Some(_))
        ));
        std::fs::write(tree.join("README"), b"").unwrap();
        assert!(matches!(
            recall(&cache, &archiver, 0, Settle::Wait),
            Recall::Unknown(Some(_))
        ));

        // Another mtime for the tar is another tar.
        let other_mtime = Archiver::new(&parts, 1).unwrap();
        assert!(matches!(
            recall(&cache, &other_mtime, 0, Settle::Wait),
            Recall::Unknown(Some(_))
        ));
    }

    #[test]
    fn big_trees_symlinks_and_uncached_parts_are_never_known() {
        let dir = tempfile::tempdir().unwrap();
        let many = dir.path().join("many");
        std::fs::create_dir(&many).unwrap();
        for i in 0..=MAX_ENTRIES {
            std::fs::write(many.join(i.to_string()), b"x").unwrap();
        }
        let parts = [Part::new(&many, "./app")];
        let archiver = Archiver::new(&parts, 0).unwrap();
        let (digest, len) = digest_of(&archiver);
        let cache = cache_holding(dir.path(), &digest, len);
        assert!(matches!(
            recall(&cache, &archiver, 0, Settle::Wait),
            Recall::Unknown(None)
        ));

        let linked = dir.path().join("linked");
        std::fs::create_dir(&linked).unwrap();
        std::os::unix::fs::symlink("elsewhere", linked.join("link")).unwrap();
        let parts = [Part::new(&linked, "./app")];
        let archiver = Archiver::new(&parts, 0).unwrap();
        assert!(matches!(
            recall(&cache, &archiver, 0, Settle::Wait),
            Recall::Unknown(None)
        ));

        // Remembered, but the part is not in the cache (any more): unknown.
        let small = dir.path().join("small");
        std::fs::create_dir(&small).unwrap();
        std::fs::write(small.join("a"), b"a").unwrap();
        let parts = [Part::new(&small, "./app")];
        let archiver = Archiver::new(&parts, 0).unwrap();
        let Recall::Unknown(Some(fingerprint)) = recall(&cache, &archiver, 0, Settle::Wait) else {
            panic!("small trees get a fingerprint");
        };
        remember(&cache, &fingerprint, &"ab".repeat(32), 7, &"ab".repeat(32));
        assert!(matches!(
            recall(&cache, &archiver, 0, Settle::Wait),
            Recall::Unknown(Some(_))
        ));
    }
}
