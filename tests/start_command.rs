//! How an app starts without a Procfile `web`: each fixture built and its web process
//! answering HTTP through `slug test`, the process's source in the log and the release; and
//! `slug doctor` / `slug detect --json` saying the same without building.

mod support;

use std::path::Path;
use std::process::Command;
use support::{fixture, stderr, stdout};

/// The outcome of `slug test APP` in a fresh store and caches.
struct Tested {
    code: i32,
    out: String,
    log: String,
    manifest: serde_json::Value,
    _dir: tempfile::TempDir,
}

fn slug_test(app: &Path) -> Tested {
    let dir = support::tmpfs_dir();
    let store = dir.path().join("store");
    let output = Command::new(env!("CARGO_BIN_EXE_slug"))
        .arg("test")
        .arg(app)
        .arg("--store")
        .arg(&store)
        .args(["--timeout", "180", "--color", "never"])
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let manifest = std::fs::read_dir(&store)
        .ok()
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .unwrap_or(serde_json::Value::Null);
    Tested {
        code: output.status.code().unwrap_or(-1),
        out: stdout(&output),
        log: stderr(&output),
        manifest,
        _dir: dir,
    }
}

/// `slug test` passed, with `web` and its source as given, the log saying both.
fn assert_serves(t: &Tested, web: &str, source: &str) {
    assert_eq!(t.code, 0, "{}\n{}", t.out, t.log);
    assert!(
        t.out
            .contains("slug test: PASS: web answered HTTP 200 on / after "),
        "{}\n{}",
        t.out,
        t.log
    );
    assert_eq!(t.manifest["process_types"]["web"], web, "{}", t.manifest);
    assert_eq!(
        t.manifest["process_sources"]["web"], source,
        "{}",
        t.manifest
    );
    assert!(t.log.contains(&format!("web: from {source}")), "{}", t.log);
}

/// `slug detect --json APP`, which builds nothing.
fn detect_json(app: &Path) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_slug"))
        .args(["detect", "--json"])
        .arg(app)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

fn process<'a>(detected: &'a serde_json::Value, process_type: &str) -> &'a serde_json::Value {
    detected["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["process_type"] == process_type)
        .unwrap_or_else(|| panic!("no {process_type} in {detected}"))
}

#[test]
fn fastapi_app_with_only_a_render_yaml_starts_from_its_start_command() {
    let t = slug_test(&fixture("start-render-fastapi"));
    let web = "uvicorn service.api:create_app --factory --host 0.0.0.0 --port $PORT";
    assert_serves(&t, web, "render.yaml startCommand");
    assert!(
        t.log.contains(&format!(
            "       web: {web}   (from render.yaml startCommand)"
        )),
        "{}",
        t.log
    );
}

#[test]
fn streamlit_app_without_any_start_file_gets_the_streamlit_default() {
    let t = slug_test(&fixture("start-streamlit"));
    assert_serves(
        &t,
        "streamlit run dashboard.py --server.port $PORT --server.address 0.0.0.0 --server.headless true",
        "slugc/python: Streamlit default: streamlit in requirements.txt, dashboard.py imports streamlit",
    );
}

#[test]
fn flask_app_hard_coding_its_port_is_served_by_gunicorn_on_port() {
    let t = slug_test(&fixture("start-flask-hardcoded-port"));
    assert_serves(
        &t,
        "gunicorn server:application --bind 0.0.0.0:$PORT",
        "slugc/python: Flask default: flask in requirements.txt, application = Flask() in server.py",
    );
}

#[test]
fn dash_app_without_gunicorn_runs_its_own_server_told_host() {
    let t = slug_test(&fixture("start-dash"));
    assert_serves(
        &t,
        "HOST=0.0.0.0 python app.py",
        "slugc/python: Dash default: dash in requirements.txt, app = Dash() in app.py, run by its own server",
    );
}

#[test]
fn django_app_gets_its_wsgi_module() {
    let t = slug_test(&fixture("python-django"));
    assert_serves(
        &t,
        "gunicorn mysite.wsgi --bind 0.0.0.0:$PORT",
        "slugc/python: Django default: django in requirements.txt, mysite/wsgi.py (DJANGO_SETTINGS_MODULE in manage.py)",
    );
}

