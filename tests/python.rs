//! The Python buildpack through `slug build`: real apps, the real package index, the slug
//! unpacked in another dir and its web process answering HTTP.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{assert_built, first_error_line, fixture, free_port, unpack, Built, Running};

fn slug_build(app: &Path, out: &Path, cache: Option<&Path>, env: &[(&str, &str)]) -> Built {
    let mut command = Command::new(env!("CARGO_BIN_EXE_slug"));
    command
        .arg("build")
        .arg(app)
        .arg("--output")
        .arg(out)
        .arg("--json");
    match cache {
        Some(dir) => command.arg("--cache-dir").arg(dir),
        None => command.arg("--no-cache"),
    };
    command.envs(env.iter().copied());
    let output = command.output().expect("slug runs");
    let log = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    Built::new(output, out, log)
}

/// `slug test APP` with its own cache and store under `tmp`: its exit code, stdout, stderr.
fn slug_test(app: &Path, tmp: &Path) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_slug"))
        .arg("test")
        .arg(app)
        .arg("--store")
        .arg(tmp.join("store"))
        .args(["--timeout", "60", "--stop-timeout", "2", "--color", "never"])
        .env("XDG_CACHE_HOME", tmp.join("cache"))
        .env("XDG_DATA_HOME", tmp.join("data"))
        .env_remove("PYTHONHOME")
        .env_remove("LD_LIBRARY_PATH")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("slug runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// The slug's process as a dyno runs it, without the test's own Python environment.
fn run_in_slug(root: &Path, command: &str, port: u16) -> Running {
    let mut cmd = support::dyno_command(root, command, port);
    cmd.env_remove("PYTHONHOME").env_remove("LD_LIBRARY_PATH");
    Running::spawn(cmd)
}

/// Build `fixture`, unpack the slug in a different dir, start its `web` process, expect 200.
fn builds_and_serves(name: &str, body: &str) -> (tempfile::TempDir, Built) {
    let tmp = tempfile::tempdir().unwrap();
    let built = slug_build(&fixture(name), &tmp.path().join("out"), None, &[]);
    assert_built(&built);
    let root = tmp.path().join("elsewhere");
    unpack(&built.slug, &root);
    assert_web_serves(&root, &built, body);
    (tmp, built)
}

/// The slug unpacked at `root` starts its `web` process as a dyno does and answers 200 with
/// `body` in it.
fn assert_web_serves(root: &Path, built: &Built, body: &str) {
    let web = built.manifest["process_types"]["web"]
        .as_str()
        .unwrap_or_else(|| panic!("no web process in {}", built.manifest))
        .to_string();
    let port = free_port();
    let _running = run_in_slug(root, &web, port);
    let response = support::http_response(port);
    assert!(
        response.starts_with("HTTP/1.") && response.contains(" 200 "),
        "{response}"
    );
    assert!(response.contains(body), "{response}");
}

#[test]
fn flask_fixture_serves_from_another_dir_and_rebuilds_warm_without_installer() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    copy_dir(&fixture("python-flask"), &app);
    let cache = tmp.path().join("cache");
    let out = tmp.path().join("out");
    let cold = slug_build(&app, &out, Some(&cache), &[]);
    assert_built(&cold);
    assert_eq!(
        cold.log.matches("-----> Python app detected").count(),
        1,
        "{}",
        cold.log
    );
    assert!(
        cold.log.contains("-----> Installing Python 3.11."),
        "{}",
        cold.log
    );
    assert_eq!(
        cold.manifest["process_types"]["web"],
        "gunicorn app:app --bind 0.0.0.0:$PORT"
    );

    let root = tmp.path().join("elsewhere");
    unpack(&cold.slug, &root);
    let port = free_port();
    let running = run_in_slug(&root, "gunicorn app:app --bind 0.0.0.0:$PORT", port);
    let response = support::http_response(port);
    assert!(response.contains(" 200 "), "{response}");
    assert!(response.contains("Hello from Flask on slugc"), "{response}");
    drop(running);

    // Warm, nothing changed: both layers reused, no installer runs, same slug.
    let warm = slug_build(&app, &out, Some(&cache), &[]);
    assert_built(&warm);
    assert!(
        warm.log.contains("Using cached Python 3.11."),
        "{}",
        warm.log
    );
    assert!(warm.log.contains("Dependencies unchanged"), "{}", warm.log);
    assert!(
        warm.log
            .lines()
            .any(|l| l.contains("Keeping cached uv ")
                && l.ends_with(" for the next dependency change")),
        "{}",
        warm.log
    );
    for installer_line in ["Resolved ", "Installed ", "Installing uv", "Collecting "] {
        assert!(!warm.log.contains(installer_line), "{}", warm.log);
    }
    assert_eq!(warm.manifest["checksum"], cold.manifest["checksum"]);

    // A changed requirements file rebuilds the dependencies only, and says why.
    let mut requirements = std::fs::read_to_string(app.join("requirements.txt")).unwrap();
    requirements.push_str("six==1.17.0\n");
    std::fs::write(app.join("requirements.txt"), requirements).unwrap();
    let changed = slug_build(&app, &out, Some(&cache), &[]);
    assert_built(&changed);
    assert!(
        changed.log.contains("Using cached Python 3.11."),
        "{}",
        changed.log
    );
    assert!(
        changed
            .log
            .contains("Discarding cache: requirements.txt changed"),
        "{}",
        changed.log
    );
    assert!(changed.log.contains("+ six==1.17.0"), "{}", changed.log);
    // uv and its cache outlived the warm build that did not run uv: only six is fetched.
    assert!(changed.log.contains("Using cached uv "), "{}", changed.log);
    assert!(
        changed.log.contains("Prepared 1 package "),
        "{}",
        changed.log
    );
}

#[test]
fn two_cold_builds_in_different_dirs_give_identical_slugs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut checksums = Vec::new();
    for dir in ["first/place", "second"] {
        let app = tmp.path().join(dir).join("app");
        copy_dir(&fixture("python-flask"), &app);
        let built = slug_build(&app, &tmp.path().join(dir).join("out"), None, &[]);
        assert_built(&built);
        checksums.push(built.manifest["checksum"].clone());
    }
    assert_eq!(checksums[0], checksums[1]);
}

#[test]
fn the_uv_wheel_is_kept_in_the_download_cache_under_the_indexs_sha256() {
    let tmp = tempfile::tempdir().unwrap();
    let content = tmp.path().join("content");
    let built = slug_build(
        &fixture("python-flask"),
        &tmp.path().join("out"),
        Some(&tmp.path().join("cache")),
        &[("SLUGC_CONTENT_CACHE", content.to_str().unwrap())],
    );
    assert_built(&built);
    let kept: Vec<PathBuf> = std::fs::read_dir(content.join("downloads"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let name = kept[0].file_name().unwrap().to_string_lossy().into_owned();
    let out = Command::new("sha256sum").arg(&kept[0]).output().unwrap();
    let actual = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        name.strip_prefix("sha256-"),
        actual.split_whitespace().next(),
        "named by the digest of its bytes"
    );
    let listing = Command::new("python3")
        .args(["-m", "zipfile", "-l"])
        .arg(&kept[0])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains(".data/scripts/uv"),
        "the uv wheel"
    );
}

