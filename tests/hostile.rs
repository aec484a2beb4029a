//! Hostile app inputs, generated: a small fuzzer with a fixed seed over the files the engine
//! and the built-in buildpacks read (Procfile, `.slugignore`, version files, `package.json`,
//! lockfiles, `--env-file`) and over tree oddities (symlinks out of the app, FIFOs, links to
//! `/dev/zero`, huge files, non-UTF-8). Every case must end within its timeout without a
//! panic, either refused (exit 30, the first stderr line `error: ` naming the file, no line
//! quoting more than a few hundred bytes, nothing from outside the app shown) or built.
//!
//! `HOSTILE_CASES` (default 300) and `HOSTILE_SEED` choose the cases; `scripts/hostile.sh`
//! runs many more.

mod support;

use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One case's limit: a refusal takes well under a second, a Procfile-only build about one.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest stderr line a refusal may print (messages quote at most 200 bytes of input).
const MAX_LINE: usize = 600;
/// Set in each build's environment: it must never appear in the output (it would if
/// `/proc/self/environ` were read as app input).
const MARKER: &str = "HOSTILE_ENV_MARKER_5d1c";

const MANIFEST_CAP: u64 = 1 << 20;
const LOCKFILE_CAP: u64 = 64 << 20;

/// xorshift64*: a fixed seed gives the same cases on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The kind of app a case starts from; each builds as it is.
#[derive(Clone, Copy, Debug)]
enum Base {
    Procfile,
    Python,
    Node,
}

/// A file the engine or a buildpack reads, the base it belongs to, its cap, and whether
/// arbitrary (UTF-8) text in it is sure to be refused (a parsed format) or may build.
struct Input {
    name: &'static str,
    base: Base,
    cap: u64,
    parsed: bool,
}

const INPUTS: &[Input] = &[
    Input {
        name: "Procfile",
        base: Base::Procfile,
        cap: MANIFEST_CAP,
        parsed: true,
    },
    Input {
        name: ".slugignore",
        base: Base::Procfile,
        cap: MANIFEST_CAP,
        parsed: false,
    },
    Input {
        name: ".python-version",
        base: Base::Python,
        cap: MANIFEST_CAP,
        parsed: true,
    },
    Input {
        name: "runtime.txt",
        base: Base::Python,
        cap: MANIFEST_CAP,
        parsed: true,
    },
    Input {
        name: "pyproject.toml",
        base: Base::Python,
        cap: MANIFEST_CAP,
        parsed: true,
    },
    Input {
        name: "requirements.txt",
        base: Base::Python,
        cap: MANIFEST_CAP,
        parsed: false,
    },
    Input {
        name: "poetry.lock",
        base: Base::Python,
        cap: LOCKFILE_CAP,
        parsed: true,
    },
    Input {
        name: "Pipfile.lock",
        base: Base::Python,
        cap: LOCKFILE_CAP,
        parsed: true,
    },
    Input {
        name: "uv.lock",
        base: Base::Python,
        cap: LOCKFILE_CAP,
        parsed: true,
    },
    Input {
        name: "package.json",
        base: Base::Node,
        cap: MANIFEST_CAP,
        parsed: true,
    },
    Input {
        name: "package-lock.json",
        base: Base::Node,
        cap: LOCKFILE_CAP,
        parsed: true,
    },
    Input {
        name: "npm-shrinkwrap.json",
        base: Base::Node,
        cap: LOCKFILE_CAP,
        parsed: true,
    },
    Input {
        name: "yarn.lock",
        base: Base::Node,
        cap: LOCKFILE_CAP,
        parsed: false,
    },
    Input {
        name: "pnpm-lock.yaml",
        base: Base::Node,
        cap: LOCKFILE_CAP,
        parsed: false,
    },
];

