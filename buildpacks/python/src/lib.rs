//! The `slugc/python` buildpack: a Python app's source tree to a relocatable runtime, a
//! virtual environment of its dependencies, and its default processes.
//!
//! `build` reads as the table of contents: one call per step, in order.

mod bytecode;
mod django;
mod errors;
mod freshness;
mod fsutil;
mod index_config;
mod known_issues;
mod layers;
mod lockfiles;
mod log;
mod package_manager;
mod pins;
mod processes;
mod python_constraints;
mod python_version;
mod relocate;
mod requirements_txt;
mod sources;
mod tool_env;
mod trim;
mod vcs;
mod wheel_fit;

pub use errors::PythonBuildpackError;

use libcnb::build::{BuildContext, BuildResult, BuildResultBuilder};
use libcnb::data::build_plan::BuildPlanBuilder;
use libcnb::detect::{DetectContext, DetectResult, DetectResultBuilder};
use libcnb::generic::{GenericMetadata, GenericPlatform};
use libcnb::{Buildpack, Platform};
use python_version::{PythonVersion, RequestedVersion, VersionRequest};
use sources::{Candidate, MirrorError};
use tool_env::ToolEnv;

/// The descriptor the engine writes when it materialises this buildpack.
pub const BUILDPACK_TOML: &str = include_str!("../buildpack.toml");

pub struct PythonBuildpack;

impl Buildpack for PythonBuildpack {
    type Platform = GenericPlatform;
    type Metadata = GenericMetadata;
    type Error = PythonBuildpackError;

    fn detect(&self, context: DetectContext<Self>) -> libcnb::Result<DetectResult, Self::Error> {
        let found = package_manager::detected_files(&context.app_dir);
        if !found.is_empty() {
            // Invalid app input fails here, before the build log starts (exit 30, on_error).
            check_input(&context.app_dir)?;
        }
        if found.is_empty() {
            println!(
                "no Python files ({}) at the app root",
                package_manager::DETECT_FILES.join(", ")
            );
            return DetectResultBuilder::fail().build();
        }
        DetectResultBuilder::pass()
            .build_plan(
                BuildPlanBuilder::new()
                    .provides("python")
                    .requires("python")
                    .build(),
            )
            .build()
    }

    fn build(&self, context: BuildContext<Self>) -> libcnb::Result<BuildResult, Self::Error> {
        // The engine prints the "Python app detected" header (from detect).
        let app_dir = context.app_dir.clone();
        let tool_env = ToolEnv::new(context.platform.env());

        let mut warnings = Vec::new();
        let requested = python_version::read_requested_version(&app_dir, &mut warnings)
            .map_err(PythonBuildpackError::from)?;
        for warning in &warnings {
            log::warning(warning);
        }
        let constraints = python_constraints::read(&app_dir).map_err(PythonBuildpackError::from)?;
        python_constraints::check(&requested, &constraints).map_err(PythonBuildpackError::from)?;
        // Decided before anything is installed, so that a bad lockfile set fails fast.
        let package_manager =
            package_manager::determine(&app_dir).map_err(PythonBuildpackError::from)?;
        // Detection checked this already; a group given with `--buildpack` is checked here too,
        // so that a stale lockfile is never installed.
        if let Some(pm) = package_manager {
            lockfiles::check(&app_dir, pm)?;
        }

        let (candidate, fitted) = resolve_python(&context, &requested, &constraints, &tool_env)?;
        let origin = if fitted {
            "the app's pinned wheels, see the warning above".to_string()
        } else {
            requested.origin.to_string()
        };
        let within: Vec<String> = constraints
            .iter()
            .filter(|c| c.text != requested.text)
            .map(ToString::to_string)
            .collect();
        log::info(format!(
            "Python {} (requested by {}{})",
            candidate.version,
            origin,
            if within.is_empty() {
                String::new()
            } else {
                format!("; within: {}", within.join(", "))
            }
        ));
        // The uv download (cold builds only) overlaps the runtime's installation.
        let uv_prefetch = package_manager.and_then(|_| {
            layers::uv::prefetch(&context, &index_config::IndexConfig::read(&tool_env))
        });
        if let Some(warning) = python_version::deprecation(&candidate.version) {
            log::warning(warning);
        }
        let (runtime, runtime_compressing) =
            layers::python::install_python(&context, &candidate, &tool_env)?;

        let venv_bin = match package_manager {
            Some(pm) => {
                let installed = layers::dependencies::install_dependencies(
                    &context,
                    pm,
                    &candidate.version,
                    &runtime,
                    &tool_env,
                    uv_prefetch,
                )?;
                layers::tool::install_tools(
                    &context,
                    pm,
                    &candidate.version,
                    &runtime,
                    &installed.venv,
                    &tool_env,
                    installed.uv.clone(),
                )?;
                let site = installed.venv.join(format!(
                    "lib/python{}/site-packages",
                    candidate.version.minor_string()
                ));
                for warning in known_issues::installed(&site) {
                    log::warning(&warning.message);
                }
                let env = tool_env
                    .clone()
                    .with_runtime(&runtime)
                    .with_venv(&installed.venv);
                let collected = django::collectstatic(&app_dir, &site, &installed.venv, &env);
                // Waited for even when collectstatic failed: no writer outlives the build.
                if let Some(pending) = installed.bytecode {
                    let written = pending.wait()?;
                    if written.failed > 0 {
                        log::info(format!(
                            "({} installed files were left without bytecode: they do not \
                             compile)",
                            written.failed
                        ));
                    }
                }
                collected?;
                Some(installed.venv.join("bin"))
            }
            None => {
                log::info(
                    "No requirements.txt, poetry.lock, uv.lock or Pipfile.lock: no dependencies \
                     to install.",
                );
                None
            }
        };

        layers::web_concurrency::write_web_concurrency(&context)?;

        let launch = processes::launch(&app_dir, venv_bin.as_deref());
        // A platform file's start command (render.yaml, …) is taken by the engine after
        // the build: no hint then.
        if launch.processes.is_empty()
            && !app_dir.join("Procfile").is_file()
            && slugc_start::platform::infer(&app_dir).web().is_none()
        {
            log::info(
                "No web process: add a Procfile (e.g. `web: gunicorn myapp.wsgi`) to say how \
                 to start the app.",
            );
        }
        // The engine exports once this process ends: the compression must be done by then.
        // Started by `Precompression::start`, it keeps no blocks: only that can fail.
        let _ = runtime_compressing.wait();
        BuildResultBuilder::new().launch(launch).build()
    }

