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
use crate::platform::descriptor::{self, Buildpack, DescriptorError, Kind};
use crate::platform::detect::{self, Candidate, DetectContext, DetectError, Detected};
use crate::platform::env::EnvMap;
use crate::platform::escape_id;
use crate::platform::run_buildpacks::{self, BuildpackError, Built};
use crate::platform::target::Target;
use crate::procfile::{Procfile, ProcfileError};
use crate::size;
use slug_format::release::{BuildpackRef, Release, Stack, SCHEMA};
use slug_format::store::{self, StoreError};
use slug_format::{ExportError, Exported, PartCache};
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
    Detect(#[from] DetectError),
    #[error(transparent)]
    Buildpack(#[from] BuildpackError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {message}")]
    EnvFile { path: PathBuf, message: String },
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
            | BuildError::EnvFile { .. } => exit::INVALID_INPUT,
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

/// Config vars from the env files, then the given pairs (later wins).
fn config_vars(inputs: &Inputs) -> Result<BTreeMap<String, String>, BuildError> {
    let mut vars = BTreeMap::new();
    for file in &inputs.env_files {
        let pairs = crate::config_vars::read(file).map_err(|e| BuildError::EnvFile {
            path: file.clone(),
            message: e.to_string(),
        })?;
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
    procfile: Option<Procfile>,
}

/// `app_src` is the checked, absolute app dir (`app::check_app_dir`); `exclude`, paths under
/// it that are not the app (the store, the cache).
fn snapshot(
    inputs: &Inputs,
    app_src: PathBuf,
    work_dir: &Path,
    exclude: &[PathBuf],
) -> Result<Snapshot, BuildError> {
    let procfile = Procfile::read(&app_src)?;
    let vars = config_vars(inputs)?;

    let app_dir = work_dir.join("app");
    for warning in app::snapshot(&app_src, &app_dir, exclude)? {
        eprintln!(" !     {warning}");
    }
    let platform_dir = work_dir.join("platform");
    let env_dir = platform_dir.join("env");
    std::fs::create_dir_all(&env_dir).map_err(io(&env_dir))?;
    for (k, v) in &vars {
        let p = env_dir.join(k);
        std::fs::write(&p, v).map_err(io(&p))?;
    }
    let order = order(&inputs.buildpacks, &work_dir.join("buildpacks"))?;

    let mut env: EnvMap = std::env::vars().collect();
    // The platform's own variables are set per phase; never inherit stale ones.
    env.retain(|k, _| !k.starts_with("CNB_"));
    env.insert("HOME".into(), std::env::var("HOME").unwrap_or_default());
    Ok(Snapshot {
        app_src,
        app_dir,
        platform_dir,
        work_dir: work_dir.to_path_buf(),
        order,
        target: Target::host(),
        env,
        procfile,
    })
}

/// The groups to detect from: the built-ins' default order, or the one group `given`
/// (built-in ids and buildpack dirs), with their dirs under `bp_root`.
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
        let bp = if buildpacks::find(given).is_some() {
            builtin(given)?
        } else {
            let dir = PathBuf::from(given);
            let mut bp = descriptor::load(&dir)?;
            if bp.kind == Kind::Classic {
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
            } else {
                bp.dir = std::fs::canonicalize(&dir).map_err(io(&dir))?;
            }
            bp
        };
        group.push(Candidate {
            buildpack: bp,
            optional: false,
        });
    }
    Ok(vec![group])
}

fn run_detect(s: &Snapshot) -> Result<Detected, BuildError> {
    let scratch = s.work_dir.join("detect");
    let ctx = DetectContext {
        app_dir: &s.app_dir,
        platform_dir: &s.platform_dir,
        scratch: &scratch,
        target: &s.target,
        env: &s.env,
    };
    Ok(detect::detect(&s.order, &ctx)?)
}

/// Snapshot the app and run detection on it, in a scratch dir: what a build would use.
pub fn detect(inputs: &Inputs) -> Result<Detected, BuildError> {
    let work = tempfile::Builder::new()
        .prefix("slugc-detect-")
        .tempdir()
        .map_err(io(&std::env::temp_dir()))?;
    let app_src = app::check_app_dir(&inputs.app_dir)?;
    let snapshot = snapshot(inputs, app_src, work.path(), &[])?;
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
    let work = match &cache {
        Some(c) => c.work_dir()?,
        None => tempfile::Builder::new()
            .prefix("slugc-build-")
            .tempdir()
            .map_err(io(&std::env::temp_dir()))?,
    };
    let mut exclude = vec![store_dir.clone()];
    if let Some(c) = &cache {
        exclude.push(c.root().to_path_buf());
    }
    let exclude: Vec<PathBuf> = exclude
        .into_iter()
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .collect();

    let snapshot = snapshot(&opts.inputs, app_src, work.path(), &exclude)?;
    check_store(&store_dir, &snapshot, cache.as_ref())?;
    let detected = run_detect(&snapshot)?;
    eprintln!("-----> {} app detected", detected.description);

    // The one buildpacks are offered for early compression and the export's: both must agree.
    let mtime = slug_format::mtime_from_env()?;
    let part_cache = (!opts.no_cache)
        .then(|| PartCache::new(&crate::dirs::parts(opts.content_cache.as_deref())));
    let (built, process_types) = run_group(
        &snapshot,
        &detected,
        cache.as_ref(),
        part_cache.as_ref(),
        mtime,
    )?;

    eprintln!("-----> Compressing...");
    let exported = export(
        &snapshot.app_dir,
        &built,
        opts,
        part_cache.as_ref(),
        &store_dir,
        mtime,
    )?;
    for warning in &exported.warnings {
        eprintln!(" !     {warning}");
    }

    let release = release(&snapshot, &detected, &built, &exported, &process_types)?;
    let manifest_name = format!("sha256-{}.json", exported.sha256);
    let manifest_path =
        store::write_atomic(&store_dir, &manifest_name, release.to_json().as_bytes())?;
    if let Some(cache) = &cache {
        run_buildpacks::save_cache(&built, cache)?;
        cache.record_slug_size(exported.size);
    }
    drop(work);
    if let Some(parts) = &part_cache {
        // Bounded as it grows: a listing of the dir, nothing to do most times.
        if let Err(e) = parts.gc(slug_format::part_cache::DEFAULT_MAX_BYTES) {
            eprintln!(" !     part cache {}: {e}", parts.dir().display());
        }
    }

    eprintln!("       Done: {}", size::human(exported.size));
    eprintln!("-----> Launching...");
    eprintln!("       Slug:     {}", exported.path.display());
    eprintln!("       Manifest: {}", manifest_path.display());
    eprintln!("       Checksum: SHA256:{}", exported.sha256);
    if process_types.is_empty() {
        eprintln!("       Process types: none (add a Procfile, e.g. `web: <command>`)");
    } else {
        let names: Vec<&str> = process_types.keys().map(String::as_str).collect();
        eprintln!("       Process types: {}", names.join(", "));
    }
    eprintln!("       Built in {:.1}s", started.elapsed().as_secs_f64());
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
        eprintln!(
            "-----> Removed {} temporary files of interrupted builds from the store ({})",
            swept.files,
            size::human(swept.bytes)
        );
    }
    Ok(())
}

