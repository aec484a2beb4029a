//! Supervision of a formation, like foreman: start every instance in its own process group,
//! prefix its output, and when one exits (or `slug run` gets SIGINT/SIGTERM/SIGHUP) stop
//! them all: SIGTERM to every group, then SIGKILL to what is left after the timeout, as
//! Heroku's dyno manager does on shutdown. `slug run` exits with the code of the process
//! that exited first (128 + signal when it was killed, or when `slug run` itself was).
//!
//! Signals are taken synchronously: they are blocked in every thread and one thread waits
//! for them with `sigwait`, so there is no async-signal-safety to get wrong. `slug run` is
//! also a child subreaper (`PR_SET_CHILD_SUBREAPER`, `prctl(2)`): anything a process leaves
//! behind is re-parented to us and reaped, so every process a dyno starts stays a descendant
//! of `slug run`. Shutdown signals each process group and then every descendant, found
//! through `/proc` (one that called `setsid` has left its group and session, not our
//! subtree), and returns only when there is none left. No cgroup or PID namespace is used:
//! both need privileges `slug run` does not assume.

use super::dyno::DynoEnv;
use super::formation::Instance;
use super::output::Output;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the shutdown checks whether process groups have emptied (members that are not
/// our children exit without telling us).
const POLL: Duration = Duration::from_millis(50);

/// How long to keep draining output pipes after every process is gone; a daemon that left
/// its process group could hold them open for ever.
const DRAIN: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("cannot start {name} ({command:?}): {source}")]
    Spawn {
        name: String,
        command: String,
        source: std::io::Error,
    },
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
}

pub enum Event {
    Signal(i32),
    /// Stop everything and exit with `code` (sent by `slug test`'s HTTP probe).
    Stop {
        code: i32,
    },
    OutputClosed,
}

struct Proc {
    name: String,
    pid: i32,
    exit: Option<i32>,
}

pub struct Supervisor {
    procs: Vec<Proc>,
    tx: Sender<Event>,
    rx: Receiver<Event>,
    output: Arc<Output>,
    timeout: Duration,
    readers: usize,
}

/// Signals `slug run` handles; they are blocked here and taken by `sigwait`.
fn handled_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write into the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGKILL => "SIGKILL",
        _ => "a signal",
    }
}

/// Exit code of a wait status, as a shell reports it.
fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

fn describe(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        format!("was killed by {} ({sig})", signal_name(sig))
    } else {
        format!("exited with code {}", exit_code(status))
    }
}

