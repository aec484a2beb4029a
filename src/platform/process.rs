//! Buildpack processes die with the build.
//!
//! Every buildpack executable (`bin/detect`, `bin/build`, `bin/compile`, `bin/release`) is
//! started under a **guard**: a process forked between `slug` and the buildpack, which is
//! a child subreaper (`PR_SET_CHILD_SUBREAPER`, see `prctl(2)`), so that everything the
//! buildpack starts — pip, npm, the early compressors, a daemon that called `setsid` — stays
//! in its subtree however its parents exit. The guard ends that whole subtree:
//!
//! - when the buildpack exits (what it left running gets SIGTERM, then SIGKILL after
//!   [`GRACE`]);
//! - when `slug` asks it to (SIGTERM: the same, for a stopped or timed-out build);
//! - when `slug` dies, even by SIGKILL (`PR_SET_PDEATHSIG`): SIGKILL at once.
//!
//! It walks its subtree through `/proc/thread-self/children` (`proc(5)`; the parent field of
//! every `/proc/<pid>/stat` where the kernel lacks it), killing what it finds until it has no
//! child left, and only then exits with the buildpack's status. It
//! keeps the app cache's lock open ([`hold_in_guards`]), so the next build of the app waits
//! until the killed build's processes are gone before it cleans the work dir under them.
//!
//! The guard is forked inside `Command::pre_exec`, after `fork` and before `exec`, where
//! only async-signal-safe calls are allowed (`signal-safety(7)`): it uses raw system calls
//! only, and no memory is allocated.
//!
//! [`stop_on`] makes SIGINT, SIGTERM and SIGHUP (and an optional timeout) stop the build:
//! every guard is told to end its tree, and once they all have, `slug` exits with
//! 128 + the signal (the timeout: exit 20).

use crate::exit;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a tree gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// At most this many file descriptors are kept open in a guard.
const MAX_KEPT: usize = 8;

/// Why a build is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Signal(i32),
    Timeout(Duration),
}

impl Stop {
    /// `slug build`'s exit code: 128 + the signal, as a shell reports it; a timeout is a
    /// failed build.
    pub fn exit_code(self) -> i32 {
        match self {
            Stop::Signal(sig) => 128 + sig,
            Stop::Timeout(_) => exit::BUILDPACK_FAILED,
        }
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Signal(sig) => write!(f, "the build was stopped by {}", signal_name(*sig)),
            Stop::Timeout(d) => write!(
                f,
                "the build did not finish within --timeout {}",
                show_duration(*d)
            ),
        }
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}

/// `1h2m3s` style, the way `--timeout` takes it.
pub fn show_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// `90`, `90s`, `15m`, `1h30m`: a whole number of seconds, minutes and hours.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 90s, 15m or 1h30m");
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
            _ => Err(bad()),
        };
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

struct State {
    /// Pids of the running guards.
    guards: Vec<i32>,
    /// Set once, when the build is being stopped.
    stopping: Option<Stop>,
    /// Descriptors the guards keep open (the app cache's lock).
    kept: Vec<RawFd>,
}

static STATE: Mutex<State> = Mutex::new(State {
    guards: Vec::new(),
    stopping: None,
    kept: Vec::new(),
});

fn state() -> std::sync::MutexGuard<'static, State> {
    // A panic while holding the lock leaves plain data behind: still usable.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keep `fd` open in every guard started from now on, until [`release_from_guards`]: a
/// lock held on it then outlives `slug` until the guards are done.
pub fn hold_in_guards(fd: RawFd) {
    let mut st = state();
    if st.kept.len() < MAX_KEPT && !st.kept.contains(&fd) {
        st.kept.push(fd);
    }
}

/// Call before closing a descriptor given to [`hold_in_guards`].
pub fn release_from_guards(fd: RawFd) {
    state().kept.retain(|&k| k != fd);
}

