//! The build loop: each buildpack of the detected group (or groups, one after the other) in
//! order — restore its cached layers, give it the environment of the build layers before it,
//! run it, collect its layers and processes. CNB and classic buildpacks share the loop.

use super::classic::{self, ClassicError, Release};
use super::descriptor::{Buildpack, Kind};
use super::detect::{plan_for, Detected, PlanEntry};
use super::env::{self, EnvMap, LaunchLayer};
use super::escape_id;
use super::launch::{self, LaunchError, Processes};
use super::layers::{self, Layer, LayerError};
use super::output::{self, Show};
use super::target::Target;
use crate::cache::{Cache, CacheError};
use crate::exit::{self, ExitCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum BuildpackError {
    /// `cause` is the buildpack's own `error:` line, when it printed one: that is what the
    /// build's `error:` line says first, so that it names the file or command that failed.
    #[error("{}", failed_message(cause, id, &format!("failed with exit code {code}")))]
    Failed {
        id: String,
        code: i32,
        cause: Option<String>,
    },
    #[error(
        "{}",
        failed_message(
            cause,
            id,
            "failed with a temporary error (exit code 75): retrying may help"
        )
    )]
    Temporary { id: String, cause: Option<String> },
    #[error(
        "{}",
        failed_message(cause, id, "found invalid app input (exit code 30)")
    )]
    InvalidInput { id: String, cause: Option<String> },
    #[error("buildpack {id}: cannot run {path}: {source}")]
    Spawn {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("buildpack {id}: {source}")]
    LayerMetadata { id: String, source: LayerError },
    #[error("buildpack {id}: invalid {path}: {message}")]
    BuildToml {
        id: String,
        path: PathBuf,
        message: String,
    },
    #[error("buildpack {id}: {path}: [[unmet]] name {name:?} is not an entry of its buildpack plan (it has: {entries})")]
    UnmetNotInPlan {
        id: String,
        path: PathBuf,
        name: String,
        entries: String,
    },
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Classic(#[from] ClassicError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl ExitCode for BuildpackError {
    fn exit_code(&self) -> i32 {
        match self {
            BuildpackError::Temporary { .. } => exit::TEMPORARY,
            BuildpackError::InvalidInput { .. } => exit::INVALID_INPUT,
            BuildpackError::Failed { .. }
            | BuildpackError::LayerMetadata { .. }
            | BuildpackError::BuildToml { .. }
            | BuildpackError::UnmetNotInPlan { .. }
            | BuildpackError::Classic(_)
            | BuildpackError::Launch(_) => exit::BUILDPACK_FAILED,
            _ => exit::OTHER,
        }
    }
}

/// The buildpack's cause first, then which buildpack and how it ended; without a cause, the
/// latter alone.
fn failed_message(cause: &Option<String>, id: &str, how: &str) -> String {
    match cause {
        Some(cause) => format!(
            "{cause}\n{}(buildpack {id} {how}; its output is above)",
            output::INDENT
        ),
        None => format!("buildpack {id} {how}; its output is above"),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildpackError + '_ {
    move |source| BuildpackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub struct Context<'a> {
    /// The build root: the app snapshot, with `.layers/` inside.
    pub app_dir: &'a Path,
    pub platform_dir: &'a Path,
    pub work_dir: &'a Path,
    pub target: &'a Target,
    /// The environment the first buildpack gets.
    pub env: EnvMap,
    /// The user-provided env, set over the build env of each CNB buildpack that does not
    /// `clear-env` (<https://github.com/buildpacks/spec/blob/main/buildpack.md#provided-by-the-platform>).
    pub user_env: EnvMap,
    pub cache: Option<&'a Cache>,
    /// Set for every CNB buildpack on top of `env` (the engine's offers, such as
    /// `slug_format::offer::ENV`); not part of the build env that layers modify.
    pub engine_env: Vec<(String, std::ffi::OsString)>,
    /// The app's git commit, when known: classic buildpacks get it as `SOURCE_VERSION`.
    pub source_version: Option<&'a str>,
}

/// A launch layer for the slug.
#[derive(Debug, Clone)]
pub struct ExportLayer {
    pub buildpack_id: String,
    pub name: String,
    pub dir: PathBuf,
}

#[derive(Debug, Default)]
pub struct Built {
    pub launch_layers: Vec<ExportLayer>,
    pub processes: Processes,
    pub config_vars: BTreeMap<String, String>,
    pub addons: Vec<String>,
    /// Per buildpack (escaped id), its layers dir and layers, for saving the cache.
    pub cnb_layers: Vec<(String, PathBuf, Vec<Layer>)>,
}

#[derive(Serialize)]
struct PlanFile<'a> {
    entries: &'a [PlanEntry],
}

