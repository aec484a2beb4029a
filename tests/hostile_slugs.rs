//! Slugs from elsewhere, through every command that reads one: `run`, `exec`, `inspect`,
//! `image`, `manifests`. A hostile slug is refused by all five the same way (exit 30, the
//! same first `error:` line) and nothing is written anywhere; slugs the one symlink rule
//! accepts are accepted by all five; `image` rewrites what it does not take as it is; an
//! unpack that fills the disk says so (exit 1).
//!
//! Slugs are written here header by header with the `tar` crate, so that anything a hostile
//! tarball may hold can be held.

mod support;

use slug_format::release::{LayerEntry, Release, Stack, SCHEMA};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::{mount_tmpfs, Unmount};

const SLUG: &str = env!("CARGO_BIN_EXE_slug");

/// An isolated world: its own store, cache (unpack dirs), data dir and HOME.
struct World {
    root: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let root = tempfile::tempdir_in(scratch()).unwrap();
        for d in ["cache", "data", "home", "store", "out"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        Self { root }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.path().join(p)
    }

    fn slug(&self) -> Command {
        let mut cmd = Command::new(SLUG);
        cmd.env("XDG_CACHE_HOME", self.path("cache"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("HOME", self.path("home"))
            .stdin(Stdio::null());
        cmd
    }

    /// Every file and symlink under the world, with its size.
    fn files(&self) -> BTreeSet<(String, u64)> {
        fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<(String, u64)>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                if meta.is_dir() {
                    walk(&path, base, out);
                } else {
                    out.insert((rel, meta.len()));
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(self.root.path(), self.root.path(), &mut out);
        out
    }
}

/// Scratch space: tmpfs when there is one (the slugs here are small, their contents not).
fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// One tar entry of a hand-made slug; paths and link names are written raw, unchecked.
enum Entry<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    /// A file of `size` zero bytes, streamed.
    Zeros(&'a str, u64),
    /// A file of `count` copies of `line`, streamed.
    Lines(&'a str, &'a [u8], u64),
    /// A header only, claiming `size` bytes that never follow.
    Claims(&'a str, u64),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    CharDevice(&'a str),
    /// A file owned by uid/gid 1000, with this mode.
    Owned(&'a str, &'a [u8], u32),
}

fn raw_header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let name = &mut h.as_old_mut().name;
    name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// The gzip tar of `entries` and its uncompressed size.
fn tar_gz(entries: &[Entry]) -> (Vec<u8>, u64) {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut counted = Counted { inner: gz, n: 0 };
    {
        let out = &mut counted;
        for entry in entries {
            let mut data: Box<dyn Read> = Box::new(std::io::empty());
            let mut pad_to: Option<u64> = None;
            let mut h = match entry {
                Entry::Dir(p, mode) => raw_header(p, tar::EntryType::Directory, *mode, 0),
                Entry::File(p, bytes, mode) => {
                    data = Box::new(*bytes);
                    raw_header(p, tar::EntryType::Regular, *mode, bytes.len() as u64)
                }
                Entry::Owned(p, bytes, mode) => {
                    data = Box::new(*bytes);
                    let mut h = raw_header(p, tar::EntryType::Regular, *mode, bytes.len() as u64);
                    h.set_uid(1000);
                    h.set_gid(1000);
                    h
                }
                Entry::Zeros(p, size) => {
                    data = Box::new(std::io::repeat(0).take(*size));
                    pad_to = Some(*size);
                    raw_header(p, tar::EntryType::Regular, 0o644, *size)
                }
                Entry::Lines(p, line, count) => {
                    let size = line.len() as u64 * count;
                    data = Box::new(Cycle { line, at: 0 }.take(size));
                    pad_to = Some(size);
                    raw_header(p, tar::EntryType::Regular, 0o644, size)
                }
                Entry::Claims(p, size) => {
                    pad_to = Some(0);
                    raw_header(p, tar::EntryType::Regular, 0o644, *size)
                }
                Entry::Symlink(p, target) | Entry::HardLink(p, target) => {
                    let kind = if matches!(entry, Entry::Symlink(..)) {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    };
                    let mut h = raw_header(p, kind, 0o777, 0);
                    h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
                    h
                }
                Entry::CharDevice(p) => raw_header(p, tar::EntryType::Char, 0o644, 0),
            };
            h.set_cksum();
            out.write_all(h.as_bytes()).unwrap();
            let copied = std::io::copy(&mut data, out).unwrap();
            let len = pad_to.unwrap_or(copied);
            if !len.is_multiple_of(512) {
                out.write_all(&vec![0; 512 - (len % 512) as usize]).unwrap();
            }
        }
        out.write_all(&[0; 1024]).unwrap();
    }
    let n = counted.n;
    (counted.inner.finish().unwrap(), n)
}

/// `line` over and over.
struct Cycle<'a> {
    line: &'a [u8],
    at: usize,
}

impl Read for Cycle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let part = &self.line[self.at..];
            let n = part.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&part[..n]);
            filled += n;
            self.at = (self.at + n) % self.line.len();
        }
        Ok(filled)
    }
}

