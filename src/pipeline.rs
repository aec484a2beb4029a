//! One build, source tree to slug: snapshot → detect → build → export → store.
//!
//! - snapshot: the app copied into a work dir (`app`), the config vars written as platform
//!   env, the buildpacks to try materialised or loaded (`buildpacks`, `platform::descriptor`);
//! - detect: the first group of the order that passes, and its build plan
//!   (`platform::detect`); [`detect()`] stops here;
//! - build: each buildpack of the group run over the snapshot (`platform::run_buildpacks`),
//!   then the process types and the `.profile.d` launch script;
//! - export: the snapshot and its launch layers as the slug's parts (`export`), written as a
//!   content-addressed slug (`slug_format::export`);
//! - store: the release manifest beside the slug, the layers that want caching saved.
//!
//! [`build()`] logs each stage on stderr as it goes and returns the slug, its manifest and
//! the release; stdout is the caller's.

use crate::app::{self, AppError};
use crate::buildpacks::{self, BinMode, MaterialiseError};
use crate::cache::{self, Cache, CacheError};
use crate::exit::{self, ExitCode};
use crate::platform::descriptor::{self, Buildpack, DescriptorError, Kind, Loaded};
use crate::platform::detect::{self, Candidate, DetectContext, DetectError, Detected};
use crate::platform::env::EnvMap;
use crate::platform::escape_id;
use crate::platform::order::{self, OrderError};
use crate::platform::run_buildpacks::{self, BuildpackError, Built, GroupRun};
use crate::platform::target::Target;
use crate::procfile::{Procfile, ProcfileError};
use crate::project::{self, GroupRef, Project, ProjectError};
use crate::size;
use crate::workdir::WorkDir;
use slug_format::release::{
    BuildRelease, BuildpackRef, Release, Stack, EMBEDDED_PATH, EMBEDDED_SCHEMA,
};
use slug_format::store::{self, StoreError};
use slug_format::{ContentCache, ExportError, Exported, PartCache};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The name of the launch env script in `.profile.d`; sorts before buildpacks' own scripts.
pub const PROFILE_SCRIPT: &str = "000-slugc-launch.sh";
/// The slug size refused, and the one warned about, unless told otherwise.
pub const DEFAULT_MAX_SIZE_MIB: u64 = 500;
pub const DEFAULT_WARN_SIZE_MIB: u64 = 300;

/// The app and what to build it with: what detect and build share.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The app's source dir.
    pub app_dir: PathBuf,
    /// Buildpacks to use instead of detecting from the built-in ones, in order: built-in ids,
    /// CNB buildpack dirs or classic buildpack dirs.
    pub buildpacks: Vec<String>,
    /// Config vars for the build, over those of `env_files`.
    pub env: Vec<(String, String)>,
    /// Dotenv files of config vars for the build, later ones winning.
    pub env_files: Vec<PathBuf>,
}

/// Where a build caches and stores, and its size limits.
#[derive(Debug, Clone)]
pub struct Options {
    pub inputs: Inputs,
    /// The app's build cache [default: `cache::default_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Neither the app's cache nor the machine-wide one is read or written.
    pub no_cache: bool,
    /// The machine-wide content cache [default: `dirs::content_cache`].
    pub content_cache: Option<PathBuf>,
    /// The slug store [default: `dirs::store`].
    pub store: Option<PathBuf>,
    pub max_size_mib: u64,
    pub warn_size_mib: u64,
}