/// `<layers>/build.toml`: the plan entries a buildpack left for the next provider
/// (<https://github.com/buildpacks/spec/blob/main/buildpack.md#buildtoml-toml>). Other keys
/// (the deprecated `bom`) are not read.
#[derive(Deserialize, Default)]
struct BuildToml {
    #[serde(default)]
    unmet: Vec<Unmet>,
}

#[derive(Deserialize)]
struct Unmet {
    name: String,
}

/// The names of `plan` the buildpack met: all but its `[[unmet]]`, each of which must name
/// an entry of its plan (the lifecycle's `validateUnmet`).
fn met_names(
    bp: &Buildpack,
    layers_dir: &Path,
    plan: &[PlanEntry],
) -> Result<Vec<String>, BuildpackError> {
    let path = layers_dir.join("build.toml");
    let build: BuildToml = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| BuildpackError::BuildToml {
            id: bp.id.clone(),
            path: path.clone(),
            message: e.message().to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BuildToml::default(),
        Err(source) => return Err(BuildpackError::Io { path, source }),
    };
    for unmet in &build.unmet {
        if !plan.iter().any(|e| e.name == unmet.name) {
            let mut names: Vec<&str> = plan.iter().map(|e| e.name.as_str()).collect();
            names.dedup();
            return Err(BuildpackError::UnmetNotInPlan {
                id: bp.id.clone(),
                path,
                name: unmet.name.clone(),
                entries: if names.is_empty() {
                    "no entries".into()
                } else {
                    names.join(", ")
                },
            });
        }
    }
    Ok(plan
        .iter()
        .filter(|e| !build.unmet.iter().any(|u| u.name == e.name))
        .map(|e| e.name.clone())
        .collect())
}

/// Run a buildpack's build or compile with its output streamed: exit 0 passes, 75 is a
/// temporary failure, 30 is invalid app input (a malformed manifest file the buildpack
/// reads), anything else fails the build. 30 and 75 are slugc's conventions; the CNB spec
/// only says non-zero fails.
fn run_streamed(bp: &Buildpack, exe: &Path, cmd: &mut Command) -> Result<(), BuildpackError> {
    let finished =
        output::run(cmd, Show::Stream, false).map_err(|source| BuildpackError::Spawn {
            id: bp.id.clone(),
            path: exe.to_path_buf(),
            source,
        })?;
    let id = bp.id.clone();
    let cause = || finished.cause.clone();
    match finished.status.code() {
        Some(0) => Ok(()),
        Some(75) => Err(BuildpackError::Temporary { id, cause: cause() }),
        Some(30) => Err(BuildpackError::InvalidInput { id, cause: cause() }),
        code => Err(BuildpackError::Failed {
            id,
            code: code.unwrap_or(-1),
            cause: cause(),
        }),
    }
}

/// Run one CNB buildpack; returns the plan entry names it met.
fn run_cnb(
    bp: &Buildpack,
    plan: &[PlanEntry],
    ctx: &Context,
    env: &mut EnvMap,
    built: &mut Built,
) -> Result<Vec<String>, BuildpackError> {
    let escaped = escape_id(&bp.id);
    let layers_dir = ctx.app_dir.join(".layers").join(&escaped);
    std::fs::create_dir_all(&layers_dir).map_err(io(&layers_dir))?;
    if let Some(cache) = ctx.cache {
        let cached = cache.layers_dir().join(&escaped);
        if cached.is_dir() {
            let dirs = layers::restore(&cached, &layers_dir)?;
            cache.lend(&dirs)?;
        }
    }
    let plan_path = ctx.work_dir.join("plans").join(format!("{escaped}.toml"));
    if let Some(parent) = plan_path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let plan_text = toml::to_string(&PlanFile { entries: plan }).unwrap_or_default();
    std::fs::write(&plan_path, plan_text).map_err(io(&plan_path))?;

    let exe = bp.dir.join("bin/build");
    let mut cmd = Command::new(&exe);
    cmd.current_dir(ctx.app_dir).env_clear();
    if bp.clear_env {
        cmd.envs(env.iter());
    } else {
        cmd.envs(env::with_user_env(env, &ctx.user_env).iter());
    }
    cmd.arg(&layers_dir)
        .arg(ctx.platform_dir)
        .arg(&plan_path)
        .env("CNB_BUILDPACK_DIR", &bp.dir)
        .env("CNB_LAYERS_DIR", &layers_dir)
        .env("CNB_PLATFORM_DIR", ctx.platform_dir)
        .env("CNB_BP_PLAN_PATH", &plan_path)
        .envs(ctx.target.env())
        .envs(ctx.engine_env.iter().map(|(k, v)| (k, v)));
    run_streamed(bp, &exe, &mut cmd)?;

    let layers =
        layers::read_layers(&layers_dir).map_err(|source| BuildpackError::LayerMetadata {
            id: bp.id.clone(),
            source,
        })?;
    let layers = layers::ignore_untyped(layers)?;
    let met = met_names(bp, &layers_dir, plan)?;
    for layer in &layers {
        if layer.types.build {
            *env = env::apply_build_layer(env, &layer.dir).map_err(io(&layer.dir))?;
        }
        if layer.types.launch && layer.dir.is_dir() {
            // The built-ins make their launch layers relocatable themselves; other buildpacks
            // are told what cannot run from the slug.
            if crate::buildpacks::find(&bp.id).is_none() {
                warn_shebangs(bp, &layer.dir, ctx.app_dir);
            }
            built.launch_layers.push(ExportLayer {
                buildpack_id: escaped.clone(),
                name: layer.name.clone(),
                dir: layer.dir.clone(),
            });
        }
    }
    let launch = launch::read_launch(&layers_dir, &bp.id, bp.api(), ctx.app_dir)?;
    if let Some(warning) = built.processes.add_buildpack(&bp.id, launch) {
        crate::say!(" !     {warning}");
    }
    built.cnb_layers.push((escaped, layers_dir, layers));
    Ok(met)
}