/// Whether any process is left in the group `pgid`.
fn group_alive(pgid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    let r = unsafe { libc::kill(-pgid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn signal_group(pgid: i32, sig: i32) {
    // SAFETY: sending a signal has no memory effects; ESRCH (already gone) is fine.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// The pids of every live process below this one.
fn descendants() -> Vec<i32> {
    super::sockets::descendants_of(std::process::id() as i32)
}

fn signal_descendants(sig: i32) {
    for pid in descendants() {
        // SAFETY: a signal to a process below us; ESRCH (gone meanwhile) is fine.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

impl Supervisor {
    /// Block the handled signals, start the signal thread, and start every instance.
    pub fn start(
        instances: &[Instance],
        env: &DynoEnv,
        app: &Path,
        output: Arc<Output>,
        timeout: Duration,
    ) -> Result<Self, SuperviseError> {
        let set = handled_signals();
        // SAFETY: changes this thread's signal mask; threads started later inherit it, and
        // std resets the mask in every child it spawns.
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if r != 0 {
            return Err(SuperviseError::Signals(std::io::Error::from_raw_os_error(
                r,
            )));
        }
        #[cfg(target_os = "linux")]
        // SAFETY: a plain prctl flag on this process.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
        let (tx, rx) = mpsc::channel();
        let signal_tx = tx.clone();
        std::thread::spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: sigwait reads the set and writes the signal number we own.
            let r = unsafe { libc::sigwait(&set, &mut sig) };
            if r == 0 && signal_tx.send(Event::Signal(sig)).is_err() {
                return;
            }
        });
        let mut sup = Self {
            procs: Vec::new(),
            tx,
            rx,
            output,
            timeout,
            readers: 0,
        };
        for (index, instance) in instances.iter().enumerate() {
            if let Err(e) = sup.spawn(index, instance, env, app) {
                sup.output.system(&format!("{e}"));
                sup.shutdown(1);
                return Err(e);
            }
        }
        Ok(sup)
    }

    /// The pid of the `index`th instance started (the `slug test` probe looks at its tree).
    pub fn pid(&self, index: usize) -> Option<i32> {
        self.procs.get(index).map(|p| p.pid)
    }

    /// A sender for events from elsewhere (the `slug test` probe).
    pub fn sender(&self) -> Sender<Event> {
        self.tx.clone()
    }

    fn spawn(
        &mut self,
        index: usize,
        instance: &Instance,
        env: &DynoEnv,
        app: &Path,
    ) -> Result<(), SuperviseError> {
        let name = instance.name();
        let spawn_err = |source| SuperviseError::Spawn {
            name: name.clone(),
            command: instance.command.clone(),
            source,
        };
        // One pipe for stdout and stderr together, as a dyno's log stream.
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two fds into the array; we take ownership of both at once.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(spawn_err(std::io::Error::last_os_error()));
        }
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut cmd = env.shell_command(app, &name, instance.port, &instance.command);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(write_end.try_clone().map_err(spawn_err)?))
            .stderr(Stdio::from(write_end))
            .process_group(0);
        // The child must not inherit our blocked signals (it would ignore SIGTERM).
        // SAFETY: only sigprocmask, which is async-signal-safe, runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let set = handled_signals();
                if libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(spawn_err)?;
        drop(cmd); // closes our copies of the write end, so EOF comes when the group is done
        let pid = child.id() as i32;
        // The child is reaped by `reap` with waitpid(-1); the Child handle is not used again.
        drop(child);
        self.output.system(&format!(
            "{name} started with pid {pid} (PORT={})",
            instance.port
        ));
        let output = Arc::clone(&self.output);
        let tx = self.tx.clone();
        let reader_name = name.clone();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(std::fs::File::from(read_end));
            let mut line = Vec::new();
            while let Ok(true) = super::output::read_line(&mut reader, &mut line) {
                output.process_line(&reader_name, index, &line);
            }
            let _ = tx.send(Event::OutputClosed);
        });
        self.readers += 1;
        self.procs.push(Proc {
            name,
            pid,
            exit: None,
        });
        Ok(())
    }

    /// Supervise until everything has stopped; returns `slug run`'s exit code.
    pub fn wait(self) -> i32 {
        self.run_until_stopped(None)
    }

    fn shutdown(self, code: i32) -> i32 {
        self.run_until_stopped(Some(code))
    }

    fn run_until_stopped(mut self, stop_now: Option<i32>) -> i32 {
        let mut code: Option<i32> = None;
        let mut deadline: Option<Instant> = None;
        let mut killed = false;
        let mut closed = 0;
        if let Some(c) = stop_now {
            code = Some(c);
            deadline = Some(self.begin_stop());
        }
        loop {
            if deadline.is_some() && self.all_gone() {
                break;
            }
            let wait = match deadline {
                None => Duration::from_secs(3600),
                Some(d) if !killed => d.saturating_duration_since(Instant::now()).min(POLL),
                Some(_) => POLL,
            };
            let mut stop_with: Option<i32> = None;
            match self.rx.recv_timeout(wait) {
                Ok(Event::Signal(libc::SIGCHLD)) | Err(RecvTimeoutError::Timeout) => {}
                Ok(Event::Signal(sig)) => {
                    if deadline.is_none() {
                        self.output.system(&format!(
                            "{} received, stopping all processes",
                            signal_name(sig)
                        ));
                        stop_with = Some(128 + sig);
                    } else if !killed {
                        // A second Ctrl-C: do not wait for the timeout.
                        self.output.system(&format!(
                            "{} received again, killing all processes",
                            signal_name(sig)
                        ));
                        self.kill_all();
                        killed = true;
                    }
                }
                Ok(Event::Stop { code: c }) => stop_with = Some(c),
                Ok(Event::OutputClosed) => closed += 1,
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // Reap on every wake-up: SIGCHLD coalesces, and a timeout costs one syscall.
            if let Some(first_exit) = self.reap() {
                if deadline.is_none() && stop_with.is_none() {
                    stop_with = Some(first_exit);
                }
            }
            if let Some(c) = stop_with {
                if deadline.is_none() {
                    code = Some(c);
                    deadline = Some(self.begin_stop());
                }
            }
            if let Some(d) = deadline {
                if !killed && Instant::now() >= d && !self.all_gone() {
                    self.output.system(&format!(
                        "processes still running after {:.1} s, sending SIGKILL",
                        self.timeout.as_secs_f64()
                    ));
                    self.kill_all();
                    killed = true;
                }
            }
        }
        // Let the readers print what the processes wrote last.
        let drain_until = Instant::now() + DRAIN;
        while closed < self.readers {
            let left = drain_until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Event::OutputClosed) => closed += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        code.unwrap_or(0)
    }

    /// Reap every exited child; returns the exit code of the first process-group leader
    /// reaped in this call, if any.
    fn reap(&mut self) -> Option<i32> {
        let mut first = None;
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: waitpid writes the status we own.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return first;
            }
            // Anything else is a re-parented descendant: reaped, not reported.
            if let Some(p) = self.procs.iter_mut().find(|p| p.pid == pid) {
                p.exit = Some(exit_code(status));
                self.output
                    .system(&format!("{} {}", p.name, describe(status)));
                first.get_or_insert(exit_code(status));
            }
        }
    }

    fn begin_stop(&mut self) -> Instant {
        let alive: Vec<&Proc> = self.procs.iter().filter(|p| group_alive(p.pid)).collect();
        let others = !descendants().is_empty();
        if !alive.is_empty() || others {
            self.output.system("sending SIGTERM to all processes");
            for p in alive {
                signal_group(p.pid, libc::SIGTERM);
            }
            signal_descendants(libc::SIGTERM);
        }
        Instant::now() + self.timeout
    }

    fn kill_all(&mut self) {
        for p in self.procs.iter().filter(|p| group_alive(p.pid)) {
            signal_group(p.pid, libc::SIGKILL);
        }
        signal_descendants(libc::SIGKILL);
    }

    fn all_gone(&mut self) -> bool {
        self.reap();
        self.procs
            .iter()
            .all(|p| p.exit.is_some() && !group_alive(p.pid))
            && descendants().is_empty()
    }
}
