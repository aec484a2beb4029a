//! `slug build` end to end: the CNB platform contract, classic buildpacks, precedence rules,
//! determinism, the store, the cache, and every bad input's exit code and message.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::tmpfs_dir;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn bp(name: &str) -> String {
    fixture("buildpacks")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn slug_cmd(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slug"));
    cmd.env("XDG_CACHE_HOME", home.join("xdg-cache"))
        .env("XDG_DATA_HOME", home.join("xdg-data"))
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null());
    cmd
}

/// `slug build APP --output <tmp>/store --cache-dir <tmp>/cache --json ARGS...`
fn build(tmp: &Path, app: &Path, args: &[&str]) -> Run {
    let out = slug_cmd(tmp)
        .arg("build")
        .arg(app)
        .arg("--output")
        .arg(tmp.join("store"))
        .arg("--cache-dir")
        .arg(tmp.join("cache"))
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    Run::from(out)
}

fn manifest(run: &Run) -> serde_json::Value {
    assert_eq!(run.code, 0, "build failed:\n{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn slug_path(tmp: &Path, m: &serde_json::Value) -> PathBuf {
    let hex = m["checksum"]
        .as_str()
        .unwrap()
        .strip_prefix("SHA256:")
        .unwrap();
    tmp.join("store").join(format!("sha256-{hex}.tgz"))
}

fn unpack(slug: &Path, dest: &Path) -> PathBuf {
    std::fs::create_dir_all(dest).unwrap();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(slug)
        .arg("-C")
        .arg(dest)
        .status()
        .unwrap();
    assert!(st.success());
    dest.join("app")
}

/// Source the slug's `.profile.d` as a dyno would and print `expr`.
fn dyno_eval(app_root: &Path, dyno: &str, env: &[(&str, &str)], expr: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "cd \"$HOME\" && for f in .profile.d/*.sh; do . \"$f\"; done; {expr}"
        ))
        .env_clear()
        .env("HOME", app_root)
        .env("PATH", "/usr/bin:/bin")
        .env("DYNO", dyno)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn copy_dir(src: &Path, dst: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn procfile_only_app_builds_a_content_addressed_slug() {
    let tmp = tmpfs_dir();
    let run = build(tmp.path(), &fixture("procfile-only"), &[]);
    let m = manifest(&run);
    assert!(
        run.stderr.contains("-----> Procfile app detected"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Process types: web, worker"),
        "{}",
        run.stderr
    );
    assert_eq!(m["schema"], "slugc.release/v1");
    assert_eq!(
        m["process_types"]["web"],
        "python3 -m http.server \"$PORT\" --bind 0.0.0.0"
    );
    assert_eq!(m["buildpacks"][0]["id"], "slugc/procfile");
    assert_eq!(
        m["stack"]["name"].as_str().map(|s| !s.is_empty()),
        Some(true)
    );
    assert!(m["commit"].is_null());
    let slug = slug_path(tmp.path(), &m);
    assert!(slug.is_file(), "{} missing", slug.display());
    let hex = sha256_file(&slug);
    assert_eq!(m["checksum"], format!("SHA256:{hex}"));
    assert_eq!(
        m["size"].as_u64(),
        Some(std::fs::metadata(&slug).unwrap().len())
    );
    let manifest_file = tmp.path().join("store").join(format!("sha256-{hex}.json"));
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(manifest_file).unwrap()).unwrap();
    assert_eq!(on_disk, m);
    let app = unpack(&slug, &tmp.path().join("unpacked"));
    assert_eq!(
        std::fs::read_to_string(app.join("Procfile")).unwrap(),
        std::fs::read_to_string(fixture("procfile-only/Procfile")).unwrap()
    );
    assert!(app.join(".profile.d/000-slugc-launch.sh").is_file());
    // No leftovers: only final names in the store.
    for entry in std::fs::read_dir(tmp.path().join("store")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            name.starts_with("sha256-"),
            "stray file {name} in the store"
        );
    }
}