/// What a case does to one input file.
#[derive(Clone, Copy, Debug)]
enum Hostility {
    LinkTo(&'static str),
    /// A relative link climbing out of the app.
    LinkUp,
    Dangling,
    Loop,
    Fifo,
    Dir,
    /// One byte over the file's cap (sparse: no memory or disk is spent on it).
    OverCap,
    NonUtf8,
    /// Random text: refused when the format is parsed, else it may build.
    Garbage,
    /// A valid-looking first line, then a 200 kB line.
    LongLine,
}

const HOSTILITIES: &[Hostility] = &[
    Hostility::LinkTo("/etc/passwd"),
    Hostility::LinkTo("/proc/self/environ"),
    Hostility::LinkTo("/dev/zero"),
    Hostility::LinkTo("/dev/urandom"),
    Hostility::LinkTo("/etc"),
    Hostility::LinkUp,
    Hostility::Dangling,
    Hostility::Loop,
    Hostility::Fifo,
    Hostility::Dir,
    Hostility::OverCap,
    Hostility::NonUtf8,
    Hostility::Garbage,
    Hostility::LongLine,
];

/// What the case must end in.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Exit 30, the first line naming `file`.
    Refused {
        file: String,
    },
    /// Exit 30 naming `file`, or a build.
    RefusedOrBuilt {
        file: String,
    },
    Built,
}

struct Case {
    what: String,
    args: Vec<String>,
    expect: Expect,
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

fn base_files(app: &Path, base: Base) {
    write(&app.join("Procfile"), b"web: echo hi\n");
    match base {
        Base::Procfile => {}
        Base::Python => write(&app.join("app.py"), b"print('hi')\n"),
        Base::Node => write(&app.join("package.json"), b"{\"name\": \"x\"}\n"),
    }
}

fn garbage(rng: &mut Rng) -> Vec<u8> {
    let alphabet = b"{}[]\":=,.#@!-_ \n\tabcXYZ019'\\";
    (0..1 + rng.below(300))
        .map(|_| *rng.pick(alphabet))
        .collect()
}

/// A first byte that no parser of `name` accepts, so that random text after it is refused.
fn invalid_start(name: &str) -> &'static [u8] {
    if name.ends_with(".json") || name.ends_with(".lock") && name.starts_with("Pipfile") {
        b"}"
    } else if name.ends_with(".toml") || name.ends_with(".lock") {
        b"= "
    } else {
        b"x"
    }
}

/// Make `path` hostile. Returns whether the result is sure to be refused: content
/// hostilities are, when `strict` (a parsed format, made invalid from its first byte).
fn make_hostile(path: &Path, h: Hostility, cap: u64, strict: bool, rng: &mut Rng) -> bool {
    let _ = std::fs::remove_file(path);
    match h {
        Hostility::LinkTo(target) => symlink(target, path).unwrap(),
        Hostility::LinkUp => symlink("../../../../../../../../etc/passwd", path).unwrap(),
        Hostility::Dangling => symlink("no-such-file", path).unwrap(),
        Hostility::Loop => symlink(path.file_name().unwrap(), path).unwrap(),
        Hostility::Fifo => mkfifo(path),
        Hostility::Dir => std::fs::create_dir_all(path.join("inner")).unwrap(),
        Hostility::OverCap => {
            let f = std::fs::File::create(path).unwrap();
            f.set_len(cap + 1).unwrap();
        }
        Hostility::NonUtf8 => {
            let mut bytes = b"web: ok\n".to_vec();
            bytes.extend(rng.bytes(8));
            bytes.extend([0xff, 0xfe, 0xc3, 0x28]);
            write(path, &bytes);
        }
        Hostility::Garbage => {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut text = if strict {
                invalid_start(&name).to_vec()
            } else {
                Vec::new()
            };
            text.extend(garbage(rng));
            write(path, &text);
            return strict;
        }
        Hostility::LongLine => {
            // Line 2 has no `:` or `=`: a Procfile and an env file refuse it, quoting it.
            let mut text = b"web: echo ok\nx".to_vec();
            text.extend(std::iter::repeat_n(b'y', 200_000));
            write(path, &text);
            return strict;
        }
    }
    true
}

