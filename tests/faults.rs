//! Faults: real builds killed (SIGKILL, SIGTERM, SIGINT) at random points and built again,
//! concurrent builds of one app, a full and a read-only store, the store's sweep of dead
//! builds' temporary files, `--timeout`, and `slug run` against a process that writes a
//! huge line or escapes into a session of its own.
//!
//! The builds use a CNB buildpack written here that behaves like pip or npm: helpers in
//! sessions of their own writing into the build root, nested children, and a daemon it
//! leaves behind. Every process of a test carries a token in its environment, which is how
//! the test finds them in `/proc`.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};
use support::{mount_tmpfs, Unmount};

const SLUG: &str = env!("CARGO_BIN_EXE_slug");

/// Upper bound on waiting for an expected line or exit; a hang fails the test instead of
/// blocking CI. Never a timing assertion.
const BOUND: Duration = Duration::from_secs(120);

const BUILD: &str = r#"#!/usr/bin/env bash
set -euo pipefail
layers="$1"
echo "---> stage 1: dependencies"
rm -rf "$layers/deps"
mkdir -p "$layers/deps/lib"
printf '[types]\nlaunch = true\n' > "$layers/deps.toml"
# Like pip or npm: a helper in a session of its own, writing into the build root.
setsid bash -c 'for i in $(seq 1 120); do echo "$i" > "$0/f$i"; sleep 0.01; done' "$layers/deps/lib" &
writer=$!
# A child whose own child outlives it.
( bash -c 'sleep 0.3' & sleep 0.1 ) &
nested=$!
# A daemon left behind, as a postinstall script may start one.
setsid sleep 600 </dev/null >/dev/null 2>&1 &
echo "---> stage 2: installing"
wait "$writer"
wait "$nested"
echo "---> stage 3: installed"
"#;

/// An isolated world: caches, store and HOME of its own, and a token for its processes.
struct World {
    root: tempfile::TempDir,
    token: String,
}

