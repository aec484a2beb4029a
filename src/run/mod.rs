//! The dyno runner: `slug run` (a local dyno manager, like foreman), `slug exec` (a one-off
//! dyno) and `slug test` (build, start web, wait for HTTP, stop). See docs/run.md.
//!
//! The slug is found, verified and unpacked by `slug_format::reader`; then one module per
//! step: `dyno` (the environment and launch script), `formation` (types, counts, ports),
//! `supervise` (processes, signals, shutdown), `output` (prefixed lines), `smoke` (`slug test`).

pub mod dyno;
pub mod formation;
pub mod output;
pub mod smoke;
pub mod supervise;

use crate::config_vars;
use crate::exit::{self, ExitCode};
use crate::procfile::{Procfile, ProcfileError};
use dyno::DynoEnv;
use formation::FormationError;
use output::{ColorChoice, Output};
use slug_format::reader::{self, ReadError};
use smoke::{Probe, SmokeError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use supervise::{SuperviseError, Supervisor};

/// `--env KEY=VAL`.
fn parse_env_flag(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| "expected KEY=VALUE".to_string())?;
    if !config_vars::valid_key(key) {
        return Err(format!(
            "invalid variable name {key:?}: use letters, digits and '_', not starting with a digit"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("expected a number of seconds, found {s:?}"))?;
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("{s} s is out of range (0 to 86400)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Config var options shared by the three commands.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Set a config var (repeatable); wins over --env-file and the slug's defaults
    #[arg(short = 'e', long = "env", value_name = "KEY=VAL", value_parser = parse_env_flag)]
    pub env: Vec<(String, String)>,
    /// Read config vars from a dotenv file (repeatable; later files win)
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A slug file, or a sha256 prefix of a slug in the store.
    pub slug: String,
    /// Process types to run (default: every type in the slug)
    #[arg(value_name = "TYPE")]
    pub types: Vec<String>,
    /// Formation: how many of each type, e.g. web=3,worker=1 (repeatable)
    #[arg(short = 'm', long, value_name = "TYPE=N,...")]
    pub scale: Vec<String>,
    /// Base port: instance i of the type at index n gets PORT = base + 100*n + (i-1)
    #[arg(short, long, default_value_t = 5000)]
    pub port: u16,
    /// Seconds between SIGTERM and SIGKILL when stopping
    #[arg(short, long, default_value = "10", value_parser = parse_seconds, value_name = "SECS")]
    pub timeout: Duration,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Slug store searched for a sha256 prefix [default: $XDG_DATA_HOME/slugc/slugs]
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Colour the output prefixes
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// A slug file, or a sha256 prefix of a slug in the store.
    pub slug: String,
    /// `PORT` for the one-off process
    #[arg(short, long, default_value_t = 5000)]
    pub port: u16,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Slug store searched for a sha256 prefix [default: $XDG_DATA_HOME/slugc/slugs]
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// The command: one word is a shell command line (`'rake db:migrate && echo ok'`),
    /// several are run as they are
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The app's source dir
    pub app_dir: PathBuf,
    /// Seconds to wait for web to answer HTTP
    #[arg(short, long, default_value = "30", value_parser = parse_seconds, value_name = "SECS")]
    pub timeout: Duration,
    /// Path to request
    #[arg(long, default_value = "/")]
    pub path: String,
    /// Seconds between SIGTERM and SIGKILL when stopping web
    #[arg(long, default_value = "10", value_parser = parse_seconds, value_name = "SECS")]
    pub stop_timeout: Duration,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Slug store the build writes to [default: $XDG_DATA_HOME/slugc/slugs]
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Colour the output prefixes
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Slug(#[from] ReadError),
    #[error(transparent)]
    Dotenv(#[from] config_vars::DotenvError),
    #[error("the slug's Procfile: {0}")]
    Procfile(#[from] ProcfileError),
    #[error(transparent)]
    Formation(#[from] FormationError),
    #[error(transparent)]
    Supervise(#[from] SuperviseError),
    #[error("cannot run bash for `slug exec`: {0}")]
    Exec(std::io::Error),
    #[error(transparent)]
    Smoke(#[from] SmokeError),
    #[error("cannot pick a free port for web: {0}")]
    Port(std::io::Error),
}

impl ExitCode for RunError {
    fn exit_code(&self) -> i32 {
        match self {
            Self::Slug(e) if e.is_not_found() => exit::USAGE,
            Self::Slug(e) if e.is_bad_slug() => exit::INVALID_INPUT,
            Self::Slug(_) => exit::OTHER,
            Self::Dotenv(_) | Self::Procfile(_) => exit::INVALID_INPUT,
            Self::Formation(FormationError::NoProcessTypes) => exit::INVALID_INPUT,
            Self::Formation(_) => exit::USAGE,
            Self::Supervise(_) | Self::Exec(_) | Self::Port(_) => exit::OTHER,
            Self::Smoke(e) => e.exit_code(),
        }
    }
}

/// A slug located, verified, unpacked, with its process types and config vars.
struct Prepared {
    app: PathBuf,
    process_types: BTreeMap<String, String>,
    env: DynoEnv,
}

fn prepare(slug: &str, store: Option<&Path>, config: &ConfigArgs) -> Result<Prepared, RunError> {
    // Env files first: a typo there should not wait for an unpack.
    let files = config
        .env_file
        .iter()
        .map(|p| config_vars::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let store = store.map_or_else(crate::dirs::store, Path::to_path_buf);
    let slug = reader::open(slug, &store, None)?;
    let unpacked = slug.unpack(&crate::dirs::unpack_root())?;
    let (process_types, defaults) = match &slug.release {
        Some(release) => (release.process_types.clone(), release.config_vars.clone()),
        // A slug without its manifest (e.g. one from elsewhere): the Procfile says it all.
        None => (
            Procfile::read(&unpacked.app)?
                .map(|p| p.processes.into_iter().collect())
                .unwrap_or_default(),
            BTreeMap::new(),
        ),
    };
    Ok(Prepared {
        app: unpacked.app,
        process_types,
        env: DynoEnv {
            config_vars: dyno::config_vars(&defaults, &files, &config.env),
        },
    })
}

pub fn run(args: RunArgs) -> Result<i32, RunError> {
    let prepared = prepare(&args.slug, args.store.as_deref(), &args.config)?;
    let scale = formation::parse_scale(&args.scale)?;
    let instances = formation::plan(&prepared.process_types, &args.types, &scale, args.port)?;
    let width = instances.iter().map(|i| i.name().len()).max().unwrap_or(0);
    let output = Arc::new(Output::new(width, args.color));
    let sup = Supervisor::start(
        &instances,
        &prepared.env,
        &prepared.app,
        output,
        args.timeout,
    )?;
    Ok(sup.wait())
}

/// Replace this process with the command (bash sourcing the profile first), so that its
/// stdin, stdout, stderr, terminal, signals and exit code are the user's, as `heroku run`.
pub fn exec(args: ExecArgs) -> Result<i32, RunError> {
    use std::os::unix::process::CommandExt;
    let prepared = prepare(&args.slug, args.store.as_deref(), &args.config)?;
    let name = "run.1";
    let mut cmd = match args.command.as_slice() {
        [line] => prepared
            .env
            .shell_command(&prepared.app, name, args.port, line),
        argv => prepared
            .env
            .argv_command(&prepared.app, name, args.port, argv),
    };
    Err(RunError::Exec(cmd.exec()))
}

pub fn test(args: TestArgs) -> Result<i32, RunError> {
    for p in &args.config.env_file {
        config_vars::read(p)?;
    }
    let built = smoke::build(&args.app_dir, args.store.as_deref())?;
    let slug_arg = built.slug_path.to_string_lossy().into_owned();
    let prepared = prepare(&slug_arg, args.store.as_deref(), &args.config)?;
    let port = smoke::free_port().map_err(RunError::Port)?;
    let web = smoke::web_instance(&args.app_dir, &prepared.process_types, port)?;
    let output = Arc::new(Output::new(web.name().len(), args.color));
    let sup = Supervisor::start(
        std::slice::from_ref(&web),
        &prepared.env,
        &prepared.app,
        Arc::clone(&output),
        args.stop_timeout,
    )?;
    let path = if args.path.starts_with('/') {
        args.path.clone()
    } else {
        format!("/{}", args.path)
    };
    let probe = smoke::spawn_probe(port, path.clone(), args.timeout, sup.sender());
    let code = sup.wait();
    let result = probe.lock().map(|p| p.clone()).unwrap_or(Probe::Pending);
    match result {
        Probe::Answered { status, millis } => {
            println!(
                "slug test: PASS: web answered HTTP {status} on {path} after {:.2} s",
                millis as f64 / 1000.0
            );
            Ok(0)
        }
        Probe::TimedOut { last } => Err(SmokeError::NoAnswer {
            app: args.app_dir,
            port,
            timeout: args.timeout.as_secs_f64(),
            last: if last.is_empty() {
                String::new()
            } else {
                format!(" (last: {last})")
            },
        }
        .into()),
        Probe::Pending => Err(SmokeError::WebExited {
            app: args.app_dir,
            port,
            code,
        }
        .into()),
    }
}
