//! Config vars stay secret: never in the slug, the manifest, the caches, the temp dir or
//! either output stream (URL credentials included); readable by the user alone while the
//! build runs; and gone from the disk after a build that was killed, once the next build
//! starts.

mod support;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::tmpfs_dir;

/// The secret every test hides: a token inside a URL's userinfo, and a plain value.
const TOKEN: &str = "s3cr3t-T0KEN-4f9a";
const PLAIN: &str = "plain-secret-value-77c1";

fn index_url() -> String {
    format!("http://tok:{TOKEN}@127.0.0.1:9/simple")
}

/// `slug` with every place it writes under `root`: caches, store, temp dir.
fn slug(root: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slug"));
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    cmd.env("XDG_CACHE_HOME", root.join("xdg-cache"))
        .env("XDG_DATA_HOME", root.join("xdg-data"))
        .env("TMPDIR", root.join("tmp"))
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null());
    cmd
}

/// A CNB buildpack that passes detection and runs `build` (a bash script body) as bin/build.
fn buildpack(dir: &Path, id: &str, build: &str) -> PathBuf {
    let bp = dir.join(id);
    std::fs::create_dir_all(bp.join("bin")).unwrap();
    std::fs::write(
        bp.join("buildpack.toml"),
        format!("api = \"0.10\"\n[buildpack]\nid = \"test/{id}\"\nversion = \"0.1.0\"\nname = \"{id}\"\n"),
    )
    .unwrap();
    for (name, body) in [("detect", "exit 0"), ("build", build)] {
        let path = bp.join("bin").join(name);
        std::fs::write(&path, format!("#!/usr/bin/env bash\nset -eu\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bp
}

fn app(dir: &Path, name: &str) -> PathBuf {
    let app = dir.join(name);
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("Procfile"), "web: echo hi\n").unwrap();
    app
}

/// Every file under `dir` whose bytes (gunzipped, for `.tgz` and `.gz`) hold `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if meta.is_file() {
            let mut bytes = std::fs::read(&path).unwrap_or_default();
            let name = path.to_string_lossy();
            if name.ends_with(".tgz") || name.ends_with(".gz") {
                let mut plain = Vec::new();
                if flate2::read::MultiGzDecoder::new(&bytes[..])
                    .read_to_end(&mut plain)
                    .is_ok()
                {
                    bytes = plain;
                }
            }
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push(path);
            }
        }
    }
    found
}

fn assert_hidden(out: &Output, root: &Path) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for secret in [TOKEN, PLAIN] {
        assert!(!stdout.contains(secret), "stdout shows {secret}:\n{stdout}");
        assert!(!stderr.contains(secret), "stderr shows {secret}:\n{stderr}");
        let on_disk = files_holding(root, secret);
        assert!(on_disk.is_empty(), "{secret} is on disk in {on_disk:?}");
    }
}

#[test]
fn config_vars_reach_the_buildpack_and_nothing_else() {
    let tmp = tmpfs_dir();
    let root = tmp.path().join("root");
    let app = app(tmp.path(), "app");
    // A third-party buildpack that reads the config vars and prints them, as a careless one
    // does (`echo "using $INDEX"`): the engine's log must not show them.
    let seen = tmp.path().join("seen");
    let bp = buildpack(
        tmp.path(),
        "echo",
        &format!(
            "env_dir=\"$2/env\"\n\
             cat \"$env_dir/PIP_INDEX_URL\" \"$env_dir/API_KEY\" > {seen}\n\
             echo \"installing from $(cat \"$env_dir/PIP_INDEX_URL\")\"\n\
             echo \"key: $(cat \"$env_dir/API_KEY\")\" >&2",
            seen = seen.display()
        ),
    );
    let env_file = tmp.path().join("build.env");
    std::fs::write(&env_file, format!("API_KEY={PLAIN}\n")).unwrap();
    let out = slug(&root)
        .arg("build")
        .arg(&app)
        .arg("--buildpack")
        .arg(&bp)
        .args(["--env", &format!("PIP_INDEX_URL={}", index_url())])
        .arg("--env-file")
        .arg(&env_file)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The buildpack did get them.
    let got = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(got, format!("{}{PLAIN}", index_url()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("installing from http://***@127.0.0.1:9/simple"),
        "{stderr}"
    );
    // The slug, the manifest (also on stdout), the caches, the temp dir, both streams.
    assert_hidden(&out, &root);
    // The search does look inside the slug: the Procfile's command is found there.
    let in_store = files_holding(&root.join("xdg-data"), "web: echo hi");
    assert!(
        in_store
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".tgz")),
        "{in_store:?}"
    );
}

