//! The package manager's own command for the buildpacks that run after this one (build only,
//! cached): `pip`, `poetry` or `pipenv` in a relocatable virtual environment of its own, as
//! Heroku's Python CNB gives later buildpacks the app's package manager. The app's packages
//! are never installed with it (see `dependencies`); it is there so that a later buildpack's
//! `pip`, `poetry` or `pipenv` is the slug's Python toolchain, working on the slug's venv,
//! not whatever the host has. A uv project's `uv` is the `uv` layer's.
//!
//! Each command is pointed at the app's venv through its own setting, in the build env only:
//! `PIP_PYTHON` (pip's `--python`, pip ≥ 22.3), and `VIRTUAL_ENV` (set by the venv layer),
//! which Poetry and Pipenv use as the active environment.

use crate::errors::{io_error, PythonBuildpackError};
use crate::index_config::IndexConfig;
use crate::layers::dependencies::{run, uv_env};
use crate::layers::{reasons_line, uv};
use crate::package_manager::PackageManager;
use crate::python_version::PythonVersion;
use crate::tool_env::ToolEnv;
use crate::{log, relocate, PythonBuildpack};
use libcnb::build::BuildContext;
use libcnb::data::layer::LayerName;
use libcnb::data::layer_name;
use libcnb::layer::{
    CachedLayerDefinition, EmptyLayerCause, InvalidMetadataAction, LayerState, RestoredLayerAction,
};
use libcnb::layer_env::{LayerEnv, ModificationBehavior, Scope};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The versions installed (known-good releases; bump deliberately).
pub const PIP_VERSION: &str = "26.3";
pub const POETRY_VERSION: &str = "2.5.1";
pub const PIPENV_VERSION: &str = "2026.10.3";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolLayerMetadata {
    /// `<package>==<version>`.
    pub requirement: String,
    pub python_version: String,
    pub arch: String,
}

impl ToolLayerMetadata {
    fn reasons(&self, new: &Self) -> Vec<String> {
        let Self {
            requirement,
            python_version,
            arch,
        } = self;
        let mut reasons = Vec::new();
        if requirement != &new.requirement {
            reasons.push(format!("{requirement} → {}", new.requirement));
        }
        if python_version != &new.python_version {
            reasons.push(format!("Python {python_version} → {}", new.python_version));
        }
        if arch != &new.arch {
            reasons.push(format!("architecture {arch} → {}", new.arch));
        }
        reasons
    }
}

/// The tools a package manager file brings: pip always (a later buildpack's `pip` is the
/// slug's for every app, as `python` is), and Poetry or Pipenv for their lockfiles. uv's binary
/// is already in the `uv` layer.
fn tools_for(package_manager: PackageManager) -> Vec<Tool> {
    let pip = Tool {
        shown: "pip",
        package: "pip",
        version: PIP_VERSION,
        layer: layer_name!("pip"),
    };
    let other = match package_manager {
        PackageManager::Poetry => Some(Tool {
            shown: "Poetry",
            package: "poetry",
            version: POETRY_VERSION,
            layer: layer_name!("poetry"),
        }),
        PackageManager::Pipenv => Some(Tool {
            shown: "Pipenv",
            package: "pipenv",
            version: PIPENV_VERSION,
            layer: layer_name!("pipenv"),
        }),
        PackageManager::Requirements | PackageManager::Uv => None,
    };
    std::iter::once(pip).chain(other).collect()
}

struct Tool {
    /// As the log names it.
    shown: &'static str,
    /// The PyPI package, and the command it installs.
    package: &'static str,
    version: &'static str,
    layer: LayerName,
}

/// Install (or reuse) the tools of [`tools_for`], each into its layer, named for the package.
/// `uv` is the one the dependencies were installed with, if any; otherwise it is installed
/// when a tool needs installing (the pip fallback when it cannot be had).
pub fn install_tools(
    context: &BuildContext<PythonBuildpack>,
    package_manager: PackageManager,
    version: &PythonVersion,
    runtime: &Path,
    venv: &Path,
    tool_env: &ToolEnv,
    mut uv: uv::Availability,
) -> Result<(), libcnb::Error<PythonBuildpackError>> {
    for tool in tools_for(package_manager) {
        install_tool(context, &tool, version, runtime, venv, tool_env, &mut uv)?;
    }
    Ok(())
}

