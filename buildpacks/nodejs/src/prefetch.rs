//! Filling npm's cache from `package-lock.json` while Node.js downloads, so that `npm ci`
//! (which can only start once Node.js is verified) finds every packument and tarball on disk.
//!
//! `npm ci` still does the install, with its own rules; this only moves its downloads earlier
//! and onto threads of their own. The cache is npm's `cacache` layout
//! (<https://github.com/npm/cacache>, stable since npm 5): content files named by their SRI
//! digest under `_cacache/content-v2/<algo>/`, and index buckets under
//! `_cacache/index-v5/`, named by the SHA-256 of the key, each line
//! `\n<sha1 of the entry JSON>\t<entry JSON>`. The keys and request headers are the ones
//! npm's HTTP layer (`make-fetch-happen`) writes, so that its `--prefer-offline` lookup
//! matches them. Anything this gets wrong costs only time: npm re-checks every file against
//! its integrity, and fetches whatever it does not find.

use crate::registry::{Registry, PACKUMENT_ACCEPT};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

const KEY_PREFIX: &str = "make-fetch-happen:request-cache:";
/// Packages fetched at once: a lockfile is many small files, so round trips dominate. Each
/// may also fetch its packument beside its tarball, so at most twice as many connections
/// are open: about npm's own limit (`maxsockets`, 15 per registry).
const WORKERS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PrefetchError {
    #[error("cannot read {path}: {source}")]
    Lockfile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write npm's cache at {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What was done, for the log.
#[derive(Debug, Default)]
pub struct Summary {
    /// Tarballs written into the cache.
    pub fetched: usize,
    /// Tarballs the cache already had.
    pub cached: usize,
    /// Packages left to npm: not from the registry, no sha512 integrity, or a failed fetch.
    pub left_to_npm: usize,
    /// Bytes downloaded (packuments and tarballs).
    pub bytes: u64,
    /// How long it took.
    pub elapsed: std::time::Duration,
}

#[derive(Debug, Deserialize)]
struct Lockfile {
    #[serde(rename = "lockfileVersion", default)]
    version: u32,
    #[serde(default)]
    packages: BTreeMap<String, LockedPackage>,
}

#[derive(Debug, Deserialize)]
struct LockedPackage {
    /// The real name, when the path's name is an alias.
    name: Option<String>,
    version: Option<String>,
    resolved: Option<String>,
    integrity: Option<String>,
    #[serde(default)]
    link: bool,
    #[serde(rename = "inBundle", default)]
    in_bundle: bool,
}

/// One package version to put in the cache.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Wanted {
    name: String,
    version: String,
    /// The lockfile's `resolved`; without it npm reads the tarball URL from the packument.
    resolved: Option<String>,
    integrity: String,
}

/// Everything in the lockfile npm would fetch from `registry_url`, one entry per
/// name@version; `None` when the lockfile is not one npm 7+ reads this way (v1). Packages of
/// a scope for which `elsewhere` is true go to another registry: they are left to npm.
fn wanted(
    lockfile: &Lockfile,
    registry_url: &str,
    elsewhere: &dyn Fn(&str) -> bool,
) -> Option<(Vec<Wanted>, usize)> {
    if lockfile.version < 2 {
        return None;
    }
    let mut out = Vec::new();
    let mut left = 0;
    for (path, package) in &lockfile.packages {
        // The root, workspaces and links are the app's own files; bundled ones come inside
        // their parent's tarball.
        if path.is_empty() || package.link || package.in_bundle || !path.contains("node_modules/") {
            continue;
        }
        let name = package.name.clone().or_else(|| {
            path.rsplit_once("node_modules/")
                .map(|(_, name)| name.to_string())
        });
        let from_registry = package
            .resolved
            .as_deref()
            .is_none_or(|r| r.starts_with(&format!("{registry_url}/")));
        let scope_elsewhere = |name: &str| {
            name.split_once('/')
                .is_some_and(|(scope, _)| scope.starts_with('@') && elsewhere(scope))
        };
        match (name, &package.version, &package.integrity) {
            (Some(name), Some(version), Some(integrity))
                if from_registry && integrity.starts_with("sha512-") && !scope_elsewhere(&name) =>
            {
                out.push(Wanted {
                    name,
                    version: version.clone(),
                    resolved: package.resolved.clone(),
                    integrity: integrity.clone(),
                })
            }
            _ => left += 1,
        }
    }
    out.sort();
    out.dedup();
    Some((out, left))
}

