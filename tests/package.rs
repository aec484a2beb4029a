//! `slug buildpacks package`: the written dirs are CNB buildpacks that a platform (`pack`'s
//! lifecycle, or `slug build --buildpack DIR`) runs exactly like the built-ins.

mod support;

use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

const BUILTINS: [(&str, &str); 3] = [
    ("slugc/python", "slugc_python"),
    ("slugc/nodejs", "slugc_nodejs"),
    ("slugc/procfile", "slugc_procfile"),
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn package_into(out: &Path) {
    let o = run(slug_bin()
        .args(["buildpacks", "package", "--output"])
        .arg(out));
    assert!(o.status.success(), "{}", stderr(&o));
    for (id, dir) in BUILTINS {
        assert!(
            stdout(&o).contains(&format!("{id} ")),
            "{id} not listed: {}",
            stdout(&o)
        );
        assert!(out.join(dir).is_dir());
    }
}

#[test]
fn packaged_dirs_are_cnb_buildpacks_with_package_and_builder_examples() {
    let dir = scratch("package");
    let out = dir.path().join("cnb");
    package_into(&out);
    let slug_digest = Sha256::digest(std::fs::read(env!("CARGO_BIN_EXE_slug")).unwrap());
    for (id, name) in BUILTINS {
        let bp = out.join(name);
        let descriptor: toml::Value =
            toml::from_str(&std::fs::read_to_string(bp.join("buildpack.toml")).unwrap()).unwrap();
        assert_eq!(descriptor["api"].as_str(), Some("0.10"));
        assert_eq!(descriptor["buildpack"]["id"].as_str(), Some(id));
        // bin/build is the slug binary itself (a copy, so the dir stands alone)...
        let build = bp.join("bin/build");
        let meta = std::fs::symlink_metadata(&build).unwrap();
        assert!(meta.file_type().is_file(), "{build:?} must be a file");
        assert_ne!(meta.permissions().mode() & 0o111, 0, "{build:?} executable");
        assert_eq!(Sha256::digest(std::fs::read(&build).unwrap()), slug_digest);
        // ... and bin/detect points at it.
        assert_eq!(
            std::fs::read_link(bp.join("bin/detect")).unwrap(),
            Path::new("build")
        );
        let package: toml::Value =
            toml::from_str(&std::fs::read_to_string(bp.join("package.toml")).unwrap()).unwrap();
        assert_eq!(package["buildpack"]["uri"].as_str(), Some("."));
    }

    let builder: toml::Value =
        toml::from_str(&std::fs::read_to_string(out.join("builder.toml")).unwrap()).unwrap();
    let listed: Vec<(&str, &str)> = builder["buildpacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["id"].as_str().unwrap(), b["uri"].as_str().unwrap()))
        .collect();
    assert_eq!(listed.len(), 3);
    for (id, uri) in &listed {
        assert!(
            out.join(uri).join("buildpack.toml").is_file(),
            "{id}: {uri}"
        );
    }
    let groups = builder["order"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    for group in groups {
        for entry in group["group"].as_array().unwrap() {
            let id = entry["id"].as_str().unwrap();
            assert!(
                listed.iter().any(|(l, _)| *l == id),
                "{id} not in buildpacks"
            );
        }
    }
    assert_eq!(
        groups[0]["group"][0]["id"].as_str(),
        Some("slugc/python"),
        "the engine's default order"
    );
    assert!(builder["build"]["image"].is_str());

    // Packaging again over the same dir works (pack users re-run it after upgrading slug).
    package_into(&out);

    // Only some, by id; an unknown id is a usage error naming it.
    let some = dir.path().join("some");
    let o = run(slug_bin()
        .args(["buildpacks", "package", "--output"])
        .arg(&some)
        .arg("slugc/procfile"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(some.join("slugc_procfile").is_dir());
    assert!(!some.join("slugc_python").exists());
    let o = run(slug_bin()
        .args(["buildpacks", "package", "--output"])
        .arg(&some)
        .arg("slugc/ruby"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("slugc/ruby"), "{}", stderr(&o));
}

/// Run a packaged dir the way a CNB platform (the lifecycle under `pack`) does: detect, then
/// build, with the Buildpack API 0.10 arguments and variables, no `slug` in sight.
#[test]
fn packaged_procfile_buildpack_runs_under_the_cnb_contract() {
    let dir = scratch("package-contract");
    let out = dir.path().join("cnb");
    package_into(&out);
    let bp = out.join("slugc_procfile");
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("Procfile"),
        "web: python3 -m http.server \"$PORT\"\nworker: sleep 1\n",
    )
    .unwrap();
    let platform = dir.path().join("platform");
    std::fs::create_dir_all(platform.join("env")).unwrap();
    let layers = dir.path().join("layers");
    std::fs::create_dir_all(&layers).unwrap();
    let plan = dir.path().join("plan.toml");
    let bp_plan = dir.path().join("bp-plan.toml");
    std::fs::write(&bp_plan, "entries = []\n").unwrap();

    let phase = |bin: &str, app: &Path, args: &[&Path]| {
        let mut c = Command::new(bp.join("bin").join(bin));
        c.current_dir(app)
            .args(args)
            .env("CNB_BUILDPACK_DIR", &bp)
            .env("CNB_PLATFORM_DIR", &platform)
            .env("CNB_BUILD_PLAN_PATH", &plan)
            .env("CNB_LAYERS_DIR", &layers)
            .env("CNB_BP_PLAN_PATH", &bp_plan)
            .env("CNB_TARGET_OS", "linux")
            .env("CNB_TARGET_ARCH", slugc::image::oci::host_architecture())
            .env("CNB_TARGET_DISTRO_NAME", "debian")
            .env("CNB_TARGET_DISTRO_VERSION", "12");
        run(c)
    };
    let o = phase("detect", &app, &[&platform, &plan]);
    assert_eq!(o.status.code(), Some(0), "detect: {}", stderr(&o));
    let o = phase("build", &app, &[&layers, &platform, &bp_plan]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "build: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let launch: toml::Value =
        toml::from_str(&std::fs::read_to_string(layers.join("launch.toml")).unwrap()).unwrap();
    let processes = launch["processes"].as_array().unwrap();
    let web = processes
        .iter()
        .find(|p| p["type"].as_str() == Some("web"))
        .expect("a web process");
    assert_eq!(web["default"].as_bool(), Some(true));
    assert!(processes
        .iter()
        .any(|p| p["type"].as_str() == Some("worker")));

    // An app without a Procfile: detect fails with the spec's 100.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = phase("detect", &empty, &[&platform, &plan]);
    assert_eq!(o.status.code(), Some(100), "{}", stderr(&o));
}

/// Build `app` with these `--buildpack` values; the release manifest from `--json`.
fn build_with(app: &Path, buildpacks: &[String], store: &Path) -> serde_json::Value {
    let mut c = slug_bin();
    c.arg("build").arg(app).arg("--no-cache").arg("--json");
    for b in buildpacks {
        c.arg("--buildpack").arg(b);
    }
    c.arg("--output").arg(store);
    let o = run(c);
    assert!(
        o.status.success(),
        "slug build {app:?} {buildpacks:?} failed:\n{}",
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("--json: {e}\n{}", stdout(&o)))
}

/// The packaged dirs, given to `slug build --buildpack DIR`, build a fixture to the very same
/// slug as the built-in ids do.
#[test]
fn packaged_dirs_build_a_fixture_like_the_builtins() {
    let dir = scratch("package-build");
    let out = dir.path().join("cnb");
    package_into(&out);
    for (fixture_name, group) in [
        ("procfile-only", vec!["slugc/procfile"]),
        ("python-flask", vec!["slugc/python"]),
    ] {
        let app = fixture(fixture_name);
        let builtin_ids: Vec<String> = group.iter().map(|s| s.to_string()).collect();
        let dirs: Vec<String> = group
            .iter()
            .map(|id| out.join(id.replace('/', "_")).to_str().unwrap().to_string())
            .collect();
        let from_builtins = build_with(&app, &builtin_ids, &dir.path().join("store-a"));
        let from_dirs = build_with(&app, &dirs, &dir.path().join("store-b"));
        assert_eq!(
            from_dirs, from_builtins,
            "{fixture_name}: packaged dirs and built-ins must give the same release"
        );
        assert!(from_dirs["process_types"]["web"].is_string(), "{from_dirs}");
    }
}
