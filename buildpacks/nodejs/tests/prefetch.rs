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
