//! The CNB platform to the letter of the Buildpack API spec
//! (<https://github.com/buildpacks/spec/blob/main/buildpack.md>): each test builds with a
//! small shell-script buildpack of `fixtures/buildpacks/` that does what the CNB project's
//! samples do, and checks what a user sees: the exit code, the first `error:` line, the log,
//! the files in the slug, the processes' output and HTTP.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::{fixture, free_port, run, stderr, stdout, tmpfs_dir, unpack, Running};

fn bp(name: &str) -> String {
    fixture("buildpacks")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// `slug` with every default dir (caches, store, the caller's `HOME`) under `tmp`.
fn slug_cmd(tmp: &Path) -> Command {
    let mut cmd = support::slug_bin();
    let home = tmp.join("caller-home");
    std::fs::create_dir_all(&home).unwrap();
    cmd.env("XDG_CACHE_HOME", tmp.join("xdg-cache"))
        .env("XDG_DATA_HOME", tmp.join("xdg-data"))
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("PIP_CONFIG_FILE")
        .env_remove("npm_config_userconfig")
        .env_remove("NPM_CONFIG_USERCONFIG")
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null());
    cmd
}

/// `slug build APP --output <tmp>/store --cache-dir <tmp>/cache --json ARGS...`
fn build_cmd(tmp: &Path, app: &Path, args: &[&str]) -> Command {
    let mut cmd = slug_cmd(tmp);
    cmd.arg("build")
        .arg(app)
        .arg("--output")
        .arg(tmp.join("store"))
        .arg("--cache-dir")
        .arg(tmp.join("cache"))
        .arg("--json")
        .args(args);
    cmd
}

