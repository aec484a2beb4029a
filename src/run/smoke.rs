//! `slug test APP_DIR`: build the app (the pipeline, in this process; its log on stderr),
//! start its `web` process on a free port, wait until it answers HTTP (2xx or 3xx, redirects
//! not followed), report the status and the time it took, stop it. The smoke test a CI
//! pipeline wants (herokuish has one; Heroku does not).

use super::formation::Instance;
use super::output::{ColorChoice, Output};
use super::supervise::{Event, Supervisor};
use super::RunError;
use crate::exit::ExitCode;
use crate::pipeline::{self, BuildError, Inputs, Options, Outcome};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Pause between two probes while nothing answers yet.
const RETRY: Duration = Duration::from_millis(100);

/// One smoke test: the app, the store its slug goes to, the request, the dyno's config vars.
#[derive(Debug, Clone)]
pub struct Test {
    /// The app and what to build it with; its config vars are the web dyno's too.
    pub inputs: Inputs,
    pub store: Option<PathBuf>,
    /// The path to request; a leading `/` is added when missing.
    pub path: String,
    /// How long web has to answer.
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL when stopping web.
    pub stop_timeout: Duration,
    pub color: ColorChoice,
}

/// Web's answer.
#[derive(Debug, Clone)]
pub struct Passed {
    pub status: u16,
    pub millis: u128,
    /// The path requested.
    pub path: String,
}