#[test]
fn django_fixture_collects_static_files_and_serves() {
    let (tmp, built) = builds_and_serves("python-django", "Hello from Django on slugc");
    assert!(built.log.contains("1 static file copied"), "{}", built.log);
    assert_runtime_is_trimmed_and_bytecode_is_used(&tmp.path().join("elsewhere"));
    assert_eq!(
        built.manifest["process_types"]["web"],
        "gunicorn mysite.wsgi --bind 0.0.0.0:$PORT"
    );
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&built.slug)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("app/staticfiles/css/site.css"));
}

/// No ELF file of the runtime (`bin/`, `lib/`, `lib/python<minor>/lib-dynload`) keeps debug
/// information, and none is a test extension module.
fn assert_runtime_is_stripped(runtime: &Path, minor: &str) {
    let mut elf = Vec::new();
    for dir in [
        runtime.join("bin"),
        runtime.join("lib"),
        runtime.join(format!("lib/python{minor}/lib-dynload")),
    ] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(!name.starts_with("_testcapi"), "{}", path.display());
            if path.is_symlink() || !path.is_file() {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            if bytes.starts_with(b"\x7fELF") {
                let has_debug = bytes.windows(11).any(|w| w == b".debug_info");
                assert!(!has_debug, "{} keeps debug information", path.display());
                elf.push(path);
            }
        }
    }
    assert!(elf.len() > 10, "{elf:?}");
}

/// What a slug's runtime leaves out (test suites, IDLE, debug information), and the bytecode
/// that comes with the standard library and the packages is valid where the slug was unpacked:
/// Python loads it (`-v` says "… matches …") instead of compiling the sources.
fn assert_runtime_is_trimmed_and_bytecode_is_used(root: &Path) {
    let runtime = root.join("app/.layers/slugc_python/runtime");
    let stdlib = runtime.join("lib/python3.11");
    assert!(stdlib.join("os.py").is_file(), "{}", stdlib.display());
    for gone in [
        "test",
        "idlelib",
        "turtledemo",
        "unittest/test",
        "lib2to3/tests",
    ] {
        assert!(!stdlib.join(gone).exists(), "{gone} is in the runtime");
    }
    assert_runtime_is_stripped(&runtime, "3.11");
    let output = Command::new("bash")
        .arg("-c")
        .arg(
            "cd app && export HOME=$PWD && for f in .profile.d/*.sh; do . \"$f\"; done; \
             python -B -v -c 'import json, django'",
        )
        .current_dir(root)
        .env_remove("PYTHONHOME")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for module in ["json/__init__", "django/__init__"] {
        let pyc = format!("{module}.cpython-311.pyc").replace('/', "/__pycache__/");
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&pyc) && l.contains(" matches ")),
            "{module}: no valid bytecode used\n{stderr}"
        );
    }
}

#[test]
fn django_collectstatic_can_be_disabled() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out2");
    let mut command = Command::new(env!("CARGO_BIN_EXE_slug"));
    let output = command
        .args([
            "build",
            "--no-cache",
            "--env",
            "DISABLE_COLLECTSTATIC=1",
            "--output",
        ])
        .arg(&out)
        .arg(fixture("python-django"))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("Skipping Django collectstatic"), "{log}");
}