#[test]
fn a_credential_in_an_index_url_is_redacted_by_the_python_buildpack() {
    let tmp = tmpfs_dir();
    let root = tmp.path().join("root");
    let app = tmp.path().join("py");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("requirements.txt"), "flask\n").unwrap();
    // The index refuses connections: uv's download and pip's install both fail, naming it.
    let out = slug(&root)
        .arg("build")
        .arg(&app)
        .args(["--env", &format!("PIP_INDEX_URL={}", index_url())])
        .env("PIP_RETRIES", "0")
        .env("PIP_INDEX_URL", index_url())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("http://***@127.0.0.1:9/simple"),
        "the failure names the index:\n{stderr}"
    );
    assert_hidden(&out, &root);
}

#[test]
fn a_malformed_env_flag_is_not_echoed() {
    let tmp = tmpfs_dir();
    let root = tmp.path().join("root");
    let app = app(tmp.path(), "app");
    for flag in [format!("1BAD={PLAIN}"), PLAIN.to_string()] {
        let out = slug(&root)
            .arg("build")
            .arg(&app)
            .args(["--env", &flag])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: --env"), "{stderr}");
        assert_hidden(&out, &root);
    }
}

#[test]
fn env_files_are_private_while_the_build_runs() {
    let tmp = tmpfs_dir();
    let root = tmp.path().join("root");
    let app = app(tmp.path(), "app");
    let report = tmp.path().join("modes.txt");
    let bp = buildpack(
        tmp.path(),
        "modes",
        &format!(
            "p=\"$2\"\n\
             stat -c '%a %n' \"$p/env/API_KEY\" \"$p/env\" \"$p\" \"$p/..\" > {}",
            report.display()
        ),
    );
    for cache in [&["--no-cache"][..], &[][..]] {
        let out = slug(&root)
            .arg("build")
            .arg(&app)
            .arg("--buildpack")
            .arg(&bp)
            .args(["--env", &format!("API_KEY={PLAIN}")])
            .args(cache)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let modes: Vec<String> = std::fs::read_to_string(&report)
            .unwrap()
            .lines()
            .map(|l| l.split(' ').next().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            modes,
            ["600", "700", "700", "700"],
            "env file, env dir, platform dir, work dir ({cache:?})"
        );
    }
}

/// Start a build whose buildpack waits; once it has the config vars on disk, SIGKILL the
/// build (and the buildpack). Returns the platform dir it left.
fn killed_build(root: &Path, app: &Path, bp_dir: &Path, args: &[&str]) -> PathBuf {
    let marker = bp_dir.join(format!(
        "started-{}",
        app.file_name().unwrap().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&marker);
    let bp = buildpack(
        bp_dir,
        &format!("wait-{}", app.file_name().unwrap().to_string_lossy()),
        &format!(
            "echo \"$2 $$\" > {m}.new && mv {m}.new {m}\nexec sleep 120",
            m = marker.display()
        ),
    );
    let mut child = slug(root)
        .arg("build")
        .arg(app)
        .arg("--buildpack")
        .arg(&bp)
        .args(["--env", &format!("API_KEY={PLAIN}")])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let line = loop {
        if let Ok(line) = std::fs::read_to_string(&marker) {
            break line;
        }
        assert!(Instant::now() < deadline, "the buildpack never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let (platform, pid) = line.trim().rsplit_once(' ').unwrap();
    // The buildpack is the build's child, not the test's: end it by its pid.
    let _ = Command::new("kill").args(["-9", pid]).status();
    let platform = PathBuf::from(platform);
    assert!(
        platform.join("env/API_KEY").is_file(),
        "the killed build left its env file (the test's premise)"
    );
    platform
}

#[test]
fn the_next_build_removes_a_killed_builds_env_files() {
    let tmp = tmpfs_dir();
    let root = tmp.path().join("root");
    let a = app(tmp.path(), "a");
    let b = app(tmp.path(), "b");

    // --no-cache: the work dir is in $TMPDIR.
    let left = killed_build(&root, &a, tmp.path(), &["--no-cache"]);
    assert!(left.starts_with(root.join("tmp")), "{}", left.display());
    let out = slug(&root)
        .arg("build")
        .arg(&b)
        .arg("--no-cache")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!left.exists(), "{} is still there", left.display());

    // With a cache: app a's work dir is in a's cache, and a build of another app removes it.
    let left = killed_build(&root, &a, tmp.path(), &[]);
    assert!(
        left.starts_with(root.join("xdg-cache")),
        "{}",
        left.display()
    );
    let out = slug(&root).arg("build").arg(&b).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!left.exists(), "{} is still there", left.display());

    assert!(files_holding(&root, PLAIN).is_empty());
}