/// Once the build is being stopped, the thread that would start or wait for a buildpack
/// waits here for the stopping thread to exit the process.
fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// Starts `cmd` under a guard (module docs). The child's exit status is the buildpack's,
/// 128 + N when it was killed by signal N. Wait for it with [`wait`].
pub fn spawn(cmd: &mut Command) -> io::Result<Child> {
    let mut st = state();
    if st.stopping.is_some() {
        drop(st);
        park_forever();
    }
    let mut kept = [-1 as RawFd; MAX_KEPT];
    for (slot, fd) in kept.iter_mut().zip(&st.kept) {
        *slot = *fd;
    }
    kept.sort_unstable();
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls on data it owns (see `guard`).
    unsafe {
        cmd.pre_exec(move || guard(parent, &kept));
    }
    let child = cmd.spawn()?;
    st.guards.push(child.id() as i32);
    Ok(child)
}

/// Waits for a child of [`spawn`]. When the build is being stopped, does not return.
pub fn wait(child: &mut Child) -> io::Result<ExitStatus> {
    let status = child.wait();
    let mut st = state();
    let pid = child.id() as i32;
    st.guards.retain(|&g| g != pid);
    if st.stopping.is_some() {
        drop(st);
        park_forever();
    }
    status
}

/// From now on SIGINT, SIGTERM and SIGHUP, and `timeout` when given, stop the build
/// ([`Stop`]). Call before any other thread is started: the signals are blocked here and
/// threads inherit the mask (children do not: std resets it).
pub fn stop_on(timeout: Option<Duration>) -> io::Result<()> {
    // SAFETY: sigemptyset/sigaddset write only into the set we own.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        set
    };
    // SAFETY: changes this thread's signal mask only.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: sigwait reads the set and writes the signal number we own.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                stop(Stop::Signal(sig));
            }
        })?;
    if let Some(limit) = timeout {
        std::thread::Builder::new()
            .name("timeout".into())
            .spawn(move || {
                std::thread::sleep(limit);
                stop(Stop::Timeout(limit));
            })?;
    }
    Ok(())
}