/// Put every registry package of the app's `package-lock.json` into npm's cache at
/// `cache_dir` (npm's `cache` setting; the files go in its `_cacache`), skipping what is
/// there already. Only a lockfile that cannot be read or a cache that cannot be written is an
/// error; a package that cannot be fetched is left for npm, which reports it its own way.
pub fn npm_cache(
    registry: &Registry,
    app_dir: &Path,
    cache_dir: &Path,
) -> Result<Summary, PrefetchError> {
    let started = std::time::Instant::now();
    let path = app_dir.join("package-lock.json");
    let text = std::fs::read(&path).map_err(|source| PrefetchError::Lockfile {
        path: path.clone(),
        source,
    })?;
    // An unreadable lockfile is npm's to report, with its own message.
    let Ok(lockfile) = serde_json::from_slice::<Lockfile>(&text) else {
        return Ok(Summary::default());
    };
    // Credentials in the registry URL would end up in the cache's index: left to npm.
    if registry.url() != registry.display_url() {
        return Ok(Summary::default());
    }
    let Some((wanted, left)) = wanted(&lockfile, registry.url(), &|scope| {
        registry.scope_elsewhere(scope)
    }) else {
        return Ok(Summary::default());
    };
    let cache = Cacache {
        root: cache_dir.join("_cacache"),
    };
    // One job per name: its packument (when a version lacks `resolved`) is fetched once.
    let mut by_name: BTreeMap<&str, Vec<&Wanted>> = BTreeMap::new();
    for w in &wanted {
        by_name.entry(&w.name).or_default().push(w);
    }
    let jobs: Vec<(&str, Vec<&Wanted>)> = by_name.into_iter().collect();
    let next = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let tally = Mutex::new(Summary {
        left_to_npm: left,
        ..Summary::default()
    });
    let first_error: Mutex<Option<PrefetchError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..WORKERS.min(jobs.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((name, versions)) = jobs.get(i) else {
                    break;
                };
                match fetch_package(registry, &cache, name, versions, &bytes) {
                    Ok(outcome) => {
                        if let Ok(mut t) = tally.lock() {
                            t.fetched += outcome.fetched;
                            t.cached += outcome.cached;
                            t.left_to_npm += outcome.left_to_npm;
                        }
                    }
                    Err(e) => {
                        if let Ok(mut first) = first_error.lock() {
                            first.get_or_insert(e);
                        }
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let mut summary = tally.into_inner().unwrap_or_default();
    summary.bytes = bytes.into_inner();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// One name's versions: the packument if a version needs it, and each tarball. The
/// tarballs are first fetched at their usual URL beside the packument (one round trip instead
/// of two); a packument that names another URL wins.
fn fetch_package(
    registry: &Registry,
    cache: &Cacache,
    name: &str,
    versions: &[&Wanted],
    bytes: &AtomicU64,
) -> Result<Summary, PrefetchError> {
    let mut outcome = Summary::default();
    let mut pending = Vec::new();
    for w in versions {
        // A warm rebuild: the cache has the usual URL, so there is nothing to fetch, not
        // even the packument.
        let usual = w
            .resolved
            .clone()
            .unwrap_or_else(|| conventional_tarball(registry.url(), &w.name, &w.version));
        if cache.has(&usual) {
            outcome.cached += 1;
        } else {
            pending.push((*w, usual));
        }
    }
    if pending.is_empty() {
        return Ok(outcome);
    }
    let packument_url = registry.packument_url(name);
    let needs_packument = pending.iter().any(|(w, _)| w.resolved.is_none());
    let (doc, guessed) = std::thread::scope(|scope| {
        let doc = needs_packument
            .then(|| scope.spawn(|| packument_doc(registry, cache, &packument_url, bytes)));
        let guessed: Vec<Option<Vec<u8>>> = pending
            .iter()
            .map(|(_, usual)| registry.fetch(usual, None).ok())
            .collect();
        (doc.and_then(|d| d.join().ok().flatten()), guessed)
    });
    for ((w, usual), guessed) in pending.into_iter().zip(guessed) {
        let url = match &w.resolved {
            Some(url) => Some(url.clone()),
            None => doc
                .as_ref()
                .and_then(|d| d.versions.get(&w.version))
                .map(|v| v.dist.tarball.clone()),
        };
        let Some(url) = url else {
            outcome.left_to_npm += 1;
            continue;
        };
        if url != usual && cache.has(&url) {
            outcome.cached += 1;
            continue;
        }
        let body = match guessed.filter(|_| url == usual) {
            Some(body) => Some(body),
            None => registry.fetch(&url, None).ok(),
        };
        // npm fetches what is missing again, and reports a failure in its own words; a
        // tarball that does not match the lockfile is not cached, so npm reports that too.
        match body {
            Some(body) if sri_sha512(&body) == w.integrity => {
                bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                cache.put(&url, &body, Some(&w.integrity), false)?;
                outcome.fetched += 1;
            }
            _ => outcome.left_to_npm += 1,
        }
    }
    Ok(outcome)
}

/// `<registry>/<name>/-/<name without scope>-<version>.tgz`, where npm's registry keeps it.
fn conventional_tarball(registry_url: &str, name: &str, version: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    format!("{registry_url}/{name}/-/{base}-{version}.tgz")
}

/// The one thing read from a packument: each version's tarball URL (the rest is skipped
/// unparsed).
#[derive(Deserialize)]
struct TarballUrls {
    #[serde(default)]
    versions: std::collections::HashMap<String, VersionDist>,
}

#[derive(Deserialize)]
struct VersionDist {
    dist: TarballUrl,
}

#[derive(Deserialize)]
struct TarballUrl {
    tarball: String,
}

/// A packument from the cache or the registry (then cached); `None` leaves the name to npm.
fn packument_doc(
    registry: &Registry,
    cache: &Cacache,
    url: &str,
    bytes: &AtomicU64,
) -> Option<TarballUrls> {
    let body = match cache.read(url) {
        Some(body) => body,
        None => {
            let body = registry.fetch(url, Some(PACKUMENT_ACCEPT)).ok()?;
            bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            cache.put(url, &body, None, true).ok()?;
            body
        }
    };
    serde_json::from_slice(&body).ok()
}

fn sri_sha512(bytes: &[u8]) -> String {
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha512::digest(bytes))
    )
}

/// The part of npm's `cacache` this needs: look up a key, add an entry.
struct Cacache {
    root: PathBuf,
}

/// One index line's JSON, field for field as `make-fetch-happen` writes it.
#[derive(Serialize, Deserialize)]
struct IndexEntry {
    key: String,
    integrity: String,
    time: u64,
    size: u64,
    metadata: EntryMetadata,
}

#[derive(Serialize, Deserialize)]
struct EntryMetadata {
    time: u64,
    url: String,
    #[serde(rename = "reqHeaders")]
    req_headers: BTreeMap<String, String>,
    #[serde(rename = "resHeaders")]
    res_headers: BTreeMap<String, String>,
    options: EntryOptions,
}

#[derive(Serialize, Deserialize)]
struct EntryOptions {
    compress: bool,
}

impl Cacache {
    fn bucket(&self, key: &str) -> PathBuf {
        let hex = hex(&Sha256::digest(key.as_bytes()));
        self.root
            .join("index-v5")
            .join(&hex[..2])
            .join(&hex[2..4])
            .join(&hex[4..])
    }

    fn content(&self, integrity: &str) -> Option<PathBuf> {
        let digest = base64::engine::general_purpose::STANDARD
            .decode(integrity.strip_prefix("sha512-")?)
            .ok()?;
        let hex = hex(&digest);
        Some(
            self.root
                .join("content-v2/sha512")
                .join(&hex[..2])
                .join(&hex[2..4])
                .join(&hex[4..]),
        )
    }

    /// Whether the index has an entry for `url` (npm checks its content when it reads it).
    fn has(&self, url: &str) -> bool {
        self.bucket(&format!("{KEY_PREFIX}{url}")).is_file()
    }

    /// The cached body for `url`, when the index points at a content file that is there.
    fn read(&self, url: &str) -> Option<Vec<u8>> {
        let text = std::fs::read_to_string(self.bucket(&format!("{KEY_PREFIX}{url}"))).ok()?;
        let entry = text
            .lines()
            .rev()
            .filter_map(|line| line.split_once('\t'))
            .find_map(|(_, json)| serde_json::from_str::<IndexEntry>(json).ok());
        entry
            .and_then(|e| self.content(&e.integrity))
            .and_then(|path| std::fs::read(path).ok())
    }

    /// Add `body` as the answer to a GET of `url` (a packument when `packument`).
    fn put(
        &self,
        url: &str,
        body: &[u8],
        integrity: Option<&str>,
        packument: bool,
    ) -> Result<(), PrefetchError> {
        let integrity = integrity
            .map(str::to_string)
            .unwrap_or_else(|| sri_sha512(body));
        let Some(content) = self.content(&integrity) else {
            return Ok(());
        };
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PrefetchError::Cache { path, source }
        };
        if !content.is_file() {
            let dir = content.parent().unwrap_or(&self.root);
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            // Written aside and renamed, so npm never sees half a file; readable by all, as
            // npm writes its own (a temp file is private by default).
            let mut tmp = tempfile::Builder::new()
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .tempfile_in(dir)
                .map_err(io(dir))?;
            tmp.write_all(body).map_err(io(tmp.path()))?;
            tmp.persist(&content).map_err(|e| PrefetchError::Cache {
                path: content.clone(),
                source: e.error,
            })?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let (req_headers, content_type) = if packument {
            (
                BTreeMap::from([("accept".to_string(), PACKUMENT_ACCEPT.to_string())]),
                "application/json",
            )
        } else {
            (BTreeMap::new(), "application/octet-stream")
        };
        let entry = IndexEntry {
            key: format!("{KEY_PREFIX}{url}"),
            integrity,
            time: now,
            size: body.len() as u64,
            metadata: EntryMetadata {
                time: now,
                url: url.to_string(),
                req_headers,
                res_headers: BTreeMap::from([(
                    "content-type".to_string(),
                    content_type.to_string(),
                )]),
                options: EntryOptions { compress: true },
            },
        };
        let json = serde_json::to_string(&entry).map_err(|e| PrefetchError::Cache {
            path: self.root.clone(),
            source: std::io::Error::other(e),
        })?;
        let line = format!("\n{}\t{json}", hex(&sha1::Sha1::digest(json.as_bytes())));
        let bucket = self.bucket(&entry.key);
        let dir = bucket.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&bucket)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(io(&bucket))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket of a key, as npm 11 wrote it on this machine.
    #[test]
    fn index_bucket_is_npms() {
        let cache = Cacache {
            root: PathBuf::from("/c/_cacache"),
        };
        assert_eq!(
            cache.bucket("make-fetch-happen:request-cache:https://registry.npmjs.org/express/-/express-4.22.3.tgz"),
            Path::new("/c/_cacache/index-v5/d9/dd/c7116948758b248499537798df77e1945bc285206aabfe0686ee047102c6")
        );
    }

    #[test]
    fn lockfile_entries() {
        let lock: Lockfile = serde_json::from_str(
            r#"{"lockfileVersion":3,"packages":{
              "":{"name":"app"},
              "node_modules/a":{"version":"1.0.0","integrity":"sha512-AA=="},
              "node_modules/b/node_modules/a":{"version":"1.0.0","integrity":"sha512-AA=="},
              "node_modules/@s/c":{"version":"2.0.0","resolved":"https://r.example/@s/c/-/c-2.0.0.tgz","integrity":"sha512-CC=="},
              "node_modules/alias":{"name":"real","version":"3.0.0","integrity":"sha512-DD=="},
              "node_modules/git":{"version":"1.0.0","resolved":"git+ssh://git@github.com/x/y.git#abc"},
              "node_modules/other":{"version":"1.0.0","resolved":"https://other.example/o.tgz","integrity":"sha512-EE=="},
              "node_modules/old":{"version":"1.0.0","integrity":"sha1-FF=="},
              "node_modules/b":{"version":"1.0.0","integrity":"sha512-BB=="},
              "node_modules/b/node_modules/inner":{"version":"1.0.0","inBundle":true},
              "packages/ws":{"name":"ws"},
              "node_modules/ws":{"resolved":"packages/ws","link":true},
              "node_modules/@private/p":{"version":"1.0.0","integrity":"sha512-GG=="}
            }}"#,
        )
        .unwrap();
        let (wanted, left) = wanted(&lock, "https://r.example", &|s| s == "@private").unwrap();
        let names: Vec<String> = wanted
            .iter()
            .map(|w| format!("{}@{}", w.name, w.version))
            .collect();
        assert_eq!(names, ["@s/c@2.0.0", "a@1.0.0", "b@1.0.0", "real@3.0.0"]);
        // git, another host, sha1 only, a scope with its own registry.
        assert_eq!(left, 4);
        let v1: Lockfile = serde_json::from_str(r#"{"lockfileVersion":1}"#).unwrap();
        assert!(super::wanted(&v1, "https://r.example", &|_| false).is_none());
    }

    #[test]
    fn put_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cacache {
            root: dir.path().join("_cacache"),
        };
        let url = "https://r.example/a";
        assert!(!cache.has(url));
        cache.put(url, b"{}", None, true).unwrap();
        assert!(cache.has(url));
        assert_eq!(cache.read(url).as_deref(), Some(&b"{}"[..]));
        let line = std::fs::read_to_string(cache.bucket(&format!("{KEY_PREFIX}{url}"))).unwrap();
        let (hash, json) = line.trim_start_matches('\n').split_once('\t').unwrap();
        assert_eq!(hash, hex(&sha1::Sha1::digest(json.as_bytes())));
        assert!(json.contains(r#""reqHeaders":{"accept":"application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"}"#), "{json}");
    }
}
