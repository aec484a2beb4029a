//! `slug build --buildpack` with the buildpacks platform teams bring: a Procfile CNB (as
//! heroku/buildpacks-procfile), classic monorepo, null and inline buildpacks, and CNBs whose
//! `launch.toml` the tests write. Each test drives the `slug` binary and checks what a user
//! sees: the exit code, the first `error:` line, the slug's files, the manifest, process
//! output and HTTP.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::{free_port, tiny_base, tmpfs_dir, wait_http, Running};

fn fixture_bp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/buildpacks")
        .join(name)
}

fn bp(name: &str) -> String {
    fixture_bp(name).to_string_lossy().into_owned()
}

/// `slug` with its default dirs (store, caches, unpack root) inside `home`.
fn slug(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slug"));
    cmd.env("XDG_CACHE_HOME", home.join("xdg-cache"))
        .env("XDG_DATA_HOME", home.join("xdg-data"))
        .env_remove("SOURCE_DATE_EPOCH")
        .stdin(Stdio::null());
    cmd
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(cmd: &mut Command) -> Run {
        let out = cmd.output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn first_error(&self) -> &str {
        self.stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no error line in:\n{}", self.stderr))
    }

    fn manifest(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "build failed:\n{}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

fn store(home: &Path) -> PathBuf {
    home.join("store")
}

/// `slug build APP --output <home>/store --cache-dir <home>/cache --json ARGS...`
fn build(home: &Path, app: &Path, args: &[&str]) -> Run {
    Run::of(
        slug(home)
            .arg("build")
            .arg(app)
            .arg("--output")
            .arg(store(home))
            .arg("--cache-dir")
            .arg(home.join("cache"))
            .arg("--json")
            .args(args),
    )
}

fn slug_path(home: &Path, m: &serde_json::Value) -> PathBuf {
    let hex = m["checksum"]
        .as_str()
        .unwrap()
        .strip_prefix("SHA256:")
        .unwrap();
    store(home).join(format!("sha256-{hex}.tgz"))
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn write_exe(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    write(path, text);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A copy of a fixture buildpack under `home`, for a test to change.
fn bp_copy(home: &Path, name: &str) -> PathBuf {
    let dest = home.join(format!("bp-{name}"));
    let st = Command::new("cp")
        .arg("-a")
        .arg(fixture_bp(name))
        .arg(&dest)
        .status()
        .unwrap();
    assert!(st.success());
    dest
}

/// The paths in a slug (`tar -tzf`), without `./`.
fn listing(slug: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("-tzf").arg(slug).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect()
}

/// The contents of one file of a slug.
fn slug_file(slug: &Path, path: &str) -> String {
    let out = Command::new("tar")
        .arg("-xzOf")
        .arg(slug)
        .arg(format!("./{path}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{path} not in {}", slug.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `slug run SLUG TYPE` until the formation ends: its output.
fn run_type(home: &Path, slug_arg: &str, process_type: &str) -> Run {
    Run::of(
        slug(home)
            .arg("run")
            .arg(slug_arg)
            .arg(process_type)
            .arg("--store")
            .arg(store(home))
            .args(["--color", "never", "--port", &free_port().to_string()]),
    )
}

/// A CNB whose `launch.toml` is `launch_toml`, declaring Buildpack API `api`.
fn launch_bp(home: &Path, api: &str, launch_toml: &str) -> String {
    let dir = bp_copy(home, "launch-file");
    let toml = std::fs::read_to_string(dir.join("buildpack.toml")).unwrap();
    write(
        &dir.join("buildpack.toml"),
        &toml.replace("api = \"0.10\"", &format!("api = \"{api}\"")),
    );
    write(&dir.join("launch.toml"), launch_toml);
    dir.to_string_lossy().into_owned()
}

fn empty_app(home: &Path) -> PathBuf {
    let app = home.join("app");
    write(&app.join("README"), "an app\n");
    app
}

#[test]
fn launch_metadata_is_validated_and_labels_and_default_reach_manifest_and_image() {
    let home = tmpfs_dir();
    let home = home.path();
    let app = empty_app(home);
    for (case, (api, launch, says)) in [
        (
            "0.10",
            "[[processes]]\ntype = \"web\"\ncommand = [\"a\"]\ndefault = true\n\n[[processes]]\ntype = \"worker\"\ncommand = [\"b\"]\ndefault = true\n",
            "process types \"web\" and \"worker\" are both `default = true`; at most one may be",
        ),
        (
            "0.10",
            "[[processes]]\ntype = \"web:1\"\ncommand = [\"a\"]\n",
            "invalid process type \"web:1\"",
        ),
        (
            "0.11",
            "[[processes]]\ntype = \"web\"\ncommand = [\"a\"]\n\n[[processes]]\ntype = \"web\"\ncommand = [\"b\"]\n",
            "process type \"web\" is defined twice",
        ),
        (
            "0.10",
            "[[processes]]\ntype = \"web\"\ncommand = \"python3 -m http.server\"\n",
            "has a string `command`; Buildpack API 0.10 requires an array",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = home.join(format!("case-{case}"));
        std::fs::create_dir_all(&dir).unwrap();
        let run = build(&dir, &app, &["--buildpack", &launch_bp(&dir, api, launch)]);
        assert_eq!(run.code, 20, "{launch}\n{}", run.stderr);
        let line = run.first_error();
        assert!(
            line.starts_with("error: buildpack test/launch-file: ") && line.contains("launch.toml"),
            "{line}"
        );
        assert!(line.contains(says), "{line:?} lacks {says:?}");
        assert!(
            std::fs::read_dir(store(&dir))
                .map(|d| d.count() == 0)
                .unwrap_or(true),
            "a refused build stores nothing"
        );
    }

    // The same file under API 0.9 is fine: there `command` is a string.
    let old = launch_bp(
        home,
        "0.9",
        "[[processes]]\ntype = \"web\"\ncommand = \"echo\"\nargs = [\"old\"]\n",
    );
    let m = build(home, &app, &["--buildpack", &old]).manifest();
    assert_eq!(m["process_types"]["web"], "echo old");

    let good = home.join("good");
    std::fs::create_dir_all(&good).unwrap();
    let launch = r#"
[[labels]]
key = "org.example.team"
value = "platform"

[[labels]]
key = "org.example.tier"
value = "gold"

[[processes]]
type = "web"
command = ["bash", "-c", "echo web"]

[[processes]]
type = "worker.high"
command = ["bash", "-c", "echo worker"]
default = true
"#;
    let m = build(
        &good,
        &app,
        &["--buildpack", &launch_bp(&good, "0.10", launch)],
    )
    .manifest();
    assert_eq!(m["default_process"], "worker.high");
    assert_eq!(m["labels"]["org.example.team"], "platform");
    assert_eq!(m["labels"]["org.example.tier"], "gold");
    assert_eq!(m["process_types"]["worker.high"], "echo worker");

    let out = good.join("oci");
    let base = tiny_base(&good.join("base"));
    let image = Run::of(
        slug(&good)
            .arg("image")
            .arg(slug_path(&good, &m))
            .arg("--base")
            .arg(format!("{}:tiny", base.display()))
            .args(["--tag", "app:1", "--output"])
            .arg(&out),
    );
    assert_eq!(image.code, 0, "{}", image.stderr);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| -> serde_json::Value {
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(out.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    let config = blob(manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["worker.high"]));
    assert_eq!(config["config"]["Labels"]["org.example.team"], "platform");
    assert_eq!(config["config"]["Labels"]["org.example.tier"], "gold");
}

/// A monorepo: the service in `services/api`, with its Procfile and page; nothing at the root
/// that a buildpack detects.
fn monorepo_app(home: &Path) -> PathBuf {
    let app = home.join("monorepo");
    write(&app.join("README.md"), "two services\n");
    write(
        &app.join("services/api/Procfile"),
        "web: python3 -m http.server $PORT\n",
    );
    write(&app.join("services/api/index.html"), "the api service\n");
    write(&app.join("services/admin/Procfile"), "web: false\n");
    app
}

#[test]
fn explicit_buildpacks_detect_one_after_the_other_so_a_cnb_sees_the_monorepo_subdir() {
    let home = tmpfs_dir();
    let home = home.path();
    let app = monorepo_app(home);
    let run = build(
        home,
        &app,
        &[
            "--buildpack",
            &bp("monorepo"),
            "--buildpack",
            &bp("procfile-cnb"),
            "--env",
            "APP_BASE=services/api",
        ],
    );
    let m = run.manifest();
    assert!(
        run.stderr.contains("-----> Monorepo app detected")
            && run.stderr.contains("-----> Procfile (test) app detected"),
        "{}",
        run.stderr
    );
    assert_eq!(m["process_types"]["web"], "python3 -m http.server $PORT");
    let ids: Vec<&str> = m["buildpacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["monorepo", "heroku/procfile"]);
    let slug_file_path = slug_path(home, &m);
    let paths = listing(&slug_file_path);
    assert!(paths.contains(&"app/index.html".to_string()), "{paths:?}");
    assert!(
        !paths.iter().any(|p| p.starts_with("app/services")),
        "{paths:?}"
    );

    // The web process serves the subdir.
    let port = free_port();
    let mut cmd = slug(home);
    cmd.arg("run")
        .arg(&slug_file_path)
        .arg("web")
        .args(["--color", "never", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _web = Running::spawn(cmd);
    let (status, body) = wait_http(port, || true).expect("web answers");
    assert_eq!(status, 200);
    // The app root served is the service's dir: its page is the index.
    assert_eq!(body, "the api service\n");
    drop(_web);

    // The same with the built-in Python buildpack after the monorepo one: it detects the
    // service's requirements.txt, which only exists at the root once the monorepo moved it.
    write(&app.join("services/api/requirements.txt"), "");
    write(
        &app.join("services/api/Procfile"),
        "web: python -m http.server $PORT\n",
    );
    let py = home.join("python");
    std::fs::create_dir_all(&py).unwrap();
    let run = build(
        &py,
        &app,
        &[
            "--buildpack",
            &bp("monorepo"),
            "--buildpack",
            "slugc/python",
            "--env",
            "APP_BASE=services/api",
        ],
    );
    let m = run.manifest();
    assert_eq!(m["buildpacks"][1]["id"], "slugc/python");
    assert_eq!(m["process_types"]["web"], "python -m http.server $PORT");
    let paths = listing(&slug_path(&py, &m));
    assert!(
        paths.contains(&"app/requirements.txt".to_string()),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.starts_with("app/services")),
        "{paths:?}"
    );
    let port = free_port();
    let mut cmd = slug(&py);
    cmd.arg("run")
        .arg(slug_path(&py, &m))
        .arg("web")
        .args(["--color", "never", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _web = Running::spawn(cmd);
    assert_eq!(
        wait_http(port, || true),
        Some((200, "the api service\n".to_string()))
    );
}

#[test]
fn the_procfile_is_read_from_the_build_result_and_not_doubled() {
    let home = tmpfs_dir();
    let home = home.path();

    // heroku/procfile turns `release_phase` into `release-phase`: one process, not two.
    let app = home.join("app");
    write(
        &app.join("Procfile"),
        "web: echo web-ran\nrelease_phase: echo migrated\n",
    );
    let m = build(home, &app, &["--buildpack", &bp("procfile-cnb")]).manifest();
    let types: Vec<&String> = m["process_types"].as_object().unwrap().keys().collect();
    assert_eq!(types, ["release-phase", "web"], "{m}");
    assert_eq!(m["default_process"], "web");
    let ran = run_type(home, slug_path(home, &m).to_str().unwrap(), "release-phase");
    assert!(
        ran.stdout.contains("migrated"),
        "{}\n{}",
        ran.stdout,
        ran.stderr
    );

    // A compile that rewrites the Procfile: its Procfile is the one that counts.
    let inline_app = home.join("inline-app");
    write(&inline_app.join("Procfile"), "web: echo from-the-source\n");
    write_exe(&inline_app.join("bin/detect"), "#!/bin/sh\necho Inline\n");
    write_exe(
        &inline_app.join("bin/compile"),
        "#!/bin/sh\nset -e\nprintf 'web: echo from-the-compile\\nworker: echo working\\n' > \"$1/Procfile\"\n",
    );
    let other = home.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let m = build(&other, &inline_app, &["--buildpack", &bp("inline")]).manifest();
    assert_eq!(m["process_types"]["web"], "echo from-the-compile");
    assert_eq!(m["process_types"]["worker"], "echo working");
    let ran = run_type(&other, slug_path(&other, &m).to_str().unwrap(), "web");
    assert!(
        ran.stdout.contains("from-the-compile"),
        "{}\n{}",
        ran.stdout,
        ran.stderr
    );
}

fn git(app: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(app)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn classic_buildpacks_get_stack_and_source_version() {
    let home = tmpfs_dir();
    let home = home.path();
    let app = home.join("app");
    // Detect sees STACK too; without it this app is not detected.
    write_exe(
        &app.join("bin/detect"),
        "#!/bin/sh\n[ -n \"$STACK\" ] || { echo 'no STACK'; exit 1; }\necho Inline\n",
    );
    write_exe(
        &app.join("bin/compile"),
        "#!/bin/sh\nset -e\n[ -d \"$2\" ] && [ -d \"$3\" ]\necho \"STACK=$STACK SOURCE_VERSION=${SOURCE_VERSION:-unset}\" > \"$1/seen.txt\"\n",
    );
    write(&app.join("Procfile"), "web: cat seen.txt\n");
    git(&app, &["init", "-q"]);
    git(&app, &["add", "-A"]);
    git(&app, &["commit", "-qm", "one"]);
    let head = git(&app, &["rev-parse", "HEAD"]);

    let m = build(home, &app, &["--buildpack", &bp("inline")]).manifest();
    let stack = m["stack"]["name"].as_str().unwrap();
    assert!(!stack.is_empty());
    assert_eq!(m["commit"], head.as_str());
    assert_eq!(
        slug_file(&slug_path(home, &m), "app/seen.txt"),
        format!("STACK={stack} SOURCE_VERSION={head}\n")
    );
}

#[test]
fn the_same_files_at_another_commit_give_the_same_slug_and_the_manifest_names_the_latest() {
    let home = tmpfs_dir();
    let home = home.path();
    let app = home.join("app");
    write(&app.join("Procfile"), "web: echo hello\n");
    git(&app, &["init", "-q"]);
    git(&app, &["add", "-A"]);
    git(&app, &["commit", "-qm", "one"]);
    let first = build(home, &app, &[]).manifest();
    git(&app, &["commit", "-q", "--allow-empty", "-m", "two"]);
    let head = git(&app, &["rev-parse", "HEAD"]);
    let second = build(home, &app, &[]).manifest();
    assert_eq!(first["checksum"], second["checksum"]);
    assert_ne!(first["commit"], second["commit"]);
    let stored: serde_json::Value = serde_json::from_slice(
        &std::fs::read(slug_path(home, &second).with_extension("json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        stored["commit"],
        head.as_str(),
        "the stored manifest is the latest build's"
    );
}

#[test]
fn a_classic_buildpack_that_empties_its_build_dir_after_a_cnb_keeps_the_cnb_layers() {
    let home = tmpfs_dir();
    let home = home.path();
    let app = home.join("app");
    write_exe(&app.join("bin/detect"), "#!/bin/sh\necho Inline\n");
    // Everything in the build dir goes, dotfiles too; a new app takes its place.
    write_exe(
        &app.join("bin/compile"),
        "#!/bin/bash\nset -e\nshopt -s dotglob nullglob\nrm -rf \"$1\"/*\nprintf 'web: launch-file-hello\\n' > \"$1/Procfile\"\n",
    );
    let launch = launch_bp(home, "0.10", "");
    let run = build(
        home,
        &app,
        &["--buildpack", &launch, "--buildpack", &bp("inline")],
    );
    let m = run.manifest();
    let slug_file_path = slug_path(home, &m);
    let paths = listing(&slug_file_path);
    assert!(
        paths.contains(&"app/.layers/test_launch-file/tools/bin/launch-file-hello".to_string()),
        "{paths:?}"
    );
    assert!(!paths.contains(&"app/bin/compile".to_string()), "{paths:?}");
    let ran = run_type(home, slug_file_path.to_str().unwrap(), "web");
    assert!(
        ran.stdout.contains("hello from the tools layer"),
        "{}\n{}",
        ran.stdout,
        ran.stderr
    );
}

#[test]
fn a_slug_holds_its_release_so_a_changed_launch_toml_gives_a_new_slug() {
    let home = tmpfs_dir();
    let home = home.path();
    let app = empty_app(home);
    let launch = |word: &str| {
        format!("[[processes]]\ntype = \"web\"\ncommand = [\"bash\", \"-c\", \"echo {word}\"]\ndefault = true\n")
    };
    let bp_dir = launch_bp(home, "0.10", &launch("first"));
    let first = build(home, &app, &["--buildpack", &bp_dir]).manifest();
    write(&Path::new(&bp_dir).join("launch.toml"), &launch("second"));
    let second = build(home, &app, &["--buildpack", &bp_dir]).manifest();

    assert_ne!(first["checksum"], second["checksum"]);
    assert_eq!(first["process_types"]["web"], "echo first");
    assert_eq!(second["process_types"]["web"], "echo second");
    let slug = slug_path(home, &second);
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(slug.with_extension("json")).unwrap()).unwrap();
    assert_eq!(stored, second, "the stored manifest is the build's");
    let ran = run_type(home, slug.to_str().unwrap(), "web");
    assert!(
        ran.stdout.contains("second"),
        "{}\n{}",
        ran.stdout,
        ran.stderr
    );

    // Without its manifest the slug still knows how to run: the release is inside it.
    std::fs::remove_file(slug.with_extension("json")).unwrap();
    let embedded: serde_json::Value =
        serde_json::from_str(&slug_file(&slug, "app/.slugc/release.json")).unwrap();
    assert_eq!(embedded["process_types"]["web"], "echo second");
    let ran = run_type(home, slug.to_str().unwrap(), "web");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("second"),
        "{}\n{}",
        ran.stdout,
        ran.stderr
    );
}

#[test]
fn a_closed_log_pipe_does_not_stop_the_build_and_slug_test_takes_build_options() {
    let home = tmpfs_dir();
    let home = home.path();
    let app = home.join("app");
    write(&app.join("Procfile"), "web: python3 -m http.server $PORT\n");
    write(&app.join("index.html"), "hi\n");

    // `slug build ... 2>&1 | head -1`: the reader is gone after the first line.
    let mut child = slug(home)
        .arg("build")
        .arg(&app)
        .arg("--output")
        .arg(store(home))
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .args([
            "--buildpack",
            &bp("null"),
            "--buildpack",
            &bp("procfile-cnb"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("----->"), "{first}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the build goes on to the end");
    let slugs: Vec<_> = std::fs::read_dir(store(home))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tgz"))
        .collect();
    assert_eq!(slugs.len(), 1, "its slug is written");

    // `slug test` builds with the same options as `slug build`: this app needs them.
    let needs = home.join("needs-options");
    write_exe(&needs.join("bin/detect"), "#!/bin/sh\necho Inline\n");
    write_exe(
        &needs.join("bin/compile"),
        "#!/bin/sh\nset -e\ndir=$(cat \"$3/WEB_ROOT\")\nprintf 'web: cd %s && python3 -m http.server $PORT\\n' \"$dir\" > \"$1/Procfile\"\n",
    );
    write(&needs.join("public/index.html"), "hello\n");
    let env_file = home.join("build.env");
    write(&env_file, "WEB_ROOT=public\n");
    let tested = Run::of(
        slug(home)
            .arg("test")
            .arg(&needs)
            .arg("--store")
            .arg(store(home))
            .args(["--buildpack", &bp("inline"), "--env-file"])
            .arg(&env_file)
            .args(["--env", "UNUSED=1", "--color", "never"]),
    );
    assert_eq!(tested.code, 0, "{}\n{}", tested.stdout, tested.stderr);
    assert!(
        tested
            .stdout
            .contains("slug test: PASS: web answered HTTP 200 on / after "),
        "{}",
        tested.stdout
    );
}

/// A classic buildpack that fails Heroku style (` !     ` lines, as the buildpacks' stdlib
/// `error` prints them): the build's first `error:` line is the first line of its last such
/// block, then which buildpack failed.
#[test]
fn a_failing_classic_buildpacks_own_message_is_the_first_error_line() {
    let home = tmpfs_dir();
    let home = home.path();
    let app = home.join("app");
    write_exe(&app.join("bin/detect"), "#!/bin/sh\necho Inline\n");
    write_exe(
        &app.join("bin/compile"),
        "#!/bin/sh\necho '-----> Installing'\necho ' !     An early warning'\necho 'more output'\n\
         echo ' !     Gemfile.lock is missing: run `bundle install` and commit it' >&2\n\
         echo ' !     (the build cannot resolve gems without it)' >&2\nexit 1\n",
    );
    let run = build(home, &app, &["--buildpack", &bp("inline")]);
    assert_eq!(run.code, 20, "{}", run.stderr);
    assert_eq!(
        run.first_error(),
        "error: Gemfile.lock is missing: run `bundle install` and commit it",
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("(buildpack inline failed with exit code 1; its output is above)"),
        "{}",
        run.stderr
    );
}