    fn on_error(&self, error: libcnb::Error<Self::Error>) {
        match error {
            libcnb::Error::BuildpackError(e) => {
                eprintln!("{}", slugc_fs::redact::redact(&e.user_message()));
                if e.is_temporary() {
                    std::process::exit(75);
                }
                if e.is_invalid_input() {
                    std::process::exit(30);
                }
            }
            other => eprintln!(
                "error: the Python buildpack failed: {}",
                slugc_fs::redact::redact(&other.to_string())
            ),
        }
    }
}

/// What this buildpack can say about the app without building it (`slug doctor`): the known
/// issues its `requirements.txt` pins.
pub fn warnings(app_dir: &std::path::Path) -> Vec<slugc_diagnostics::Warning> {
    known_issues::pinned(&pins::read(app_dir), &pins::listed(app_dir))
}

/// What the build reads from the app, read and parsed the way the build will: the version
/// request, `pyproject.toml`, and the file that selects the installer.
fn check_input(app_dir: &std::path::Path) -> Result<(), PythonBuildpackError> {
    let requested = python_version::read_requested_version(app_dir, &mut Vec::new())?;
    python_constraints::check(&requested, &python_constraints::read(app_dir)?)?;
    if let Some(text) =
        slugc_fs::input::read_app_text(app_dir, "pyproject.toml", slugc_fs::input::MANIFEST_CAP)?
    {
        toml::from_str::<toml::Table>(&text).map_err(|e| PythonBuildpackError::Lockfile {
            file: "pyproject.toml".to_string(),
            reason: slugc_fs::input::clip_message(&e.to_string()),
        })?;
    }
    if let Some(pm) = package_manager::determine(app_dir)? {
        lockfiles::check(app_dir, pm)?;
    }
    Ok(())
}

/// Pick the newest available Python satisfying the request and every constraint the app
/// states: the mirror's archives first, then the host's interpreters. The log says which one
/// serves. `true` with it: the default was replaced by the line that fits the app's pinned
/// wheels (`wheel_fit`).
fn resolve_python(
    context: &BuildContext<PythonBuildpack>,
    requested: &RequestedVersion,
    constraints: &[python_constraints::Constraint],
    tool_env: &ToolEnv,
) -> Result<(Candidate, bool), PythonBuildpackError> {
    let mirror = tool_env
        .get("SLUGC_PYTHON_MIRROR")
        .filter(|m| !m.is_empty())
        .unwrap_or(sources::DEFAULT_MIRROR)
        .to_string();
    let agent = sources::agent();
    let (mut candidates, mirror_error): (Vec<Candidate>, Option<MirrorError>) =
        match sources::mirror_candidates(&agent, &mirror, &context.target.arch) {
            Ok(found) => (found, None),
            Err(e) => (Vec::new(), Some(e)),
        };
    if let Some(e) = &mirror_error {
        log::info(format!(
            "Python mirror unavailable ({e}); trying host interpreters"
        ));
    }
    candidates.extend(sources::host_candidates(tool_env.get("PATH")));
    let allowed: Vec<Candidate> = candidates
        .iter()
        .filter(|c| constraints.iter().all(|k| k.allows(&c.version)))
        .cloned()
        .collect();
    let versions: Vec<_> = allowed.iter().map(|c| c.version).collect();
    let request = wheel_fit::request(
        &context.app_dir,
        &requested.request,
        &versions,
        &context.target.arch,
        &index_config::IndexConfig::read(tool_env),
    );
    if let Some(found) = python_version::select(&request, &allowed, |c| c.version) {
        return Ok((found.clone(), request != requested.request));
    }
    let mut available: Vec<_> = candidates
        .iter()
        .map(|c| c.version)
        .filter(python_version::is_supported)
        .collect();
    available.sort();
    available.dedup();
    let why = match &requested.request {
        VersionRequest::Default => python_version::Unserved::NotAvailable,
        other => other.classify_unserved(),
    };
    let host_unused = match &requested.request {
        VersionRequest::Exact(v) if why == python_version::Unserved::NotAvailable => candidates
            .iter()
            .filter(|c| c.version.minor == v.minor)
            .filter_map(|c| match &c.source {
                sources::Source::Host(h) => {
                    Some(format!("{} at {}", c.version, h.executable.display()))
                }
                sources::Source::Mirror { .. } => None,
            })
            .collect(),
        VersionRequest::Exact(PythonVersion { minor, .. })
        | VersionRequest::Minor { minor, .. }
            if why == python_version::Unserved::EndOfLife =>
        {
            sources::host_interpreters_of_line(*minor, tool_env.get("PATH"))
                .iter()
                .map(|p| p.display().to_string())
                .collect()
        }
        _ => Vec::new(),
    };
    Err(PythonBuildpackError::Unserved(Box::new(
        errors::UnservedDetail {
            requested: requested.clone(),
            why,
            available: available.iter().map(ToString::to_string).collect(),
            mirror,
            mirror_error,
            host_unused,
        },
    )))
}