/// Build, start web, probe it, stop it: web's answer, or why there was none.
pub fn test(t: &Test) -> Result<Passed, RunError> {
    let app_dir = &t.inputs.app_dir;
    for p in &t.inputs.env_files {
        crate::config_vars::read(p)?;
    }
    let built = build(&t.inputs, t.store.as_ref())?;
    let slug_arg = built.slug.to_string_lossy().into_owned();
    let prepared = super::prepare(
        &slug_arg,
        t.store.as_deref(),
        &t.inputs.env_files,
        &t.inputs.env,
        Default::default(),
    )?;
    let port = free_port().map_err(RunError::Port)?;
    let web = web_instance(app_dir, &prepared.process_types, port)?;
    let output = Arc::new(Output::new(web.name().len(), t.color));
    let sup = Supervisor::start(
        std::slice::from_ref(&web),
        &prepared.env,
        &prepared.app,
        Arc::clone(&output),
        t.stop_timeout,
    )?;
    let path = if t.path.starts_with('/') {
        t.path.clone()
    } else {
        format!("/{}", t.path)
    };
    let probe = spawn_probe(port, path.clone(), t.timeout, sup.pid(0), sup.sender());
    let code = sup.wait();
    let result = probe.lock().map(|p| p.clone()).unwrap_or(Probe::Pending);
    if !matches!(result, Probe::Answered { .. }) {
        // The build's warnings again, beside the failure they may explain (the build log
        // is far above, before web's output).
        for warning in crate::platform::output::warnings() {
            crate::say!("{warning}");
        }
    }
    match result {
        Probe::Answered { status, millis } => Ok(Passed {
            status,
            millis,
            path,
        }),
        Probe::TimedOut { last, listening } => {
            if let Some(warning) = wrong_port(port, &listening) {
                crate::say!("{warning}");
            }
            Err(SmokeError::NoAnswer {
                app: app_dir.clone(),
                port,
                timeout: t.timeout.as_secs_f64(),
                last: if last.is_empty() {
                    String::new()
                } else {
                    format!(" (last: {last})")
                },
            }
            .into())
        }
        Probe::Pending => Err(SmokeError::WebExited {
            app: app_dir.clone(),
            port,
            code,
        }
        .into()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SmokeError {
    #[error("`slug build {app}` failed (exit {code})", code = .source.exit_code())]
    Build {
        app: PathBuf,
        source: Box<BuildError>,
    },
    #[error("{app}: the slug has no `web` process type (it has: {types})")]
    NoWeb { app: PathBuf, types: String },
    #[error("{app}: web did not answer HTTP on port {port} within {timeout:.1} s{last}")]
    NoAnswer {
        app: PathBuf,
        port: u16,
        timeout: f64,
        last: String,
    },
    #[error("{app}: web exited (code {code}) before it answered HTTP on port {port}")]
    WebExited { app: PathBuf, port: u16, code: i32 },
}

impl SmokeError {
    pub fn exit_code(&self) -> i32 {
        match self {
            // The build's own code (10 no buildpack, 20 buildpack failed, 30 bad input, …).
            Self::Build { source, .. } => source.exit_code(),
            Self::NoWeb { .. } => crate::exit::INVALID_INPUT,
            _ => crate::exit::OTHER,
        }
    }
}

/// The app built as `slug build APP_DIR [--buildpack …] [--env …] [--output STORE]` builds it.
fn build(inputs: &Inputs, store: Option<&PathBuf>) -> Result<Outcome, SmokeError> {
    let opts = Options {
        store: store.cloned(),
        ..Options::new(inputs.clone())
    };
    pipeline::build(&opts).map_err(|source| SmokeError::Build {
        app: inputs.app_dir.clone(),
        source: Box::new(source),
    })
}

/// A port nobody listens on right now (the kernel's choice).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn web_instance(
    app: &Path,
    process_types: &std::collections::BTreeMap<String, String>,
    port: u16,
) -> Result<Instance, SmokeError> {
    let command = process_types.get("web").ok_or_else(|| SmokeError::NoWeb {
        app: app.to_path_buf(),
        types: process_types.keys().cloned().collect::<Vec<_>>().join(", "),
    })?;
    Ok(Instance {
        process_type: "web".to_string(),
        number: 1,
        command: command.clone(),
        port,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Probe {
    Pending,
    Answered {
        status: u16,
        millis: u128,
    },
    /// `listening`: the ports web's process tree listened on when time ran out.
    TimedOut {
        last: String,
        listening: Vec<u16>,
    },
}

/// Heroku's R10 with the port named: web never answered on `$PORT` but listens elsewhere.
/// Heroku stops such a dyno after its boot timeout; the fix is in the app's start command or
/// code, which only the user may change.
fn wrong_port(port: u16, listening: &[u16]) -> Option<slugc_diagnostics::Warning> {
    if listening.is_empty() || listening.contains(&port) {
        return None;
    }
    let ports: Vec<String> = listening.iter().map(u16::to_string).collect();
    let (noun, ports) = match ports.as_slice() {
        [one] => ("port", one.clone()),
        many => ("ports", many.join(", ")),
    };
    Some(slugc_diagnostics::Warning::new(
        slugc_diagnostics::Rule::WrongPort,
        format!(
            "web process listens on {noun} {ports}, not $PORT ({port}): Heroku stops it with \
             R10 (boot timeout); make it bind 0.0.0.0 on the port in the PORT environment \
             variable (a `--port $PORT` flag in the Procfile, or `process.env.PORT` / \
             `os.environ[\"PORT\"]` in the code)"
        ),
    ))
}

/// Poll `http://127.0.0.1:PORT{path}` until a 2xx/3xx answer or the timeout; record the
/// result and ask the supervisor to stop (code 0 on success, 1 otherwise). On a timeout, also
/// the ports `web_pid`'s tree listens on.
fn spawn_probe(
    port: u16,
    path: String,
    timeout: Duration,
    web_pid: Option<i32>,
    stop: Sender<Event>,
) -> Arc<Mutex<Probe>> {
    let result = Arc::new(Mutex::new(Probe::Pending));
    let shared = Arc::clone(&result);
    std::thread::spawn(move || {
        let started = Instant::now();
        let deadline = started + timeout;
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .build();
        let url = format!("http://127.0.0.1:{port}{path}");
        let mut last = String::new();
        loop {
            let status = match agent.get(&url).call() {
                Ok(resp) => Some(resp.status()),
                Err(ureq::Error::Status(code, _)) => Some(code),
                Err(ureq::Error::Transport(t)) => {
                    last = t.to_string();
                    None
                }
            };
            if let Some(status) = status {
                if (200..400).contains(&status) {
                    if let Ok(mut r) = shared.lock() {
                        *r = Probe::Answered {
                            status,
                            millis: started.elapsed().as_millis(),
                        };
                    }
                    let _ = stop.send(Event::Stop { code: 0 });
                    return;
                }
                last = format!("HTTP {status}");
            }
            if Instant::now() + RETRY >= deadline {
                // Looked at before the stop, while web's processes still hold their sockets.
                let listening = web_pid
                    .map(super::sockets::listening_ports)
                    .unwrap_or_default();
                if let Ok(mut r) = shared.lock() {
                    if *r == Probe::Pending {
                        *r = Probe::TimedOut { last, listening };
                    }
                }
                let _ = stop.send(Event::Stop { code: 1 });
                return;
            }
            std::thread::sleep(RETRY);
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrong_port_is_named_and_the_right_one_is_not_a_warning() {
        let w = wrong_port(5006, &[3000]).unwrap();
        assert!(
            w.to_string()
                .starts_with("warning: web process listens on port 3000, not $PORT (5006): "),
            "{w}"
        );
        assert!(wrong_port(5006, &[3000, 5006]).is_none());
        assert!(wrong_port(5006, &[]).is_none());
        let w = wrong_port(5006, &[3000, 8080]).unwrap();
        assert!(w
            .message
            .starts_with("web process listens on ports 3000, 8080,"));
    }
}
