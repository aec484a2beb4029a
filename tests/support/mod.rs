//! Helpers shared by the integration tests: hand-made slugs, base images, tool checks, HTTP,
//! and building, unpacking and serving fixture apps.
#![allow(dead_code)]

use sha2::{Digest, Sha256};
use slug_format::release::{Release, Stack, SCHEMA};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The first line that starts with `error: ` (the engine's and every buildpack's cause line
/// starts at column 0; buildpack output is indented), or `""`.
pub fn first_error_line(log: &str) -> &str {
    log.lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default()
}

/// A fresh temp dir, on tmpfs when there is one: tests write thousands of small files.
pub fn tmpfs_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

pub fn slug_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_slug"))
}

pub fn run<C: std::borrow::BorrowMut<Command>>(mut cmd: C) -> Output {
    let cmd = cmd.borrow_mut();
    match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("cannot start {cmd:?}: {e}"),
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A file in a hand-made slug: path under `app/`, mode, contents.
pub struct SlugFile<'a>(pub &'a str, pub u32, pub &'a str);

/// The web app the image tests run: Python's standard library only, answering with what the
/// launcher set up (the `.profile.d` env, `HOME`, working dir, user), on `$PORT`.
pub const SERVER_PY: &str = r#"import os, http.server

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = "{} home={} cwd={} uid={}\n".format(
            os.environ.get("GREETING"), os.environ.get("HOME"), os.getcwd(), os.getuid()
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// The files of the standard test app: a Procfile with web and worker, the server, and a
/// `.profile.d` script that uses `$HOME` as the engine's scripts do.
pub fn web_app() -> Vec<SlugFile<'static>> {
    vec![
        SlugFile(
            ".profile.d/000-app.sh",
            0o644,
            "export GREETING=\"hello from $HOME\"\nexport PATH=\"$HOME/bin:$PATH\"\n",
        ),
        SlugFile(
            "Procfile",
            0o644,
            "web: python3 server.py\nworker: python3 -c 'print(\"worker ran\", flush=True)'\n",
        ),
        SlugFile("bin/hello", 0o755, "#!/bin/sh\necho hello-from-bin\n"),
        SlugFile("server.py", 0o644, SERVER_PY),
    ]
}

pub fn web_process_types() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("web".to_string(), "python3 server.py".to_string()),
        (
            "worker".to_string(),
            "python3 -c 'print(\"worker ran\", flush=True)'".to_string(),
        ),
    ])
}

/// Write a slug as the engine does (deterministic gzip tar of `./app/...`, named by its
/// SHA-256, manifest beside it) into `store`; returns the `.tgz` path.
pub fn make_slug(
    store: &Path,
    files: &[SlugFile],
    process_types: BTreeMap<String, String>,
    config_vars: BTreeMap<String, String>,
) -> PathBuf {
    let mut paths: Vec<&SlugFile> = files.iter().collect();
    paths.sort_by_key(|f| f.0);
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    let header = |kind, mode, size| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h
    };
    tar.append_data(
        &mut header(tar::EntryType::Directory, 0o755, 0),
        "./app/",
        std::io::empty(),
    )
    .unwrap();
    for f in paths {
        let mut parent = String::new();
        for part in f.0.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
            parent.push_str(part);
            parent.push('/');
            if dirs.insert(parent.clone()) {
                tar.append_data(
                    &mut header(tar::EntryType::Directory, 0o755, 0),
                    format!("./app/{parent}"),
                    std::io::empty(),
                )
                .unwrap();
            }
        }
        tar.append_data(
            &mut header(tar::EntryType::Regular, f.1, f.2.len() as u64),
            format!("./app/{}", f.0),
            f.2.as_bytes(),
        )
        .unwrap();
    }
    let tar = tar.into_inner().unwrap();
    write_slug_bytes(store, &gzip(&tar), process_types, config_vars)
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Store `slug` bytes under their digest with a release manifest; returns the `.tgz` path.
pub fn write_slug_bytes(
    store: &Path,
    slug: &[u8],
    process_types: BTreeMap<String, String>,
    config_vars: BTreeMap<String, String>,
) -> PathBuf {
    let hex = format!("{:x}", Sha256::digest(slug));
    std::fs::create_dir_all(store).unwrap();
    let path = store.join(format!("sha256-{hex}.tgz"));
    std::fs::write(&path, slug).unwrap();
    let release = Release {
        schema: SCHEMA.to_string(),
        checksum: format!("SHA256:{hex}"),
        size: slug.len() as u64,
        process_types,
        process_sources: Default::default(),
        default_process: None,
        labels: BTreeMap::new(),
        buildpack_provided_description: Some("test".to_string()),
        commit: None,
        stack: Stack {
            name: "debian-12".to_string(),
        },
        buildpacks: Vec::new(),
        config_vars,
        addons: Vec::new(),
        layers: Vec::new(),
    };
    std::fs::write(store.join(format!("sha256-{hex}.json")), release.to_json()).unwrap();
    path
}