impl World {
    fn new() -> Self {
        let root = tempfile::tempdir_in(scratch()).unwrap();
        for d in ["cache", "data", "home", "store", "content"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        let token = format!(
            "{}-{}",
            std::process::id(),
            root.path().file_name().unwrap().to_string_lossy()
        );
        let world = Self { root, token };
        world.write_buildpack("bp", BUILD);
        let app = world.path("app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("Procfile"), "web: ls .layers\n").unwrap();
        std::fs::write(app.join("data.txt"), "some app data\n".repeat(100)).unwrap();
        world
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.path().join(p)
    }

    fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// A CNB buildpack `name` whose bin/build is `build`.
    fn write_buildpack(&self, name: &str, build: &str) {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.path(name);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(
            dir.join("buildpack.toml"),
            format!("api = \"0.10\"\n[buildpack]\nid = \"test/{name}\"\nversion = \"0.1.0\"\n"),
        )
        .unwrap();
        for (file, text) in [
            ("bin/detect", "#!/usr/bin/env bash\nexit 0\n"),
            ("bin/build", build),
        ] {
            let path = dir.join(file);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    fn slug(&self) -> Command {
        let mut cmd = Command::new(SLUG);
        cmd.env("XDG_CACHE_HOME", self.path("cache"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("HOME", self.path("home"))
            .env("SLUG_FAULTS_TOKEN", &self.token)
            .env_remove("CI")
            .stdin(Stdio::null());
        cmd
    }

    /// `slug build --json` of the app with buildpack `bp`, into the world's store.
    fn build_cmd(&self, bp: &str, extra: &[&str]) -> Command {
        let mut cmd = self.slug();
        cmd.args(["build", "--json", "--buildpack"])
            .arg(self.path(bp))
            .arg("--output")
            .arg(self.store())
            .arg("--content-cache")
            .arg(self.path("content"))
            .args(extra)
            .arg(self.path("app"));
        cmd
    }

    fn build(&self) -> Output {
        self.build_cmd("bp", &[]).output().unwrap()
    }

    /// Pids whose environment carries this world's token (zombies have none).
    fn processes(&self) -> Vec<i32> {
        let needle = format!("SLUG_FAULTS_TOKEN={}", self.token);
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

    fn describe(&self, pids: &[i32]) -> String {
        pids.iter()
            .map(|p| {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                format!("{p}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn assert_no_process_left(&self, when: &str) {
        let left = self.processes();
        assert!(
            left.is_empty(),
            "{when}: processes left:\n{}",
            self.describe(&left)
        );
    }

    /// Temporary files in the store.
    fn store_temps(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.store())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(".tmp-"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The checksum of a successful `slug build --json`.
fn checksum(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "build failed:\n{}", text(out));
    let release: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    release["checksum"].as_str().unwrap().to_string()
}

/// The first line starting with `error:`.
fn first_error(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default()
        .to_string()
}

/// A small xorshift generator; the seed is printed so a failing run can be replayed
/// (`SLUGC_FAULTS_SEED`).
struct Random(u64);

impl Random {
    fn new() -> Self {
        let seed = std::env::var("SLUGC_FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("SLUGC_FAULTS_SEED={seed}");
        Random(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A running build whose stderr lines come through a channel.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `marker`; false when the build ended without one.
    fn wait_for(&mut self, marker: &str) -> bool {
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(marker);
                    self.seen.push(line);
                    if hit {
                        return true;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no {marker:?} within {BOUND:?}:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: a signal to our own child, not yet reaped.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the exit (bounded); the exit code (128 + N for signal N) and all stderr.
    fn finish(mut self) -> (i32, String) {
        let deadline = Instant::now() + BOUND;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the build did not exit within {BOUND:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        (code, self.seen.join("\n"))
    }
}

/// Where in a build to stop it.
const POINTS: [&str; 6] = [
    "app detected",
    "stage 1",
    "stage 2",
    "stage 3",
    "Compressing",
    "Checksum",
];

#[test]
fn kill_9_at_random_points_then_a_rebuild_succeeds_with_the_same_checksum() {
    let world = World::new();
    let reference = checksum(&world.build());
    world.assert_no_process_left("after an uninterrupted build");
    let mut random = Random::new();
    for round in 0..10 {
        let point = POINTS[random.below(POINTS.len() as u64) as usize];
        let delay = Duration::from_millis(random.below(300));
        let mut running = Running::start(world.build_cmd("bp", &[]));
        running.wait_for(point);
        std::thread::sleep(delay);
        running.signal(libc::SIGKILL);
        let (code, log) = running.finish();
        // Right after the kill: the rebuild must wait for the killed build's processes.
        let rebuilt = world.build();
        assert_eq!(
            checksum(&rebuilt),
            reference,
            "round {round}: killed at {point:?} + {delay:?} (exit {code}):\n{log}\n{}",
            text(&rebuilt)
        );
        world.assert_no_process_left(&format!(
            "round {round}, after a kill at {point:?} + {delay:?} and a rebuild"
        ));
    }
}

#[test]
fn sigterm_and_sigint_stop_the_whole_tree_and_exit_143_and_130() {
    let world = World::new();
    let reference = checksum(&world.build());
    let mut random = Random::new();
    for round in 0..6 {
        let (sig, code_wanted, name) = if round % 2 == 0 {
            (libc::SIGTERM, 143, "SIGTERM")
        } else {
            (libc::SIGINT, 130, "SIGINT")
        };
        // While the buildpack runs: it waits for its helper after stage 2.
        let point = ["stage 1", "stage 2"][random.below(2) as usize];
        let delay = Duration::from_millis(random.below(300));
        let mut running = Running::start(world.build_cmd("bp", &[]));
        running.wait_for(point);
        std::thread::sleep(delay);
        running.signal(sig);
        let (code, log) = running.finish();
        assert_eq!(
            code, code_wanted,
            "round {round}: {name} at {point:?}:\n{log}"
        );
        assert_eq!(
            first_error(&log),
            format!("error: the build was stopped by {name}"),
            "{log}"
        );
        // `slug build` returns only once its whole tree is gone.
        world.assert_no_process_left(&format!("right after {name} at {point:?} + {delay:?}"));
        assert_eq!(checksum(&world.build()), reference, "rebuild after {name}");
    }
}

#[test]
fn concurrent_builds_of_one_app_agree_and_sweep_what_a_dead_build_left() {
    let world = World::new();
    let reference = checksum(&world.build());
    // What a killed build leaves: a temporary file nobody holds.
    std::fs::write(world.store().join(".tmp-dead1"), vec![7u8; 1 << 20]).unwrap();
    let builds: Vec<Child> = (0..3)
        .map(|_| {
            world
                .build_cmd("bp", &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for build in builds {
        let out = build.wait_with_output().unwrap();
        assert_eq!(checksum(&out), reference);
    }
    assert!(world.store_temps().is_empty(), "{:?}", world.store_temps());
    world.assert_no_process_left("after concurrent builds");
}

#[test]
fn stale_temp_files_are_swept_on_the_next_write_and_live_ones_kept() {
    let world = World::new();
    checksum(&world.build());
    // Twelve killed builds' worth of leftovers.
    for i in 0..12 {
        std::fs::write(
            world.store().join(format!(".tmp-killed{i}")),
            vec![1u8; 1 << 20],
        )
        .unwrap();
    }
    // A live writer's file, locked as every writer locks its own (slug_format::store).
    let live_path = world.store().join(".tmp-live");
    std::fs::write(&live_path, b"being written").unwrap();
    let live = std::fs::File::open(&live_path).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(live.as_raw_fd(), libc::LOCK_EX) }, 0);
    let out = world.build();
    checksum(&out);
    assert_eq!(
        world.store_temps(),
        BTreeSet::from([".tmp-live".to_string()]),
        "the dead builds' files must go, the live one's stay"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Removed 12 temporary files of interrupted builds from the store (12.0 MiB)"),
        "{}",
        text(&out)
    );
    // Its writer gone, it goes on the next write.
    drop(live);
    checksum(&world.build());
    assert!(world.store_temps().is_empty(), "{:?}", world.store_temps());
    // And what a build killed while it writes the slug leaves is gone after the next one.
    let mut random = Random::new();
    for _ in 0..3 {
        let mut running = Running::start(world.build_cmd("bp", &[]));
        running.wait_for("Compressing");
        std::thread::sleep(Duration::from_millis(random.below(50)));
        running.signal(libc::SIGKILL);
        running.finish();
        checksum(&world.build());
        assert!(world.store_temps().is_empty(), "{:?}", world.store_temps());
    }
}

fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_full_store_is_refused_before_building_or_reported_as_full() {
    let world = World::new();
    let store = world.store();
    if !mount_tmpfs(&store, "size=5m") {
        return;
    }
    let _unmount = Unmount(store.clone());
    // An app that cannot fit: refused before any buildpack runs.
    std::fs::write(world.path("app/noise.bin"), noise(6 << 20)).unwrap();
    let out = world.build();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let first = first_error(&err);
    assert!(
        first.contains(&store.display().to_string())
            && first.contains("MiB free, and this build needs about 7 MiB"),
        "{err}"
    );
    assert!(
        !err.contains("app detected") && !err.contains("stage 1"),
        "{err}"
    );
    assert!(world.store_temps().is_empty(), "{:?}", world.store_temps());

    // One that looks small but whose buildpack makes it big: the write fails as a full disk.
    std::fs::remove_file(world.path("app/noise.bin")).unwrap();
    world.write_buildpack(
        "big",
        "#!/usr/bin/env bash\nset -e\nmkdir -p \"$1/blob\"\n\
         printf '[types]\\nlaunch = true\\n' > \"$1/blob.toml\"\n\
         head -c 7000000 /dev/urandom > \"$1/blob/noise\"\n",
    );
    let out = world.build_cmd("big", &[]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        first_error(&err).contains("No space left on device"),
        "{err}"
    );
    assert!(!err.contains("corrupt"), "{err}");
    assert!(world.store_temps().is_empty(), "{:?}", world.store_temps());
}

#[test]
fn a_read_only_store_is_refused_before_building() {
    let world = World::new();
    let store = world.store();
    if !mount_tmpfs(&store, "ro,size=1m") {
        return;
    }
    let _unmount = Unmount(store.clone());
    let out = world.build();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let first = first_error(&err);
    assert!(
        first.contains(&store.display().to_string()) && first.contains("Read-only file system"),
        "{err}"
    );
    assert!(
        !err.contains("app detected") && !err.contains("stage 1"),
        "{err}"
    );
}

#[test]
fn timeout_stops_the_whole_tree_with_a_clear_error_and_exit_20() {
    let world = World::new();
    world.write_buildpack(
        "slow",
        "#!/usr/bin/env bash\necho '---> sleeping'\nsetsid sleep 600 &\n( sleep 600 & wait ) &\nsleep 600\n",
    );
    let mut running = Running::start(world.build_cmd("slow", &["--timeout", "3s"]));
    assert!(running.wait_for("sleeping"));
    let (code, log) = running.finish();
    assert_eq!(code, 20, "{log}");
    assert_eq!(
        first_error(&log),
        "error: the build did not finish within --timeout 3s",
        "{log}"
    );
    world.assert_no_process_left("right after the timeout");
    assert!(world.store_temps().is_empty());
    // A build that finishes in time is not touched.
    checksum(
        &world
            .build_cmd("bp", &["--timeout", "10m"])
            .output()
            .unwrap(),
    );
    let bad = world
        .build_cmd("bp", &["--timeout", "soon"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

/// `slug run` of a slug whose web process is `command`, with stdout piped.
fn slug_run(world: &World, command: &str) -> Child {
    std::fs::write(world.path("app/Procfile"), format!("web: {command}\n")).unwrap();
    let out = world
        .slug()
        .args(["build", "--json", "--output"])
        .arg(world.store())
        .arg(world.path("app"))
        .output()
        .unwrap();
    let sum = checksum(&out);
    world
        .slug()
        .args(["run", &sum, "--store"])
        .arg(world.store())
        .arg("--env")
        .arg(format!("SLUG_FAULTS_TOKEN={}", world.token))
        .args(["--timeout", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Peak resident memory of a running process, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn slug_run_splits_a_huge_line_instead_of_holding_it() {
    let world = World::new();
    const HUGE: u64 = 128 << 20;
    let mut run = slug_run(
        &world,
        &format!("head -c {HUGE} /dev/zero | tr -c x x; echo; echo done; sleep 600"),
    );
    let stdout = run.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(1 << 16, stdout);
        let (mut xs, mut longest) = (0u64, 0usize);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    longest = longest.max(n);
                    xs += line.iter().filter(|&&b| b == b'x').count() as u64;
                    if line.ends_with(b"| done\n") {
                        let _ = tx.send((xs, longest));
                    }
                }
            }
        }
    });
    let (xs, longest) = rx.recv_timeout(BOUND).expect("no `done` line");
    let peak = vm_hwm_kib(run.id());
    // SAFETY: a signal to our own child.
    unsafe {
        libc::kill(run.id() as i32, libc::SIGTERM);
    }
    let mut err = String::new();
    run.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{err}");
    assert_eq!(xs, HUGE);
    assert!(longest <= 64 * 1024 + 64, "a line of {longest} bytes");
    assert!(
        peak < 48 * 1024,
        "slug run peaked at {peak} KiB for a {HUGE}-byte line"
    );
    world.assert_no_process_left("after slug run");
}

#[test]
fn slug_run_stops_a_process_that_left_its_session() {
    let world = World::new();
    let mut run = slug_run(&world, "setsid sleep 600 & sleep 1; echo leaving");
    let mut out = String::new();
    run.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("web.1 exited with code 0"), "{out}");
    // `slug run` has returned: nothing it started may still run.
    world.assert_no_process_left("after slug run returned");
}