struct Counted<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    slug_format::hex(&sha2::Sha256::digest(bytes))
}

/// A release manifest for `bytes` that says its one part is `tar_size` bytes.
fn release(bytes: &[u8], tar_size: u64) -> Release {
    Release {
        schema: SCHEMA.to_string(),
        checksum: format!("SHA256:{}", sha256_hex(bytes)),
        size: bytes.len() as u64,
        process_types: BTreeMap::from([("web".to_string(), "echo ran".to_string())]),
        process_sources: Default::default(),
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
        layers: vec![LayerEntry {
            path: "app".to_string(),
            digest: "sha256:0".to_string(),
            size: tar_size,
        }],
    }
}

/// `entries` as `<store>/sha256-<hex>.tgz`, with a manifest beside it giving the tar's real
/// size (or `declared`).
fn store_slug(world: &World, entries: &[Entry], declared: Option<u64>) -> PathBuf {
    let (bytes, tar_size) = tar_gz(entries);
    let path = world
        .path("store")
        .join(format!("sha256-{}.tgz", sha256_hex(&bytes)));
    std::fs::write(&path, &bytes).unwrap();
    let manifest = release(&bytes, declared.unwrap_or(tar_size));
    std::fs::write(path.with_extension("json"), manifest.to_json()).unwrap();
    path
}

/// The five commands that read a slug, with what each needs besides it.
fn five(world: &World, slug: &Path, extra: &[&str]) -> Vec<(String, Vec<String>)> {
    let slug = slug.to_str().unwrap().to_string();
    let out = world.path("out/layout").to_str().unwrap().to_string();
    let base = world.path("no-base").to_str().unwrap().to_string();
    let mut all = vec![
        vec!["run".to_string(), slug.clone()],
        vec!["exec".to_string(), slug.clone()],
        vec!["inspect".to_string(), slug.clone()],
        vec![
            "image".to_string(),
            slug.clone(),
            "--base".to_string(),
            base,
            "--output".to_string(),
            out,
        ],
        vec![
            "manifests".to_string(),
            slug,
            "--image".to_string(),
            "example/app:1".to_string(),
        ],
    ];
    for args in &mut all {
        args.extend(extra.iter().map(|s| s.to_string()));
        if args[0] == "exec" {
            args.extend(["--".to_string(), "echo ran".to_string()]);
        }
    }
    all.into_iter().map(|a| (a[0].clone(), a)).collect()
}

/// Every command refuses `slug` with exit 30 and the same first line, which holds
/// `reason`; nothing is written anywhere.
fn assert_refused_by_all(world: &World, slug: &Path, reason: &str, extra: &[&str]) {
    let before = world.files();
    let mut firsts = BTreeMap::new();
    for (name, args) in five(world, slug, extra) {
        let out = world.slug().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(30), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name} printed on stdout");
        let first = err.lines().next().unwrap_or_default().to_string();
        assert!(
            first.starts_with("error: ") && first.contains(reason),
            "{name}: expected {reason:?} in the first line of {err}"
        );
        firsts.insert(name, first);
    }
    let lines: BTreeSet<&String> = firsts.values().collect();
    assert_eq!(lines.len(), 1, "not the same first line: {firsts:#?}");
    assert_eq!(world.files(), before, "a refused slug wrote something");
}

/// Every command accepts `slug`.
fn assert_accepted_by_all(world: &World, slug: &Path) {
    for (name, args) in five(world, slug, &[]) {
        if name == "image" {
            continue; // needs a base image: checked in its own test
        }
        let out = world.slug().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {err}");
    }
}

