//! `slug run` (the formation), `slug exec` (a one-off dyno) and `slug test` (build, start web,
//! wait for HTTP, stop).

use crate::run::output::ColorChoice;
use crate::run::smoke::{self, Test};
use crate::run::{self, RunError};
use std::path::PathBuf;
use std::time::Duration;

/// `--env KEY=VAL`.
fn parse_env_flag(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| "expected KEY=VALUE".to_string())?;
    if !crate::config_vars::valid_key(key) {
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
    pub limits: super::LimitArgs,
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
    pub limits: super::LimitArgs,
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

/// `slug test` takes what `slug build` takes (the app, `--buildpack`, `--env`,
/// `--env-file`); its config vars reach the build and the web dyno, as on Heroku.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub app: super::AppArgs,
    /// Seconds to wait for web to answer HTTP
    #[arg(short, long, default_value = "30", value_parser = parse_seconds, value_name = "SECS")]
    pub timeout: Duration,
    /// Path to request
    #[arg(long, default_value = "/")]
    pub path: String,
    /// Seconds between SIGTERM and SIGKILL when stopping web
    #[arg(long, default_value = "10", value_parser = parse_seconds, value_name = "SECS")]
    pub stop_timeout: Duration,
    /// Slug store the build writes to [default: $XDG_DATA_HOME/slugc/slugs]
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Colour the output prefixes
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

pub fn run(args: RunArgs) -> Result<i32, RunError> {
    let prepared = run::prepare(
        &args.slug,
        args.store.as_deref(),
        &args.config.env_file,
        &args.config.env,
        args.limits.to_override(),
    )?;
    run::run(
        &prepared,
        &args.types,
        &args.scale,
        args.port,
        args.timeout,
        args.color,
    )
}

pub fn exec(args: ExecArgs) -> Result<i32, RunError> {
    let prepared = run::prepare(
        &args.slug,
        args.store.as_deref(),
        &args.config.env_file,
        &args.config.env,
        args.limits.to_override(),
    )?;
    Err(run::exec(&prepared, args.port, &args.command))
}

pub fn test(args: TestArgs) -> Result<i32, RunError> {
    let passed = smoke::test(&Test {
        inputs: args.app.inputs()?,
        store: args.store,
        path: args.path,
        timeout: args.timeout,
        stop_timeout: args.stop_timeout,
        color: args.color,
    })?;
    println!(
        "slug test: PASS: web answered HTTP {} on {} after {:.2} s",
        passed.status,
        passed.path,
        passed.millis as f64 / 1000.0
    );
    Ok(0)
}