/// Tells every guard to end its tree, waits until they all have, then exits the process.
fn stop(why: Stop) {
    let guards = {
        let mut st = state();
        if st.stopping.is_some() {
            return; // already on the way out
        }
        st.stopping = Some(why);
        st.guards.clone()
    };
    crate::say!("-----> {why}: stopping every buildpack process");
    for &g in &guards {
        // SAFETY: a signal to a child we started and have not reaped.
        unsafe {
            libc::kill(g, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + GRACE + Duration::from_secs(5);
    while !state().guards.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::say!("error: {why}");
    std::process::exit(why.exit_code());
}

// ---- In the forked child: async-signal-safe code only, no allocation. ----

/// The signals the guard takes synchronously with `sigtimedwait`.
fn guard_signals() -> libc::sigset_t {
    // SAFETY: only writes into the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [
            libc::SIGCHLD,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGUSR2,
        ] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Runs in the child of `slug` (pid `parent`) between fork and exec: forks the buildpack,
/// which returns to exec, and becomes its guard, which never returns.
fn guard(parent: libc::pid_t, kept: &[RawFd; MAX_KEPT]) -> io::Result<()> {
    let set = guard_signals();
    // SAFETY: each call is async-signal-safe and touches only our own process.
    unsafe {
        libc::setpgid(0, 0);
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        // `slug` gone (even by SIGKILL): SIGUSR2, which ends the tree at once.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR2, 0, 0, 0);
        if libc::getppid() != parent {
            libc::_exit(137);
        }
        let me = libc::getpid();
        let buildpack = libc::fork();
        if buildpack < 0 {
            return Err(io::Error::last_os_error());
        }
        if buildpack == 0 {
            // The buildpack: its own process group, the signals of a fresh process, and
            // it dies if its guard is killed.
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != me {
                libc::_exit(137);
            }
            if libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            return Ok(());
        }
        // The guard keeps stdio (the build log pipes, so they close after the whole tree)
        // and the held locks; everything else goes, above all std's exec-status pipe,
        // whose other end `spawn` reads until every copy is closed.
        close_all_but(kept);
        guard_loop(buildpack, &set)
    }
}

/// Closes every descriptor from 3 up but those in `kept` (sorted, -1 for unused).
unsafe fn close_all_but(kept: &[RawFd; MAX_KEPT]) {
    let mut from: libc::c_uint = 3;
    for &k in kept.iter().filter(|&&k| k >= 3) {
        let k = k as libc::c_uint;
        if k > from {
            close_range(from, k - 1);
        }
        from = k + 1;
    }
    close_range(from, libc::c_uint::MAX);
}

unsafe fn close_range(first: libc::c_uint, last: libc::c_uint) {
    if libc::syscall(libc::SYS_close_range, first, last, 0) == 0 {
        return;
    }
    // Kernels before 5.9: one by one, up to the descriptor limit.
    let limit = libc::sysconf(libc::_SC_OPEN_MAX).clamp(1024, 1 << 20) as libc::c_uint;
    let mut fd = first;
    while fd <= last && fd < limit {
        libc::close(fd as libc::c_int);
        fd += 1;
    }
}

/// Milliseconds of `CLOCK_MONOTONIC` (Linux on 64 bits: `time_t` and `c_long` are `i64`).
fn now_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

/// Shell-style code of a wait status.
fn status_code(status: libc::c_int) -> libc::c_int {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Signals the buildpack's group and every child of the guard (and the group each leads):
/// what the buildpack started, wherever it moved, is one of them or below one.
unsafe fn signal_tree(buildpack: libc::pid_t, sig: libc::c_int) {
    libc::kill(-buildpack, sig);
    for_each_child(|pid| {
        libc::kill(pid, sig);
        libc::kill(-pid, sig);
    });
}

/// Calls `f` with each child of the guard: from `/proc/thread-self/children` (the guard
/// has one thread), else, on kernels without it (`CONFIG_PROC_CHILDREN`), from the parent
/// field of every `/proc/<pid>/stat`.
unsafe fn for_each_child(mut f: impl FnMut(libc::pid_t)) {
    let fd = libc::open(
        c"/proc/thread-self/children".as_ptr(),
        libc::O_RDONLY | libc::O_CLOEXEC,
    );
    if fd < 0 {
        scan_proc_for_children(f);
        return;
    }
    let mut buf = [0u8; 4096];
    let mut pid: libc::pid_t = 0;
    let mut digits = false;
    loop {
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        if n <= 0 {
            break;
        }
        for &b in &buf[..n as usize] {
            if b.is_ascii_digit() {
                pid = pid
                    .saturating_mul(10)
                    .saturating_add((b - b'0') as libc::pid_t);
                digits = true;
            } else if digits {
                f(pid);
                pid = 0;
                digits = false;
            }
        }
    }
    if digits {
        f(pid);
    }
    libc::close(fd);
}

/// Every `/proc/<pid>` whose parent is this process, read with `getdents64` into a buffer
/// on the stack (`readdir` may allocate).
unsafe fn scan_proc_for_children(mut f: impl FnMut(libc::pid_t)) {
    let me = libc::getpid();
    let dir = libc::open(
        c"/proc".as_ptr(),
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
    );
    if dir < 0 {
        return;
    }
    let mut buf = [0u8; 4096];
    loop {
        let n = libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len());
        if n <= 0 {
            break;
        }
        let n = n as usize;
        let mut off = 0;
        // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name NUL-terminated.
        while off + 19 <= n {
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            if reclen == 0 || off + reclen > n {
                break;
            }
            let mut pid: libc::pid_t = 0;
            let mut digits = 0;
            for &b in &buf[off + 19..off + reclen] {
                if b == 0 {
                    break;
                }
                if !b.is_ascii_digit() {
                    digits = 0;
                    break;
                }
                pid = pid
                    .saturating_mul(10)
                    .saturating_add((b - b'0') as libc::pid_t);
                digits += 1;
            }
            if digits > 0 && parent_of(pid) == Some(me) {
                f(pid);
            }
            off += reclen;
        }
    }
    libc::close(dir);
}

/// The parent field of `/proc/<pid>/stat` (`pid (comm) state ppid ...`).
unsafe fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let mut path = [0u8; 32];
    let mut len = 0;
    for &b in b"/proc/" {
        path[len] = b;
        len += 1;
    }
    let mut digits = [0u8; 12];
    let (mut n, mut d) = (pid, 0);
    loop {
        digits[d] = b'0' + (n % 10) as u8;
        d += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        path[len] = digits[d];
        len += 1;
    }
    for &b in b"/stat\0" {
        path[len] = b;
        len += 1;
    }
    let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return None;
    }
    let mut stat = [0u8; 512];
    let got = libc::read(fd, stat.as_mut_ptr().cast(), stat.len());
    libc::close(fd);
    if got <= 0 {
        return None;
    }
    let stat = &stat[..got as usize];
    let close = stat.iter().rposition(|&b| b == b')')?;
    // `) S 1234 `: skip the state, then read the number.
    let mut fields = stat[close + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    fields.next()?;
    let ppid = fields.next()?;
    let mut value: libc::pid_t = 0;
    for &b in ppid {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value
            .saturating_mul(10)
            .saturating_add((b - b'0') as libc::pid_t);
    }
    Some(value)
}

/// Waits for the buildpack, ends what is left of the tree, exits with the buildpack's code.
unsafe fn guard_loop(buildpack: libc::pid_t, set: &libc::sigset_t) -> ! {
    let mut code: Option<libc::c_int> = None;
    // When SIGKILL replaces SIGTERM (ms of CLOCK_MONOTONIC); `None` while nothing is ending.
    let mut kill_at: Option<i64> = None;
    loop {
        loop {
            let mut status: libc::c_int = 0;
            let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
            if pid > 0 {
                if pid == buildpack {
                    code = Some(status_code(status));
                }
                continue;
            }
            if pid < 0 && *libc::__errno_location() == libc::ECHILD {
                libc::_exit(code.unwrap_or(1));
            }
            break;
        }
        if code.is_some() && kill_at.is_none() {
            // The buildpack is done: what it left running goes.
            signal_tree(buildpack, libc::SIGTERM);
            kill_at = Some(now_ms() + GRACE.as_millis() as i64);
        }
        if kill_at.is_some_and(|at| now_ms() >= at) {
            signal_tree(buildpack, libc::SIGKILL);
        }
        let wait_ms: i64 = if kill_at.is_some() { 20 } else { 1000 };
        let timeout = libc::timespec {
            tv_sec: (wait_ms / 1000) as libc::time_t,
            tv_nsec: ((wait_ms % 1000) * 1_000_000) as libc::c_long,
        };
        let sig = libc::sigtimedwait(set, std::ptr::null_mut(), &timeout);
        match sig {
            libc::SIGTERM | libc::SIGINT | libc::SIGHUP if kill_at.is_none() => {
                signal_tree(buildpack, libc::SIGTERM);
                kill_at = Some(now_ms() + GRACE.as_millis() as i64);
            }
            libc::SIGUSR2 => {
                // `slug` is gone: nobody waits for a clean stop.
                kill_at = Some(0);
                signal_tree(buildpack, libc::SIGKILL);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_found_with_and_without_proc_children() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as libc::pid_t;
        // SAFETY: reads /proc only.
        let (listed, scanned, parent) = unsafe {
            let mut listed = Vec::new();
            for_each_child(|p| listed.push(p));
            let mut scanned = Vec::new();
            scan_proc_for_children(|p| scanned.push(p));
            (listed, scanned, parent_of(pid))
        };
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(parent, Some(std::process::id() as libc::pid_t));
        assert!(scanned.contains(&pid), "{scanned:?}");
        // /proc/thread-self/children lists the children of this thread only.
        assert!(listed.contains(&pid) || listed.is_empty(), "{listed:?}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "0", "1x", "m", "1h30", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(show_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(show_duration(Duration::from_secs(2)), "2s");
    }
}