#[test]
fn entries_that_leave_the_app_or_are_not_files_are_refused_by_all_five_alike() {
    let passwd_before = std::fs::read("/etc/passwd").unwrap();
    let cases: Vec<(Vec<Entry>, &str)> = vec![
        (
            vec![
                Entry::Dir("./app/", 0o755),
                Entry::File("./app/../../../escaped.txt", b"x", 0o644),
            ],
            "\"./app/../../../escaped.txt\" contains `..`",
        ),
        (
            vec![
                Entry::Dir("./app/", 0o755),
                Entry::File("/tmp/slugc-hostile-absolute.txt", b"x", 0o644),
            ],
            "is an absolute path",
        ),
        (
            vec![Entry::Dir("./app/", 0o755), Entry::CharDevice("./app/null")],
            "\"./app/null\" is a device file",
        ),
        (
            vec![
                Entry::Dir("./app/", 0o755),
                Entry::HardLink("./app/passwd", "/etc/passwd"),
            ],
            "\"./app/passwd\" is a hard link",
        ),
        // A file, then a link in the place of the directory it lies in: unpacking the link
        // last would replace the directory, or write through the link.
        (
            vec![
                Entry::Dir("./app/", 0o755),
                Entry::File("./app/d/x", b"x", 0o644),
                Entry::Symlink("./app/d", "/etc"),
            ],
            "\"./app/d\" replaces an earlier directory",
        ),
        (
            vec![
                Entry::Dir("./app/", 0o755),
                Entry::Symlink("./app/d/passwd", "x"),
                Entry::Symlink("./app/d", "/etc"),
            ],
            "\"./app/d\" replaces an earlier directory",
        ),
    ];
    for (entries, reason) in cases {
        let world = World::new();
        let slug = store_slug(&world, &entries, None);
        assert_refused_by_all(&world, &slug, reason, &[]);
    }
    assert!(!Path::new("/tmp/slugc-hostile-absolute.txt").exists());
    assert!(!Path::new("/etc/x").exists() && !Path::new("/etc/passwd/x").exists());
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd_before);
}

#[test]
fn setuid_setgid_sticky_and_world_writable_modes_are_refused_by_all_five_alike() {
    for (entries, reason) in [
        (
            vec![
                Entry::Dir("./app/", 0o755),
                Entry::File("./app/su", b"#!/bin/sh\n", 0o4755),
            ],
            "\"./app/su\" has mode 4755: setuid, setgid or sticky",
        ),
        (
            vec![
                Entry::Dir("./app/", 0o755),
                Entry::File("./app/sg", b"x", 0o2755),
            ],
            "\"./app/sg\" has mode 2755",
        ),
        (
            vec![
                Entry::Dir("./app/", 0o755),
                Entry::File("./app/open", b"x", 0o666),
            ],
            "\"./app/open\" has mode 0666: world-writable",
        ),
        (
            vec![
                Entry::Dir("./app/", 0o755),
                Entry::Dir("./app/tmp/", 0o1777),
            ],
            "\"./app/tmp/\" has mode 1777",
        ),
    ] {
        let world = World::new();
        let slug = store_slug(&world, &entries, None);
        assert_refused_by_all(&world, &slug, reason, &[]);
    }
}