/// Each of `modules` imports with the slug's Python, unpacked at `root`, as a dyno runs it;
/// isolated (`-I`), so the app dir is not on `sys.path` and only installed packages count.
fn assert_imports(root: &Path, modules: &[&str]) {
    let code = format!("import {}", modules.join(", "));
    let mut cmd = support::dyno_command(root, &format!("python -I -c '{code}'"), free_port());
    cmd.env_remove("PYTHONHOME").env_remove("LD_LIBRARY_PATH");
    let output = cmd.output().expect("bash runs");
    assert!(
        output.status.success(),
        "{code} failed in the slug:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn poetry_fixture_installs_main_group_and_serves() {
    let (tmp, built) = builds_and_serves("python-poetry", "Hello from a Poetry app on slugc");
    assert!(built.log.contains("+ flask==3.1.0"), "{}", built.log);
    assert!(!built.log.contains("+ pytest"), "{}", built.log);
    assert_imports(&tmp.path().join("elsewhere"), &["flask", "gunicorn"]);
}

#[test]
fn uv_fixture_syncs_locked_and_serves_with_uvicorn() {
    let (_tmp, built) = builds_and_serves("python-uv", "from a uv app on slugc");
    assert_eq!(
        built.manifest["process_types"]["web"],
        "uvicorn main:app --host 0.0.0.0 --port $PORT"
    );
    // requires-python = ">=3.12" chose a 3.12+ runtime; the dev group is not installed.
    assert!(built.log.contains("Installing Python 3.1"), "{}", built.log);
    assert!(!built.log.contains("+ pytest"), "{}", built.log);
}

#[test]
fn pipenv_fixture_installs_default_packages_and_serves() {
    let (tmp, built) = builds_and_serves("python-pipenv", "Hello from a Pipenv app on slugc");
    assert!(!built.log.contains("+ pytest"), "{}", built.log);
    assert_imports(&tmp.path().join("elsewhere"), &["flask", "gunicorn"]);
}

/// The build fails with `code`, and the first line on stderr is an `error:` naming `files`.
fn assert_refused(name: &str, code: i32, files: &[&str]) -> Built {
    let tmp = tempfile::tempdir().unwrap();
    let built = slug_build(&fixture(name), &tmp.path().join("out"), None, &[]);
    assert_eq!(built.output.status.code(), Some(code), "{}", built.log);
    let stderr = String::from_utf8_lossy(&built.output.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "first stderr line: {first:?}");
    for file in files {
        assert!(
            first.contains(file),
            "{file} not in the first line {first:?}"
        );
    }
    built
}

#[test]
fn stale_poetry_lock_is_refused_naming_both_files() {
    let built = assert_refused(
        "python-bad-stale-poetry-lock",
        30,
        &["poetry.lock", "pyproject.toml"],
    );
    assert!(built.log.contains("Run `poetry lock`"), "{}", built.log);
}

#[test]
fn stale_pipfile_lock_is_refused_naming_both_files() {
    let built = assert_refused(
        "python-bad-stale-pipfile-lock",
        30,
        &["Pipfile.lock", "Pipfile"],
    );
    assert!(built.log.contains("Run `pipenv lock`"), "{}", built.log);
}

/// uv alone knows whether its lock matches the project: `uv sync --locked` says so, and the
/// build reports it as the stale lockfile it is (exit 30, both files named first).
#[test]
fn stale_uv_lock_is_refused_naming_both_files() {
    assert_fails(
        "python-bad-stale-uv-lock",
        30,
        &[
            "error: uv.lock is out of date with pyproject.toml",
            "Run `uv lock`",
        ],
    );
}

#[test]
fn project_dependencies_without_a_lockfile_are_refused() {
    let built = assert_refused(
        "python-bad-project-without-lock",
        30,
        &[
            "pyproject.toml",
            "uv.lock",
            "poetry.lock",
            "requirements.txt",
        ],
    );
    assert!(built.log.contains("`uv lock`"), "{}", built.log);
}

#[test]
fn uv_package_in_src_layout_is_installed_and_serves() {
    let (tmp, built) = builds_and_serves(
        "python-uv-package",
        "Hello from an installed uv package on slugc",
    );
    assert!(built.log.contains("+ greeter==0.1.0"), "{}", built.log);
    let root = tmp.path().join("elsewhere");
    assert_imports(&root, &["flask", "gunicorn", "greeter"]);
    // Installed as a copy, recorded at the app's run-time path: no build path in the slug.
    let site = std::fs::read_dir(root.join("app/.layers/slugc_python/venv/lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("site-packages");
    let direct_url =
        std::fs::read_to_string(site.join("greeter-0.1.0.dist-info/direct_url.json")).unwrap();
    assert!(
        direct_url.contains("\"url\":\"file:///app\""),
        "{direct_url}"
    );
    assert!(site.join("greeter/__init__.py").is_file());
    assert!(!site.join("greeter-0.1.0.dist-info/uv_cache.json").exists());
}

#[test]
fn uv_package_is_reinstalled_when_its_source_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    copy_dir(&fixture("python-uv-package"), &app);
    let (cache, out) = (tmp.path().join("cache"), tmp.path().join("out"));
    assert_built(&slug_build(&app, &out, Some(&cache), &[]));
    let warm = slug_build(&app, &out, Some(&cache), &[]);
    assert_built(&warm);
    assert!(warm.log.contains("Dependencies unchanged"), "{}", warm.log);

    let module = app.join("src/greeter/__init__.py");
    let source = std::fs::read_to_string(&module).unwrap();
    std::fs::write(&module, source.replace("Hello from", "Changed:")).unwrap();
    let changed = slug_build(&app, &out, Some(&cache), &[]);
    assert_built(&changed);
    assert!(
        changed
            .log
            .contains("Discarding cache: the project's files changed"),
        "{}",
        changed.log
    );
    let root = tmp.path().join("elsewhere");
    unpack(&changed.slug, &root);
    let lib = root.join("app/.layers/slugc_python/venv/lib");
    let python_dir = std::fs::read_dir(&lib).unwrap().next().unwrap().unwrap();
    let installed =
        std::fs::read_to_string(python_dir.path().join("site-packages/greeter/__init__.py"))
            .unwrap();
    assert!(
        installed.contains("Changed: an installed uv package"),
        "{installed}"
    );
}

#[test]
fn django_api_without_staticfiles_skips_collectstatic_and_serves() {
    let (tmp, built) = builds_and_serves("python-django-api", "Hello from a Django API on slugc");
    assert!(
        built.log.contains(
            "Skipping Django collectstatic: the 'django.contrib.staticfiles' app is not in \
             INSTALLED_APPS."
        ),
        "{}",
        built.log
    );
    assert_imports(&tmp.path().join("elsewhere"), &["django", "gunicorn"]);
}

/// The build fails with `code`; the build's first `error:` line is the `error:` needle (the
/// buildpack's own cause, naming the file), and the log holds every needle.
fn assert_fails(name: &str, code: i32, needles: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let built = slug_build(&fixture(name), &tmp.path().join("out"), None, &[]);
    assert_eq!(built.output.status.code(), Some(code), "{}", built.log);
    let first = first_error_line(&built.log);
    let cause = needles.iter().find(|n| n.starts_with("error: "));
    if let Some(cause) = cause {
        assert!(
            first.starts_with(cause),
            "first error: line {first:?}, not {cause:?}"
        );
    }
    for needle in needles {
        assert!(
            built.log.contains(needle),
            "{needle:?} not in:\n{}",
            built.log
        );
    }
}

#[test]
fn two_lockfiles_fail_naming_both() {
    assert_fails(
        "python-bad-two-lockfiles",
        30,
        &["error: more than one package manager file in the app: poetry.lock, uv.lock"],
    );
}

#[test]
fn unknown_version_fails_listing_available_versions() {
    assert_fails(
        "python-bad-unknown-version",
        20,
        &[
            "error: Python 3.99 (from .python-version) is not a known Python version",
            "Available: ",
            "3.11.2",
        ],
    );
}

#[test]
fn malformed_version_fails_naming_the_file() {
    assert_fails(
        "python-bad-malformed-version",
        30,
        &["error: invalid Python version in .python-version: \"python3.11\" is not a Python version"],
    );
}

#[test]
fn missing_requirement_fails_with_the_installer_error() {
    assert_fails(
        "python-bad-missing-requirement",
        20,
        &[
            "this-package-does-not-exist-slugc-fixture",
            "error: installing requirements.txt failed (see requirements.txt)",
        ],
    );
}

/// A python-build-standalone style mirror on 127.0.0.1: `SHA256SUMS` and one install_only
/// archive built from Debian's python3.11 (present on every machine this project builds on).
struct Mirror {
    url: String,
}

fn install_only_archive() -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    builder.follow_symlinks(true);
    builder
        .append_path_with_name("/usr/bin/python3.11", "python/bin/python3.11")
        .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    builder
        .append_link(&mut header, "python/bin/python3", "python3.11")
        .unwrap();
    for entry in std::fs::read_dir("/usr/lib/python3.11").unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("config-") || name == "test" || name == "__pycache__" {
            continue;
        }
        let dest = format!("python/lib/python3.11/{name}");
        if entry.path().is_dir() {
            builder.append_dir_all(&dest, entry.path()).unwrap();
        } else if entry.path().is_file() {
            builder.append_path_with_name(entry.path(), &dest).unwrap();
        }
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn start_mirror(archive: Vec<u8>, claimed_sha256: Option<&str>) -> Mirror {
    use sha2::Digest;
    let name = "cpython-3.11.2+20990101-x86_64-unknown-linux-gnu-install_only.tar.gz";
    let sha = claimed_sha256
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:x}", sha2::Sha256::digest(&archive)));
    let sums = format!("{sha}  {name}\n").into_bytes();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/release", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&request)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let body: Option<&[u8]> = if path == "/release/SHA256SUMS" {
                Some(&sums)
            } else if path == format!("/release/{}", name.replace('+', "%2B")) {
                Some(&archive)
            } else {
                None
            };
            let (status, body) = match body {
                Some(b) => ("200 OK", b),
                None => ("404 Not Found", &b""[..]),
            };
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            let _ = stream.write_all(body);
        }
    });
    Mirror { url }
}

