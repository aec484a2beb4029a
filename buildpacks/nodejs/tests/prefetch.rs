//! The npm cache prefetch against the real registry and the real npm: after it, `npm ci
//! --offline` (no network at all) installs the app, so npm finds every packument and tarball
//! it needs where the prefetch put them.

use slugc_nodejs::npmrc::{RegistryConfig, DEFAULT_REGISTRY};
use slugc_nodejs::prefetch;
use slugc_nodejs::registry::Registry;
use std::path::Path;
use std::process::Command;

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn copy_app(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in ["package.json", "package-lock.json", "server.js"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
}

#[test]
fn npm_ci_offline_installs_from_the_prefetched_cache() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/node-express");
    let dir = scratch();
    let app = dir.path().join("app");
    copy_app(&fixture, &app);
    let cache = dir.path().join("npm-cache");
    let registry = Registry::new(RegistryConfig {
        url: DEFAULT_REGISTRY.to_string(),
        token: None,
        own_registry_scopes: Vec::new(),
    });

    let summary = prefetch::npm_cache(&registry, &app, &cache).unwrap();
    // Every one of the 71 locked packages is fetched; the fixture's lockfile has no
    // `resolved` URLs, so each also needs its packument.
    assert_eq!(summary.fetched, 71, "{summary:?}");
    assert_eq!(summary.cached, 0);
    assert_eq!(summary.left_to_npm, 0);
    assert!(summary.bytes > 500_000, "{summary:?}");

    let out = Command::new("npm")
        .args([
            "ci",
            "--offline",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
        ])
        .current_dir(&app)
        .env("npm_config_cache", &cache)
        .env("npm_config_update_notifier", "false")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "npm ci --offline failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(app.join("node_modules/express/package.json").is_file());

    // Again: everything is there, nothing is fetched.
    let again = prefetch::npm_cache(&registry, &app, &cache).unwrap();
    assert_eq!(again.fetched, 0, "{again:?}");
    assert_eq!(again.cached, 71);
    assert_eq!(again.bytes, 0);
}

type Asked = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A registry on 127.0.0.1 that records what it was asked for; `routes` gets its base URL.
fn serve(routes: impl FnOnce(&str) -> Vec<(String, Vec<u8>)>) -> (String, Asked) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let routes = routes(&base);
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            log.lock().unwrap().push(path.clone());
            let body = routes
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, b)| b.clone());
            let (status, body) = match body {
                Some(b) => ("200 OK", b),
                None => ("404 Not Found", Vec::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    (base, asked)
}

fn sri(bytes: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(bytes))
    )
}

/// What the prefetch must not cache or ask for: a tarball that does not match the lockfile
/// (npm then fetches it and reports the mismatch itself), and anything of a scope that the
/// npm config sends to another registry (its name never reaches this one).
#[test]
fn mismatched_tarballs_and_other_registries_scopes_are_left_to_npm() {
    let good = b"good tarball".to_vec();
    let served_bad = b"not what the lockfile locked".to_vec();
    let routes_for = |base: &str| {
        vec![
            (
                "/good".to_string(),
                format!(r#"{{"versions":{{"1.0.0":{{"dist":{{"tarball":"{base}/good/-/good-1.0.0.tgz"}}}}}}}}"#)
                    .into_bytes(),
            ),
            ("/good/-/good-1.0.0.tgz".to_string(), good.clone()),
            (
                "/bad".to_string(),
                format!(r#"{{"versions":{{"2.0.0":{{"dist":{{"tarball":"{base}/bad/-/bad-2.0.0.tgz"}}}}}}}}"#)
                    .into_bytes(),
            ),
            ("/bad/-/bad-2.0.0.tgz".to_string(), served_bad.clone()),
        ]
    };
    let (base, asked) = serve(routes_for);

    let dir = scratch();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("package-lock.json"),
        format!(
            r#"{{"lockfileVersion":3,"packages":{{
              "":{{"name":"app"}},
              "node_modules/good":{{"version":"1.0.0","integrity":"{}"}},
              "node_modules/bad":{{"version":"2.0.0","integrity":"{}"}},
              "node_modules/@private/secret":{{"version":"3.0.0","integrity":"{}"}}
            }}}}"#,
            sri(&good),
            sri(b"the bytes the lockfile locked"),
            sri(b"private")
        ),
    )
    .unwrap();
    let cache = dir.path().join("npm-cache");
    let registry = Registry::new(RegistryConfig {
        url: base.clone(),
        token: None,
        own_registry_scopes: vec!["@private".to_string()],
    });

    let summary = prefetch::npm_cache(&registry, &app, &cache).unwrap();
    assert_eq!(summary.fetched, 1, "{summary:?}");
    assert_eq!(summary.left_to_npm, 2, "{summary:?}");
    let asked = asked.lock().unwrap().clone();
    assert!(
        asked
            .iter()
            .all(|p| !p.contains("private") && !p.contains("secret")),
        "{asked:?}"
    );
    // The good tarball is in npm's cache, by its lockfile digest; the bad one nowhere.
    let content: Vec<Vec<u8>> = walk(&cache.join("_cacache/content-v2"))
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(content.contains(&good), "{content:?}");
    assert!(!content.contains(&served_bad));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