#[test]
fn symlinks_follow_one_rule_in_all_five_commands() {
    // Refused: out of the app, through a chain, or a loop.
    for (entries, reason) in [
        (
            vec![
                Entry::Dir("./app/", 0o755),
                Entry::Symlink("./app/out", "../../../.."),
            ],
            "\"app/out\" is a symlink to ../../../.. which points outside the app",
        ),
        (
            vec![
                Entry::Dir("./app/", 0o755),
                Entry::Symlink("./app/self", "."),
                Entry::Symlink("./app/sneaky", "self/.."),
            ],
            "\"app/sneaky\" is a symlink to self/.. which points outside the app",
        ),
        (
            vec![
                Entry::Dir("./app/", 0o755),
                Entry::Symlink("./app/a", "b/c"),
                Entry::Symlink("./app/b", "d"),
                Entry::Symlink("./app/d", "../.."),
            ],
            "\"app/a\" is a symlink to b/c which points outside the app",
        ),
        (
            vec![
                Entry::Dir("./app/", 0o755),
                Entry::Symlink("./app/l1", "l2"),
                Entry::Symlink("./app/l2", "l1"),
            ],
            "\"app/l1\" is a symlink to l2 through more than 40 symlinks",
        ),
        (
            vec![
                Entry::Dir("./app/", 0o755),
                Entry::Symlink("./app/etc", "/etc"),
                Entry::File("./app/etc/passwd", b"x", 0o644),
            ],
            "\"./app/etc/passwd\" lies under the symlink app/etc",
        ),
    ] {
        let world = World::new();
        let slug = store_slug(&world, &entries, None);
        assert_refused_by_all(&world, &slug, reason, &[]);
    }

    // Accepted: through the slug root and back into the app (what `slug build` keeps), and
    // absolute targets, which are paths of the stack; unpacked as they are.
    let world = World::new();
    let slug = store_slug(
        &world,
        &[
            Entry::Dir("./app/", 0o755),
            Entry::File("./app/real.txt", b"real\n", 0o644),
            Entry::Symlink("./app/ok", "../app/real.txt"),
            Entry::Dir("./app/venv/bin/", 0o755),
            Entry::Symlink("./app/venv/bin/python3", "/usr/bin/python3"),
        ],
        None,
    );
    assert_accepted_by_all(&world, &slug);
    let out = world
        .slug()
        .args(["exec", slug.to_str().unwrap(), "--", "cat ok"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "real\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hex = sha256_hex(&std::fs::read(&slug).unwrap());
    let python = world.path(&format!("cache/slugc/run/{hex}/app/venv/bin/python3"));
    assert_eq!(
        std::fs::read_link(&python).unwrap(),
        Path::new("/usr/bin/python3")
    );
}

#[test]
fn the_exporter_keeps_what_the_reader_accepts_and_refuses_what_it_refuses() {
    let world = World::new();
    let app = world.path("app");
    std::fs::create_dir_all(app.join("venv/bin")).unwrap();
    std::fs::write(app.join("Procfile"), "web: cat ok\n").unwrap();
    std::fs::write(app.join("real.txt"), "real\n").unwrap();
    std::os::unix::fs::symlink("../app/real.txt", app.join("ok")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/python3", app.join("venv/bin/python3")).unwrap();
    let build = |app: &Path| {
        world
            .slug()
            .args(["build", "--json", "--output"])
            .arg(world.path("store"))
            .arg(app)
            .output()
            .unwrap()
    };
    let out = build(&app);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let release: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hex = release["checksum"].as_str().unwrap()["SHA256:".len()..].to_string();
    let slug = world.path(&format!("store/sha256-{hex}.tgz"));
    assert_accepted_by_all(&world, &slug);
    let run = world
        .slug()
        .args(["exec", slug.to_str().unwrap(), "--", "cat ok"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "real\n");

    // A relative link out of the app: refused at build time, naming it.
    let bad = world.path("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("Procfile"), "web: true\n").unwrap();
    std::os::unix::fs::symlink("../../etc/passwd", bad.join("passwd")).unwrap();
    let out = build(&bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(30), "{err}");
    // Refused in the snapshot, before anything runs: the first line, naming the app's file.
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error:")
            && first.contains("bad/passwd")
            && first.contains("points outside the app"),
        "{err}"
    );
}

#[test]
fn huge_entries_are_refused_before_anything_is_unpacked() {
    // 64 MiB of zeros (64 KiB of gzip) where the manifest says the slug is 4 KiB.
    let world = World::new();
    let slug = store_slug(
        &world,
        &[
            Entry::Dir("./app/", 0o755),
            Entry::Zeros("./app/zeros", 64 << 20),
        ],
        Some(4096),
    );
    assert!(std::fs::metadata(&slug).unwrap().len() < 1 << 20);
    assert_refused_by_all(
        &world,
        &slug,
        "\"./app/zeros\" is 67108864 bytes, past the unpack limit of",
        &[],
    );
    // An honest manifest lets it through by default; the flag bounds it for every command.
    let world = World::new();
    let slug = store_slug(
        &world,
        &[
            Entry::Dir("./app/", 0o755),
            Entry::Zeros("./app/zeros", 64 << 20),
        ],
        None,
    );
    assert_refused_by_all(
        &world,
        &slug,
        "\"./app/zeros\" is 67108864 bytes, past the unpack limit of 16777216 file bytes",
        &["--max-unpacked", "16"],
    );
    // A header claiming 8 GiB that the stream never holds: refused at the header.
    let world = World::new();
    let slug = store_slug(
        &world,
        &[
            Entry::Dir("./app/", 0o755),
            Entry::Claims("./app/sparse", 8 << 30),
        ],
        Some(1 << 20),
    );
    assert_refused_by_all(
        &world,
        &slug,
        "is 8589934592 bytes, past the unpack limit",
        &[],
    );
    // Entries are bounded too.
    let world = World::new();
    let names: Vec<String> = (0..50).map(|i| format!("./app/f{i}")).collect();
    let mut entries = vec![Entry::Dir("./app/", 0o755)];
    entries.extend(names.iter().map(|n| Entry::File(n, b"", 0o644)));
    let slug = store_slug(&world, &entries, None);
    assert_refused_by_all(
        &world,
        &slug,
        "is one entry more than the unpack limit of 20 entries",
        &["--max-unpacked-entries", "20"],
    );
}

#[test]
fn a_wrong_checksum_or_name_is_refused_by_all_five_alike() {
    let entries = [
        Entry::Dir("./app/", 0o755),
        Entry::File("./app/Procfile", b"web: echo ran\n", 0o644),
    ];
    // The manifest names other bytes.
    let world = World::new();
    let slug = store_slug(&world, &entries, None);
    let mut manifest = release(b"other bytes", 1024);
    manifest.checksum = format!("SHA256:{}", sha256_hex(b"other bytes"));
    std::fs::write(slug.with_extension("json"), manifest.to_json()).unwrap();
    assert_refused_by_all(&world, &slug, "checksum mismatch", &[]);
    // The file name names other bytes (its manifest agrees with the name, not the file).
    let world = World::new();
    let (bytes, size) = tar_gz(&entries);
    let other = sha256_hex(b"other");
    let slug = world.path(&format!("store/sha256-{other}.tgz"));
    std::fs::write(&slug, &bytes).unwrap();
    let mut manifest = release(&bytes, size);
    manifest.checksum = format!("SHA256:{other}");
    std::fs::write(slug.with_extension("json"), manifest.to_json()).unwrap();
    assert_refused_by_all(&world, &slug, "checksum mismatch", &[]);
    // And entries are refused after a good checksum, whichever command reads them.
    let world = World::new();
    let slug = store_slug(
        &world,
        &[
            Entry::Dir("./app/", 0o755),
            Entry::File("./app/d/x", b"x", 0o644),
            Entry::File("./app/d", b"x", 0o644),
        ],
        None,
    );
    assert_refused_by_all(
        &world,
        &slug,
        "\"./app/d\" replaces an earlier directory",
        &[],
    );
}

/// A base image with no layers, made with umoci (as `.ci/run` installs it).
fn empty_base(world: &World) -> Option<String> {
    let layout = world.path("base");
    let ok = Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("umoci")
            .args(["new", "--image"])
            .arg(format!("{}:base", layout.display()))
            .status()
            .is_ok_and(|s| s.success());
    ok.then(|| format!("{}:base", layout.display()))
}

/// Runs `cmd` and returns its exit code, stderr and peak RSS in KiB (`wait4`'s rusage).
// Reaped by `wait4`, which `Child::wait` cannot stand in for: it gives the rusage.
#[allow(clippy::zombie_processes)]
fn run_measured(cmd: &mut Command) -> (i32, String, i64) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let mut status = 0;
    // SAFETY: wait4 writes the status and rusage we own, for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    (libc::WEXITSTATUS(status), err, usage.ru_maxrss)
}

fn layer_entries(layout: &Path, digest: &str) -> Vec<(String, u32, u64)> {
    let blob = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let file = std::fs::File::open(blob).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                h.mode().unwrap(),
                h.uid().unwrap(),
            )
        })
        .collect()
}