fn runtime_only_app(root: &Path) -> PathBuf {
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join(".python-version"), "3.11.2\n").unwrap();
    std::fs::write(
        app.join("main.py"),
        "print('hello from the mirror runtime')\n",
    )
    .unwrap();
    app
}

#[test]
fn mirror_archive_is_verified_used_and_runs_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = start_mirror(install_only_archive(), None);
    let app = runtime_only_app(tmp.path());
    let built = slug_build(
        &app,
        &tmp.path().join("out"),
        None,
        &[("SLUGC_PYTHON_MIRROR", mirror.url.as_str())],
    );
    assert_built(&built);
    assert!(
        built.log.contains(&format!(
            "from mirror archive {}/cpython-3.11.2%2B20990101",
            mirror.url
        )),
        "{}",
        built.log
    );
    assert!(
        built.log.contains("No web process: add a Procfile"),
        "{}",
        built.log
    );
    let root = tmp.path().join("elsewhere");
    unpack(&built.slug, &root);
    let output = Command::new("bash")
        .arg("-c")
        .arg(
            "cd app && export HOME=$PWD && for f in .profile.d/*.sh; do . \"$f\"; done; \
              python3 main.py && python3 -c 'import sys; print(sys.prefix)'",
        )
        .current_dir(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("hello from the mirror runtime"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}/app/.layers/slugc_python/runtime",
            root.display()
        )),
        "{stdout}"
    );
}

#[test]
fn mirror_checksum_mismatch_fails_the_build() {
    let tmp = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let mirror = start_mirror(install_only_archive(), Some(&wrong));
    let app = runtime_only_app(tmp.path());
    let built = slug_build(
        &app,
        &tmp.path().join("out"),
        None,
        &[("SLUGC_PYTHON_MIRROR", mirror.url.as_str())],
    );
    assert_eq!(built.output.status.code(), Some(20), "{}", built.log);
    assert!(built.log.contains("SHA-256 mismatch for"), "{}", built.log);
    assert!(
        built.log.contains(&format!("SHA256SUMS says {wrong}")),
        "{}",
        built.log
    );
}

/// A build-time `PATH` config var (here from `project.toml`'s build env, as `--env PATH=…`
/// sets one) is prepended to the build's PATH, never replacing it: the host's `strip` still
/// trims the runtime, and the app builds and serves as without it.
#[test]
fn a_path_config_var_keeps_the_builds_own_tools() {
    let (tmp, built) = builds_and_serves(
        "python-path-config-var",
        "Hello from an app built with a PATH config var",
    );
    assert!(!built.log.contains("no `strip`"), "{}", built.log);
    let root = tmp.path().join("elsewhere");
    assert_runtime_is_stripped(&root.join("app/.layers/slugc_python/runtime"), "3.11");
    assert_imports(&root, &["flask", "gunicorn"]);
}