/// Files a launch layer can only run at the build root: a warning names them (see
/// `layers::shebangs_naming`).
fn warn_shebangs(bp: &Buildpack, layer_dir: &Path, build_root: &Path) {
    const SHOWN: usize = 5;
    let found = layers::shebangs_naming(layer_dir, build_root, SHOWN + 1);
    for path in found.iter().take(SHOWN) {
        let rel = path.strip_prefix(build_root).unwrap_or(path);
        crate::say!(
            " !     Warning: {}: {} has a shebang naming the build dir ({}); it will not run from the slug. Use `#!/usr/bin/env <interpreter>` with the layer's bin on PATH.",
            bp.id,
            rel.display(),
            build_root.display()
        );
    }
    if found.len() > SHOWN {
        crate::say!(
            " !     Warning: {}: more such files in {}",
            bp.id,
            layer_dir.display()
        );
    }
}

fn run_classic(
    bp: &Buildpack,
    index: usize,
    ctx: &Context,
    env: &mut EnvMap,
    built: &mut Built,
) -> Result<(), BuildpackError> {
    let key = format!("{}-{}", index, escape_id(&bp.id));
    let cache_dir = match ctx.cache {
        Some(cache) => cache.classic_dir(&key)?,
        None => {
            let d = ctx.work_dir.join("classic-cache").join(&key);
            std::fs::create_dir_all(&d).map_err(io(&d))?;
            d
        }
    };
    let env_dir = ctx.platform_dir.join("env");
    let exe = bp.dir.join("bin/compile");
    let mut cmd = Command::new(&exe);
    cmd.current_dir(ctx.app_dir)
        .env_clear()
        .envs(env.iter())
        .envs(classic_env(ctx))
        .arg(ctx.app_dir)
        .arg(&cache_dir)
        .arg(&env_dir);
    // The CNB layers before this buildpack live in the build dir it owns: it may delete or
    // replace everything there (the monorepo buildpack keeps only a subdir). Linked aside
    // before, put back after.
    let guard = LayersGuard::set(ctx)?;
    let compiled = run_streamed(bp, &exe, &mut cmd);
    if let Some(guard) = guard {
        guard.restore()?;
    }
    compiled?;
    let export = bp.dir.join("export");
    if export.is_file() {
        *env = classic::source_export(&export, env)?;
    }
    let release_exe = bp.dir.join("bin/release");
    if release_exe.is_file() {
        let mut cmd = Command::new(&release_exe);
        cmd.current_dir(ctx.app_dir)
            .env_clear()
            .envs(env.iter())
            .envs(classic_env(ctx))
            .arg(ctx.app_dir);
        let finished =
            output::run(&mut cmd, Show::Quiet, true).map_err(|source| BuildpackError::Spawn {
                id: bp.id.clone(),
                path: release_exe.clone(),
                source,
            })?;
        if !finished.status.success() {
            for line in &finished.output {
                output::log_line(line);
            }
            return Err(BuildpackError::Failed {
                id: format!("{} (bin/release)", bp.id),
                code: finished.status.code().unwrap_or(-1),
                cause: finished.cause.clone(),
            });
        }
        let Release {
            addons,
            config_vars,
            default_process_types,
        } = classic::parse_release(&finished.stdout, &release_exe)?;
        for addon in addons {
            if !built.addons.contains(&addon) {
                built.addons.push(addon);
            }
        }
        built.config_vars.extend(config_vars);
        for (name, command) in default_process_types {
            built.processes.add_classic_default(name, command);
        }
    }
    Ok(())
}