fn case(rng: &mut Rng, index: usize, dir: &Path) -> Case {
    let app = dir.join("app");
    let kind = rng.below(10);
    if kind < 7 {
        // One app input made hostile.
        let input = rng.pick(INPUTS);
        let h = *rng.pick(HOSTILITIES);
        base_files(&app, input.base);
        // Text that may be valid is only tried where a build is cheap and offline (a Procfile
        // app); in a Python or Node.js app it is made invalid, or, for formats the buildpacks
        // leave to their installers, replaced by non-UTF-8 bytes (which are refused).
        let h = match (h, input.base, input.parsed) {
            (Hostility::Garbage | Hostility::LongLine, Base::Python | Base::Node, false) => {
                Hostility::NonUtf8
            }
            _ => h,
        };
        let strict = input.name == "Procfile" && matches!(h, Hostility::LongLine)
            || !matches!(input.base, Base::Procfile);
        let sure = make_hostile(&app.join(input.name), h, input.cap, strict, rng);
        let file = input.name.to_string();
        let expect = if sure {
            Expect::Refused { file }
        } else {
            Expect::RefusedOrBuilt { file }
        };
        return Case {
            what: format!("#{index} {} {h:?} ({:?} app)", input.name, input.base),
            args: Vec::new(),
            expect,
        };
    }
    if kind < 9 {
        // A tree oddity somewhere in a Procfile app that is not app input.
        base_files(&app, Base::Procfile);
        let sub = format!("d{}/f{}", rng.below(3), rng.below(100));
        let path = app.join(&sub);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        return match rng.below(5) {
            0 => {
                symlink(
                    *rng.pick(&["/etc/passwd", "/proc/self/environ", "/dev/zero"]),
                    &path,
                )
                .unwrap();
                Case {
                    what: format!("#{index} {sub} links out of the app"),
                    args: Vec::new(),
                    expect: Expect::Built,
                }
            }
            1 => {
                mkfifo(&path);
                Case {
                    what: format!("#{index} {sub} is a FIFO"),
                    args: Vec::new(),
                    expect: Expect::Refused { file: sub },
                }
            }
            2 => {
                use std::os::unix::ffi::OsStrExt;
                let name = format!("caf\u{e9}-{}", rng.below(1000));
                write(&app.join(&name), &rng.bytes(64));
                let raw = std::ffi::OsStr::from_bytes(b"latin1-\xe9.txt");
                write(&app.join(raw), &rng.bytes(16));
                let len = 1 + rng.below(4096);
                write(&path, &rng.bytes(len));
                Case {
                    what: format!("#{index} binary files and a non-ASCII name"),
                    args: Vec::new(),
                    expect: Expect::Built,
                }
            }
            3 => {
                symlink("../..", &path).unwrap();
                Case {
                    what: format!("#{index} {sub} links above the app"),
                    args: Vec::new(),
                    // The slug's symlink rule: refused before the build, naming the link.
                    expect: Expect::Refused { file: sub.clone() },
                }
            }
            _ => {
                // A large (sparse) file that is not input: copied, not read whole.
                let f = std::fs::File::create(&path).unwrap();
                f.set_len(8 << 20).unwrap();
                Case {
                    what: format!("#{index} {sub} is a large file"),
                    args: Vec::new(),
                    expect: Expect::Built,
                }
            }
        };
    }
    // A hostile --env-file.
    base_files(&app, Base::Procfile);
    let env = dir.join("build.env");
    let h = *rng.pick(&[
        Hostility::Fifo,
        Hostility::LinkTo("/dev/zero"),
        Hostility::LinkTo("/dev/urandom"),
        Hostility::Dir,
        Hostility::OverCap,
        Hostility::NonUtf8,
        Hostility::LongLine,
    ]);
    assert!(make_hostile(&env, h, MANIFEST_CAP, true, rng));
    Case {
        what: format!("#{index} --env-file {h:?}"),
        args: vec!["--env-file".into(), env.display().to_string()],
        expect: Expect::Refused {
            file: env.display().to_string(),
        },
    }
}

