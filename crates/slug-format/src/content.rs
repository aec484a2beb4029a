//! The machine-wide content cache (`$XDG_CACHE_HOME/slugc/content` by default): what does
//! not depend on the app, keyed by content and shared by every build on the machine.
//!
//! - `parts/`: compressed slug parts ([`PartCache`]);
//! - `downloads/`: verified downloads ([`Downloads`]).
//!
//! Both are bounded together by one size cap: [`ContentCache::gc`] keeps the most recently
//! used entries of either kind that fit.

use crate::downloads::Downloads;
use crate::part_cache::PartCache;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The size cap [`ContentCache::gc`] keeps to when none is given: room for the runtimes and
/// dependency layers of a few dozen apps.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;
/// Temporary files older than this are from a build that died: no build writes one entry
/// for that long.
const STALE_TEMP: Duration = Duration::from_secs(6 * 3600);

pub struct ContentCache {
    pub parts: PartCache,
    pub downloads: Downloads,
}

/// What a garbage collection did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    pub kept_entries: usize,
    pub kept_bytes: u64,
    pub removed_entries: usize,
    pub removed_bytes: u64,
}

/// One entry of either kind, as the collection sees it.
pub(crate) struct Entry {
    pub last_use: SystemTime,
    /// All its files together.
    pub bytes: u64,
    /// Removed in this order (an entry whose first file is gone is a miss, never half an
    /// entry).
    pub files: Vec<PathBuf>,
    /// Breaks ties of `last_use`, so that a collection is the same whatever the listing order.
    pub name: String,
}

impl ContentCache {
    /// The cache rooted at `dir`, made absolute: buildpacks, which run in the app dir, are
    /// handed its paths.
    pub fn new(dir: &Path) -> Self {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Self {
            parts: PartCache::new(&dir.join("parts")),
            downloads: Downloads::new(&dir.join("downloads")),
        }
    }

    /// Removes the least recently used entries of either kind until the rest fit in
    /// `max_bytes`, parts of another compressor, and temporary files of dead builds.
    pub fn gc(&self, max_bytes: u64) -> io::Result<Collected> {
        let mut removed_bytes = 0;
        let mut entries = self.parts.entries(&mut removed_bytes)?;
        entries.extend(self.downloads.entries(&mut removed_bytes)?);
        let mut collected = keep_newest(entries, max_bytes);
        collected.removed_bytes += removed_bytes;
        Ok(collected)
    }
}

/// Keeps the most recently used `entries` while they fit in `max_bytes`; removes the rest.
pub(crate) fn keep_newest(mut entries: Vec<Entry>, max_bytes: u64) -> Collected {
    let mut collected = Collected::default();
    entries.sort_by(|a, b| {
        b.last_use
            .cmp(&a.last_use)
            .then_with(|| a.name.cmp(&b.name))
    });
    for entry in entries {
        if collected.kept_bytes + entry.bytes <= max_bytes {
            collected.kept_bytes += entry.bytes;
            collected.kept_entries += 1;
            continue;
        }
        for file in &entry.files {
            let _ = std::fs::remove_file(file);
        }
        collected.removed_entries += 1;
        collected.removed_bytes += entry.bytes;
    }
    collected
}

/// The files of `dir` (none when it does not exist) as `(path, name, size, mtime)`, after
/// removing the temporary files of dead builds and those `doomed` names (their bytes are
/// added to `removed_bytes`).
pub(crate) fn listing(
    dir: &Path,
    doomed: impl Fn(&str) -> bool,
    removed_bytes: &mut u64,
) -> io::Result<Vec<(PathBuf, String, u64, SystemTime)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    let mut files = Vec::new();
    for item in entries {
        let item = item?;
        let name = item.file_name().to_string_lossy().into_owned();
        let Ok(meta) = item.metadata() else { continue };
        let modified = meta.modified().unwrap_or(now);
        if stale_temp(&name, modified, now) || doomed(&name) {
            if std::fs::remove_file(item.path()).is_ok() {
                *removed_bytes += meta.len();
            }
            continue;
        }
        files.push((item.path(), name, meta.len(), modified));
    }
    Ok(files)
}

/// Whether `name` is a temporary file left by a build that died.
fn stale_temp(name: &str, modified: SystemTime, now: SystemTime) -> bool {
    name.starts_with(".tmp-") && now.duration_since(modified).unwrap_or_default() > STALE_TEMP
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downloads::Integrity;
    use sha2::{Digest, Sha256};
    use std::fs::File;

    #[test]
    fn one_cap_bounds_parts_and_downloads_together() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ContentCache::new(dir.path());
        let body = vec![b'x'; 1000];
        let old = Integrity::Sha256(Sha256::digest(&body).into());
        cache.downloads.put(&old, &body).unwrap();
        let path = cache.downloads.dir().join(old.file_name());
        File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        let mut staged = cache.parts.stage().unwrap();
        std::io::Write::write_all(staged.file(), &body).unwrap();
        let sha = crate::hex(&Sha256::digest(&body));
        cache.parts.commit(staged, "aa", 7, &sha).unwrap();

        // Room for one: the part, used last, stays; the older download goes.
        let c = cache.gc(1500).unwrap();
        assert_eq!((c.kept_entries, c.removed_entries), (1, 1));
        assert!(!path.exists());
        assert!(cache.parts.lookup("aa", 7).is_some());
        assert_eq!(cache.downloads.get(&old), None);
    }
}