fn slug_layer(layout: &Path) -> serde_json::Value {
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let index = read(layout.join("index.json"));
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = read(layout.join("blobs/sha256").join(&digest["sha256:".len()..]));
    manifest["layers"][0].clone()
}

#[test]
fn image_rewrites_modes_and_owners_and_streams_what_it_reads() {
    let world = World::new();
    let Some(base) = empty_base(&world) else {
        eprintln!("skipped: umoci cannot make a base image layout here");
        return;
    };
    // Modes and owners slug build never writes, but that are not refused.
    let slug = store_slug(
        &world,
        &[
            Entry::Dir("./app/", 0o700),
            Entry::Owned("./app/secret", b"s", 0o600),
            Entry::Owned("./app/tool", b"#!/bin/sh\n", 0o700),
            Entry::File("./app/shared", b"g", 0o664),
        ],
        None,
    );
    let layout = world.path("out/rewritten");
    let out = world
        .slug()
        .args(["image", slug.to_str().unwrap(), "--base", &base, "--output"])
        .arg(&layout)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("written again with normalised modes"), "{err}");
    let layer = slug_layer(&layout);
    let digest = layer["digest"].as_str().unwrap();
    assert_ne!(
        digest,
        format!("sha256:{}", sha256_hex(&std::fs::read(&slug).unwrap()))
    );
    let entries = layer_entries(&layout, digest);
    let modes: BTreeMap<&str, (u32, u64)> = entries
        .iter()
        .map(|(p, m, u)| {
            (
                p.trim_start_matches("./").trim_end_matches('/'),
                (*m & 0o7777, *u),
            )
        })
        .collect();
    assert_eq!(modes.get("app"), Some(&(0o755, 0)), "{entries:?}");
    assert_eq!(modes.get("app/secret"), Some(&(0o644, 0)), "{entries:?}");
    assert_eq!(modes.get("app/tool"), Some(&(0o755, 0)), "{entries:?}");
    assert_eq!(modes.get("app/shared"), Some(&(0o644, 0)), "{entries:?}");
    // The blob is its digest, and the config's diff_id is the digest of its tar.
    let blob = std::fs::read(layout.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap();
    assert_eq!(format!("sha256:{}", sha256_hex(&blob)), digest);
    // Made again: the same bytes.
    let again = world.path("out/again");
    let out = world
        .slug()
        .args(["image", slug.to_str().unwrap(), "--base", &base, "--output"])
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(slug_layer(&again)["digest"], layer["digest"]);

    // A 256 MiB .profile.d script (256 KiB of gzip) is not read into memory. (Made as a
    // stream: `wait4`'s peak counts this process's own peak when the child is spawned.)
    let world = World::new();
    let base = empty_base(&world).unwrap();
    let slug = store_slug(
        &world,
        &[
            Entry::Dir("./app/", 0o755),
            Entry::Dir("./app/.profile.d/", 0o755),
            Entry::Lines("./app/.profile.d/big.sh", b"export A=1\n", (256 << 20) / 11),
        ],
        None,
    );
    let (code, err, max_rss_kib) = run_measured(
        world
            .slug()
            .args(["image", slug.to_str().unwrap(), "--base", &base, "--output"])
            .arg(world.path("out/big")),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("big.sh is over 1024 KiB"), "{err}");
    assert!(
        max_rss_kib < 100 * 1024,
        "slug image peaked at {max_rss_kib} KiB for a 256 MiB script"
    );
}