/// Run `slug build` on the case's app with a deadline. `None`: it did not end in time.
fn run_case(dir: &Path, args: &[String]) -> Option<(i32, String, String)> {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_slug"))
        .arg("build")
        .arg(dir.join("app"))
        .arg("--no-cache")
        .arg("--output")
        .arg(dir.join("store"))
        .args(args)
        .env("TMPDIR", &tmp)
        .env("XDG_CACHE_HOME", dir.join("xdg-cache"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env(MARKER, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drained while it runs, so that a full pipe never stalls it.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + CASE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
    Some((status.code().unwrap_or(-1), stdout, stderr))
}

/// Why the outcome breaks the case's promise, if it does.
fn check(case: &Case, code: i32, stdout: &str, stderr: &str, dir: &Path) -> Option<String> {
    if stderr.contains("panicked") {
        return Some("panicked".into());
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let passwd_line = passwd.lines().next().unwrap_or("root:x:0:0:");
    for (name, text) in [("stdout", stdout), ("stderr", stderr)] {
        if text.contains(MARKER) || (!passwd_line.is_empty() && text.contains(passwd_line)) {
            return Some(format!("{name} shows input from outside the app"));
        }
    }
    let built = || {
        let slugs = std::fs::read_dir(dir.join("store"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".tgz"))
                    .count()
            })
            .unwrap_or(0);
        (code == 0 && slugs == 1)
            .then_some(())
            .ok_or(format!("exit {code}, {slugs} slugs"))
    };
    let refused = |file: &str| -> Result<(), String> {
        if code != 30 {
            return Err(format!("exit {code}, not 30"));
        }
        let first = stderr.lines().next().unwrap_or_default();
        if !first.starts_with("error: ") || !first.contains(file) {
            return Err(format!("first line {first:?} does not name {file}"));
        }
        if let Some(long) = stderr.lines().find(|l| l.len() > MAX_LINE) {
            return Err(format!("a {}-byte line", long.len()));
        }
        Ok(())
    };
    let verdict = match &case.expect {
        Expect::Built => built(),
        Expect::Refused { file } => refused(file),
        Expect::RefusedOrBuilt { file } => {
            refused(file).or_else(|e| built().map_err(|b| format!("{e}; {b}")))
        }
    };
    verdict.err()
}

#[test]
fn hostile_inputs_are_refused_or_built() {
    let cases: usize = std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001);
    let mut rng = Rng(seed | 1);
    let root = support::tmpfs_dir();
    let mut failures = Vec::new();
    let (mut refused, mut built) = (0, 0);
    let started = Instant::now();
    for index in 0..cases {
        let dir: PathBuf = root.path().join(format!("case-{index}"));
        std::fs::create_dir_all(&dir).unwrap();
        let case = case(&mut rng, index, &dir);
        match run_case(&dir, &case.args) {
            None => failures.push(format!("{}: no answer within {CASE_TIMEOUT:?}", case.what)),
            Some((code, stdout, stderr)) => match check(&case, code, &stdout, &stderr, &dir) {
                Some(why) => failures.push(format!(
                    "{}: {why}\n{}",
                    case.what,
                    stderr
                        .lines()
                        .take(3)
                        .map(|l| &l[..l.len().min(300)])
                        .collect::<Vec<_>>()
                        .join("\n")
                )),
                None if code == 0 => built += 1,
                None => refused += 1,
            },
        }
        // Make the case's files removable (a test dir left 0000 would stay behind), then go.
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
        let _ = std::fs::remove_dir_all(&dir);
    }
    eprintln!(
        "{cases} hostile cases (seed {seed:#x}): {refused} refused, {built} built, {} broke a promise, in {:.1}s",
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