/// Run the detected group over the snapshot; then the process types (the Procfile's win)
/// and the launch env script in `.profile.d`.
fn run_group(
    snapshot: &Snapshot,
    detected: &Detected,
    cache: Option<&Cache>,
    part_cache: Option<&PartCache>,
    mtime: u64,
) -> Result<(Built, BTreeMap<String, String>), BuildError> {
    let app_dir = &snapshot.app_dir;
    let ctx = run_buildpacks::Context {
        app_dir,
        platform_dir: &snapshot.platform_dir,
        work_dir: &snapshot.work_dir,
        target: &snapshot.target,
        env: snapshot.env.clone(),
        cache,
        engine_env: crate::export::engine_env(part_cache, mtime, app_dir),
    };
    let mut built = run_buildpacks::build_group(detected, &ctx)?;
    if let Some(procfile) = &snapshot.procfile {
        built.processes.set_procfile(procfile.processes.clone());
    }
    let process_types = built.processes.resolve();

    let profile_dir = app_dir.join(".profile.d");
    std::fs::create_dir_all(&profile_dir).map_err(io(&profile_dir))?;
    let profile_path = profile_dir.join(PROFILE_SCRIPT);
    let profile = run_buildpacks::launch_profile(&built, app_dir).map_err(io(app_dir))?;
    std::fs::write(&profile_path, profile).map_err(io(&profile_path))?;
    Ok((built, process_types))
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
        eprintln!(
            " !     Warning: the slug is {} (over the {} MiB warning size)",
            size::human(exported.size),
            opts.warn_size_mib
        );
    }
    Ok(exported)
}

/// The release manifest of the exported slug.
fn release(
    snapshot: &Snapshot,
    detected: &Detected,
    built: &Built,
    exported: &Exported,
    process_types: &BTreeMap<String, String>,
) -> Result<Release, BuildError> {
    Ok(Release {
        schema: SCHEMA.to_string(),
        checksum: format!("SHA256:{}", exported.sha256),
        size: exported.size,
        process_types: process_types.clone(),
        buildpack_provided_description: Some(detected.description.clone()),
        commit: git_commit(&snapshot.app_src),
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
        config_vars: run_buildpacks::config_vars(built, &snapshot.app_dir)
            .map_err(io(&snapshot.app_dir))?,
        addons: built.addons.clone(),
        layers: exported.parts.clone(),
    })
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