/// SHA-256 hex of a file.
pub fn sha256_file(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

/// SHA-256 hex of a gzip file's decompressed bytes (all members).
pub fn sha256_gunzipped(path: &Path) -> String {
    let mut bytes = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    format!("{:x}", Sha256::digest(&bytes))
}

/// A minimal base image layout, made here without any tool: one layer with `/etc/os-release`,
/// a config with `Env` and a non-root `User`, tagged `tiny`. Enough to check what `slug
/// image` writes; it cannot run a Python app (the debian12 base is for that).
pub fn tiny_base(dir: &Path) -> PathBuf {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let hex = format!("{:x}", Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let mut tar = tar::Builder::new(Vec::new());
    let text = b"ID=tiny\n";
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    tar.append_data(&mut h, "etc/", std::io::empty()).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(text.len() as u64);
    tar.append_data(&mut h, "etc/os-release", &text[..])
        .unwrap();
    let layer_tar = tar.into_inner().unwrap();
    let diff_id = format!("sha256:{:x}", Sha256::digest(&layer_tar));
    let (layer_digest, layer_size) = put(&gzip(&layer_tar));
    let config = serde_json::json!({
        "architecture": slugc::image::oci::host_architecture(),
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"], "User": "app"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "tiny base"}]
    });
    let (config_digest, config_size) = put(serde_json::to_string(&config).unwrap().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}]
    });
    let (manifest_digest, manifest_size) =
        put(serde_json::to_string(&manifest).unwrap().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": "tiny"}}]
    });
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_string(&index).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    dir.to_path_buf()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `None` (and the reason printed) when a tool is missing or we are not root.
pub fn require(tools: &[&str], needs_root: bool) -> Option<()> {
    for t in tools {
        if !have(t) {
            eprintln!("SKIPPED: `{t}` is not installed (.ci/run installs it)");
            return None;
        }
    }
    if needs_root && unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root (podman with runc, debootstrap)");
        return None;
    }
    Some(())
}

/// The Debian 12 base layout (built once by tests/support/debian12-base.sh, then cached).
pub fn debian12_base() -> Option<PathBuf> {
    require(&["debootstrap", "umoci", "flock"], true)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/debian12-base.sh");
    let out = run(Command::new("bash").arg(&script));
    assert!(out.status.success(), "{script:?} failed:\n{}", stderr(&out));
    let path = PathBuf::from(stdout(&out).trim());
    assert!(path.join("index.json").is_file(), "{path:?}");
    Some(path)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One plain HTTP/1.0 GET; `None` while nothing answers properly yet.
pub fn http_get(port: u16) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// Poll until the server answers, while `alive` says the server can still come up. Bounded
/// by a count of attempts so a broken image fails the test instead of hanging it.
pub fn wait_http(port: u16, mut alive: impl FnMut() -> bool) -> Option<(u16, String)> {
    for _ in 0..600 {
        if let Some(answer) = http_get(port) {
            return Some(answer);
        }
        if !alive() {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

pub fn scratch(name: &str) -> tempfile::TempDir {
    let root = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    // Lowercase and without random letters: podman names an image pulled from `oci:DIR`
    // after DIR, and image names must be lowercase. The pid keeps runs apart.
    tempfile::Builder::new()
        .prefix(&format!("slugc-{name}-{}", std::process::id()))
        .rand_bytes(0)
        .tempdir_in(root)
        .unwrap()
}

// ---- Language buildpack tests (python, nodejs): a built slug, unpacked and served. ----

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// What `slug build --json` gave: its output, its log, the manifest and the slug's path.
pub struct Built {
    pub output: Output,
    pub log: String,
    pub manifest: serde_json::Value,
    pub slug: PathBuf,
}

impl Built {
    /// `out` is the `--output` store; `log` is what the caller wants searched.
    pub fn new(output: Output, out: &Path, log: String) -> Self {
        let manifest: serde_json::Value =
            serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
        let hex = manifest["checksum"]
            .as_str()
            .and_then(|c| c.strip_prefix("SHA256:"))
            .unwrap_or("none")
            .to_string();
        let slug = out.join(format!("sha256-{hex}.tgz"));
        Built {
            output,
            log,
            manifest,
            slug,
        }
    }
}

pub fn assert_built(built: &Built) {
    assert!(
        built.output.status.success(),
        "build failed:\n{}",
        built.log
    );
    assert!(built.slug.is_file(), "no slug at {}", built.slug.display());
}

pub fn unpack(slug: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(slug)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A slug's process in its own process group; the group is killed on drop.
pub struct Running {
    child: std::process::Child,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Self {
        use std::os::unix::process::CommandExt;
        Running {
            child: cmd.process_group(0).spawn().unwrap(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group of our own child.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// `command` as a dyno of the slug unpacked in `root` runs it: `HOME` = the app root,
/// `.profile.d` sourced, `PORT` set. The caller adjusts the environment and spawns it.
pub fn dyno_command(root: &Path, command: &str, port: u16) -> Command {
    let script = format!(
        "cd app && export HOME=$PWD && for f in .profile.d/*.sh; do . \"$f\"; done; exec {command}"
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .current_dir(root)
        .env("PORT", port.to_string());
    cmd
}

/// The raw response to GET / once the server answers (a bounded number of tries, no timing
/// assertion).
pub fn http_response(port: u16) -> String {
    for _ in 0..600 {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut response = String::new();
            if stream.read_to_string(&mut response).is_ok() && !response.is_empty() {
                return response;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no HTTP answer on port {port}");
}

/// Mounts a tmpfs with `options` (e.g. `size=5m`, `ro,size=1m`) at `dir`; `false` (and why,
/// printed) when this machine cannot.
pub fn mount_tmpfs(dir: &Path, options: &str) -> bool {
    match Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(dir)
        .output()
    {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "skipped: cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("skipped: cannot run mount: {e}");
            false
        }
    }
}

/// Lazily unmounts its dir when dropped.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