fn tar_listing(slug: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .args(["--numeric-owner", "--full-time", "-tvzf"])
        .arg(slug)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn same_source_elsewhere_later_cold_or_warm_gives_the_same_bytes() {
    let tmp = tmpfs_dir();
    let a = tmp.path().join("one/app");
    let b = tmp.path().join("two/elsewhere");
    std::fs::create_dir_all(a.parent().unwrap()).unwrap();
    std::fs::create_dir_all(b.parent().unwrap()).unwrap();
    for dst in [&a, &b] {
        copy_dir(&fixture("cnb-app"), dst);
    }
    let args = [
        "--buildpack",
        &bp("cnb-test"),
        "--buildpack",
        &bp("cnb-test-2"),
    ];
    let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
    let cold_a = manifest(&build(&tmp.path().join("one"), &a, &args));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let cold_b = manifest(&build(&tmp.path().join("two"), &b, &args));
    let warm_b_run = build(&tmp.path().join("two"), &b, &args);
    assert!(
        warm_b_run.stderr.contains("tools.toml restored"),
        "{}",
        warm_b_run.stderr
    );
    let warm_b = manifest(&warm_b_run);
    assert_eq!(cold_a["checksum"], cold_b["checksum"]);
    assert_eq!(cold_a["checksum"], warm_b["checksum"]);
    assert_eq!(cold_a, warm_b);

    let listing = tar_listing(&slug_path(&tmp.path().join("one"), &cold_a));
    let mut times = std::collections::BTreeSet::new();
    let mut paths = Vec::new();
    for line in &listing {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f[1], "0/0", "owner of {line}");
        times.insert(format!("{} {}", f[3], f[4]));
        paths.push(f[5].to_string());
    }
    assert_eq!(times.len(), 1, "one mtime for every entry: {times:?}");
    assert!(
        times.iter().next().unwrap().starts_with("1980-01-01"),
        "{times:?}"
    );
    assert!(
        paths
            .iter()
            .all(|p| p == "./app/" || p.starts_with("./app/")),
        "{paths:?}"
    );
    // Sorted within each part: the app part first, then each launch layer.
    let app_part: Vec<&String> = paths
        .iter()
        .take_while(|p| !p.starts_with("./app/.layers"))
        .collect();
    let mut sorted = app_part.clone();
    sorted.sort();
    assert_eq!(app_part, sorted);
    let runtime: Vec<&String> = paths
        .iter()
        .filter(|p| p.starts_with("./app/.layers/test_cnb/runtime/"))
        .collect();
    let mut sorted = runtime.clone();
    sorted.sort();
    assert_eq!(runtime, sorted);
    assert!(!runtime.is_empty());
}