fn install_tool(
    context: &BuildContext<PythonBuildpack>,
    tool: &Tool,
    version: &PythonVersion,
    runtime: &Path,
    venv: &Path,
    tool_env: &ToolEnv,
    uv: &mut uv::Availability,
) -> Result<(), libcnb::Error<PythonBuildpackError>> {
    let Tool {
        shown,
        package,
        version: tool_version,
        layer: name,
    } = tool;
    let requirement = format!("{package}=={tool_version}");
    let new_metadata = ToolLayerMetadata {
        requirement: requirement.clone(),
        python_version: version.to_string(),
        arch: context.target.arch.clone(),
    };
    let layer = context.cached_layer(
        name.clone(),
        CachedLayerDefinition {
            build: true,
            launch: false,
            invalid_metadata_action: &|_| {
                (
                    InvalidMetadataAction::DeleteLayer,
                    vec!["its metadata is from an older buildpack".to_string()],
                )
            },
            restored_layer_action: &|old: &ToolLayerMetadata, dir: &Path| {
                let mut reasons = old.reasons(&new_metadata);
                if !dir.join("bin").join(package).is_file() {
                    reasons.push(format!("bin/{package} is missing"));
                }
                if reasons.is_empty() {
                    (RestoredLayerAction::KeepLayer, reasons)
                } else {
                    (RestoredLayerAction::DeleteLayer, reasons)
                }
            },
        },
    )?;
    let dir = layer.path();
    // Written on every build, restored or not: the value holds this build's root.
    let mut env = LayerEnv::new();
    if *package == "pip" {
        env = env.chainable_insert(
            Scope::Build,
            ModificationBehavior::Override,
            "PIP_PYTHON",
            venv.join("bin/python"),
        );
    }
    layer.write_env(env)?;
    match &layer.state {
        LayerState::Restored { .. } => {
            log::info(format!("Using cached {shown} {tool_version}"));
            return Ok(());
        }
        LayerState::Empty { cause } => {
            if let EmptyLayerCause::RestoredLayerAction { cause: reasons }
            | EmptyLayerCause::InvalidMetadataAction { cause: reasons } = cause
            {
                log::info(reasons_line(reasons));
            }
        }
    }
    log::info(format!(
        "Installing {shown} {tool_version} for later buildpacks"
    ));
    let index = IndexConfig::read(tool_env);
    let env = tool_env.clone().with_runtime(runtime);
    let python = runtime.join("bin/python3");
    let what = format!("installing {requirement}");
    if matches!(uv, uv::Availability::NotAsked) {
        *uv = match uv::install_uv(context, &index, None)? {
            Some(path) => uv::Availability::Installed(path),
            None => uv::Availability::Unavailable,
        };
    }
    let file = "the output above";
    match uv {
        uv::Availability::Installed(uv) => {
            let uv_env = uv_env(context, &env, &index)?;
            run(
                uv_env
                    .command(&*uv)
                    .args(["venv", "--relocatable", "--allow-existing", "--quiet"])
                    .arg("--python")
                    .arg(&python)
                    .arg(&dir),
                &what,
                file,
            )?;
            run(
                uv_env
                    .command(&*uv)
                    .args(["pip", "install", "--quiet", "--python"])
                    .arg(dir.join("bin/python"))
                    .arg(&requirement)
                    .args(index.uv_args()),
                &what,
                file,
            )?;
        }
        uv::Availability::NotAsked | uv::Availability::Unavailable => {
            run(
                env.command(&python).args(["-m", "venv"]).arg(&dir),
                &what,
                file,
            )?;
            run(
                env.command(dir.join("bin/python")).args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    &requirement,
                ]),
                &what,
                file,
            )?;
        }
    }
    relocate::relocate_venv(&dir).map_err(io_error(&dir))?;
    layer.write_metadata(new_metadata)?;
    Ok(())
}
