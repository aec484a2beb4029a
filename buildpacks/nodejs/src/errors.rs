//! The buildpack's error type and the one place where each error's user-facing text lives:
//! a first line saying what failed and in which file, then the detail, then the fix.

use crate::node_version::NodeVersionError;
use crate::package_json::PackageJsonError;
use crate::package_manager::{LockfileError, PackageManagerError};
use crate::project_settings::ProjectSettingsError;
use crate::registry::RegistryError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NodejsBuildpackError {
    #[error(transparent)]
    PackageJson(#[from] PackageJsonError),
    #[error(transparent)]
    NodeVersion(#[from] NodeVersionError),
    #[error(transparent)]
    PackageManager(#[from] PackageManagerError),
    #[error(transparent)]
    Lockfile(#[from] LockfileError),
    #[error(transparent)]
    ProjectSettings(#[from] ProjectSettingsError),
    #[error("{what}: {source}")]
    Registry { what: String, source: RegistryError },
    #[error("{} for {tool} in package.json matches no version of the registry package {package}; nearest available: {}", slugc_fs::input::quote(range), nearest.join(", "))]
    ToolVersion {
        tool: &'static str,
        package: &'static str,
        range: String,
        nearest: Vec<String>,
    },
    #[error("the registry's {package}@{version} tarball holds no bin/node: this Node.js release cannot be installed")]
    NodeBinaryMissing {
        package: &'static str,
        version: String,
    },
    #[error("cannot keep the Node.js download's blocks of bin/node in the runtime layer: {0}")]
    KeepBlocks(slug_format::reuse::ReuseError),
    #[error("Node.js has no official Linux build for the architecture {0:?}")]
    UnsupportedArch(String),
    #[error("{what} ({}): {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {step} failed: `{}` {status}", slugc_fs::input::clip(command))]
    Install {
        step: String,
        command: String,
        status: String,
    },
    #[error("the {step} failed: `{}` {status}", slugc_fs::input::clip(command))]
    Script {
        step: String,
        command: String,
        status: String,
    },
}

impl NodejsBuildpackError {
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| NodejsBuildpackError::Io { what, path, source }
    }

    pub fn registry(what: impl Into<String>) -> impl FnOnce(RegistryError) -> Self {
        let what = what.into();
        move |source| NodejsBuildpackError::Registry { what, source }
    }

    /// Network trouble is worth a retry: the engine maps exit 75 to its own exit 75.
    pub fn is_temporary(&self) -> bool {
        matches!(self, NodejsBuildpackError::Registry { source, .. } if source.is_temporary())
    }

    /// A malformed or contradictory manifest in the app (`package.json`, lockfiles): the
    /// engine reports these as invalid app input (exit 30), not as a buildpack failure.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            NodejsBuildpackError::PackageJson(_)
                | NodejsBuildpackError::PackageManager(_)
                | NodejsBuildpackError::Lockfile(_)
                | NodejsBuildpackError::ProjectSettings(_)
                | NodejsBuildpackError::NodeVersion(
                    NodeVersionError::InvalidRange { .. } | NodeVersionError::EndOfLife { .. }
                )
        )
    }

    /// What the user should do about it.
    fn fix(&self) -> &'static str {
        use NodejsBuildpackError as E;
        match self {
            E::PackageJson(PackageJsonError::Parse { .. }) => {
                "Fix the syntax at that position; `node -e 'require(\"./package.json\")'` shows the same error locally."
            }
            E::PackageJson(PackageJsonError::Read { .. }) => {
                "Make package.json a regular file at the root of the app (a symlink may point only inside the app)."
            }
            E::Lockfile(LockfileError::Input(_)) => {
                "Make the lockfile a regular file in the app (a symlink may point only inside the app)."
            }
            E::Lockfile(LockfileError::Corrupt { .. }) => {
                "Regenerate the lockfile with its package manager (`npm install`) and commit it."
            }
            E::NodeVersion(NodeVersionError::InvalidRange { .. }) => {
                "Set engines.node in package.json to a semver range such as \"22.x\" or \">=20 <23\"."
            }
            E::NodeVersion(NodeVersionError::EndOfLife { .. }) => {
                "Set engines.node in package.json to one of the supported lines listed, e.g. \"24.x\", and test the app on it."
            }
            E::NodeVersion(_) => {
                "Set engines.node in package.json to a range that includes one of the versions listed, e.g. \"22.x\"."
            }
            E::PackageManager(PackageManagerError::TwoLockfiles(_)) => {
                "Keep the lockfile of the package manager you use and delete the other one(s), then commit."
            }
            E::PackageManager(PackageManagerError::Mismatch { .. }) => {
                "Make packageManager in package.json name the tool that wrote the lockfile, or remove the field."
            }
            E::PackageManager(_) => {
                "Write packageManager as \"<npm|yarn|pnpm>@<exact version>\" and engines.<tool> as a semver range."
            }
            E::Registry { source, .. } if source.is_temporary() => {
                "Check the network and the registry setting (npm_config_registry, .npmrc), then build again."
            }
            E::Registry { .. } => {
                "Check the registry setting (npm_config_registry, .npmrc) and its credentials."
            }
            E::ToolVersion { .. } => {
                "Change packageManager or engines in package.json to a version that exists."
            }
            E::KeepBlocks(_) => "Check that the build's disk has room and is writable, then build again.",
            E::NodeBinaryMissing { .. } => {
                "Set engines.node in package.json to a range that picks another release, e.g. \"24.x\"."
            }
            E::ProjectSettings(ProjectSettingsError::Read(_)) => {
                "Make project.toml a regular file in the app (a symlink may point only inside the app)."
            }
            E::ProjectSettings(ProjectSettingsError::Invalid(_)) => {
                "The table takes `actions.prune_dev_dependencies = true|false` only."
            }
            E::UnsupportedArch(_) => "Build on linux/amd64 or linux/arm64.",
            E::Io { .. } => "Check free disk space and permissions in the build and cache dirs.",
            E::Install { step, .. } if step == crate::toolchain::PRUNE_STEP => {
                "Its output is above. The install and the build succeeded; the prune runs after them, so reproduce it with the same command after a full install and build (or keep devDependencies with NPM_CONFIG_PRODUCTION=false)."
            }
            E::Install { .. } => {
                "Its output is above. Check that the lockfile is in sync with package.json (run the same command locally) and that the registry is reachable."
            }
            E::Script { .. } => {
                "Its output is above. Fix the script in package.json (reproduce it locally with the same command)."
            }
        }
    }
}

impl From<NodejsBuildpackError> for libcnb::Error<NodejsBuildpackError> {
    fn from(value: NodejsBuildpackError) -> Self {
        libcnb::Error::BuildpackError(value)
    }
}

/// Print the error for the user, then exit 75 for network trouble and 1 otherwise.
pub fn on_error(error: libcnb::Error<NodejsBuildpackError>) -> ! {
    match &error {
        libcnb::Error::BuildpackError(e) => {
            // The first line says what and where: the engine shows it as its own error line.
            eprintln!("error: {}", slugc_fs::redact::redact(&e.to_string()));
            eprintln!("{}", e.fix());
            if e.is_temporary() {
                std::process::exit(75);
            }
            if e.is_invalid_input() {
                std::process::exit(30);
            }
        }
        other => eprintln!(
            "error: the Node.js buildpack failed: {}",
            slugc_fs::redact::redact(&other.to_string())
        ),
    }
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_network_errors_are_temporary() {
        let network = NodejsBuildpackError::Registry {
            what: "fetching".into(),
            source: RegistryError::Network {
                url: "u".into(),
                message: "m".into(),
            },
        };
        assert!(network.is_temporary());
        let status = NodejsBuildpackError::Registry {
            what: "fetching".into(),
            source: RegistryError::Status {
                url: "u".into(),
                status: 404,
            },
        };
        assert!(!status.is_temporary());
        let two = NodejsBuildpackError::from(PackageManagerError::TwoLockfiles(vec!["a", "b"]));
        assert!(two.fix().contains("delete the other"));
    }
}