#[test]
fn cnb_contract_layers_env_processes_and_secrets() {
    let tmp = tmpfs_dir();
    let app = fixture("cnb-app");
    let args = [
        "--buildpack",
        &bp("cnb-test"),
        "--buildpack",
        &bp("cnb-test-2"),
        "--env",
        "TEST_SECRET=hunter2-secret-value",
    ];
    let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
    let first = build(tmp.path(), &app, &args);
    let m = manifest(&first);
    assert!(
        first.stderr.contains("tools: not restored"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("platform env has TEST_SECRET"),
        "{}",
        first.stderr
    );
    assert!(
        first
            .stderr
            .contains("plan: [[entries]] name = \"cnb-test\""),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("flavour = \"vanilla\""),
        "{}",
        first.stderr
    );
    // The second buildpack sees the first one's build layer.
    assert!(
        first.stderr.contains("TOOLS_BUILD_VAR=from-tools"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("test-tool says: tool-ran"),
        "{}",
        first.stderr
    );
    // Log lines of buildpacks are indented, headers are not.
    assert!(
        first.stderr.contains("\n-----> Test CNB buildpack\n"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("\n       tools: not restored\n"),
        "{}",
        first.stderr
    );

    let second = build(tmp.path(), &app, &args);
    manifest(&second);
    let restored = second
        .stderr
        .lines()
        .find(|l| l.contains("tools.toml restored"))
        .unwrap_or_else(|| panic!("{}", second.stderr));
    assert!(restored.contains("builds = 1"), "{restored}");
    assert!(
        !restored.contains("types"),
        "restored metadata keeps no [types]: {restored}"
    );

    // Processes: the later buildpack's web wins, the earlier one's other type stays.
    assert_eq!(m["process_types"]["web"], "echo cnb2-web");
    assert_eq!(m["process_types"]["cnb-only"], "hello");
    assert_eq!(m["buildpacks"][1]["id"], "test/cnb-2");
    assert_eq!(m["buildpacks"][1]["api"], "0.10");
    // Plain launch defaults are listed as config vars; paths into the build root are not.
    assert_eq!(m["config_vars"]["CNB_OVERRIDE"], "second-override");
    assert_eq!(m["config_vars"]["CNB_DEFAULT"], "cnb-default");
    assert!(
        m["config_vars"].get("CNB_PATHS").is_none(),
        "{}",
        m["config_vars"]
    );

    let slug = slug_path(tmp.path(), &m);
    let root = unpack(&slug, &tmp.path().join("elsewhere"));
    assert!(root.join(".layers/test_cnb/runtime/bin/hello").is_file());
    assert!(
        !root.join(".layers/test_cnb/tools").exists(),
        "build-only layer exported"
    );
    assert!(!root.join(".layers/test_cnb/scratch").exists());
    assert!(!root.join(".layers/test_cnb/runtime.toml").exists());
    let layers: Vec<&str> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        layers,
        vec![
            "app",
            "app/.layers/test_cnb/runtime",
            "app/.layers/test_cnb-2/more"
        ]
    );

    // Env precedence at launch.
    let web = dyno_eval(
        &root,
        "web.1",
        &[],
        "echo \"$CNB_OVERRIDE|$CNB_DEFAULT|$CNB_PATHS|${WEB_ONLY:-}|$EXEC_D_VAR|$(hello)\"",
    );
    let home = root.to_string_lossy();
    assert_eq!(
        web,
        format!(
            "second-override|cnb-default|{home}/.layers/test_cnb/runtime/share:second|web-only|computed at launch|hello from the runtime layer"
        )
    );
    let worker = dyno_eval(
        &root,
        "worker.1",
        &[("CNB_DEFAULT", "user-value")],
        "echo \"$CNB_DEFAULT|${WEB_ONLY:-unset}\"",
    );
    assert_eq!(worker, "user-value|unset");

    // The config var reached the buildpack but nothing else.
    let decompressed = Command::new("bash")
        .arg("-c")
        .arg("gzip -dc \"$1\" | grep -c hunter2 || true")
        .arg("bash")
        .arg(&slug)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&decompressed.stdout).trim(), "0");
    for run in [&first, &second] {
        assert!(!run.stderr.contains("hunter2"));
        assert!(!run.stdout.contains("hunter2"));
    }
}

#[test]
fn a_relative_cache_dir_is_made_absolute_for_buildpacks() {
    // Buildpacks run in the app dir: a relative cache or part cache handed to them as given
    // would be written into the app (and the slug).
    let tmp = tmpfs_dir();
    let out = slug_cmd(tmp.path())
        .current_dir(tmp.path())
        .arg("build")
        .arg(fixture("cnb-app"))
        .args(["--output", "store", "--cache-dir", "cache", "--json"])
        .args(["--content-cache", "content"])
        .args(["--buildpack", &bp("cnb-test")])
        .output()
        .unwrap();
    let run = Run::from(out);
    let m = manifest(&run);
    let listing = tar_listing(&slug_path(tmp.path(), &m));
    assert!(
        !listing
            .iter()
            .any(|p| p.starts_with("./app/cache") || p.starts_with("./app/content")),
        "{listing:?}"
    );
}

#[test]
fn procfile_beats_buildpack_processes() {
    let tmp = tmpfs_dir();
    let app = tmp.path().join("app");
    copy_dir(&fixture("cnb-app"), &app);
    std::fs::write(app.join("Procfile"), "web: echo procfile-web\n").unwrap();
    let m = manifest(&build(
        tmp.path(),
        &app,
        &[
            "--buildpack",
            &bp("cnb-test"),
            "--buildpack",
            &bp("cnb-test-2"),
        ],
    ));
    assert_eq!(m["process_types"]["web"], "echo procfile-web");
    assert_eq!(m["process_types"]["cnb-only"], "hello");
}