#[test]
fn nest_app_without_a_start_script_runs_its_build() {
    let t = slug_test(&fixture("start-nest"));
    assert_serves(
        &t,
        "node dist/main",
        "slugc/nodejs: NestJS default: @nestjs/core in package.json",
    );
}

#[test]
fn sveltekit_node_adapter_app_runs_its_build() {
    let t = slug_test(&fixture("start-sveltekit"));
    assert_serves(
        &t,
        "node build",
        "slugc/nodejs: SvelteKit (adapter-node) default: @sveltejs/kit and @sveltejs/adapter-node in package.json",
    );
}

#[test]
fn the_procfile_web_wins_over_render_yaml() {
    let t = slug_test(&fixture("start-procfile-over-render"));
    assert_serves(
        &t,
        "python3 -m http.server \"$PORT\" --bind 0.0.0.0",
        "Procfile",
    );
    assert!(
        t.log.contains("Procfile web wins; not used: web: python3 -c 'raise SystemExit(\"render.yaml startCommand ran\")'   (from render.yaml startCommand)"),
        "{}",
        t.log
    );
}

#[test]
fn fly_toml_processes_give_web_and_the_other_groups() {
    let t = slug_test(&fixture("start-fly-node"));
    assert_serves(&t, "node api.js", "fly.toml [processes] app");
    assert_eq!(t.manifest["process_types"]["jobs"], "node jobs.js");
    assert_eq!(
        t.manifest["process_sources"]["jobs"],
        "fly.toml [processes] jobs"
    );
}

#[test]
fn railway_toml_start_command_runs_a_node_app_the_rules_would_not_start() {
    let t = slug_test(&fixture("start-railway-node"));
    assert_serves(&t, "node src/listen.js", "railway.toml deploy.startCommand");
}

#[test]
fn app_json_formation_command_runs_a_python_app() {
    let t = slug_test(&fixture("start-app-json-python"));
    assert_serves(
        &t,
        "waitress-serve --listen=0.0.0.0:$PORT greeter:respond",
        "app.json formation.web.command",
    );
}

#[test]
fn dockerfile_cmd_with_a_hard_coded_port_is_told_port() {
    let t = slug_test(&fixture("start-dockerfile-uvicorn"));
    assert_serves(
        &t,
        "uvicorn web:service --host 0.0.0.0 --port $PORT",
        "Dockerfile CMD; --port 8000 → $PORT",
    );
}

#[test]
fn detect_json_names_each_start_command_and_its_source_without_building() {
    let cases = [
        (
            "start-render-fastapi",
            "uvicorn service.api:create_app --factory --host 0.0.0.0 --port $PORT",
            "render.yaml startCommand",
        ),
        (
            "start-streamlit",
            "streamlit run dashboard.py --server.port $PORT --server.address 0.0.0.0 --server.headless true",
            "slugc/python: Streamlit default: streamlit in requirements.txt, dashboard.py imports streamlit",
        ),
        (
            "python-flask",
            "gunicorn app:app --bind 0.0.0.0:$PORT",
            "slugc/python: Flask default: flask in requirements.txt, app = Flask() in app.py",
        ),
        (
            "start-nest",
            "node dist/main",
            "slugc/nodejs: NestJS default: @nestjs/core in package.json",
        ),
        (
            "start-sveltekit",
            "node build",
            "slugc/nodejs: SvelteKit (adapter-node) default: @sveltejs/kit and @sveltejs/adapter-node in package.json",
        ),
        (
            "node-nextjs",
            "next start -p $PORT",
            "slugc/nodejs: Next.js default: next in package.json",
        ),
        ("start-fly-node", "node api.js", "fly.toml [processes] app"),
        (
            "start-dockerfile-uvicorn",
            "uvicorn web:service --host 0.0.0.0 --port $PORT",
            "Dockerfile CMD; --port 8000 → $PORT",
        ),
        (
            "start-procfile-over-render",
            "python3 -m http.server \"$PORT\" --bind 0.0.0.0",
            "Procfile",
        ),
    ];
    for (name, command, source) in cases {
        let detected = detect_json(&fixture(name));
        let web = process(&detected, "web");
        assert_eq!(web["command"], command, "{name}: {detected}");
        assert_eq!(web["source"], source, "{name}: {detected}");
        assert_eq!(detected["warnings"], serde_json::json!([]), "{name}");
    }
    // What the Procfile overrides is shown, not used.
    let detected = detect_json(&fixture("start-procfile-over-render"));
    assert_eq!(
        detected["unused"][0]["source"], "render.yaml startCommand",
        "{detected}"
    );
}