#[test]
fn a_full_disk_while_unpacking_is_exit_1_and_says_so() {
    let world = World::new();
    let cache = world.path("cache");
    if !mount_tmpfs(&cache, "size=4m") {
        return;
    }
    let _unmount = Unmount(cache.clone());
    // 8 MiB that do not compress, in a slug the limits accept.
    let mut noise = vec![0u8; 8 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let slug = store_slug(
        &world,
        &[
            Entry::Dir("./app/", 0o755),
            Entry::File("./app/noise", &noise, 0o644),
        ],
        None,
    );
    for cmd in ["run", "exec"] {
        let mut args = vec![cmd, slug.to_str().unwrap()];
        if cmd == "exec" {
            args.extend(["--", "true"]);
        }
        let out = world.slug().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: cannot unpack into") && first.contains("the disk is full"),
            "{cmd}: {err}"
        );
        assert!(!err.contains("corrupt"), "{err}");
        // The half-written unpack dir is removed.
        let left: Vec<_> = std::fs::read_dir(cache.join("slugc/run"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn a_slug_without_a_manifest_cannot_make_run_read_a_host_file_as_its_procfile() {
    let world = World::new();
    let (bytes, _) = tar_gz(&[
        Entry::Dir("./app/", 0o755),
        Entry::Symlink("./app/Procfile", "/etc/passwd"),
    ]);
    let slug = world.path("store/bare.tgz");
    std::fs::write(&slug, &bytes).unwrap();
    let out = world
        .slug()
        .args(["run", slug.to_str().unwrap()])
        .output()
        .unwrap();
    let all = text_of(&out);
    assert_eq!(out.status.code(), Some(30), "{all}");
    assert!(
        all.lines()
            .next()
            .is_some_and(|l| l.contains("Procfile is a symlink out of the app")),
        "{all}"
    );
    assert!(!all.contains("root:"), "a host file was shown: {all}");
}

fn text_of(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}