impl Options {
    /// A build of `inputs` with the default caches, store and limits.
    pub fn new(inputs: Inputs) -> Self {
        Options {
            inputs,
            cache_dir: None,
            no_cache: false,
            content_cache: None,
            store: None,
            max_size_mib: DEFAULT_MAX_SIZE_MIB,
            warn_size_mib: DEFAULT_WARN_SIZE_MIB,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Procfile(#[from] ProcfileError),
    #[error(transparent)]
    Descriptor(#[from] DescriptorError),
    #[error(transparent)]
    Materialise(#[from] MaterialiseError),
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error("{path}: {message}")]
    ProjectGroup { path: PathBuf, message: String },
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Buildpack(#[from] BuildpackError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    EnvFile(#[from] crate::config_vars::DotenvError),
    #[error(transparent)]
    Usage(#[from] crate::config_vars::EnvArgError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up the handling of SIGINT, SIGTERM and SIGHUP: {0}")]
    Signals(std::io::Error),
}

impl ExitCode for BuildError {
    fn exit_code(&self) -> i32 {
        match self {
            BuildError::App(_)
            | BuildError::Procfile(_)
            | BuildError::Descriptor(_)
            | BuildError::Order(_)
            | BuildError::Project(_)
            | BuildError::ProjectGroup { .. }
            | BuildError::EnvFile(_) => exit::INVALID_INPUT,
            BuildError::Usage(_) => exit::USAGE,
            BuildError::Detect(DetectError::InvalidInput { .. }) => exit::INVALID_INPUT,
            BuildError::Detect(DetectError::NoneDetected { .. }) => exit::NO_BUILDPACK,
            BuildError::Detect(_) => exit::BUILDPACK_FAILED,
            BuildError::Buildpack(e) => e.exit_code(),
            BuildError::Export(e) if e.is_input_error() => exit::INVALID_INPUT,
            _ => exit::OTHER,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Config vars: project.toml's `build.env`, then the env files, then the given pairs (later
/// wins).
fn config_vars(
    inputs: &Inputs,
    project: Option<&Project>,
) -> Result<BTreeMap<String, String>, BuildError> {
    let mut vars = BTreeMap::new();
    if let Some(p) = project {
        vars.extend(p.env.iter().cloned());
    }
    for file in &inputs.env_files {
        let pairs = crate::config_vars::read(file)?;
        vars.extend(pairs);
    }
    vars.extend(inputs.env.iter().cloned());
    Ok(vars)
}

/// What detect and build share: the work dir with the snapshot, the platform dir and the
/// buildpacks to try.
struct Snapshot {
    app_src: PathBuf,
    app_dir: PathBuf,
    platform_dir: PathBuf,
    work_dir: PathBuf,
    order: Vec<Vec<Candidate>>,
    target: Target,
    env: EnvMap,
    /// Buildpacks were given (`--buildpack`, or project.toml's group): detect and build one
    /// after the other.
    explicit: bool,
    /// The app's git HEAD, when it is a checkout.
    commit: Option<String>,
    /// The config vars: the user-provided env of the CNB spec.
    user_env: EnvMap,
}

/// `app_src` is the checked, absolute app dir (`app::check_app_dir`); `exclude`, paths under
/// it that are not the app (the store, the cache).
fn snapshot(
    inputs: &Inputs,
    app_src: PathBuf,
    work_dir: &Path,
    tmp: &Path,
    exclude: &[PathBuf],
) -> Result<Snapshot, BuildError> {
    // Checked before anything runs, so that a typo fails at once and names the user's file;
    // its processes are read from the build result (`build_release`).
    Procfile::read(&app_src)?;
    let project = project::read(&app_src, &mut |w| crate::say!(" !     {w}"))?;
    let vars = config_vars(inputs, project.as_ref())?;
    crate::platform::output::set_secrets(vars.values().cloned());

    let app_dir = work_dir.join("app");
    let rules = project
        .as_ref()
        .map(|p| app::ProjectRules {
            source: p.path.clone(),
            include: p.include.clone(),
            exclude: p.exclude.clone(),
        })
        .unwrap_or_default();
    app::snapshot(&app_src, &app_dir, exclude, &rules)?;
    let platform_dir = work_dir.join("platform");
    write_platform_env(&platform_dir, &vars)?;
    let bp_root = work_dir.join("buildpacks");
    let order = match project.as_ref() {
        // `--buildpack` replaces the project's group.
        Some(p) if inputs.buildpacks.is_empty() && !p.group.is_empty() => {
            project_order(p, &bp_root)?
        }
        _ => order(&inputs.buildpacks, &bp_root)?,
    };

    let mut env: EnvMap = std::env::vars().collect();
    // The platform's own variables are set per phase; never inherit stale ones.
    env.retain(|k, _| !k.starts_with("CNB_"));
    let home = work_dir.join("home");
    crate::platform::home::prepare(&home, &mut env).map_err(io(&home))?;
    env.insert("TMPDIR".into(), tmp.to_string_lossy().into_owned());
    Ok(Snapshot {
        app_dir,
        platform_dir,
        work_dir: work_dir.to_path_buf(),
        order,
        target: Target::host(),
        env,
        explicit: !inputs.buildpacks.is_empty()
            || project.as_ref().is_some_and(|p| !p.group.is_empty()),
        commit: git_commit(&app_src),
        app_src,
        user_env: vars,
    })
}

/// The config vars as `<platform>/env/<KEY>` files, readable by the user alone: the dirs 0700,
/// the files 0600 (the work dir around them is 0700 too, `workdir`).
fn write_platform_env(
    platform_dir: &Path,
    vars: &BTreeMap<String, String>,
) -> Result<(), BuildError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let env_dir = platform_dir.join("env");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&env_dir)
        .map_err(io(&env_dir))?;
    for (k, v) in vars {
        let p = env_dir.join(k);
        let mut file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .map_err(io(&p))?;
        file.write_all(v.as_bytes()).map_err(io(&p))?;
    }
    Ok(())
}

/// The groups to detect from: the built-ins' default order, or the groups of the one group
/// `given` (built-in ids and buildpack dirs, meta-buildpacks expanded), with their dirs under
/// `bp_root`.
fn order(given: &[String], bp_root: &Path) -> Result<Vec<Vec<Candidate>>, BuildError> {
    let builtin = |id: &str| -> Result<Buildpack, BuildError> {
        let dir = bp_root.join(escape_id(id));
        buildpacks::materialise(id, &dir, BinMode::Link)?;
        Ok(descriptor::load(&dir)?)
    };
    if given.is_empty() {
        let mut order = Vec::new();
        for group in buildpacks::DEFAULT_ORDER {
            let mut g = Vec::new();
            for (id, optional) in group.iter() {
                g.push(Candidate {
                    buildpack: builtin(id)?,
                    optional: *optional,
                });
            }
            order.push(g);
        }
        return Ok(order);
    }
    let mut group = Vec::new();
    for (i, given) in given.iter().enumerate() {
        let loaded = if buildpacks::find(given).is_some() {
            Loaded::Component(builtin(given)?)
        } else {
            let dir = PathBuf::from(given);
            match descriptor::load_any(&dir)? {
                Loaded::Component(mut bp) if bp.kind == Kind::Classic => {
                    // A private copy: classic buildpacks may write into their own dir (`export`).
                    let copy = bp_root.join(format!("classic-{i}"));
                    std::fs::create_dir_all(bp_root).map_err(io(bp_root))?;
                    let how = slugc_fs::Options {
                        dir_modes: true,
                        ..slugc_fs::Options::default()
                    };
                    slugc_fs::copy_tree(&bp.dir, &copy, &how).map_err(|e| BuildError::Io {
                        path: e.path,
                        source: e.source,
                    })?;
                    bp.dir = copy;
                    Loaded::Component(bp)
                }
                Loaded::Component(mut bp) => {
                    bp.dir = std::fs::canonicalize(&dir).map_err(io(&dir))?;
                    Loaded::Component(bp)
                }
                Loaded::Meta(mut meta) => {
                    meta.dir = std::fs::canonicalize(&dir).map_err(io(&dir))?;
                    Loaded::Meta(meta)
                }
            }
        };
        group.push((loaded, false));
    }
    let lookup = |id: &str| -> Result<Option<Buildpack>, OrderError> {
        if buildpacks::find(id).is_none() {
            return Ok(None);
        }
        builtin(id)
            .map(Some)
            .map_err(|e| OrderError::Builtin(e.to_string()))
    };
    Ok(order::expand(&group, &lookup)?)
}

/// The order of project.toml's group: its buildpack dirs and built-in ids, each id checked
/// to be a built-in of the version asked for (this platform fetches no buildpacks).
fn project_order(p: &Project, bp_root: &Path) -> Result<Vec<Vec<Candidate>>, BuildError> {
    let mut given = Vec::new();
    for entry in &p.group {
        match entry {
            GroupRef::Dir(dir) => given.push(dir.to_string_lossy().into_owned()),
            GroupRef::Id { id, version } => {
                if buildpacks::find(id).is_none() {
                    return Err(BuildError::ProjectGroup {
                        path: p.path.clone(),
                        message: format!(
                            "[[io.buildpacks.group]] id {id:?} is not a built-in buildpack; give its dir as uri"
                        ),
                    });
                }
                given.push(id.clone());
                if let Some(wanted) = version {
                    let dir = bp_root.join(escape_id(id));
                    buildpacks::materialise(id, &dir, BinMode::Link)?;
                    let have = descriptor::load(&dir)?.version;
                    if have != *wanted {
                        return Err(BuildError::ProjectGroup {
                            path: p.path.clone(),
                            message: format!(
                                "[[io.buildpacks.group]] {id} version {wanted} is asked for; the built-in is {have}"
                            ),
                        });
                    }
                }
            }
        }
    }
    order(&given, bp_root)
}

fn run_detect(s: &Snapshot) -> Result<Detected, BuildError> {
    detect_order(s, &s.order)
}

fn detect_order(s: &Snapshot, order: &[Vec<Candidate>]) -> Result<Detected, BuildError> {
    let scratch = s.work_dir.join("detect");
    let ctx = DetectContext {
        app_dir: &s.app_dir,
        platform_dir: &s.platform_dir,
        scratch: &scratch,
        target: &s.target,
        env: &s.env,
        user_env: &s.user_env,
    };
    Ok(detect::detect(order, &ctx)?)
}

/// The orders detected one after the other. Buildpacks given explicitly are detected right
/// before they build, as Heroku runs multiple buildpacks: each classic buildpack alone, and
/// each run of CNB buildpacks together (their build plan is resolved as the lifecycle
/// resolves a group), so that a buildpack sees what the ones before it did to the app
/// (<https://devcenter.heroku.com/articles/using-multiple-buildpacks-for-an-app>).
fn stages(order: &[Vec<Candidate>], explicit: bool) -> Vec<Vec<Vec<Candidate>>> {
    let [group] = order else {
        return vec![order.to_vec()];
    };
    if !explicit {
        return vec![order.to_vec()];
    }
    let mut stages: Vec<Vec<Candidate>> = Vec::new();
    let mut after_classic = true;
    for candidate in group {
        let classic = candidate.buildpack.kind == Kind::Classic;
        match stages.last_mut() {
            Some(cnbs) if !classic && !after_classic => cnbs.push(candidate.clone()),
            _ => stages.push(vec![candidate.clone()]),
        }
        after_classic = classic;
    }
    stages.into_iter().map(|g| vec![g]).collect()
}

/// Snapshot the app and run detection on it, in a scratch dir: what a build would use.
pub fn detect(inputs: &Inputs) -> Result<Detected, BuildError> {
    crate::workdir::sweep_all(None);
    let tmp = std::env::temp_dir();
    let work = WorkDir::create_in(&tmp, crate::workdir::DETECT_PREFIX).map_err(io(&tmp))?;
    let (_tmp_dir, build_tmp) = crate::workdir::create_tmp(None).map_err(io(&tmp))?;
    let app_src = app::check_app_dir(&inputs.app_dir)?;
    let snapshot = snapshot(inputs, app_src, work.path(), &build_tmp, &[])?;
    run_detect(&snapshot)
}

/// A build's outcome: the slug and its manifest, both in the store.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub slug: PathBuf,
    pub manifest_path: PathBuf,
    pub release: Release,
}

pub fn build(opts: &Options) -> Result<Outcome, BuildError> {
    let started = Instant::now();
    let app_src = app::check_app_dir(&opts.inputs.app_dir)?;
    let store_dir = opts.store.clone().unwrap_or_else(crate::dirs::store);
    let cache = if opts.no_cache {
        None
    } else {
        let dir = opts
            .cache_dir
            .clone()
            .unwrap_or_else(|| cache::default_dir(&app_src));
        Some(Cache::open(&dir)?)
    };
    // Dead builds' work dirs hold their config vars: gone before this build adds its own.
    crate::workdir::sweep_all(cache.as_ref().map(Cache::root));
    let work = match &cache {
        Some(c) => c.work_dir()?,
        None => {
            let tmp = std::env::temp_dir();
            WorkDir::create_in(&tmp, crate::workdir::BUILD_PREFIX).map_err(io(&tmp))?
        }
    };
    // Declared after `work`, so dropped before it: a build that fails gives back the cached
    // layers it was lent while its work dir still holds them.
    let _loans = cache.as_ref().map(cache::SettleLoans);
    let mut exclude = vec![store_dir.clone()];
    if let Some(c) = &cache {
        exclude.push(c.root().to_path_buf());
    }
    let exclude: Vec<PathBuf> = exclude
        .into_iter()
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .collect();

    let temp_dir = std::env::temp_dir();
    let (_tmp_dir, build_tmp) =
        crate::workdir::create_tmp(cache.as_ref().map(Cache::root)).map_err(io(&temp_dir))?;
    let snapshot = snapshot(&opts.inputs, app_src, work.path(), &build_tmp, &exclude)?;
    check_store(&store_dir, &snapshot, cache.as_ref())?;

    // The one buildpacks are offered for early compression and the export's: both must agree.
    let mtime = slug_format::mtime_from_env()?;
    let content = (!opts.no_cache)
        .then(|| ContentCache::new(&crate::dirs::content(opts.content_cache.as_deref())));
    let (detected, built) = run_group(&snapshot, cache.as_ref(), content.as_ref(), mtime)?;
    let build_release = build_release(&snapshot, &detected, &built)?;
    let process_types = build_release.process_types.clone();

    crate::say!("-----> Compressing...");
    let exported = export(
        &snapshot.app_dir,
        &built,
        opts,
        content.as_ref().map(|c| &c.parts),
        &store_dir,
        mtime,
    )?;
    for warning in &exported.warnings {
        crate::say!(" !     {warning}");
    }

    let release = build_release.into_release(
        &exported.sha256,
        exported.size,
        exported.parts.clone(),
        snapshot.commit.clone(),
    );
    let manifest_name = format!("sha256-{}.json", exported.sha256);
    // Replaced, not kept: the slug's bytes hold the release, and what the manifest adds (the
    // commit) is the latest build's.
    let manifest_path =
        store::replace_atomic(&store_dir, &manifest_name, release.to_json().as_bytes())?;
    if let Some(cache) = &cache {
        run_buildpacks::save_cache(&built, cache)?;
        cache.record_slug_size(exported.size);
    }
    drop(work);
    if let Some(content) = &content {
        // Bounded as it grows: a listing of two dirs, nothing to do most times.
        if let Err(e) = content.gc(slug_format::content::DEFAULT_MAX_BYTES) {
            crate::say!(
                " !     content cache {}: {e}",
                crate::dirs::content(opts.content_cache.as_deref()).display()
            );
        }
    }

    crate::say!("       Done: {}", size::human(exported.size));
    crate::say!("-----> Launching...");
    crate::say!("       Slug:     {}", exported.path.display());
    crate::say!("       Manifest: {}", manifest_path.display());
    crate::say!("       Checksum: SHA256:{}", exported.sha256);
    if process_types.is_empty() {
        crate::say!("       Process types: none (add a Procfile, e.g. `web: <command>`)");
    } else {
        let names: Vec<&str> = process_types.keys().map(String::as_str).collect();
        crate::say!("       Process types: {}", names.join(", "));
        for (name, source) in &release.process_sources {
            crate::say!("         {name}: from {source}");
        }
    }
    crate::say!("       Built in {:.1}s", started.elapsed().as_secs_f64());
    Ok(Outcome {
        slug: exported.path,
        manifest_path,
        release,
    })
}

/// Before anything runs: the store must be writable and have room for the slug. The
/// estimate is this app's last slug when its cache knows it, else the app's own files
/// uncompressed (the slug holds them all; a first build knows nothing better).
fn check_store(
    store_dir: &Path,
    snapshot: &Snapshot,
    cache: Option<&Cache>,
) -> Result<(), BuildError> {
    let estimate = cache.and_then(Cache::last_slug_size).unwrap_or_else(|| {
        slug_format::tar::estimated_size(&[slug_format::Part::new(&snapshot.app_dir, "./app")])
    });
    let swept = store::check_room(store_dir, estimate)?;
    if swept.files > 0 {
        crate::say!(
            "-----> Removed {} temporary files of interrupted builds from the store ({})",
            swept.files,
            size::human(swept.bytes)
        );
    }
    Ok(())
}

/// Detect and run the buildpacks over the snapshot (stage by stage, see [`stages`]); then
/// the launch env script in `.profile.d`.
fn run_group(
    snapshot: &Snapshot,
    cache: Option<&Cache>,
    content: Option<&ContentCache>,
    mtime: u64,
) -> Result<(Detected, Built), BuildError> {
    let app_dir = &snapshot.app_dir;
    let ctx = run_buildpacks::Context {
        app_dir,
        platform_dir: &snapshot.platform_dir,
        work_dir: &snapshot.work_dir,
        target: &snapshot.target,
        env: snapshot.env.clone(),
        user_env: snapshot.user_env.clone(),
        cache,
        engine_env: crate::export::engine_env(content, mtime, app_dir),
        source_version: snapshot.commit.as_deref(),
    };
    let mut run = GroupRun::new(ctx);
    let mut all: Option<Detected> = None;
    for order in stages(&snapshot.order, snapshot.explicit) {
        let detected = detect_order(snapshot, &order)?;
        crate::say!("-----> {} app detected", detected.description);
        run.run(&detected)?;
        match &mut all {
            None => all = Some(detected),
            Some(all) => {
                all.group.extend(detected.group);
                all.deps.extend(detected.deps);
            }
        }
    }
    let built = run.finish();
    let detected = all.ok_or_else(|| DetectError::NoneDetected { report: Vec::new() })?;
    // The buildpacks are done with the config vars: off the disk before the export.
    let env_dir = snapshot.platform_dir.join("env");
    slugc_fs::remove(&env_dir).map_err(io(&env_dir))?;

    let profile_dir = app_dir.join(".profile.d");
    std::fs::create_dir_all(&profile_dir).map_err(io(&profile_dir))?;
    let profile_path = profile_dir.join(PROFILE_SCRIPT);
    let profile = run_buildpacks::launch_profile(&built, app_dir).map_err(io(app_dir))?;
    std::fs::write(&profile_path, profile).map_err(io(&profile_path))?;
    Ok((detected, built))
}

fn export(
    app_dir: &Path,
    built: &Built,
    opts: &Options,
    part_cache: Option<&PartCache>,
    store_dir: &Path,
    mtime: u64,
) -> Result<Exported, BuildError> {
    let parts = crate::export::parts(app_dir, built).map_err(io(app_dir))?;
    let exported = crate::export::export(
        &parts,
        store_dir,
        mtime,
        opts.max_size_mib.saturating_mul(size::MIB),
        part_cache,
        progress_wanted(),
    )?;
    if exported.size > opts.warn_size_mib.saturating_mul(size::MIB) {
        crate::say!(
            " !     Warning: the slug is {} (over the {} MiB warning size)",
            size::human(exported.size),
            opts.warn_size_mib
        );
    }
    Ok(exported)
}

/// What the build decided about running the slug, written into it at [`EMBEDDED_PATH`]:
/// the process types from the buildpacks and the Procfile of the build result (read once,
/// after every buildpack ran: a compile may move, create or rewrite it), the default process,
/// labels, buildpacks and defaults.
fn build_release(
    snapshot: &Snapshot,
    detected: &Detected,
    built: &Built,
) -> Result<BuildRelease, BuildError> {
    let app_dir = &snapshot.app_dir;
    let mut processes = built.processes.clone();
    let shown = snapshot.app_src.join("Procfile");
    let procfile = Procfile::read_as(app_dir, &shown)?;
    crate::start_command::apply_platform_files(app_dir, procfile.as_ref(), &mut processes);
    if let Some(procfile) = procfile {
        processes.set_procfile(procfile.processes);
    }
    let release = BuildRelease {
        schema: EMBEDDED_SCHEMA.to_string(),
        process_types: processes.resolve(),
        process_sources: processes.sources(),
        default_process: processes.default_process(),
        labels: processes.labels().clone(),
        buildpack_provided_description: Some(detected.description.clone()),
        stack: Stack {
            name: snapshot.target.stack_name(),
        },
        buildpacks: detected
            .group
            .iter()
            .map(|bp| BuildpackRef {
                id: bp.id.clone(),
                version: bp.version.clone(),
                api: bp.api().to_string(),
            })
            .collect(),
        config_vars: run_buildpacks::config_vars(built, app_dir).map_err(io(app_dir))?,
        addons: built.addons.clone(),
    };
    let path = app_dir.join(EMBEDDED_PATH.strip_prefix("app/").unwrap_or(EMBEDDED_PATH));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(&path, release.to_json()).map_err(io(&path))?;
    Ok(release)
}

fn git_commit(app: &Path) -> Option<String> {
    if !app.join(".git").exists() {
        return None;
    }
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(app)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn progress_wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, kind: Kind) -> Candidate {
        Candidate {
            buildpack: Buildpack {
                dir: PathBuf::from(format!("/bp/{id}")),
                id: id.to_string(),
                version: "1".to_string(),
                name: id.to_string(),
                kind,
                clear_env: false,
                targets: Vec::new(),
            },
            optional: false,
        }
    }

    fn ids(stages: &[Vec<Vec<Candidate>>]) -> Vec<Vec<&str>> {
        stages
            .iter()
            .map(|order| order[0].iter().map(|c| c.buildpack.id.as_str()).collect())
            .collect()
    }

    #[test]
    fn explicit_buildpacks_split_at_each_classic_one() {
        let cnb = || Kind::Cnb { api: "0.10".into() };
        let group = vec![
            candidate("a", cnb()),
            candidate("b", cnb()),
            candidate("classic", Kind::Classic),
            candidate("c", cnb()),
            candidate("other-classic", Kind::Classic),
            candidate("d", cnb()),
            candidate("e", cnb()),
        ];
        let order = vec![group];
        assert_eq!(
            ids(&stages(&order, true)),
            [
                vec!["a", "b"],
                vec!["classic"],
                vec!["c"],
                vec!["other-classic"],
                vec!["d", "e"]
            ]
        );
        // The built-in order is detected once, whatever it holds.
        assert_eq!(stages(&order, false).len(), 1);
    }
}