#[test]
fn classic_buildpack_compile_release_export_and_cache() {
    let tmp = tmpfs_dir();
    let app = tmp.path().join("app");
    copy_dir(&fixture("classic-app"), &app);
    std::fs::write(app.join("cnb-test"), "").unwrap();
    let args = [
        "--buildpack",
        &bp("classic-test"),
        "--buildpack",
        &bp("export-check"),
        "--buildpack",
        &bp("cnb-test"),
        "--env",
        "TEST_SECRET=s3cr3t-classic",
    ];
    let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
    let first = build(tmp.path(), &app, &args);
    let m = manifest(&first);
    assert!(
        first.stderr.contains("-----> Classic Test app detected"),
        "{}",
        first.stderr
    );
    assert!(first.stderr.contains("cache count: 1"), "{}", first.stderr);
    assert!(
        first.stderr.contains("ENV_DIR has TEST_SECRET"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("CLASSIC_EXPORTED=yes"),
        "{}",
        first.stderr
    );
    assert!(!first.stderr.contains("s3cr3t-classic"));
    assert_eq!(m["addons"], serde_json::json!(["heroku-postgresql"]));
    assert_eq!(m["config_vars"]["CLASSIC_VAR"], "classic-default");
    // A CNB buildpack's process beats a classic default; classic-only types stay.
    assert_eq!(m["process_types"]["web"], "echo cnb-web");
    assert_eq!(m["process_types"]["clock"], "echo classic-clock");
    assert_eq!(m["buildpacks"][0]["api"], "classic");

    let second = build(tmp.path(), &app, &args);
    assert!(
        second.stderr.contains("cache count: 2"),
        "{}",
        second.stderr
    );

    let root = unpack(&slug_path(tmp.path(), &m), &tmp.path().join("run"));
    assert!(root.join("bin/classic-hello").is_file());
    let v = dyno_eval(
        &root,
        "web.1",
        &[],
        "echo \"$CLASSIC_PROFILE|$CLASSIC_VAR|$(classic-hello 2>/dev/null || bin/classic-hello)\"",
    );
    assert_eq!(v, "from-profile-d|classic-default|classic-bin");
    let v = dyno_eval(
        &root,
        "web.1",
        &[("CLASSIC_VAR", "mine")],
        "echo \"$CLASSIC_VAR\"",
    );
    assert_eq!(v, "mine");
}

#[test]
fn classic_default_process_without_cnb() {
    let tmp = tmpfs_dir();
    let m = manifest(&build(
        tmp.path(),
        &fixture("classic-app"),
        &["--buildpack", &bp("classic-test")],
    ));
    assert_eq!(m["process_types"]["web"], "echo classic-web");
}

#[test]
fn detect_json_shows_group_and_plan() {
    let tmp = tmpfs_dir();
    let out = slug_cmd(tmp.path())
        .arg("detect")
        .arg(fixture("cnb-app"))
        .args([
            "--json",
            "--buildpack",
            &bp("cnb-test"),
            "--buildpack",
            &bp("cnb-test-2"),
        ])
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["group"][0]["id"], "test/cnb");
    assert_eq!(v["plan"][0]["name"], "cnb-test");
    assert_eq!(v["plan"][0]["providers"][0], "test/cnb");
    assert_eq!(
        v["plan"][0]["requires"][0]["metadata"]["flavour"],
        "vanilla"
    );
}

#[test]
fn unmet_requires_rejects_the_group() {
    let tmp = tmpfs_dir();
    let run = build(
        tmp.path(),
        &fixture("cnb-app"),
        &["--buildpack", &bp("requires-missing")],
    );
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: no buildpack group passed detection"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("build plan does not resolve"),
        "{}",
        run.stderr
    );
}

