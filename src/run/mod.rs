//! The dyno runner: `slug run` (a local dyno manager, like foreman), `slug exec` (a one-off
//! dyno) and `slug test` (build, start web, wait for HTTP, stop). See docs/run.md.
//!
//! The slug is found, verified and unpacked by `slug_format::reader`, the `--env-file`s read
//! by `config_vars`; then one module per step: `dyno` (the environment and launch script),
//! `formation` (types, counts, ports), `supervise` (processes, signals, shutdown),
//! `output` (prefixed lines), `smoke` (`slug test`), `sockets` (the ports a process tree
//! listens on).

pub mod dyno;
pub mod formation;
pub mod output;
pub mod smoke;
pub mod sockets;
pub mod supervise;

use crate::config_vars;
use crate::exit::{self, ExitCode};
use crate::procfile::{Procfile, ProcfileError};
use dyno::DynoEnv;
use formation::FormationError;
use output::{ColorChoice, Output};
use slug_format::reader::{self, ReadError};
use smoke::SmokeError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use supervise::{SuperviseError, Supervisor};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Slug(#[from] ReadError),
    #[error(transparent)]
    Dotenv(#[from] config_vars::DotenvError),
    #[error("the slug's Procfile: {0}")]
    Procfile(#[from] ProcfileError),
    #[error("{0} is a symlink out of the app: a slug without a manifest needs its Procfile in it")]
    ProcfileOutside(PathBuf),
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
    #[error(transparent)]
    Usage(#[from] config_vars::EnvArgError),
}

impl ExitCode for RunError {
    fn exit_code(&self) -> i32 {
        match self {
            Self::Slug(e) if e.is_not_found() => exit::USAGE,
            Self::Slug(e) if e.is_bad_slug() => exit::INVALID_INPUT,
            Self::Slug(_) => exit::OTHER,
            Self::Dotenv(_) | Self::Procfile(_) | Self::ProcfileOutside(_) => exit::INVALID_INPUT,
            Self::Formation(FormationError::NoProcessTypes) => exit::INVALID_INPUT,
            Self::Formation(_) | Self::Usage(_) => exit::USAGE,
            Self::Supervise(_) | Self::Exec(_) | Self::Port(_) => exit::OTHER,
            Self::Smoke(e) => e.exit_code(),
        }
    }
}

/// A slug located, verified, unpacked, with its process types and config vars.
pub struct Prepared {
    pub app: PathBuf,
    pub process_types: BTreeMap<String, String>,
    pub env: DynoEnv,
}

/// Find, verify and unpack `slug` (a path, or a prefix looked up in `store`); its config vars
/// are the manifest's defaults, then those of `env_files`, then `env`.
pub fn prepare(
    slug: &str,
    store: Option<&Path>,
    env_files: &[PathBuf],
    env: &[(String, String)],
    limits: reader::LimitOverride,
) -> Result<Prepared, RunError> {
    // Env files first: a typo there should not wait for an unpack.
    let files = env_files
        .iter()
        .map(|p| config_vars::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let store = store.map_or_else(crate::dirs::store, Path::to_path_buf);
    let mut slug = reader::open(slug, &store, None)?;
    slug.limits = slug.limits.overridden(limits);
    let unpacked = slug.unpack(&crate::dirs::unpack_root())?;
    // The release the build wrote into the slug is covered by its checksum: it is the one to
    // trust. Slugs made without one fall back on their manifest, then their Procfile.
    let embedded = unpacked.embedded_release(&slug)?;
    let (process_types, defaults) = match (embedded, &slug.release) {
        (Some(release), _) => (release.process_types, release.config_vars),
        (None, Some(release)) => (release.process_types.clone(), release.config_vars.clone()),
        // A slug without its manifest (e.g. one from elsewhere): the Procfile says it all.
        (None, None) => (
            Procfile::read(&procfile_dir(&unpacked.app)?)?
                .map(|p| p.processes.into_iter().collect())
                .unwrap_or_default(),
            BTreeMap::new(),
        ),
    };
    Ok(Prepared {
        app: unpacked.app,
        process_types,
        env: DynoEnv {
            config_vars: dyno::config_vars(&defaults, &files, env),
        },
    })
}

/// The dir to read the slug's `Procfile` from: the app itself, unless its `Procfile` is a
/// symlink that leads out of it (absolute links are kept for the stack, and `slug run`
/// must not read a file of this machine as the slug's Procfile, nor show its lines in an
/// error); then an error.
fn procfile_dir(app: &Path) -> Result<PathBuf, RunError> {
    let procfile = app.join("Procfile");
    let is_link = std::fs::symlink_metadata(&procfile).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(app.to_path_buf());
    }
    let inside = match (std::fs::canonicalize(&procfile), std::fs::canonicalize(app)) {
        (Ok(target), Ok(root)) => target.starts_with(&root),
        // Dangling: there is no Procfile to read.
        _ => return Ok(app.to_path_buf()),
    };
    if inside {
        Ok(app.to_path_buf())
    } else {
        Err(RunError::ProcfileOutside(procfile))
    }
}

/// Run the formation: `types` (every type when empty) scaled by `scale` (`TYPE=N,...`), each
/// instance on its port from `base_port`, until they exit or are stopped (`stop_timeout`
/// between SIGTERM and SIGKILL). Returns the exit code the formation ends with.
pub fn run(
    prepared: &Prepared,
    types: &[String],
    scale: &[String],
    base_port: u16,
    stop_timeout: Duration,
    color: ColorChoice,
) -> Result<i32, RunError> {
    let scale = formation::parse_scale(scale)?;
    let instances = formation::plan(&prepared.process_types, types, &scale, base_port)?;
    let width = instances.iter().map(|i| i.name().len()).max().unwrap_or(0);
    let output = Arc::new(Output::new(width, color));
    let sup = Supervisor::start(
        &instances,
        &prepared.env,
        &prepared.app,
        output,
        stop_timeout,
    )?;
    Ok(sup.wait())
}

/// Replace this process with `command` (bash sourcing the profile first), so that its
/// stdin, stdout, stderr, terminal, signals and exit code are the user's, as `heroku run`.
/// One word is a shell command line, several are run as they are. Returns only on failure.
pub fn exec(prepared: &Prepared, port: u16, command: &[String]) -> RunError {
    use std::os::unix::process::CommandExt;
    let name = "run.1";
    let mut cmd = match command {
        [line] => prepared.env.shell_command(&prepared.app, name, port, line),
        argv => prepared.env.argv_command(&prepared.app, name, port, argv),
    };
    RunError::Exec(cmd.exec())
}