fn build(tmp: &Path, app: &Path, args: &[&str]) -> Output {
    run(build_cmd(tmp, app, args))
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// The manifest of a build that must have succeeded.
fn manifest(o: &Output) -> serde_json::Value {
    assert_eq!(code(o), 0, "build failed:\n{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

fn slug_path(tmp: &Path, m: &serde_json::Value) -> PathBuf {
    let hex = m["checksum"]
        .as_str()
        .and_then(|c| c.strip_prefix("SHA256:"))
        .unwrap_or_else(|| panic!("no checksum in {m}"));
    tmp.join("store").join(format!("sha256-{hex}.tgz"))
}

/// The slug unpacked under `tmp/<name>`; returns its app root.
fn unpacked(tmp: &Path, m: &serde_json::Value, name: &str) -> PathBuf {
    let dest = tmp.join(name);
    unpack(&slug_path(tmp, m), &dest);
    dest.join("app")
}

/// The first line that starts with `error:`.
fn first_error(o: &Output) -> String {
    let err = stderr(o);
    err.lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error: line in\n{err}"))
        .to_string()
}

/// An app dir under `tmp` holding `files` (path, contents).
fn app(tmp: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = tmp.join(name);
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn grep_count(file: &Path, needle: &str) -> String {
    let o = run(Command::new("bash")
        .arg("-c")
        .arg("gzip -dc \"$1\" | grep -c -- \"$2\" || true")
        .arg("bash")
        .arg(file)
        .arg(needle));
    stdout(&o).trim().to_string()
}

/// Part 1: `--env`/`--env-file` values are in the environment of detect and build (a
/// `BP_*`-configured buildpack detects and builds with them), layer path variables get them
/// prepended, a `clear-env = true` buildpack only has the files; secrets stay out of the
/// slug, the manifest and the log.
#[test]
fn user_env_reaches_detect_and_build_unless_clear_env() {
    let tmp = tmpfs_dir();
    let app = app(tmp.path(), "app", &[("README", "an app\n")]);
    let env_file = tmp.path().join("build.env");
    std::fs::write(&env_file, "SECRET_TOKEN=s3cr3t-d0-not-leak\n").unwrap();
    let args = [
        "--buildpack",
        &bp("user-env"),
        "--buildpack",
        &bp("user-env-clear"),
        "--env",
        "BP_EXT_DEMO=1",
        "--env",
        "BP_GREETING=hello-from-config",
        "--env",
        "PATH=/user/path/bin",
        "--env-file",
        env_file.to_str().unwrap(),
    ];
    let o = build(tmp.path(), &app, &args);
    let m = manifest(&o);
    let log = stderr(&o);
    assert!(log.contains("build env has SECRET_TOKEN"), "{log}");
    assert!(log.contains("platform env has SECRET_TOKEN"), "{log}");
    assert!(log.contains("PATH has the user's entry first"), "{log}");
    assert!(
        log.contains("clear-env buildpack reads BP_GREETING from the platform dir: 17 bytes"),
        "{log}"
    );
    let root = unpacked(tmp.path(), &m, "unpacked");
    assert_eq!(
        std::fs::read_to_string(root.join("greeting.txt")).unwrap(),
        "hello-from-config\n"
    );
    // The secret reached the buildpack and nothing else.
    assert!(!log.contains("s3cr3t"), "{log}");
    assert!(!stdout(&o).contains("s3cr3t"));
    assert_eq!(grep_count(&slug_path(tmp.path(), &m), "s3cr3t"), "0");

    // Without the variable the buildpack does not detect, and says so.
    let o = build(tmp.path(), &app, &["--buildpack", &bp("user-env")]);
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("test/user-env: fail (BP_EXT_DEMO is not set)"),
        "{}",
        stderr(&o)
    );
}

/// Part 2: launch.toml `command`, `args` and `working-dir` naming `<layers>/<layer>/...`,
/// and an exec.d program, run from the slug unpacked elsewhere (the build root is gone),
/// under `slug run` and in the OCI image; a shebang naming a layer, which is not rewritten,
/// gets a warning.
#[test]
fn absolute_layer_paths_run_wherever_the_slug_is_unpacked() {
    let tmp = tmpfs_dir();
    let app = app(tmp.path(), "app", &[("README", "an app\n")]);
    let o = build(tmp.path(), &app, &["--buildpack", &bp("layer-paths")]);
    let m = manifest(&o);
    // What is not relocated is named.
    assert!(
        stderr(&o).contains(" !     Warning: test/layer-paths: .layers/test_layer-paths/www/bin/layer-shebang has a shebang naming the build dir"),
        "{}",
        stderr(&o)
    );
    for (name, command) in m["process_types"].as_object().unwrap() {
        assert!(
            !command
                .as_str()
                .unwrap()
                .contains(tmp.path().to_str().unwrap()),
            "{name}: {command} names the build root"
        );
    }
    let slug = slug_path(tmp.path(), &m);

    // `slug run` of the one-shot process type: it ran from the unpacked slug.
    let o = run(slug_cmd(tmp.path())
        .arg("run")
        .arg(&slug)
        .arg("sys-info")
        .args(["--color", "never"]));
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.contains("sys-info ran from"))
        .unwrap_or_else(|| panic!("no sys-info output:\n{out}\n{}", stderr(&o)));
    let run_root = tmp.path().join("xdg-cache/slugc/run");
    let layer = line
        .split("sys-info ran from ")
        .nth(1)
        .and_then(|rest| rest.split(" in ").next())
        .unwrap();
    assert!(
        layer.starts_with(run_root.to_str().unwrap())
            && layer.ends_with("/app/.layers/test_layer-paths/sys-info"),
        "{line}"
    );
    assert!(
        line.ends_with(&format!(
            "in {layer} with arg {layer} and EXECD_GREETING=from exec.d"
        )),
        "{line}"
    );

    // The web process: its command and working dir are in the www layer.
    let port = free_port();
    let mut cmd = slug_cmd(tmp.path());
    cmd.arg("run")
        .arg(&slug)
        .arg("web")
        .args(["--port", &port.to_string(), "--color", "never"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = Running::spawn(cmd);
    let (status, body) = support::wait_http(port, || true).expect("no HTTP answer");
    drop(server);
    assert_eq!(status, 200);
    assert_eq!(body, "served from the www layer\n");

    // The OCI image: the same slug at /app.
    let Some(base) = support::debian12_base() else {
        return;
    };
    if support::require(&["podman", "runc"], true).is_none() {
        return;
    }
    let dir = support::scratch("cnb-layer-paths");
    let out = dir.path().join("oci");
    let o = run(slug_cmd(tmp.path())
        .arg("image")
        .arg(&slug)
        .arg("--base")
        .arg(format!("{}:bookworm", base.display()))
        .args(["--tag", "slugc-test/layer-paths:1", "--output"])
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(Command::new("podman").args([
        "--runtime",
        "runc",
        "run",
        "--rm",
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
        &format!("oci:{}:1", out.display()),
        "sys-info",
    ]));
    let _ = run(Command::new("podman").args([
        "rmi",
        "-f",
        &format!("localhost{}:latest", out.display()),
    ]));
    assert!(o.status.success(), "podman run: {}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "sys-info ran from /app/.layers/test_layer-paths/sys-info in /app/.layers/test_layer-paths/sys-info with arg /app/.layers/test_layer-paths/sys-info and EXECD_GREETING=from exec.d"
    );
}

/// Part 3: a meta-buildpack (`[[order]]`, no `bin/`) given with `--buildpack` expands into
/// its groups, nested in the outer group, tried in order; an optional member that passes
/// stays, and its members come from the dirs beside it.
#[test]
fn meta_buildpack_order_resolves_nested_in_the_outer_group() {
    let tmp = tmpfs_dir();
    let args = [
        "--buildpack",
        &bp("meta-universe"),
        "--buildpack",
        &bp("meta-after"),
    ];
    let ran = |root: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("ran-"))
            .collect();
        v.sort();
        v
    };

    // The first group of the order passes: world, moon (optional), then the outer `after`.
    let world = app(tmp.path(), "world-app", &[("world", "")]);
    let m = manifest(&build(tmp.path(), &world, &args));
    let ids: Vec<&str> = m["buildpacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["test/meta-world", "test/meta-moon", "test/meta-after"]
    );
    assert_eq!(
        ran(&unpacked(tmp.path(), &m, "world")),
        ["ran-after", "ran-moon", "ran-world"]
    );

    // Without `world` the first group fails and the second one is taken.
    let plain = app(tmp.path(), "plain-app", &[("README", "")]);
    let m = manifest(&build(tmp.path(), &plain, &args));
    let ids: Vec<&str> = m["buildpacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["test/meta-sun", "test/meta-after"]);
    assert_eq!(
        ran(&unpacked(tmp.path(), &m, "plain")),
        ["ran-after", "ran-sun"]
    );
}

/// Part 4: `[[targets]]` and the deprecated `[[stacks]]` are checked against the build host;
/// no match fails that buildpack's detection with a line naming the target it wants.
#[test]
fn targets_and_stacks_that_do_not_match_fail_detection_naming_the_target() {
    let tmp = tmpfs_dir();
    let app = app(tmp.path(), "app", &[("README", "")]);
    let o = build(tmp.path(), &app, &["--buildpack", &bp("target-elsewhere")]);
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    assert_eq!(
        first_error(&o),
        "error: no buildpack group passed detection:"
    );
    let log = stderr(&o);
    assert!(
        log.contains(
            "group 1: test/target-elsewhere: fail (it wants the target linux/s390x ubuntu 22.04; this build is linux/"
        ),
        "{log}"
    );
    assert!(!log.contains("built although"), "{log}");

    let o = build(tmp.path(), &app, &["--buildpack", &bp("target-stacks")]);
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "group 1: test/target-stacks: fail (it wants the target linux/* ubuntu 18.04;"
        ),
        "{}",
        stderr(&o)
    );
}

/// Part 4: the built-in buildpacks packaged for `pack` run under a platform that leaves out
/// the optional `CNB_TARGET_DISTRO_*` (the lifecycle does when the base has no os-release).
#[test]
fn packaged_buildpacks_detect_without_the_optional_distro_variables() {
    let tmp = tmpfs_dir();
    let out = tmp.path().join("packaged");
    let o = run(slug_cmd(tmp.path())
        .args(["buildpacks", "package", "slugc/procfile", "--output"])
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let bp_dir = out.join("slugc_procfile");
    let app = app(tmp.path(), "app", &[("Procfile", "web: echo hi\n")]);
    let platform = tmp.path().join("platform");
    std::fs::create_dir_all(platform.join("env")).unwrap();
    let plan = tmp.path().join("plan.toml");
    std::fs::write(&plan, "").unwrap();
    let o = run(Command::new(bp_dir.join("bin/detect"))
        .arg(&platform)
        .arg(&plan)
        .current_dir(&app)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CNB_BUILDPACK_DIR", &bp_dir)
        .env("CNB_PLATFORM_DIR", &platform)
        .env("CNB_BUILD_PLAN_PATH", &plan)
        .env("CNB_TARGET_OS", "linux")
        .env("CNB_TARGET_ARCH", "amd64"));
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
}

/// Part 5: a requirement reaches a later provider only when the earlier provider listed it
/// under `[[unmet]]`; an `[[unmet]]` name not in the plan fails the build (exit 20, naming
/// the buildpack and file); a top-level `version` is kept as `metadata.version`, with a
/// deprecation warning.
#[test]
fn plan_entries_reach_a_later_provider_only_when_unmet() {
    let tmp = tmpfs_dir();
    let args = [
        "--buildpack",
        &bp("plan-first"),
        "--buildpack",
        &bp("plan-second"),
    ];
    let met = app(tmp.path(), "met", &[("README", "")]);
    let o = build(tmp.path(), &met, &args);
    manifest(&o);
    let log = stderr(&o);
    assert!(
        log.contains(
            "first plan: [[entries]] name = \"widget\"  [entries.metadata] version = \"1.2\""
        ),
        "{log}"
    );
    assert!(log.contains("second plan: empty"), "{log}");
    assert!(
        log.contains("test/plan-second: [[requires]] \"widget\": the top-level \"version\" key is deprecated"),
        "{log}"
    );

    let unmet = app(tmp.path(), "unmet", &[("leave-unmet", "")]);
    let o = build(tmp.path(), &unmet, &args);
    manifest(&o);
    assert!(
        stderr(&o).contains(
            "second plan: [[entries]] name = \"widget\"  [entries.metadata] version = \"1.2\""
        ),
        "{}",
        stderr(&o)
    );

    let unknown = app(tmp.path(), "unknown", &[("unmet-unknown", "")]);
    let o = build(tmp.path(), &unknown, &args);
    assert_eq!(code(&o), 20, "{}", stderr(&o));
    let line = first_error(&o);
    assert!(
        line.starts_with("error: buildpack test/plan-first: ")
            && line.contains(".layers/test_plan-first/build.toml: [[unmet]] name \"gadget\" is not an entry of its buildpack plan"),
        "{line}"
    );
    assert!(!stderr(&o).contains("second plan"), "{}", stderr(&o));
}

/// Part 7: a layer without types is renamed `<layer>.ignore` before the next buildpack runs;
/// a malformed `<layer>.toml` fails the build with exit 20, naming the buildpack and file.
#[test]
fn untyped_layers_are_ignored_and_a_malformed_layer_toml_fails_with_20() {
    let tmp = tmpfs_dir();
    let args = [
        "--buildpack",
        &bp("layer-ignore"),
        "--buildpack",
        &bp("layer-bad-toml"),
    ];
    let good = app(tmp.path(), "good", &[("README", "")]);
    let o = build(tmp.path(), &good, &args);
    let m = manifest(&o);
    let log = stderr(&o);
    assert!(log.contains("sees scratch.ignore"), "{log}");
    assert!(!log.contains("sees scratch\n"), "{log}");
    assert!(log.contains("sees tools"), "{log}");
    assert!(log.contains("tool on PATH"), "{log}");
    let root = unpacked(tmp.path(), &m, "good");
    assert!(!root.join(".layers/test_layer-ignore").exists());

    let bad = app(tmp.path(), "bad", &[("break-layer-toml", "")]);
    let o = build(tmp.path(), &bad, &args);
    assert_eq!(code(&o), 20, "{}", stderr(&o));
    let line = first_error(&o);
    assert!(
        line.starts_with("error: buildpack test/layer-bad-toml: invalid layer metadata ")
            && line.contains(".layers/test_layer-bad-toml/broken.toml: "),
        "{line}"
    );
}

/// Part 9: project.toml (schema 0.2): `exclude` and `include` shape the snapshot, `group`
/// names the buildpacks (by path and by id), `build.env` reaches them; `--env` and
/// `--buildpack` take precedence.
#[test]
fn project_toml_include_exclude_group_and_env() {
    let tmp = tmpfs_dir();
    let project = format!(
        r#"[_]
schema-version = "0.2"
id = "test-app"

[io.buildpacks]
exclude = ["notes/", "*.log"]

[[io.buildpacks.group]]
uri = "{}"

[[io.buildpacks.group]]
id = "slugc/procfile"

[[io.buildpacks.build.env]]
name = "BP_PROJECT_GREETING"
value = "from-project"
"#,
        bp("project-echo")
    );
    let files = [
        ("project.toml", project.as_str()),
        ("Procfile", "web: echo web\n"),
        ("notes/todo.md", "x"),
        ("debug.log", "x"),
        ("src/main.sh", "echo main\n"),
    ];
    let dir = app(tmp.path(), "app", &files);
    let o = build(tmp.path(), &dir, &[]);
    let m = manifest(&o);
    let ids: Vec<&str> = m["buildpacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["test/project-echo", "slugc/procfile"]);
    assert!(
        stderr(&o).contains("app files: ./Procfile ./project.toml ./src/main.sh \n"),
        "{}",
        stderr(&o)
    );
    let root = unpacked(tmp.path(), &m, "first");
    assert_eq!(
        std::fs::read_to_string(root.join("project-greeting.txt")).unwrap(),
        "from-project\n"
    );
    assert!(!root.join("notes").exists());
    assert!(!root.join("debug.log").exists());
    assert_eq!(m["process_types"]["web"], "echo web");

    // `--env` wins over build.env, `--buildpack` over the group.
    let o = build(
        tmp.path(),
        &dir,
        &[
            "--buildpack",
            &bp("project-echo"),
            "--env",
            "BP_PROJECT_GREETING=from-flag",
        ],
    );
    let m = manifest(&o);
    assert_eq!(m["buildpacks"].as_array().unwrap().len(), 1);
    let root = unpacked(tmp.path(), &m, "second");
    assert_eq!(
        std::fs::read_to_string(root.join("project-greeting.txt")).unwrap(),
        "from-flag\n"
    );

    // `include` keeps only what it names.
    let included = project.replace(
        "exclude = [\"notes/\", \"*.log\"]",
        "include = [\"src/\", \"Procfile\"]",
    );
    std::fs::write(dir.join("project.toml"), &included).unwrap();
    let o = build(tmp.path(), &dir, &[]);
    let m = manifest(&o);
    let root = unpacked(tmp.path(), &m, "third");
    assert!(root.join("src/main.sh").is_file());
    assert!(root.join("Procfile").is_file());
    assert!(!root.join("notes").exists());
    assert!(!root.join("debug.log").exists());

    // Both is an error the project descriptor spec asks for.
    let both = included.replace(
        "include = [\"src/\", \"Procfile\"]",
        "include = [\"src/\"]\nexclude = [\"notes/\"]",
    );
    std::fs::write(dir.join("project.toml"), both).unwrap();
    let o = build(tmp.path(), &dir, &[]);
    assert_eq!(code(&o), 30, "{}", stderr(&o));
    let line = first_error(&o);
    assert!(
        line.contains("project.toml") && line.contains("include") && line.contains("exclude"),
        "{line}"
    );
}

/// Part 10: the build's `HOME` is a fresh dir of its own, not the caller's home, and the
/// caller's `~/.npmrc` and pip config still reach the tools through `npm_config_userconfig`
/// and `PIP_CONFIG_FILE`. Its `TMPDIR` is its own too: empty, short, under the caller's temp
/// dir, the same path on each build of one cache, and gone with what tools left in it.
#[test]
fn build_home_is_fresh_and_caller_config_reaches_tools() {
    let tmp = tmpfs_dir();
    let caller_tmp = tmp.path().join("caller-tmp");
    std::fs::create_dir_all(&caller_tmp).unwrap();
    let mut tmpdirs = Vec::new();
    let caller = tmp.path().join("caller-home");
    std::fs::create_dir_all(caller.join(".config/pip")).unwrap();
    std::fs::write(caller.join(".npmrc"), "registry=https://npm.example/\n").unwrap();
    std::fs::write(
        caller.join(".config/pip/pip.conf"),
        "[global]\nindex-url = https://pypi.example/simple\n",
    )
    .unwrap();
    let app = app(tmp.path(), "app", &[("README", "")]);
    for round in 0..2 {
        let o = run(
            build_cmd(tmp.path(), &app, &["--buildpack", &bp("build-home")])
                .env("TMPDIR", &caller_tmp),
        );
        manifest(&o);
        let log = stderr(&o);
        let tmpdir = log
            .lines()
            .find_map(|l| l.trim().strip_prefix("TMPDIR="))
            .unwrap_or_else(|| panic!("{log}"))
            .to_string();
        let under = Path::new(&tmpdir)
            .strip_prefix(&caller_tmp)
            .unwrap_or_else(|_| panic!("{tmpdir} is not under {}", caller_tmp.display()));
        let names: Vec<String> = under
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.len() == 2 && names[0].starts_with("slugc-tmp-") && names[1] == "tmp",
            "{tmpdir}"
        );
        assert!(log.contains("TMPDIR entries before: 0"), "{log}");
        let left: Vec<_> = std::fs::read_dir(&caller_tmp).unwrap().flatten().collect();
        assert!(
            left.is_empty(),
            "round {round}: the caller's temp dir holds {left:?}"
        );
        tmpdirs.push(tmpdir);
        let home = log
            .lines()
            .find_map(|l| l.trim().strip_prefix("HOME="))
            .unwrap_or_else(|| panic!("{log}"));
        assert_ne!(Path::new(home), caller, "{log}");
        assert!(
            log.contains("HOME entries before: 0"),
            "round {round}: {log}"
        );
        assert!(!log.contains("HOME kept a file"), "round {round}: {log}");
        assert!(
            log.contains("npmrc: registry=https://npm.example/"),
            "{log}"
        );
        assert!(
            log.contains("pip.conf: [global] index-url = https://pypi.example/simple"),
            "{log}"
        );
    }
    assert!(!caller.join(".written-by-an-earlier-build").exists());
    assert_eq!(tmpdirs[0], tmpdirs[1], "one cache, one TMPDIR path");
}