/// What Heroku sets for classic buildpacks besides `BUILD_DIR CACHE_DIR ENV_DIR`: `STACK`,
/// and `SOURCE_VERSION` when the commit is known
/// (<https://devcenter.heroku.com/articles/buildpack-api#bin-compile>).
fn classic_env(ctx: &Context) -> Vec<(&'static str, String)> {
    let mut env = vec![("STACK", ctx.target.stack_name())];
    if let Some(commit) = ctx.source_version {
        env.push(("SOURCE_VERSION", commit.to_string()));
    }
    env
}

/// The build root's `.layers`, hardlinked aside while a classic buildpack runs.
struct LayersGuard {
    layers: PathBuf,
    aside: PathBuf,
}

impl LayersGuard {
    /// `None` when there are no CNB layers yet.
    fn set(ctx: &Context) -> Result<Option<Self>, BuildpackError> {
        let layers = ctx.app_dir.join(".layers");
        if !layers.is_dir() {
            return Ok(None);
        }
        let aside = ctx.work_dir.join("layers-aside");
        if aside.symlink_metadata().is_ok() {
            slugc_fs::remove(&aside).map_err(io(&aside))?;
        }
        let how = slugc_fs::Options {
            files: slugc_fs::Files::Link,
            dir_modes: true,
            ..slugc_fs::Options::default()
        };
        slugc_fs::copy_tree(&layers, &aside, &how).map_err(|e| BuildpackError::Io {
            path: e.path,
            source: e.source,
        })?;
        Ok(Some(LayersGuard { layers, aside }))
    }

    /// Whatever the buildpack left at `.layers` is replaced by the layers as they were.
    fn restore(self) -> Result<(), BuildpackError> {
        if self.layers.symlink_metadata().is_ok() {
            slugc_fs::remove(&self.layers).map_err(io(&self.layers))?;
        }
        std::fs::rename(&self.aside, &self.layers).map_err(io(&self.layers))
    }
}

/// Runs groups of buildpacks one after the other over one build root, as one build: the
/// environment, the layers and the processes of the earlier ones carry over.
pub struct GroupRun<'a> {
    ctx: Context<'a>,
    env: EnvMap,
    built: Built,
    /// Buildpacks run so far (names each classic buildpack's cache dir).
    ran: usize,
}

impl<'a> GroupRun<'a> {
    pub fn new(ctx: Context<'a>) -> Self {
        let env = ctx.env.clone();
        GroupRun {
            ctx,
            env,
            built: Built::default(),
            ran: 0,
        }
    }

    /// Run every buildpack of `detected`, in order.
    pub fn run(&mut self, detected: &Detected) -> Result<(), BuildpackError> {
        // What is left of the plan: a dependency reaches a later provider only when the ones
        // before listed it as `[[unmet]]`
        // (<https://github.com/buildpacks/spec/blob/main/buildpack.md#unmet-buildpack-plan-entries>).
        let mut remaining = detected.deps.clone();
        for bp in &detected.group {
            crate::say!("-----> {} {}", bp.name, bp.version);
            match bp.kind {
                Kind::Cnb { .. } => {
                    let plan = plan_for(&remaining, &bp.id);
                    let met = run_cnb(bp, &plan, &self.ctx, &mut self.env, &mut self.built)?;
                    remaining.retain(|d| !met.contains(&d.name));
                }
                Kind::Classic => {
                    run_classic(bp, self.ran, &self.ctx, &mut self.env, &mut self.built)?
                }
            }
            self.ran += 1;
        }
        Ok(())
    }

    pub fn finish(self) -> Built {
        self.built
    }
}

/// Move the cache = true layers of every buildpack into the cache, then swap them in. Call
/// after the export: the build root loses them.
pub fn save_cache(built: &Built, cache: &Cache) -> Result<(), BuildpackError> {
    let dest = cache.new_layers_dir()?;
    for (escaped, layers_dir, layers) in &built.cnb_layers {
        layers::save(layers_dir, layers, &dest.join(escaped))?;
    }
    cache.commit_layers()?;
    Ok(())
}

fn launch_layers(built: &Built) -> Vec<LaunchLayer> {
    built
        .launch_layers
        .iter()
        .map(|l| LaunchLayer { dir: l.dir.clone() })
        .collect()
}

/// The launch env script for `.profile.d`.
pub fn launch_profile(built: &Built, app_dir: &Path) -> std::io::Result<String> {
    let layers = launch_layers(built);
    env::launch_profile(&layers, app_dir, &built.config_vars)
}

/// The manifest's `config_vars`: launch layers' plain defaults, then classic `config_vars`.
pub fn config_vars(built: &Built, app_dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let layers = launch_layers(built);
    let mut vars = env::launch_defaults(&layers, app_dir)?;
    vars.extend(built.config_vars.clone());
    Ok(vars)
}