#[test]
fn doctor_warns_about_a_malformed_render_yaml_and_still_explains() {
    let dir = support::tmpfs_dir();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::copy(fixture("python-flask").join("app.py"), app.join("app.py")).unwrap();
    std::fs::copy(
        fixture("python-flask").join("requirements.txt"),
        app.join("requirements.txt"),
    )
    .unwrap();
    std::fs::write(app.join("render.yaml"), "services: [\n  - type: web\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_slug"))
        .arg("doctor")
        .arg(&app)
        .output()
        .unwrap();
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(
        out.contains(
            "web: gunicorn app:app --bind 0.0.0.0:$PORT   (from slugc/python: Flask default"
        ),
        "{out}"
    );
    let warning = out
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        warning.starts_with("warning: render.yaml: not valid YAML")
            && warning.ends_with("no start command taken from it"),
        "{warning}"
    );
}

/// `slug doctor` and `slug detect --json` show, without building, the warnings the detected
/// built-ins can give from the source: a Procfile binary only a pruned devDependency
/// provides, a pinned gunicorn that needs `pkg_resources`.
#[test]
fn doctor_shows_the_built_ins_warnings_without_building() {
    for (name, rule, words) in [
        (
            "node-warn-dev-binary-start",
            "pruned-dev-binary",
            "NPM_CONFIG_PRODUCTION=false",
        ),
        ("python-gunicorn-20", "python-known-issue", "setuptools<81"),
    ] {
        let detected = detect_json(&fixture(name));
        let warnings = detected["warnings"].as_array().unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w["rule"] == rule && w["message"].as_str().unwrap().contains(words)),
            "{name}: {detected}"
        );
        let output = Command::new(env!("CARGO_BIN_EXE_slug"))
            .arg("doctor")
            .arg(fixture(name))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(
            stdout(&output)
                .lines()
                .any(|l| l.starts_with("warning: ") && l.contains(words)),
            "{name}: {}",
            stdout(&output)
        );
    }
}

#[test]
fn a_start_script_needing_a_pruned_framework_cli_is_explained_as_the_framework_default() {
    let dir = support::tmpfs_dir();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("package.json"),
        r#"{"name":"nest-cli","version":"1.0.0","scripts":{"build":"nest build","start":"nest start"},
            "dependencies":{"@nestjs/core":"10.4.15"},"devDependencies":{"@nestjs/cli":"10.4.9"}}"#,
    )
    .unwrap();
    let detected = detect_json(&app);
    let web = process(&detected, "web");
    assert_eq!(web["command"], "node dist/main", "{detected}");
    assert_eq!(
        web["source"],
        "slugc/nodejs: NestJS default: the start script `nest start` needs @nestjs/cli, a devDependency the build prunes",
        "{detected}"
    );
}

#[test]
fn a_malformed_platform_file_is_a_warning_and_the_build_goes_on() {
    let dir = support::tmpfs_dir();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::copy(
        fixture("start-procfile-over-render").join("index.html"),
        app.join("index.html"),
    )
    .unwrap();
    std::fs::write(app.join("Procfile"), "worker: sleep 1000\n").unwrap();
    std::fs::write(
        app.join("fly.toml"),
        "[processes]\napp = [\"not\", \"a string\"]\n",
    )
    .unwrap();
    std::fs::write(
        app.join("railway.json"),
        r#"{"deploy": {"startCommand": "python3 -m http.server \"$PORT\" --bind 0.0.0.0"}}"#,
    )
    .unwrap();
    let t = slug_test(&app);
    assert_serves(
        &t,
        "python3 -m http.server \"$PORT\" --bind 0.0.0.0",
        "railway.json deploy.startCommand",
    );
    assert_eq!(t.manifest["process_sources"]["worker"], "Procfile");
    let warning = t
        .log
        .lines()
        .find(|l| l.starts_with("warning: fly.toml"))
        .unwrap_or_else(|| panic!("{}", t.log));
    assert!(
        warning.starts_with("warning: fly.toml: not valid TOML")
            && warning.ends_with("no start command taken from it"),
        "{warning}"
    );
}