fn assert_fails(run: &Run, code: i32, needle: &str) {
    assert_eq!(run.code, code, "stderr:\n{}", run.stderr);
    let first_error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{}", run.stderr));
    assert!(
        first_error.contains(needle),
        "{first_error:?} lacks {needle:?}"
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(!run.stderr.contains("stack backtrace"), "{}", run.stderr);
}

#[test]
fn bad_inputs_have_exit_codes_and_name_the_file() {
    let tmp = tmpfs_dir();
    let missing = tmp.path().join("no-such-app");
    assert_fails(&build(tmp.path(), &missing, &[]), 30, "does not exist");
    assert_fails(
        &build(tmp.path(), &missing, &[]),
        30,
        &missing.display().to_string(),
    );
    let file = fixture("procfile-only/Procfile");
    assert_fails(&build(tmp.path(), &file, &[]), 30, "is not a directory");

    for (app, msg) in [
        (
            "bad-procfile-syntax",
            "Procfile:2: expected `type: command`",
        ),
        (
            "bad-procfile-name",
            "Procfile:2: invalid process type \"web.1\"",
        ),
        (
            "bad-procfile-empty",
            "Procfile:2: process type \"web\" has an empty command",
        ),
        (
            "bad-procfile-duplicate",
            "Procfile:3: process type \"web\" is already defined on line 1",
        ),
    ] {
        let run = build(tmp.path(), &fixture(app), &[]);
        assert_fails(&run, 30, msg);
        assert_fails(
            &run,
            30,
            &fixture(app).join("Procfile").display().to_string(),
        );
    }

    let app = fixture("cnb-app");
    assert_fails(
        &build(tmp.path(), &app, &["--buildpack", &bp("bad-no-toml")]),
        30,
        "has neither buildpack.toml",
    );
    let run = build(tmp.path(), &app, &["--buildpack", &bp("bad-api")]);
    assert_fails(&run, 30, "buildpack API \"0.4\" is not supported");
    assert_fails(&run, 30, "bad-api/buildpack.toml");

    // The buildpack's own `error:` line is the build's first `error:` line; which buildpack
    // failed, and how, follows it.
    let run = build(tmp.path(), &app, &["--buildpack", &bp("failing")]);
    assert_fails(&run, 20, "error: the thing is broken");
    assert!(
        run.stderr.contains("       error: the thing is broken")
            && run
                .stderr
                .contains("(buildpack test/failing failed with exit code 3; its output is above)"),
        "{}",
        run.stderr
    );

    let run = build(tmp.path(), &app, &["--buildpack", &bp("invalid-input")]);
    assert_fails(&run, 30, "error: app.json: expected an object");
    assert!(
        run.stderr
            .contains("(buildpack test/invalid-input found invalid app input (exit code 30)"),
        "{}",
        run.stderr
    );

    let run = build(tmp.path(), &fixture("no-match"), &[]);
    assert_fails(&run, 10, "no buildpack group passed detection");
    assert!(
        run.stderr.contains("slugc/procfile: fail (no Procfile)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("slugc/python"), "{}", run.stderr);
    assert!(run.stderr.contains("slugc/nodejs"), "{}", run.stderr);

    let run = build(
        tmp.path(),
        &fixture("procfile-only"),
        &["--env", "NOEQUALS"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    // The argument is not echoed: it may be a secret without its `KEY=`.
    assert!(
        run.stderr
            .starts_with("error: --env expects KEY=VALUE: argument 1 of --env has no '='"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("NOEQUALS"), "{}", run.stderr);

    let env_file = tmp.path().join("missing.env");
    let run = build(
        tmp.path(),
        &fixture("procfile-only"),
        &["--env-file", env_file.to_str().unwrap()],
    );
    assert_fails(&run, 30, &env_file.display().to_string());

    let run = build(tmp.path(), &fixture("procfile-only"), &["--max-size", "0"]);
    assert_fails(&run, 30, "limit");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("store"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers
            .iter()
            .all(|n| !n.to_string_lossy().starts_with("sha256-")),
        "{leftovers:?}"
    );
}

#[test]
fn unreadable_file_in_the_app_is_named() {
    // As root every file is readable: run the build as `nobody`.
    let tmp = tmpfs_dir();
    let base = tmp.path();
    let app = base.join("app");
    copy_dir(&fixture("procfile-only"), &app);
    let secret = app.join("private.key");
    std::fs::write(&secret, "x").unwrap();
    let chown = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(base)
        .status()
        .unwrap();
    assert!(chown.success());
    let chmod = Command::new("chmod")
        .arg("000")
        .arg(&secret)
        .status()
        .unwrap();
    assert!(chmod.success());
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_slug"))
        .arg("build")
        .arg(&app)
        .arg("--output")
        .arg(base.join("store"))
        .arg("--cache-dir")
        .arg(base.join("cache"))
        .env("HOME", base)
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_fails(&run, 30, &secret.display().to_string());
    assert_fails(&run, 30, "cannot read");
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn started_count(mark: &Path) -> usize {
    std::fs::read_dir(mark)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("started-"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn two_builds_sharing_a_cache_take_turns() {
    let tmp = tmpfs_dir();
    let mark = tmp.path().join("mark");
    std::fs::create_dir_all(&mark).unwrap();
    let spawn = |log: &str| {
        slug_cmd(tmp.path())
            .arg("build")
            .arg(fixture("cnb-app"))
            .args(["--buildpack", &bp("slow")])
            .arg("--output")
            .arg(tmp.path().join("store"))
            .arg("--cache-dir")
            .arg(tmp.path().join("cache"))
            .env("SLOW_MARK", &mark)
            .stderr(std::fs::File::create(tmp.path().join(log)).unwrap())
            .spawn()
            .unwrap()
    };
    let mut first = spawn("first.log");
    wait_for("the first build to reach its buildpack", || {
        started_count(&mark) == 1
    });
    let mut second = spawn("second.log");
    wait_for("the second build to wait for the lock", || {
        std::fs::read_to_string(tmp.path().join("second.log"))
            .unwrap_or_default()
            .contains("Waiting for another build")
    });
    assert_eq!(
        started_count(&mark),
        1,
        "the second build ran while the first held the lock"
    );
    std::fs::write(mark.join("release"), "").unwrap();
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());
    assert_eq!(started_count(&mark), 2);
}

/// The line `keeper` prints about its cached layer `kept` ("restored: made by build <pid>").
fn kept_line(run: &Run) -> String {
    run.stderr
        .lines()
        .find(|l| l.contains("kept restored") || l.contains("kept: not restored"))
        .unwrap_or_else(|| panic!("no keeper line:\n{}", run.stderr))
        .trim()
        .to_string()
}

#[test]
fn a_killed_build_leaves_the_previous_cache_usable() {
    let tmp = tmpfs_dir();
    let mark = tmp.path().join("mark");
    std::fs::create_dir_all(&mark).unwrap();
    let app = fixture("cnb-app");
    let args = [
        "--buildpack",
        &bp("keeper"),
        "--buildpack",
        &bp("cnb-test"),
        "--buildpack",
        &bp("slow"),
    ];
    let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
    // SLOW_MARK unset: the slow buildpack returns at once.
    let first = build(tmp.path(), &app, &args);
    manifest(&first);
    assert_eq!(kept_line(&first), "kept: not restored");

    let mut victim = slug_cmd(tmp.path())
        .arg("build")
        .arg(&app)
        .args(&args)
        .arg("--output")
        .arg(tmp.path().join("store"))
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .env("SLOW_MARK", &mark)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the build to reach the slow buildpack", || {
        started_count(&mark) == 1
    });
    victim.kill().unwrap();
    victim.wait().unwrap();
    // Its buildpack child is orphaned, not killed: release it so it ends.
    std::fs::write(mark.join("release"), "").unwrap();

    let after = build(tmp.path(), &app, &args);
    manifest(&after);
    // The killed build was lent both cached layers. `kept` it left as it was: given back,
    // still the first build's. `tools` it rewrote in place (cnb-test writes its files on
    // every build): forgotten with its metadata, so no build sees the killed build's half
    // under the first build's metadata; only that layer is built again.
    let second = build(tmp.path(), &app, &args);
    assert!(
        kept_line(&after).starts_with("kept restored"),
        "{}",
        after.stderr
    );
    assert_eq!(kept_line(&after), kept_line(&second));
    assert!(
        after.stderr.contains("tools: not restored"),
        "{}",
        after.stderr
    );
    let restored = second
        .stderr
        .lines()
        .find(|l| l.contains("tools.toml restored"))
        .unwrap_or_else(|| panic!("cache lost:\n{}", second.stderr));
    assert!(restored.contains("builds = 1"), "{restored}");
}

#[test]
fn a_failed_build_gives_back_the_cached_layers_it_left_as_they_were() {
    let tmp = tmpfs_dir();
    let app = fixture("cnb-app");
    let keeper = bp("keeper");
    let failing = bp("failing");
    let first = build(tmp.path(), &app, &["--buildpack", &keeper]);
    manifest(&first);
    assert_eq!(kept_line(&first), "kept: not restored");
    let failed = build(
        tmp.path(),
        &app,
        &["--buildpack", &keeper, "--buildpack", &failing],
    );
    assert_ne!(failed.code, 0, "{}", failed.stderr);
    let lent = kept_line(&failed);
    assert!(lent.starts_with("kept restored"), "{}", failed.stderr);
    let after = build(tmp.path(), &app, &["--buildpack", &keeper]);
    manifest(&after);
    assert_eq!(kept_line(&after), lent, "{}", after.stderr);
}

#[test]
fn cache_clear_forgets_cached_layers() {
    let tmp = tmpfs_dir();
    let app = fixture("cnb-app");
    let args = ["--buildpack", &bp("cnb-test")];
    let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
    manifest(&build(tmp.path(), &app, &args));
    let out = slug_cmd(tmp.path())
        .args(["cache", "clear"])
        .arg(&app)
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let again = build(tmp.path(), &app, &args);
    assert!(
        again.stderr.contains("tools: not restored"),
        "{}",
        again.stderr
    );
}

#[test]
fn buildpacks_on_api_0_9_and_0_11_run() {
    let tmp = tmpfs_dir();
    let m = manifest(&build(
        tmp.path(),
        &fixture("cnb-app"),
        &[
            "--buildpack",
            &bp("api-0.9"),
            "--buildpack",
            &bp("api-0.11"),
        ],
    ));
    assert_eq!(m["process_types"]["old"], "echo from 'api 0.9'");
    assert_eq!(m["process_types"]["new"], "echo 'from api 0.11'");
    assert_eq!(m["buildpacks"][0]["api"], "0.9");
    assert_eq!(m["buildpacks"][1]["api"], "0.11");
}

#[test]
fn slugignore_is_applied_before_the_build() {
    let tmp = tmpfs_dir();
    let m = manifest(&build(tmp.path(), &fixture("slugignore-app"), &[]));
    let root = unpack(&slug_path(tmp.path(), &m), &tmp.path().join("u"));
    assert!(!root.join("docs").exists());
    assert!(!root.join("debug.log").exists());
    assert!(root.join("keep.log").is_file());
    assert!(root.join(".slugignore").is_file());
}

#[test]
fn inspect_shows_manifest_layers_and_largest_paths() {
    let tmp = tmpfs_dir();
    let m = manifest(&build(
        tmp.path(),
        &fixture("cnb-app"),
        &["--buildpack", &bp("cnb-test")],
    ));
    let hex = m["checksum"]
        .as_str()
        .unwrap()
        .trim_start_matches("SHA256:");
    let out = slug_cmd(tmp.path())
        .arg("inspect")
        .arg(&hex[..12])
        .arg("--store")
        .arg(tmp.path().join("store"))
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("Checksum: SHA256:{hex}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("app/.layers/test_cnb/runtime"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Largest paths:"), "{}", run.stdout);
    assert!(
        run.stdout.contains("app/.profile.d/000-slugc-launch.sh"),
        "{}",
        run.stdout
    );
    let out = slug_cmd(tmp.path())
        .arg("inspect")
        .arg(slug_path(tmp.path(), &m))
        .arg("--json")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest"]["checksum"], m["checksum"]);
    let runtime = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["path"] == "app/.layers/test_cnb/runtime")
        .unwrap();
    assert_eq!(runtime["files"], 2, "hello and exec.d/dynamic");
    let bad = slug_cmd(tmp.path())
        .args(["inspect", "ffffffffff", "--store"])
        .arg(tmp.path().join("store"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn progress_bar_only_on_a_terminal_without_ci() {
    // `script` (util-linux) gives the build a pseudo-terminal for stderr.
    let tmp = tmpfs_dir();
    let cmd = format!(
        "{} build {} --output {} --cache-dir {}",
        env!("CARGO_BIN_EXE_slug"),
        fixture("procfile-only").display(),
        tmp.path().join("store").display(),
        tmp.path().join("cache").display()
    );
    let on_tty = |ci: Option<&str>| {
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]).env_remove("CI");
        if let Some(v) = ci {
            c.env("CI", v);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        on_tty(None).contains("exporting slug ["),
        "{}",
        on_tty(None)
    );
    assert!(!on_tty(Some("true")).contains("exporting slug ["));
    // Not a terminal: plain lines only.
    let plain = build(tmp.path(), &fixture("procfile-only"), &[]);
    assert!(
        !plain.stderr.contains("exporting slug ["),
        "{}",
        plain.stderr
    );
    assert!(
        plain.stderr.contains("-----> Compressing..."),
        "{}",
        plain.stderr
    );
}

/// A layer part is the same bytes in every app's slug, so the machine-wide content cache
/// serves a second app's build with the first app's compressed layer: it is not compressed
/// again, and the slug holds the tar a cache-less build makes.
#[test]
fn a_second_app_takes_a_shared_layer_from_the_content_cache() {
    let tmp = tmpfs_dir();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    copy_dir(&fixture("cnb-app"), &one);
    copy_dir(&fixture("cnb-app"), &two);
    std::fs::write(two.join("another-file.txt"), "the second app\n").unwrap();
    let content = tmp.path().join("content");
    let build_app = |app: &Path, cache: &str, extra: &[&str]| {
        let out = slug_cmd(tmp.path())
            .arg("build")
            .arg(app)
            .arg("--output")
            .arg(tmp.path().join("store"))
            .args(["--buildpack", &bp("cnb-test"), "--json"])
            .arg("--cache-dir")
            .arg(tmp.path().join(cache))
            .arg("--content-cache")
            .arg(&content)
            .args(extra)
            .output()
            .unwrap();
        manifest(&Run::from(out))
    };
    let runtime = |m: &serde_json::Value| -> String {
        let layers = m["layers"].as_array().unwrap();
        let l = layers
            .iter()
            .find(|l| l["path"].as_str().unwrap().ends_with("/runtime"))
            .unwrap_or_else(|| panic!("no runtime layer in {layers:?}"));
        l["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string()
    };
    let part_file = |digest: &str| -> PathBuf {
        let parts = content.join("parts");
        std::fs::read_dir(&parts)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.ends_with(&format!("-{digest}.gz"))
            })
            .unwrap_or_else(|| panic!("no part {digest} in {}", parts.display()))
    };
    let first = build_app(&one, "cache-one", &[]);
    let shared = part_file(&runtime(&first));
    // Put in an equivalent member made by another compressor (gzip -1 of the same tar
    // bytes), with its record: a build that takes the part from the cache carries these
    // bytes, one that compresses it again does not.
    let swapped = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -dc '{0}' > '{0}.tar' && gzip -1 -n -c '{0}.tar' > '{0}.new' \
             && echo \"$(sha256sum < '{0}.new' | cut -d' ' -f1) $(stat -c %s '{0}.tar')\" > '{1}' \
             && mv '{0}.new' '{0}' && rm '{0}.tar'",
            shared.display(),
            shared.with_extension("sum").display()
        ))
        .status()
        .unwrap();
    assert!(swapped.success());

    let second = build_app(&two, "cache-two", &[]);
    assert_eq!(runtime(&first), runtime(&second));
    assert_ne!(
        first["layers"][0], second["layers"][0],
        "the app parts differ"
    );
    let plain = build_app(&two, "cache-three", &["--no-cache"]);
    assert_ne!(
        plain["checksum"], second["checksum"],
        "the shared layer was compressed again instead of taken from the cache"
    );
    let tar_of = |m: &serde_json::Value| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "gzip -dc '{}' | sha256sum",
                slug_path(tmp.path(), m).display()
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(tar_of(&plain), tar_of(&second), "the same tar either way");

    // `slug cache gc` keeps what fits, most recent first, and says what it did.
    let out = slug_cmd(tmp.path())
        .args(["cache", "gc", "--max-size", "0", "--content-cache"])
        .arg(&content)
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("kept 0 entries"), "{}", run.stderr);
    assert!(!shared.exists());
}
