//! The buildpack's errors and the one place their user-facing text is written.

use crate::package_manager::PackageManagerError;
use crate::python_constraints::ConstraintError;
use crate::python_version::{RequestedVersion, Unserved, VersionError};
use crate::sources::MirrorError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PythonBuildpackError {
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error(transparent)]
    PackageManager(#[from] PackageManagerError),
    #[error(transparent)]
    Constraints(#[from] ConstraintError),
    #[error("no Python satisfies the request")]
    Unserved(Box<UnservedDetail>),
    #[error("Python archive failed")]
    MirrorArchive(#[from] MirrorArchiveError),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} failed")]
    Command {
        what: String,
        /// The file the user should look at.
        file: String,
        detail: String,
    },
    /// An installer failed on the network (its output says so).
    #[error("{what} failed on the network")]
    InstallerNetwork { what: String, file: String },
    #[error("cannot read {file}: {reason}")]
    Lockfile { file: String, reason: String },
    #[error("{lockfile} is out of date with {manifest}: {detail}")]
    StaleLockfile {
        lockfile: &'static str,
        manifest: &'static str,
        detail: String,
        fix: &'static str,
    },
    /// A lockfile package from a source the buildpack cannot install: refused before any
    /// network use.
    #[error("{file}: cannot install {package} from {source_desc}: {why}")]
    UnsupportedSource {
        file: &'static str,
        package: String,
        /// The source as the lockfile names it (a URL, or its kind and path).
        source_desc: String,
        why: String,
        fix: String,
    },
    #[error(transparent)]
    Input(#[from] slugc_fs::input::InputError),
}

/// Boxed: the largest variant, kept off the happy path's stack.
#[derive(Debug)]
pub struct UnservedDetail {
    pub requested: RequestedVersion,
    pub why: Unserved,
    pub available: Vec<String>,
    pub mirror: String,
    pub mirror_error: Option<MirrorError>,
    /// Host interpreters of the requested line that were not used (an end-of-life line, or
    /// another patch than the one requested), as `3.X.Y at PATH` or a path.
    pub host_unused: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorArchiveError {
    #[error(transparent)]
    Fetch(#[from] MirrorError),
    #[error("SHA-256 mismatch for {url}: SHA256SUMS says {expected}, the download is {actual}")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("cannot unpack {url}: {source}")]
    Unpack { url: String, source: std::io::Error },
    #[error("{url} holds no python/bin/python3 (not an install_only archive)")]
    Layout { url: String },
}

pub fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PythonBuildpackError {
    let path = path.into();
    move |source| PythonBuildpackError::Io { path, source }
}

impl PythonBuildpackError {
    /// Temporary failures (the network) are worth retrying: the engine maps exit 75 to 75.
    pub fn is_temporary(&self) -> bool {
        match self {
            Self::Unserved(detail) => {
                detail.why == Unserved::NotAvailable
                    && detail
                        .mirror_error
                        .as_ref()
                        .is_some_and(MirrorError::is_network)
            }
            Self::MirrorArchive(MirrorArchiveError::Fetch(e)) => e.is_network(),
            Self::InstallerNetwork { .. } => true,
            _ => false,
        }
    }

    /// A malformed, unreadable or hostile version file, lockfile or manifest, or more than
    /// one lockfile: the engine reports these as invalid app input (exit 30), not as a
    /// buildpack failure.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Self::Version(_)
                | Self::Constraints(_)
                | Self::PackageManager(_)
                | Self::Lockfile { .. }
                | Self::StaleLockfile { .. }
                | Self::UnsupportedSource { .. }
                | Self::Input(_)
        )
    }

    /// The user-facing text: one line naming the file, then detail and the fix.
    pub fn user_message(&self) -> String {
        match self {
            Self::Version(e @ VersionError::Malformed { .. }) => format!(
                "error: invalid Python version in {e}\n\
                 Write the version alone, e.g. `3.12` or `3.12.4`, in .python-version."
            ),
            Self::Version(e @ VersionError::RuntimeTxt { .. }) => {
                format!("error: {e}\n{}", e.runtime_txt_fix().unwrap_or_default())
            }
            Self::Version(e) => format!("error: {e}"),
            Self::Constraints(e @ ConstraintError::Conflict { .. }) => {
                format!("error: {e}\n{}", e.detail())
            }
            Self::Constraints(e) => format!("error: {e}"),
            Self::PackageManager(PackageManagerError::Multiple(files)) => format!(
                "error: more than one package manager file in the app: {}\n\
                 Each selects a different installer and the buildpack installs with exactly \
                 one. Keep the one you use and delete the others.",
                files.join(", ")
            ),
            Self::PackageManager(e @ PackageManagerError::ProjectWithoutLock) => format!(
                "error: {e}\n\
                 The buildpack installs what a lockfile or requirements.txt pins, and does not \
                 guess an installer from pyproject.toml. Lock the dependencies and commit the \
                 lockfile: `uv lock` (uv.lock) or `poetry lock` (poetry.lock); or list them in \
                 requirements.txt."
            ),
            Self::PackageManager(e) => format!(
                "error: {e}\nCreate the lockfile with your package manager (`pipenv lock`, \
                 `poetry lock`) and commit it."
            ),
            Self::Unserved(detail) => {
                let UnservedDetail {
                    requested,
                    why,
                    available,
                    mirror,
                    mirror_error,
                    host_unused,
                } = detail.as_ref();
                let what = format!(
                    "Python {} (from {})",
                    if requested.text.is_empty() {
                        "(any)"
                    } else {
                        &requested.text
                    },
                    requested.origin
                );
                let headline = match why {
                    Unserved::EndOfLife => {
                        format!("error: {what} has reached end of life and is not supported")
                    }
                    Unserved::Unknown => format!("error: {what} is not a known Python version"),
                    Unserved::NotAvailable => format!("error: {what} is not available"),
                };
                let mirror_line = match mirror_error {
                    Some(e) => format!("mirror {mirror}: {e}"),
                    None => format!("mirror {mirror}: no matching install_only archive"),
                };
                let host_line = if host_unused.is_empty() {
                    "host interpreters: none matching".to_string()
                } else {
                    let why = match why {
                        Unserved::EndOfLife => "its line is end of life",
                        _ => "not the version requested",
                    };
                    format!(
                        "host interpreters: {} exists but was not used ({why})",
                        host_unused.join(", ")
                    )
                };
                // A line, not a patch: pinning a patch stops security updates.
                let suggestion = available
                    .last()
                    .and_then(|v| v.rsplit_once('.'))
                    .map(|(line, _)| line.to_string())
                    .unwrap_or_else(|| "3.12".to_string());
                format!(
                    "{headline}\n\
                     Tried: {mirror_line}; {host_line}.\n\
                     Available: {}\n\
                     Fix: request one of the available lines in .python-version (e.g. \
                     `{suggestion}`), or set SLUGC_PYTHON_MIRROR to a python-build-standalone \
                     release that has it.",
                    if available.is_empty() {
                        "none".to_string()
                    } else {
                        available.join(", ")
                    },
                )
            }
            Self::MirrorArchive(e) => format!(
                "error: cannot install Python from the mirror: {e}\n\
                 Check SLUGC_PYTHON_MIRROR and its SHA256SUMS, or retry if the network failed."
            ),
            Self::Io { path, source } => {
                format!("error: I/O error on {}: {source}", path.display())
            }
            Self::Command { what, file, detail } => {
                format!("error: {what} failed (see {file})\n{detail}")
            }
            Self::InstallerNetwork { what, file } => format!(
                "error: {what} failed on the network (see {file})\n\
                 The installer could not reach the package index (its output is above). \
                 Check PIP_INDEX_URL / pip.conf and the network; retrying may help."
            ),
            Self::Lockfile { file, reason } => format!(
                "error: cannot read {file}: {reason}\nRegenerate it with its package manager."
            ),
            Self::StaleLockfile {
                lockfile,
                manifest,
                detail,
                fix,
            } => format!("error: {lockfile} is out of date with {manifest}\n{detail}.\n{fix}"),
            Self::UnsupportedSource { fix, .. } => format!("error: {self}\n{fix}"),
            Self::Input(e) => format!(
                "error: {e}\nThe buildpack reads it from the app: make it a regular file in the \
                 app (a symlink may point only inside the app)."
            ),
        }
    }
}

impl From<PythonBuildpackError> for libcnb::Error<PythonBuildpackError> {
    fn from(error: PythonBuildpackError) -> Self {
        Self::BuildpackError(error)
    }
}