/// A CNB that runs after `slugc/python` and prints, for each command, where it is and its
/// version, then what the app's package manager sees installed.
fn probe_buildpack(dir: &Path, package_manager_check: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bp = dir.join("probe-buildpack");
    std::fs::create_dir_all(bp.join("bin")).unwrap();
    std::fs::write(
        bp.join("buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"test/probe\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    std::fs::write(bp.join("bin/detect"), "#!/usr/bin/env bash\nexit 0\n").unwrap();
    std::fs::write(
        bp.join("bin/build"),
        format!(
            "#!/usr/bin/env bash\nset -euo pipefail\n\
             for c in python pip poetry pipenv uv; do echo \"probe: $c at $(command -v $c || echo none)\"; done\n\
             echo \"probe: $(python --version)\"\n\
             echo \"probe: $(pip --version)\"\n\
             pip list --disable-pip-version-check | sed 's/^/probe: pip list: /'\n\
             {package_manager_check}\n"
        ),
    )
    .unwrap();
    for exe in ["bin/detect", "bin/build"] {
        std::fs::set_permissions(bp.join(exe), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bp
}

/// After `slugc/python`, a later buildpack's `python`, `pip` and the app's package manager
/// are the build's own (in `slugc/python`'s layers, at the versions it pins), and they work on
/// the slug's virtual environment; the package managers stay out of the slug.
#[test]
fn later_buildpacks_see_the_python_toolchain() {
    let layers = "/.layers/slugc_python/";
    for (fixture_name, command, version, check, package) in [
        (
            "python-poetry",
            "poetry",
            "Poetry (version 2.5.1)",
            "echo \"probe: $(poetry --version)\"; \
             echo \"probe: poetry env: $(poetry env info --path)\"",
            "flask",
        ),
        (
            "python-pipenv",
            "pipenv",
            "pipenv, version 2026.10.3",
            "echo \"probe: $(pipenv --version)\"; \
             echo \"probe: pipenv env: $(pipenv --venv 2>/dev/null)\"",
            "flask",
        ),
        (
            "python-uv",
            "uv",
            "uv 0.13.9",
            "echo \"probe: $(uv --version)\"; \
             uv pip list 2>/dev/null | sed 's/^/probe: uv pip list: /'",
            "fastapi",
        ),
        ("python-flask", "pip", "pip 26.3 ", "true", "flask"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let bp = probe_buildpack(tmp.path(), check);
        let out = tmp.path().join("out");
        let output = Command::new(env!("CARGO_BIN_EXE_slug"))
            .arg("build")
            .arg(fixture(fixture_name))
            .args([
                "--no-cache",
                "--json",
                "--buildpack",
                "slugc/python",
                "--buildpack",
            ])
            .arg(&bp)
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{fixture_name}: {log}");
        let probe: Vec<&str> = log
            .lines()
            .filter_map(|l| l.trim().strip_prefix("probe: "))
            .collect();
        let at = |c: &str| {
            probe
                .iter()
                .find_map(|l| l.strip_prefix(&format!("{c} at ")))
                .unwrap_or_else(|| panic!("{fixture_name}: no {c} in {probe:?}"))
                .to_string()
        };
        for c in ["python", "pip", command] {
            assert!(at(c).contains(layers), "{fixture_name}: {c} at {}", at(c));
        }
        let venv = at("python").trim_end_matches("/bin/python").to_string();
        // `python` is the runtime the build installed; `pip` is pinned and installs into the venv.
        let installed = log
            .lines()
            .find_map(|l| l.trim().strip_prefix("-----> Installing Python "))
            .unwrap_or_else(|| panic!("{fixture_name}: {log}"));
        assert!(
            probe.contains(&format!("Python {installed}").as_str()),
            "{probe:?}"
        );
        assert!(
            probe.iter().any(|l| l.starts_with("pip 26.3 ")),
            "{fixture_name}: {probe:?}"
        );
        assert!(
            probe.iter().any(|l| l
                .strip_prefix("pip list: ")
                .is_some_and(|p| p.to_lowercase().starts_with(&format!("{package} ")))),
            "{fixture_name}: pip does not list {package}: {probe:?}"
        );
        assert!(
            probe.iter().any(|l| l.starts_with(version)),
            "{fixture_name}: {version} not in {probe:?}"
        );
        match command {
            "poetry" => assert!(
                probe.contains(&format!("poetry env: {venv}").as_str()),
                "{probe:?}"
            ),
            "pipenv" => assert!(
                probe.contains(&format!("pipenv env: {venv}").as_str()),
                "{probe:?}"
            ),
            "uv" => assert!(
                probe.iter().any(|l| l
                    .strip_prefix("uv pip list: ")
                    .is_some_and(|p| p.starts_with(&format!("{package} ")))),
                "{probe:?}"
            ),
            _ => {}
        }
        let manifest: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let hex = manifest["checksum"]
            .as_str()
            .unwrap()
            .trim_start_matches("SHA256:");
        let root = tmp.path().join("unpacked");
        unpack(&out.join(format!("sha256-{hex}.tgz")), &root);
        for tool in ["pip", "poetry", "pipenv", "uv"] {
            assert!(
                !root.join("app/.layers/slugc_python").join(tool).exists(),
                "{fixture_name}: the {tool} layer is in the slug"
            );
        }
    }
}

/// `[tool.poetry.dependencies] python = "~3.12"` narrows `requires-python = ">=3.11"`: the build
/// picks a 3.12, not the newest Python, and the app runs on it.
#[test]
fn poetry_python_constraint_is_satisfied() {
    let (tmp, built) = builds_and_serves(
        "python-poetry-python-constraint",
        "Hello from Poetry on Python 3.12",
    );
    assert!(
        built
            .log
            .contains("within: pyproject.toml [tool.poetry.dependencies] python is \"~3.12\""),
        "{}",
        built.log
    );
    assert_imports(&tmp.path().join("elsewhere"), &["flask", "gunicorn"]);
}

/// `.python-version` asks for 3.13 where pyproject.toml allows only 3.12: refused before
/// anything is installed, naming both files and suggesting a `3.X`.
#[test]
fn python_version_outside_the_projects_constraint_is_refused() {
    let built = assert_refused(
        "python-bad-python-constraint-conflict",
        30,
        &[".python-version", "pyproject.toml"],
    );
    assert!(
        built.log.contains("Fix: request `3.12` in .python-version"),
        "{}",
        built.log
    );
    assert!(!built.log.contains("Installing"), "{}", built.log);
}

/// `requires-python = "3.12.*"` (no operator: Poetry's syntax, not PEP 440) is read as Poetry
/// reads it, so a `.python-version` of 3.13 is refused as outside it, before any install.
#[test]
fn a_bare_requires_python_is_read_as_poetry_reads_it() {
    let built = assert_refused(
        "python-bad-bare-requires-python",
        30,
        &[".python-version", "pyproject.toml"],
    );
    assert_eq!(
        first_error_line(&built.log),
        "error: no Python version satisfies every constraint in .python-version, pyproject.toml"
    );
    assert!(
        built
            .log
            .contains("pyproject.toml [project] requires-python is \"3.12.*\""),
        "{}",
        built.log
    );
    assert!(!built.log.contains("Installing"), "{}", built.log);
}

/// 3.12.999 is beyond the newest 3.12 release: it does not exist, whether or not the mirror can
/// be reached, so the build fails (20, not 75), listing what is available and suggesting a line.
#[test]
fn a_patch_that_does_not_exist_fails_listing_what_is_available() {
    assert_fails(
        "python-bad-nonexistent-patch",
        20,
        &[
            "error: Python 3.12.999 (from .python-version) is not a known Python version",
            "Available: ",
            "in .python-version (e.g. `3.",
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let built = slug_build(
        &fixture("python-bad-nonexistent-patch"),
        &tmp.path().join("out"),
        None,
        &[],
    );
    let fix = built
        .log
        .lines()
        .find(|l| l.contains("Fix: request"))
        .unwrap();
    let suggested = fix.split('`').nth(1).unwrap();
    assert_eq!(suggested.matches('.').count(), 1, "not a 3.X line: {fix}");
}

/// An end-of-life line is refused (20), and a host interpreter of that line, when there is
/// one, is named as not used.
#[test]
fn an_end_of_life_line_is_refused_naming_the_unused_host_interpreter() {
    let tmp = tempfile::tempdir().unwrap();
    let built = slug_build(
        &fixture("python-bad-eol-version"),
        &tmp.path().join("out"),
        None,
        &[],
    );
    assert_eq!(built.output.status.code(), Some(20), "{}", built.log);
    assert!(
        built
            .log
            .contains("error: Python 3.9 (from .python-version) has reached end of life"),
        "{}",
        built.log
    );
    let home = std::env::var("HOME").unwrap();
    let pyenv = std::env::var("PYENV_ROOT").unwrap_or(format!("{home}/.pyenv"));
    let host_39: Vec<PathBuf> = std::fs::read_dir(Path::new(&pyenv).join("versions"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join("bin/python3.9"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    if let Some(p) = host_39.first() {
        let real = std::fs::canonicalize(p).unwrap();
        assert!(
            built.log.contains(&format!(
                "{} exists but was not used (its line is end of life)",
                real.display()
            )),
            "{}",
            built.log
        );
    } else {
        assert!(
            built.log.contains("host interpreters: none matching"),
            "{}",
            built.log
        );
    }
}

/// Python 3.10 is past its upstream end of life but inside Heroku's grace period: it builds
/// with a deprecation warning, and the app serves on it.
#[test]
fn a_deprecated_line_builds_with_a_warning_and_serves() {
    let (tmp, built) = builds_and_serves(
        "python-deprecated-3.10",
        "Hello from Python 3.10, deprecated but built",
    );
    assert!(
        built
            .log
            .contains("warning: Python 3.10 reached its upstream end of life in October 2026"),
        "{}",
        built.log
    );
    // The nearest supported line and the one-line change.
    assert!(
        built.log.contains(
            "the nearest supported line is 3.11: change it to `3.11` in .python-version."
        ),
        "{}",
        built.log
    );
    assert_imports(&tmp.path().join("elsewhere"), &["flask", "gunicorn"]);
}

/// An index on 127.0.0.1 that refuses every connection: the installer fails on the network,
/// which is temporary (75), named as such.
#[test]
fn an_unreachable_index_is_a_temporary_failure() {
    assert_fails(
        "python-bad-unreachable-index",
        75,
        &["error: installing requirements.txt failed on the network (see requirements.txt)"],
    );
}

/// runtime.txt beside .python-version is refused before anything runs (30), as Heroku's CNB
/// refuses runtime.txt; the fix says .python-version already counts.
#[test]
fn runtime_txt_beside_python_version_is_refused() {
    let built = assert_refused(
        "python-bad-runtime-txt-beside-python-version",
        30,
        &["runtime.txt", ".python-version"],
    );
    assert!(
        built.log.contains(
            ".python-version already asks for \"3.12\", and it is what counts: delete runtime.txt."
        ),
        "{}",
        built.log
    );
}

#[test]
fn gunicorn_20_without_pkg_resources_is_named_and_the_named_fix_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let app = fixture("python-gunicorn-20");
    let (code, out, err) = slug_test(&app, tmp.path());
    // It builds, with the warning at column 0 naming both fixes; web then fails to import.
    let warning = err
        .lines()
        .find(|l| l.starts_with("warning: gunicorn 20.1.0 imports pkg_resources"))
        .unwrap_or_else(|| panic!("no warning:\n{err}"));
    assert!(
        warning.contains("add `setuptools<81` to requirements.txt, or upgrade gunicorn"),
        "{warning}"
    );
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(out.contains("No module named 'pkg_resources'"), "{out}");
    // Repeated just above the failure, after the build log.
    let lines: Vec<&str> = err.lines().collect();
    let error_at = lines
        .iter()
        .position(|l| l.starts_with("error: ") && l.contains("web exited"))
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(lines[error_at - 1], warning, "{err}");
    assert_eq!(lines.iter().filter(|l| **l == warning).count(), 2, "{err}");

    // The first fix it names: setuptools<81 pinned. No warning, and web answers.
    let fixed = tmp.path().join("fixed");
    copy_dir(&app, &fixed);
    let mut requirements = std::fs::read_to_string(fixed.join("requirements.txt")).unwrap();
    requirements.push_str("setuptools<81\n");
    std::fs::write(fixed.join("requirements.txt"), requirements).unwrap();
    let (code, out, err) = slug_test(&fixed, &tmp.path().join("second"));
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(!err.contains("imports pkg_resources"), "{err}");
    assert!(
        out.contains("slug test: PASS: web answered HTTP 200 on / after "),
        "{out}"
    );
}

#[test]
fn pinned_wheels_choose_the_newest_line_that_has_them_and_a_pinned_python_is_kept() {
    // The machines this runs on have Python 3.11, 3.12 and a newer default (pyenv); orjson
    // 3.10.6 has wheels up to cp312.
    let tmp = tempfile::tempdir().unwrap();
    let app = fixture("python-pinned-wheels");
    let (code, out, err) = slug_test(&app, tmp.path());
    assert_eq!(code, Some(0), "{out}\n{err}");
    let warning = err
        .lines()
        .find(|l| l.starts_with("warning: Python 3.12 instead of the default "))
        .unwrap_or_else(|| panic!("no line saying why:\n{err}"));
    assert!(
        warning.contains("orjson==3.10.6 has no wheel for Python 3.1")
            && warning.ends_with("pin it with a .python-version file holding `3.12`"),
        "{warning}"
    );
    assert!(
        err.contains("Python 3.12.") && err.contains("(requested by the app's pinned wheels"),
        "{err}"
    );
    assert!(
        out.contains("slug test: PASS: web answered HTTP 200 on / after "),
        "{out}"
    );

    // The slug serves on 3.12 elsewhere, and orjson imports there.
    let built = slug_build(&app, &tmp.path().join("out"), None, &[]);
    assert_built(&built);
    let root = tmp.path().join("elsewhere");
    unpack(&built.slug, &root);
    let port = free_port();
    let _running = run_in_slug(&root, "python server.py", port);
    let response = support::http_response(port);
    assert!(
        response.contains(r#"{"python":"3.12","orjson":"3.10.6"}"#),
        "{response}"
    );

    // A pinned Python is never overridden, and then nothing is said.
    let pinned = tmp.path().join("pinned");
    copy_dir(&app, &pinned);
    std::fs::write(pinned.join(".python-version"), "3.11\n").unwrap();
    let built = slug_build(&pinned, &tmp.path().join("out2"), None, &[]);
    assert_built(&built);
    assert!(built.log.contains("Python 3.11."), "{}", built.log);
    assert!(
        !built.log.contains("instead of the default"),
        "{}",
        built.log
    );
}

/// With uv not to be had (not in the find-links dir, the index refusing connections), pip
/// installs: two cold builds in different build and cache dirs give the same slug bytes (no
/// build path in `activate*`, `RECORD` listing the rewritten scripts' hashes), which serves.
#[test]
fn the_pip_fallback_is_reproducible_and_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let wheels = tmp.path().join("wheels");
    let download = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--only-binary=:all:", "--python-version", "3.11", "--dest"])
        .arg(&wheels)
        .args(["flask==3.1.0", "gunicorn==23.0.0", "pip==26.3"])
        .env_remove("PIP_FIND_LINKS")
        .output()
        .unwrap();
    assert!(
        download.status.success(),
        "{}",
        String::from_utf8_lossy(&download.stderr)
    );
    let find_links = format!("PIP_FIND_LINKS={}", wheels.display());
    let mut slugs = Vec::new();
    for dir in ["one", "two/deeper"] {
        let app = tmp.path().join(dir).join("app");
        copy_dir(&fixture("python-pip-fallback"), &app);
        let out = tmp.path().join(dir).join("out");
        let output = Command::new(env!("CARGO_BIN_EXE_slug"))
            .arg("build")
            .arg(&app)
            .args(["--json", "--env", &find_links, "--output"])
            .arg(&out)
            .arg("--cache-dir")
            .arg(tmp.path().join(dir).join("cache"))
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        let built = Built::new(output, &out, log);
        assert_built(&built);
        assert!(
            built.log.contains("installing with pip instead"),
            "{}",
            built.log
        );
        slugs.push(built);
    }
    assert_eq!(slugs[0].manifest["checksum"], slugs[1].manifest["checksum"]);
    let root = tmp.path().join("elsewhere");
    unpack(&slugs[0].slug, &root);
    assert_imports(&root, &["flask", "gunicorn"]);
    assert_web_serves(&root, &slugs[0], "installed by pip");
}

/// `dir` as a git repo with one commit of fixed author and date; its revision.
fn git_repo_of(dir: &Path) -> String {
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    // The branch is named: a lockfile may name it, whatever `init.defaultBranch` says.
    git(&["init", "-q", "--initial-branch=master"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "greeting-lib"]);
    git(&["rev-parse", "HEAD"])
}

/// `-e git+file://…@rev#egg=…` in requirements.txt (a repo on this machine, git on the build's
/// PATH): installed non-editable at that revision, so the slug holds the package and no path
/// to the build or the checkout; the app imports it elsewhere and serves. A second build with
/// the cache reuses uv's checkout (its git database is in the cached `uv-cache` layer).
#[test]
fn vcs_requirements_are_installed_and_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("greeting-lib");
    copy_dir(&fixture("vcs-greeting-lib"), &repo);
    let rev = git_repo_of(&repo);
    let app = tmp.path().join("app");
    copy_dir(&fixture("vcs-requirements-app"), &app);
    let template = std::fs::read_to_string(app.join("requirements.txt.in")).unwrap();
    std::fs::write(
        app.join("requirements.txt"),
        template
            .replace("@REPO@", &format!("file://{}", repo.display()))
            .replace("@REV@", &rev),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let cache = tmp.path().join("cache");
    let built = slug_build(&app, &out, Some(&cache), &[]);
    assert_built(&built);
    assert!(
        built.log.contains(&format!(
            "+ greeting-lib==0.1.0 (from git+file://{}@{rev})",
            repo.display()
        )),
        "{}",
        built.log
    );
    let root = tmp.path().join("elsewhere");
    unpack(&built.slug, &root);
    assert_imports(&root, &["flask", "gunicorn", "greeting_lib"]);
    let site = root.join("app/.layers/slugc_python/venv/lib/python3.11/site-packages");
    assert!(site.join("greeting_lib/__init__.py").is_file());
    assert!(!root.join("app/.layers/slugc_python/venv/src").exists());
    assert_web_serves(&root, &built, "installed from git");
    // A changed requirements.txt reinstalls; the checkout comes from uv's cache.
    let mut text = std::fs::read_to_string(app.join("requirements.txt")).unwrap();
    text.push_str("# changed\n");
    std::fs::write(app.join("requirements.txt"), text).unwrap();
    let warm = slug_build(&app, &out, Some(&cache), &[]);
    assert_built(&warm);
    assert!(
        warm.log.contains("requirements.txt changed"),
        "{}",
        warm.log
    );
    assert!(
        !warm.log.contains("Updating file://"),
        "the checkout was fetched again:\n{}",
        warm.log
    );
}

/// The top-level requirements a fixture states: requirements.txt names, `[project]
/// dependencies`, `[packages]` of the Pipfile (normalised as PEP 503 does).
fn top_level_requirements(app: &Path) -> Vec<String> {
    let name_of = |spec: &str| -> Option<String> {
        let name: String = spec
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
            .collect();
        (!name.is_empty()).then(|| name.to_lowercase().replace(['_', '.'], "-"))
    };
    let mut names = Vec::new();
    if let Ok(text) = std::fs::read_to_string(app.join("requirements.txt")) {
        for line in text.lines().map(str::trim) {
            if !line.is_empty() && !line.starts_with('#') && !line.starts_with('-') {
                names.extend(name_of(line));
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(app.join("pyproject.toml")) {
        let pyproject: toml::Table = toml::from_str(&text).unwrap();
        if let Some(deps) = pyproject
            .get("project")
            .and_then(|p| p.get("dependencies"))
            .and_then(|d| d.as_array())
        {
            names.extend(deps.iter().filter_map(|d| d.as_str()).filter_map(name_of));
        }
    }
    if let Ok(text) = std::fs::read_to_string(app.join("Pipfile")) {
        let pipfile: toml::Table = toml::from_str(&text).unwrap();
        if let Some(packages) = pipfile.get("packages").and_then(|p| p.as_table()) {
            names.extend(packages.keys().filter_map(|k| name_of(k)));
        }
    }
    names.sort();
    names.dedup();
    names
}

/// The modules a distribution installed in `site` provides: its `top_level.txt`, else the
/// top-level packages and modules its `RECORD` lists.
fn modules_of(site: &Path, distribution: &str) -> Vec<String> {
    let dist_info = std::fs::read_dir(site)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_lowercase();
            name.ends_with(".dist-info")
                && name.split('-').next().unwrap().replace(['_', '.'], "-") == distribution
        })
        .unwrap_or_else(|| panic!("{distribution} is not installed in {}", site.display()));
    if let Ok(text) = std::fs::read_to_string(dist_info.join("top_level.txt")) {
        let modules: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('_'))
            .map(String::from)
            .collect();
        if !modules.is_empty() {
            return modules;
        }
    }
    let record = std::fs::read_to_string(dist_info.join("RECORD")).unwrap();
    let mut modules: Vec<String> = record
        .lines()
        .filter_map(|l| l.split(',').next())
        .filter(|p| !p.starts_with("..") && !p.contains(".dist-info/") && !p.starts_with('_'))
        .filter_map(|p| match p.split_once('/') {
            Some((dir, "__init__.py")) => Some(dir.to_string()),
            None if p.ends_with(".py") => Some(p.trim_end_matches(".py").to_string()),
            _ => None,
        })
        .collect();
    modules.sort();
    modules.dedup();
    modules
}

/// Every Python fixture that is meant to build (`python-bad-*` aside): when the build exits 0,
/// every top-level requirement it states imports from the slug, unpacked elsewhere.
#[test]
fn every_python_fixture_that_builds_imports_every_top_level_requirement() {
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(fixture(""))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("python-") && !name.starts_with("python-bad-")
        })
        .collect();
    fixtures.sort();
    let mut checked = Vec::new();
    for app in fixtures {
        let tmp = tempfile::tempdir().unwrap();
        let built = slug_build(&app, &tmp.path().join("out"), None, &[]);
        if built.output.status.code() != Some(0) {
            continue;
        }
        let root = tmp.path().join("elsewhere");
        unpack(&built.slug, &root);
        let lib = root.join("app/.layers/slugc_python/venv/lib");
        let site = std::fs::read_dir(&lib)
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path()
            .join("site-packages");
        let mut modules = Vec::new();
        for requirement in top_level_requirements(&app) {
            modules.extend(modules_of(&site, &requirement));
        }
        assert!(
            !modules.is_empty(),
            "{}: no requirements found",
            app.display()
        );
        let refs: Vec<&str> = modules.iter().map(String::as_str).collect();
        assert_imports(&root, &refs);
        checked.push(app.file_name().unwrap().to_string_lossy().into_owned());
    }
    // All but the fixture that needs the test's own wheel dir (python-pip-fallback).
    assert!(checked.len() >= 10, "only {checked:?} built");
}

/// A git source in uv.lock (`[tool.uv.sources]` on a repo served over `file://`): `uv sync
/// --locked` installs it at the locked commit, and the app imports it elsewhere and serves.
#[test]
fn uv_lock_git_sources_are_installed_and_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("greeting-lib");
    copy_dir(&fixture("vcs-greeting-lib"), &repo);
    // The lockfile names this commit: the fixture's files, committed with a fixed author and
    // date, always give it.
    assert_eq!(
        git_repo_of(&repo),
        "86cd64cfe85a4ef0153d0dfac1de5b2a7095de45"
    );
    let app = tmp.path().join("app");
    copy_dir(&fixture("vcs-uv-app"), &app);
    let url = format!("file://{}", repo.display());
    for name in ["pyproject.toml", "uv.lock"] {
        let template = std::fs::read_to_string(app.join(format!("{name}.in"))).unwrap();
        std::fs::write(app.join(name), template.replace("@REPO@", &url)).unwrap();
    }
    let built = slug_build(&app, &tmp.path().join("out"), None, &[]);
    assert_built(&built);
    assert!(
        built
            .log
            .contains("+ greeting-lib==0.1.0 (from git+file://"),
        "{}",
        built.log
    );
    let root = tmp.path().join("elsewhere");
    unpack(&built.slug, &root);
    assert_imports(&root, &["fastapi", "uvicorn", "greeting_lib"]);
    assert_web_serves(&root, &built, "by uv.lock");
}

/// Poetry or Pipenv from PyPI, the version the buildpack offers later buildpacks
/// (`layers/tool.rs`), in a venv of Debian's Python 3.11 kept under the test target dir (a
/// cache: made once, by rename, so a half-made one is never used): the tests lock with it.
fn lock_tool(name: &str, version: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("lock-tools/{name}-{version}"));
    let tool = dir.join("bin").join(name);
    if tool.is_file() {
        return tool;
    }
    let building = dir.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    let run = |command: &mut Command| {
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(Command::new("/usr/bin/python3.11")
        .args(["-m", "venv"])
        .arg(&building));
    run(Command::new(building.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .arg(format!("{name}=={version}")));
    // The venv's scripts name the dir they were made in: rename, then fix their shebangs.
    if std::fs::rename(&building, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&building);
        return tool;
    }
    for entry in std::fs::read_dir(dir.join("bin")).unwrap().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let from = building.to_string_lossy().into_owned();
        if text.contains(&from) {
            std::fs::write(entry.path(), text.replace(&from, &dir.to_string_lossy())).unwrap();
        }
    }
    tool
}

/// Run a lock tool in `app` (its caches and venvs under `tmp`), expecting success.
fn lock_with(tool: &Path, args: &[&str], app: &Path, tmp: &Path) {
    let output = Command::new(tool)
        .args(args)
        .current_dir(app)
        .env("POETRY_CACHE_DIR", tmp.join("poetry-cache"))
        .env("POETRY_VIRTUALENVS_CREATE", "false")
        .env("WORKON_HOME", tmp.join("pipenv-venvs"))
        .env("PIPENV_CACHE_DIR", tmp.join("pipenv-cache"))
        .env("PIPENV_PYTHON", "/usr/bin/python3.11")
        .env("PIPENV_YES", "1")
        .env("PIPENV_NOSPIN", "1")
        .env_remove("VIRTUAL_ENV")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} {args:?}: {}{}",
        tool.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A git source in a lockfile the real tool wrote (the repo's URL is only known at test time,
/// and both lockfiles hash their manifest): the build installs the locked commit, the slug
/// unpacked elsewhere imports it and serves. A rebuild after a lockfile change, with the
/// repository gone, still installs it: the checkout comes from the cached `uv-cache` layer.
fn lockfile_git_source_installs_and_is_cached(
    fixture_name: &str,
    manifest: &str,
    lockfile: &str,
    lock: impl Fn(&Path, &Path),
    body: &str,
) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("greeting-lib");
    copy_dir(&fixture("vcs-greeting-lib"), &repo);
    let rev = git_repo_of(&repo);
    let app = tmp.path().join("app");
    copy_dir(&fixture(fixture_name), &app);
    // `file://localhost/…`: Poetry writes `file:///…` back as `file://None/…`.
    let url = format!("file://localhost{}", repo.display());
    let template = std::fs::read_to_string(app.join(format!("{manifest}.in"))).unwrap();
    std::fs::write(app.join(manifest), template.replace("@REPO@", &url)).unwrap();
    lock(&app, tmp.path());
    let locked = std::fs::read_to_string(app.join(lockfile)).unwrap();
    assert!(
        locked.contains(&rev),
        "{lockfile} names no commit:\n{locked}"
    );
    let out = tmp.path().join("out");
    let cache = tmp.path().join("cache");
    let built = slug_build(&app, &out, Some(&cache), &[]);
    assert_built(&built);
    assert!(
        built
            .log
            .contains("+ greeting-lib==0.1.0 (from git+file://"),
        "{}",
        built.log
    );
    assert!(built.log.contains(&rev), "{}", built.log);
    let root = tmp.path().join("elsewhere");
    unpack(&built.slug, &root);
    assert_imports(&root, &["flask", "gunicorn", "greeting_lib"]);
    assert!(!root.join("app/.layers/slugc_python/venv/src").exists());
    assert_web_serves(&root, &built, body);

    std::fs::rename(&repo, tmp.path().join("gone")).unwrap();
    let mut text = locked;
    text.push('\n');
    std::fs::write(app.join(lockfile), text).unwrap();
    let warm = slug_build(&app, &out, Some(&cache), &[]);
    assert_built(&warm);
    assert!(
        warm.log.contains(&format!("{lockfile} changed")),
        "{}",
        warm.log
    );
    let root = tmp.path().join("elsewhere-warm");
    unpack(&warm.slug, &root);
    assert_imports(&root, &["greeting_lib"]);
}

#[test]
fn poetry_lock_git_sources_are_installed_cached_and_serve() {
    let poetry = lock_tool("poetry", "2.5.1");
    lockfile_git_source_installs_and_is_cached(
        "vcs-poetry-app",
        "pyproject.toml",
        "poetry.lock",
        |app, tmp| lock_with(&poetry, &["lock", "--no-interaction"], app, tmp),
        "installed from git by poetry.lock",
    );
}

#[test]
fn pipfile_lock_git_sources_are_installed_cached_and_serve() {
    let pipenv = lock_tool("pipenv", "2026.10.3");
    lockfile_git_source_installs_and_is_cached(
        "vcs-pipenv-app",
        "Pipfile",
        "Pipfile.lock",
        |app, tmp| lock_with(&pipenv, &["lock"], app, tmp),
        "installed from git by Pipfile.lock",
    );
}

/// A git source over a protocol uv does not fetch is refused in detect, before any network
/// use, naming the lockfile, the package and the URL.
#[test]
fn a_git_source_uv_cannot_fetch_is_refused_naming_it() {
    let built = assert_refused(
        "python-bad-git-protocol",
        30,
        &[
            "poetry.lock",
            "greeting-lib",
            "git://127.0.0.1:9/greeting-lib",
        ],
    );
    assert_eq!(
        first_error_line(&built.log),
        "error: poetry.lock: cannot install greeting-lib from git://127.0.0.1:9/greeting-lib: \
         uv does not fetch git over git:// (only over https://, http://, ssh:// and file://)"
    );
    assert!(built.log.contains("run `poetry lock`"), "{}", built.log);
}
