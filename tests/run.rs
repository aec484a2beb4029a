//! `slug run`, `slug exec`, `slug test`, driven through the `slug` binary against real
//! processes: slugs made here with `tar` from the `fixtures/run-*` apps (and hostile ones
//! written header by header), real HTTP requests, and the process table in `/proc`.

use slug_format::release::{Release, Stack, SCHEMA};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// Upper bound on waiting for one expected output line; a hang fails the test instead of
/// blocking CI. Not a timing assertion: a line that comes at all comes well within it.
const BOUND: Duration = Duration::from_secs(60);

const SLUG: &str = env!("CARGO_BIN_EXE_slug");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// An isolated world: its own store, cache (unpack dirs) and HOME.
struct World {
    root: tempfile::TempDir,
    token: String,
}

impl World {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        for d in ["cache", "data", "home", "store"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        let token = format!(
            "{}-{}",
            std::process::id(),
            root.path().file_name().unwrap().to_string_lossy()
        );
        Self { root, token }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.path().join(p)
    }

    fn store(&self) -> PathBuf {
        self.path("store")
    }

    fn unpack_root(&self) -> PathBuf {
        self.path("cache/slugc/run")
    }

    fn slug(&self) -> Command {
        let mut cmd = Command::new(SLUG);
        cmd.env("XDG_CACHE_HOME", self.path("cache"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("HOME", self.path("home"))
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        cmd
    }

    /// `--env` that marks every process of this test, to find them in /proc.
    fn token_flag(&self) -> String {
        format!("SLUG_RUN_TEST_TOKEN={}", self.token)
    }

    /// Pids whose environment carries this world's token (zombies have none).
    fn processes(&self) -> Vec<i32> {
        let needle = format!("SLUG_RUN_TEST_TOKEN={}", self.token);
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Ok(env) = std::fs::read(entry.path().join("environ")) {
                if env.split(|&b| b == 0).any(|var| var == needle.as_bytes()) {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// Every regular file and symlink under the world, relative to it.
    fn files(&self) -> BTreeSet<String> {
        fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                if meta.is_dir() {
                    walk(&path, base, out);
                } else {
                    out.insert(path.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(self.root.path(), self.root.path(), &mut out);
        out
    }
}

/// One tar entry for a hand-made slug; paths and link names are written raw, unchecked.
enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    CharDevice(&'a str),
}

fn raw_header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    let name = &mut h.as_old_mut().name;
    name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h
}

fn tar_gz(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let (mut h, data): (tar::Header, &[u8]) = match entry {
            Entry::Dir(p) => (raw_header(p, tar::EntryType::Directory, 0o755, 0), b""),
            Entry::File(p, data, mode) => (
                raw_header(p, tar::EntryType::Regular, *mode, data.len() as u64),
                data,
            ),
            Entry::Symlink(p, target) | Entry::HardLink(p, target) => {
                let kind = if matches!(entry, Entry::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                let mut h = raw_header(p, kind, 0o777, 0);
                h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
                (h, b"")
            }
            Entry::CharDevice(p) => (raw_header(p, tar::EntryType::Char, 0o644, 0), b""),
        };
        h.set_cksum();
        builder.append(&h, data).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// A path in a slug, with its content and mode when it is a file (`None`: a directory).
type Item = (String, Option<(Vec<u8>, u32)>);

/// A slug of an app dir, as the exporter lays it out: `./app/...`, sorted, dirs first.
fn tar_gz_of_dir(dir: &Path) -> Vec<u8> {
    fn collect(dir: &Path, rel: &str, out: &mut Vec<Item>) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let rel = format!("{rel}/{name}");
            if path.is_dir() {
                out.push((format!("{rel}/"), None));
                collect(&path, &rel, out);
            } else {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                out.push((rel, Some((std::fs::read(&path).unwrap(), mode))));
            }
        }
    }
    let mut items: Vec<Item> = vec![("./app/".to_string(), None)];
    collect(dir, "./app", &mut items);
    let entries: Vec<Entry> = items
        .iter()
        .map(|(p, f)| match f {
            None => Entry::Dir(p),
            Some((data, mode)) => Entry::File(p, data, *mode),
        })
        .collect();
    tar_gz(&entries)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn release(checksum_of: &[u8], size: u64, process_types: &[(&str, &str)]) -> Release {
    Release {
        schema: SCHEMA.to_string(),
        checksum: format!("SHA256:{}", sha256_hex(checksum_of)),
        size,
        process_sources: Default::default(),
        process_types: process_types
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        default_process: None,
        labels: BTreeMap::new(),
        buildpack_provided_description: None,
        commit: None,
        stack: Stack {
            name: "debian-12".to_string(),
        },
        buildpacks: vec![],
        config_vars: BTreeMap::new(),
        addons: vec![],
        layers: vec![],
    }
}

/// Write `bytes` as `<store>/sha256-<hex>.tgz` with its manifest beside it.
fn store_slug(store: &Path, bytes: &[u8], process_types: &[(&str, &str)]) -> PathBuf {
    let hex = sha256_hex(bytes);
    let path = store.join(format!("sha256-{hex}.tgz"));
    std::fs::write(&path, bytes).unwrap();
    let manifest = release(bytes, bytes.len() as u64, process_types);
    std::fs::write(path.with_extension("json"), manifest.to_json()).unwrap();
    path
}

/// The `run-web-worker` fixture as a slug in the world's store.
fn web_worker_slug(world: &World) -> PathBuf {
    store_slug(
        &world.store(),
        &tar_gz_of_dir(&fixture("run-web-worker")),
        &[("web", "python3 server.py"), ("worker", "bash worker.sh")],
    )
}

/// A base port with base, base+1, base+100, base+101 free right now.
fn free_base_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = l.local_addr().unwrap().port();
        drop(l);
        if base > 65_000 {
            continue;
        }
        let all_free = [0, 1, 100, 101]
            .iter()
            .all(|d| std::net::TcpListener::bind(("0.0.0.0", base + d)).is_ok());
        if all_free {
            return base;
        }
    }
}

/// A `slug run` in the background, its stdout lines collected as they come.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        Self {
            child,
            lines: rx,
            seen: Vec::new(),
            stderr,
        }
    }

    /// The first line (seen or to come) that matches.
    fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return l.clone();
        }
        loop {
            match self.lines.recv_timeout(BOUND) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no output line {what}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Wait for exit; returns (exit code, all stdout lines, stderr).
    fn finish(mut self) -> (i32, Vec<String>, String) {
        while let Ok(line) = self.lines.recv_timeout(BOUND) {
            self.seen.push(line);
        }
        let status = self.child.wait().unwrap();
        let stderr = self.stderr.join().unwrap();
        (status.code().unwrap_or(-1), self.seen, stderr)
    }
}

/// The text after a `HH:MM:SS ` timestamp, checking the timestamp's shape.
fn untimed(line: &str) -> &str {
    let (clock, rest) = line.split_at(9);
    assert!(
        clock.len() == 9
            && clock.as_bytes()[2] == b':'
            && clock.as_bytes()[5] == b':'
            && clock.as_bytes()[8] == b' ',
        "line without timestamp: {line:?}"
    );
    rest
}

fn http_get(port: u16) -> String {
    ureq::get(&format!("http://127.0.0.1:{port}/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

#[test]
fn formation_gives_each_instance_its_port_and_prefix_and_sigterm_leaves_no_process() {
    let world = World::new();
    let slug = web_worker_slug(&world);
    let env_file = world.path("app.env");
    std::fs::write(
        &env_file,
        "# config\nexport GREETING=\"from file\"  # quoted\n",
    )
    .unwrap();
    let base = free_base_port();
    let mut cmd = world.slug();
    cmd.arg("run")
        .arg(&slug)
        .args([
            "--scale",
            "web=2,worker=2",
            "--timeout",
            "2",
            "--color",
            "never",
        ])
        .args(["--port", &base.to_string()])
        .arg("--env-file")
        .arg(&env_file)
        .args(["--env", &world.token_flag()]);
    let mut run = Running::start(cmd);

    for (name, port) in [
        ("web.1", base),
        ("web.2", base + 1),
        ("worker.1", base + 100),
        ("worker.2", base + 101),
    ] {
        let started = format!("system   | {name} started with pid ");
        let line = run.expect(&started, |l| untimed(l).starts_with(&started));
        assert!(line.ends_with(&format!("(PORT={port})")), "{line}");
    }
    for (name, port) in [("web.1", base), ("web.2", base + 1)] {
        let want = format!("{name:<8} | listening on {port} as {name}");
        run.expect(&want, |l| untimed(l) == want);
        let body = http_get(port);
        assert!(
            body.starts_with(&format!("dyno={name} port={port} greeting=from file home=")),
            "{body}"
        );
    }
    for name in ["worker.1", "worker.2"] {
        let want = format!("{name} | tick 1 as {name} greeting=from file");
        run.expect(&want, |l| untimed(l) == want);
    }
    // 4 dynos, and each worker's background `sleep 300 &`: all carry the token.
    assert!(world.processes().len() >= 6, "{:?}", world.processes());

    run.signal(libc::SIGTERM);
    let (code, lines, _) = run.finish();
    assert_eq!(code, 128 + libc::SIGTERM, "{lines:#?}");
    assert!(lines
        .iter()
        .any(|l| untimed(l) == "system   | SIGTERM received, stopping all processes"));
    // Config var values never show up in slug run's own lines.
    assert!(!lines
        .iter()
        .any(|l| l.contains("system") && (l.contains(&world.token) || l.contains("from file"))));
    // Every process group took the SIGTERM (the workers' background sleeps included).
    assert!(!lines.iter().any(|l| l.contains("SIGKILL")), "{lines:#?}");
    assert_eq!(
        world.processes(),
        Vec::<i32>::new(),
        "processes left behind"
    );
}

#[test]
fn one_process_exiting_stops_the_rest_and_its_exit_code_is_slug_runs() {
    let world = World::new();
    let slug = web_worker_slug(&world);
    let base = free_base_port();
    let mut cmd = world.slug();
    cmd.arg("run")
        .arg(&slug)
        .args(["--timeout", "2", "--color", "always"])
        .args(["--port", &base.to_string()])
        .args(["--env", "WORKER_EXIT_CODE=7", "--env", &world.token_flag()]);
    let run = Running::start(cmd);
    let (code, lines, stderr) = run.finish();
    assert_eq!(code, 7, "{lines:#?}\n{stderr}");
    let text = lines.join("\n");
    assert!(
        text.contains("system   | worker.1 exited with code 7"),
        "{text}"
    );
    assert!(
        text.contains("system   | sending SIGTERM to all processes"),
        "{text}"
    );
    assert!(
        text.contains("system   | web.1 was killed by SIGTERM (15)"),
        "{text}"
    );
    // web.1 is the first colour (cyan), worker.1 the second (yellow).
    assert!(text.contains("\x1b[33m"), "{text}");
    assert!(text.contains("\x1b[36m"), "{text}");
    assert!(text.contains("worker.1 |\x1b[0m exiting with 7"), "{text}");
    assert_eq!(
        world.processes(),
        Vec::<i32>::new(),
        "processes left behind"
    );
}

#[test]
fn a_process_ignoring_sigterm_is_killed_after_the_timeout() {
    let world = World::new();
    let bytes = tar_gz(&[Entry::Dir("./app/")]);
    let slug = store_slug(
        &world.store(),
        &bytes,
        &[(
            "stubborn",
            "trap '' TERM; echo ready; while true; do sleep 0.1; done",
        )],
    );
    let mut cmd = world.slug();
    cmd.arg("run")
        .arg(&slug)
        .args(["--timeout", "1", "--env", &world.token_flag()]);
    let mut run = Running::start(cmd);
    run.expect("ready", |l| l.ends_with("stubborn.1 | ready"));
    // Ctrl-C in a terminal: SIGINT to slug run (the processes, in their own groups, get
    // only what slug run sends them).
    run.signal(libc::SIGINT);
    let (code, lines, _) = run.finish();
    assert_eq!(code, 128 + libc::SIGINT);
    let text = lines.join("\n");
    assert!(
        text.contains("SIGINT received, stopping all processes"),
        "{text}"
    );
    assert!(
        text.contains("processes still running after 1.0 s, sending SIGKILL"),
        "{text}"
    );
    assert!(
        text.contains("stubborn.1 was killed by SIGKILL (9)"),
        "{text}"
    );
    assert_eq!(
        world.processes(),
        Vec::<i32>::new(),
        "processes left behind"
    );
}

fn exec(world: &World, slug: &Path, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = world
        .slug()
        .arg("exec")
        .arg(slug)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_vars_beat_profile_d_defaults() {
    let world = World::new();
    let slug = web_worker_slug(&world);
    let show = ["--", "echo \"greeting=$GREETING\""];
    assert_eq!(exec(&world, &slug, &show, b"").1, "greeting=from-profile\n");

    let with_flag = [
        "--env",
        "GREETING=from-flag",
        "--",
        "echo \"greeting=$GREETING\"",
    ];
    assert_eq!(
        exec(&world, &slug, &with_flag, b"").1,
        "greeting=from-flag\n"
    );

    let env_file = world.path("dot.env");
    std::fs::write(&env_file, "export GREETING='from file'\n").unwrap();
    let file = env_file.to_str().unwrap();
    let with_file = ["--env-file", file, "--", "echo \"greeting=$GREETING\""];
    assert_eq!(
        exec(&world, &slug, &with_file, b"").1,
        "greeting=from file\n"
    );

    let both = [
        "--env-file",
        file,
        "--env",
        "GREETING=flag wins",
        "--",
        "echo \"greeting=$GREETING\"",
    ];
    assert_eq!(exec(&world, &slug, &both, b"").1, "greeting=flag wins\n");
}

#[test]
fn exec_gives_the_command_its_exit_code_stdio_and_dyno_environment() {
    let world = World::new();
    let slug = web_worker_slug(&world);
    assert_eq!(exec(&world, &slug, &["--", "exit 42"], b"").0, 42);
    // Several words run as an argv, not re-parsed by a shell.
    assert_eq!(
        exec(&world, &slug, &["--", "bash", "-c", "exit 3"], b"").0,
        3
    );
    let (code, out, _) = exec(&world, &slug, &["--", "printf", "%s|", "a b", "$HOME"], b"");
    assert_eq!((code, out.as_str()), (0, "a b|$HOME|"));
    assert_eq!(exec(&world, &slug, &["--", "cat"], b"hello\n").1, "hello\n");
    let (code, _, err) = exec(&world, &slug, &["--", "echo oops >&2; exit 1"], b"");
    assert_eq!((code, err.as_str()), (1, "oops\n"));
    assert_eq!(
        exec(&world, &slug, &["--", "no-such-command-here"], b"").0,
        127
    );

    let (_, out, _) = exec(
        &world,
        &slug,
        &["--port", "6123", "--", "echo \"$HOME|$PWD|$DYNO|$PORT\""],
        b"",
    );
    let hex = sha256_hex(&std::fs::read(&slug).unwrap());
    let app = world.unpack_root().join(&hex).join("app");
    assert_eq!(out, format!("{0}|{0}|run.1|6123\n", app.display()));
}

#[test]
fn slug_is_found_by_sha256_prefix_and_its_unpack_dir_reused() {
    let world = World::new();
    let slug = web_worker_slug(&world);
    let hex = sha256_hex(&std::fs::read(&slug).unwrap());
    let store = world.store();
    let store = store.to_str().unwrap();
    let (code, _, err) = exec(
        &world,
        &PathBuf::from(&hex[..12]),
        &["--store", store, "--", "echo kept > state"],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    // The default store is $XDG_DATA_HOME/slugc/slugs.
    let default_store = world.path("data/slugc/slugs");
    std::fs::create_dir_all(&default_store).unwrap();
    for ext in ["tgz", "json"] {
        std::fs::copy(
            slug.with_extension(ext),
            default_store.join(format!("sha256-{hex}.{ext}")),
        )
        .unwrap();
    }
    let (code, out, err) = exec(
        &world,
        &PathBuf::from(format!("sha256-{}", &hex[..8])),
        &["--", "cat state"],
        b"",
    );
    assert_eq!((code, out.as_str()), (0, "kept\n"), "{err}");

    // A damaged unpack dir (no marker: an interrupted unpack) is unpacked afresh.
    let unpacked = world.unpack_root().join(&hex);
    std::fs::remove_file(unpacked.join(".slugc-unpacked")).unwrap();
    std::fs::remove_file(unpacked.join("app/server.py")).unwrap();
    let (code, out, err) = exec(
        &world,
        &slug,
        &["--", "test -f state || echo fresh; head -1 server.py"],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "fresh\n\"\"\"A tiny web process: Python stdlib only, binds $PORT, answers with its dyno facts.\"\"\"\n"
    );

    let (code, _, err) = exec(&world, &PathBuf::from("ffffffff"), &["--", "true"], b"");
    assert_eq!(code, 2);
    assert!(
        err.contains("no sha256-ffffffff*.tgz in the store") && err.contains("data/slugc/slugs"),
        "{err}"
    );
}

#[test]
fn bad_env_file_and_unknown_process_type_are_refused() {
    let world = World::new();
    let slug = web_worker_slug(&world);
    let env_file = world.path("bad.env");
    std::fs::write(&env_file, "OK=1\nthis is not a pair\n").unwrap();
    let (code, _, err) = exec(
        &world,
        &slug,
        &["--env-file", env_file.to_str().unwrap(), "--", "true"],
        b"",
    );
    assert_eq!(code, 30);
    assert!(
        err.contains(&format!("{}:2: expected KEY=VALUE", env_file.display())),
        "{err}"
    );

    let out = world
        .slug()
        .arg("run")
        .arg(&slug)
        .arg("db")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown process type \"db\"; the slug has: web, worker"),
        "{err}"
    );

    let out = world
        .slug()
        .arg("run")
        .arg(&slug)
        .args(["--scale", "web=many"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A hostile slug must be refused the same way by every command that reads slugs (they all
/// read through `slug_format::reader`): exit 30 and a first line naming the slug and the
/// reason, and nothing may be left anywhere but the store.
fn assert_refused(world: &World, slug: &Path, reason: &str) {
    let before = world.files();
    let (code, out, err) = exec(world, slug, &["--", "echo ran"], b"");
    assert_eq!(code, 30, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains(&slug.display().to_string()), "{err}");
    assert!(err.contains(reason), "expected {reason:?} in {err}");
    let slug_arg = slug.to_str().unwrap();
    let out_dir = world.path("image-out");
    let out_dir = out_dir.to_str().unwrap();
    for args in [
        vec!["run", slug_arg],
        vec!["inspect", slug_arg],
        vec![
            "image",
            slug_arg,
            "--base",
            "/nonexistent",
            "--output",
            out_dir,
        ],
        vec!["manifests", slug_arg, "--image", "example/app:1"],
    ] {
        let out = world.slug().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(30), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(reason),
            "{args:?}: expected {reason:?} in the first line of {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(world.files(), before, "files written by a refused slug");
    let leftovers: Vec<_> = std::fs::read_dir(world.unpack_root())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn hostile_slug_with_path_traversal_is_refused() {
    let world = World::new();
    let bytes = tar_gz(&[
        Entry::Dir("./app/"),
        Entry::File("./app/../../../escaped.txt", b"x", 0o644),
    ]);
    let slug = store_slug(&world.store(), &bytes, &[("web", "true")]);
    assert_refused(
        &world,
        &slug,
        "\"./app/../../../escaped.txt\" contains `..`",
    );
}

#[test]
fn hostile_slug_with_absolute_path_is_refused() {
    let world = World::new();
    let target = world.path("absolute.txt");
    let target = target.to_str().unwrap();
    let bytes = tar_gz(&[Entry::Dir("./app/"), Entry::File(target, b"x", 0o644)]);
    let slug = store_slug(&world.store(), &bytes, &[("web", "true")]);
    assert_refused(&world, &slug, "is an absolute path");
    assert!(!Path::new(target).exists());
}

#[test]
fn hostile_slug_with_symlink_escape_is_refused() {
    let world = World::new();
    // Straight out, then a file through the link: the file is refused as it streams by.
    let bytes = tar_gz(&[
        Entry::Dir("./app/"),
        Entry::Symlink("./app/out", "../../../../.."),
        Entry::File("./app/out/escaped.txt", b"x", 0o644),
    ]);
    let slug = store_slug(&world.store(), &bytes, &[("web", "true")]);
    assert_refused(&world, &slug, "lies under the symlink app/out");

    // The link alone: refused once every entry is known.
    let world = World::new();
    let bytes = tar_gz(&[
        Entry::Dir("./app/"),
        Entry::Symlink("./app/out", "../../../../.."),
    ]);
    let slug = store_slug(&world.store(), &bytes, &[("web", "true")]);
    assert_refused(&world, &slug, "which points outside the app");

    // Lexically inside, but `self/..` is the parent of app/ once `self -> .` is followed.
    let world = World::new();
    let bytes = tar_gz(&[
        Entry::Dir("./app/"),
        Entry::Symlink("./app/self", "."),
        Entry::Symlink("./app/sneaky", "self/.."),
    ]);
    let slug = store_slug(&world.store(), &bytes, &[("web", "true")]);
    assert_refused(&world, &slug, "\"app/sneaky\" is a symlink to self/..");

    // An absolute target is a path of the stack, kept; nothing may be written through it.
    let world = World::new();
    let bytes = tar_gz(&[
        Entry::Dir("./app/"),
        Entry::Symlink("./app/etc", "/etc"),
        Entry::File("./app/etc/slugc-escaped", b"x", 0o644),
    ]);
    let slug = store_slug(&world.store(), &bytes, &[("web", "true")]);
    assert_refused(&world, &slug, "lies under the symlink app/etc");
    assert!(!Path::new("/etc/slugc-escaped").exists());
}

#[test]
fn hostile_slug_with_device_or_hard_link_is_refused() {
    let world = World::new();
    let bytes = tar_gz(&[Entry::Dir("./app/"), Entry::CharDevice("./app/null")]);
    let slug = store_slug(&world.store(), &bytes, &[("web", "true")]);
    assert_refused(&world, &slug, "\"./app/null\" is a device file");

    let world = World::new();
    let bytes = tar_gz(&[
        Entry::Dir("./app/"),
        Entry::HardLink("./app/passwd", "/etc/passwd"),
    ]);
    let slug = store_slug(&world.store(), &bytes, &[("web", "true")]);
    assert_refused(&world, &slug, "is a hard link");
}

#[test]
fn hostile_slug_with_conflicting_entries_is_refused() {
    let world = World::new();
    let bytes = tar_gz(&[
        Entry::Dir("./app/"),
        Entry::File("./app/a", b"x", 0o644),
        Entry::File("./app/a/b", b"x", 0o644),
    ]);
    let slug = store_slug(&world.store(), &bytes, &[("web", "true")]);
    assert_refused(&world, &slug, "\"./app/a/b\" lies under an earlier file");

    let world = World::new();
    let bytes = tar_gz(&[
        Entry::Dir("./app/"),
        Entry::Dir("./app/d/"),
        Entry::File("./app/d", b"x", 0o644),
    ]);
    let slug = store_slug(&world.store(), &bytes, &[("web", "true")]);
    assert_refused(&world, &slug, "replaces an earlier directory");
}

#[test]
fn truncated_gzip_is_refused() {
    let world = World::new();
    let full = tar_gz_of_dir(&fixture("run-web-worker"));
    // The manifest matches the truncated bytes, so it is the unpacker that must notice.
    let truncated = &full[..full.len() / 2];
    let slug = store_slug(&world.store(), truncated, &[("web", "true")]);
    assert_refused(&world, &slug, "corrupt slug");
}

#[test]
fn checksum_mismatch_is_refused() {
    let world = World::new();
    let bytes = tar_gz_of_dir(&fixture("run-web-worker"));
    let slug = world.store().join("app.tgz");
    std::fs::write(&slug, &bytes).unwrap();
    let mut manifest = release(b"other bytes", bytes.len() as u64, &[("web", "true")]);
    manifest.checksum = format!("SHA256:{}", sha256_hex(b"other bytes"));
    std::fs::write(world.store().join("app.json"), manifest.to_json()).unwrap();
    assert_refused(&world, &slug, "checksum mismatch");
    let (_, _, err) = exec(&world, &slug, &["--", "true"], b"");
    assert!(
        err.contains("the manifest") && err.contains("app.json"),
        "{err}"
    );
}

/// `slug test` builds as `slug build --output STORE` does, so these tests need the engine;
/// the slugs land in the world's store.
fn slug_test(world: &World, app: &Path, args: &[&str]) -> (i32, String, String) {
    let out = world
        .slug()
        .arg("test")
        .arg(app)
        .arg("--store")
        .arg(world.store())
        .args(["--env", &world.token_flag(), "--color", "never"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn slug_test_passes_on_an_app_whose_web_answers() {
    let world = World::new();
    let (code, out, err) = slug_test(&world, &fixture("run-web-worker"), &["--timeout", "30"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("slug test: PASS: web answered HTTP 200 on / after "),
        "{out}"
    );
    assert!(out.contains("web.1  | listening on "), "{out}");
    assert!(
        out.contains("system | web.1 was killed by SIGTERM (15)"),
        "{out}"
    );
    assert_eq!(
        world.processes(),
        Vec::<i32>::new(),
        "processes left behind"
    );
    // The slug it tested is the one the build stored.
    let slugs: Vec<_> = std::fs::read_dir(world.store())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tgz"))
        .collect();
    assert_eq!(slugs.len(), 1);
}

#[test]
fn slug_test_fails_clearly_when_web_never_listens() {
    let world = World::new();
    let app = fixture("run-never-listens");
    let (code, out, err) = slug_test(&world, &app, &["--timeout", "2", "--stop-timeout", "2"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "error: {}: web did not answer HTTP on port ",
            app.display()
        )) && err.contains("within 2.0 s (last: "),
        "{err}"
    );
    assert!(out.contains("but it never binds"), "{out}");
    assert!(!out.contains("PASS"), "{out}");
    assert!(!err.contains("warning: web process listens"), "{err}");
    assert_eq!(
        world.processes(),
        Vec::<i32>::new(),
        "processes left behind"
    );
}

#[test]
fn slug_test_names_the_port_web_listens_on_instead_of_port() {
    let world = World::new();
    let app = fixture("run-hardcoded-port");
    // A port nobody holds now, for the app to "hard-code".
    let hard = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, out, err) = slug_test(
        &world,
        &app,
        &[
            "--timeout",
            "5",
            "--stop-timeout",
            "2",
            "--env",
            &format!("LISTEN_PORT={hard}"),
        ],
    );
    assert_eq!(code, 1, "{out}\n{err}");
    // The app printed that it listens: the probe's look at its sockets came after.
    assert!(
        out.contains(&format!("web.1  | listening on {hard}")),
        "{out}"
    );
    let warning = err
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "warning: web process listens on port {hard}, not $PORT ("
            ))
        })
        .unwrap_or_else(|| panic!("no R10 warning:\n{err}"));
    assert!(
        warning.contains("R10") && warning.contains("PORT environment variable"),
        "{warning}"
    );
    let error = err.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(
        error.starts_with(&format!(
            "error: {}: web did not answer HTTP on port ",
            app.display()
        )),
        "{err}"
    );
    // $PORT in the warning is the port the error names.
    let port = error
        .split("on port ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap();
    assert!(
        warning.contains(&format!("not $PORT ({port})")),
        "{warning}"
    );
    assert_eq!(
        world.processes(),
        Vec::<i32>::new(),
        "processes left behind"
    );
}

#[test]
fn slug_test_passes_the_build_failure_through() {
    let world = World::new();
    let app = fixture("bad-procfile-syntax");
    let (code, _, err) = slug_test(&world, &app, &["--timeout", "2"]);
    assert_eq!(code, 30, "{err}");
    assert!(
        err.contains(&format!("`slug build {}` failed (exit 30)", app.display()))
            && err.contains("caused by: "),
        "{err}"
    );
}

/// The action's build step, run as GitHub would run it: bash with the inputs in the
/// environment, `slug` on PATH, and a `$GITHUB_OUTPUT` file to read the outputs from.
fn action_build_step(world: &World, app: &Path) -> (i32, BTreeMap<String, String>, String) {
    let action: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml")).unwrap(),
    )
    .unwrap();
    let steps = action["runs"]["steps"].as_sequence().unwrap();
    let step = steps
        .iter()
        .find(|s| s["id"].as_str() == Some("build"))
        .unwrap();
    assert_eq!(step["shell"].as_str(), Some("bash"));
    let script = step["run"].as_str().unwrap();
    let outputs = world.path("github_output");
    std::fs::write(&outputs, "").unwrap();
    let bin_dir = Path::new(SLUG).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let status = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("PATH", path)
        .env("APP_DIR", app)
        .env("OUTPUT_DIR", world.store())
        .env("GITHUB_OUTPUT", &outputs)
        .env("XDG_CACHE_HOME", world.path("cache"))
        .env("XDG_DATA_HOME", world.path("data"))
        .env("HOME", world.path("home"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let values = std::fs::read_to_string(&outputs)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (
        status.status.code().unwrap_or(-1),
        values,
        String::from_utf8_lossy(&status.stderr).into_owned(),
    )
}

#[test]
fn action_build_step_sets_slug_path_checksum_and_process_types() {
    let world = World::new();
    let (code, outputs, err) = action_build_step(&world, &fixture("run-web-worker"));
    assert_eq!(code, 0, "{err}");
    let slug = PathBuf::from(&outputs["slug-path"]);
    let hex = sha256_hex(&std::fs::read(&slug).unwrap());
    assert_eq!(slug, world.store().join(format!("sha256-{hex}.tgz")));
    assert_eq!(outputs["checksum"], format!("SHA256:{hex}"));
    assert_eq!(
        PathBuf::from(&outputs["manifest-path"]),
        slug.with_extension("json")
    );
    let types: BTreeMap<String, String> = serde_json::from_str(&outputs["process-types"]).unwrap();
    assert_eq!(types["web"], "python3 server.py");
    assert_eq!(types["worker"], "bash worker.sh");

    // A failing build fails the step with slug's exit code and sets no outputs.
    let world = World::new();
    let (code, outputs, _) = action_build_step(&world, &fixture("bad-procfile-syntax"));
    assert_eq!(code, 30);
    assert!(outputs.is_empty(), "{outputs:?}");
}

#[test]
fn symlinks_inside_the_app_and_executable_bits_are_kept() {
    let world = World::new();
    let bytes = tar_gz(&[
        Entry::Dir("./app/"),
        Entry::Dir("./app/bin/"),
        Entry::Symlink("./app/bin/tool", "../lib/tool.sh"),
        Entry::Symlink("./app/here", "."),
        Entry::Dir("./app/lib/"),
        Entry::File(
            "./app/lib/tool.sh",
            b"#!/bin/sh\necho tool ran in $PWD\n",
            0o750,
        ),
        Entry::File("./app/lib/data.txt", b"data\n", 0o664),
    ]);
    let slug = store_slug(&world.store(), &bytes, &[("web", "true")]);
    let (code, out, err) = exec(
        &world,
        &slug,
        &[
            "--",
            "bin/tool && here/here/bin/tool >/dev/null && stat -c %a lib/tool.sh lib/data.txt",
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    let hex = sha256_hex(&bytes);
    let app = world.unpack_root().join(hex).join("app");
    // Group write is dropped, the executable bit survives (setuid and world-writable
    // modes are refused: tests/hostile_slugs.rs).
    assert_eq!(out, format!("tool ran in {}\n755\n644\n", app.display()));
}
