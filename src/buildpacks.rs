//! The registry of built-in buildpacks, compiled into the `slug` binary.
//!
//! The engine runs a built-in by materialising its dir (`buildpack.toml`, `bin/build` → the
//! running `slug` executable, `bin/detect` → `build`); `main` sees it was started as
//! `.../bin/detect` or `.../bin/build` and hands over to libcnb for the buildpack that
//! `$CNB_BUILDPACK_DIR/buildpack.toml` names. Adding a buildpack is one line in [`BUILTINS`].
//!
//! `procfile` is the Procfile buildpack; `package` writes the built-ins as CNB buildpack dirs
//! for `pack` (`slug buildpacks package`).

pub mod package;
pub mod procfile;

use std::path::{Path, PathBuf};

pub struct Builtin {
    pub id: &'static str,
    /// The `buildpack.toml` written when the buildpack is materialised.
    pub descriptor: &'static str,
    run: fn(),
    /// What the buildpack can warn about without a build (see [`warnings_of`]).
    warnings: fn(&Path) -> Vec<slugc_diagnostics::Warning>,
}

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        id: "slugc/python",
        descriptor: slugc_python::BUILDPACK_TOML,
        run: || libcnb::libcnb_runtime(&slugc_python::PythonBuildpack),
        warnings: slugc_python::warnings,
    },
    Builtin {
        id: "slugc/nodejs",
        descriptor: slugc_nodejs::BUILDPACK_TOML,
        run: || libcnb::libcnb_runtime(&slugc_nodejs::NodejsBuildpack),
        warnings: slugc_nodejs::warnings,
    },
    Builtin {
        id: "slugc/procfile",
        descriptor: procfile::BUILDPACK_TOML,
        run: || libcnb::libcnb_runtime(&procfile::ProcfileBuildpack),
        warnings: |_| Vec::new(),
    },
];

/// The default detection order: each language with the Procfile buildpack after it
/// (optional), then the Procfile buildpack alone — as Heroku's CNB builder orders them.
pub const DEFAULT_ORDER: &[&[(&str, bool)]] = &[
    &[("slugc/python", false), ("slugc/procfile", true)],
    &[("slugc/nodejs", false), ("slugc/procfile", true)],
    &[("slugc/procfile", false)],
];

/// The warnings that need no build, for `slug doctor`, from the built-ins among `ids` (a
/// detected group's buildpacks): each buildpack reads only its own files (package.json,
/// requirements.txt, the Procfile) and says nothing of an app it does not build.
pub fn warnings_of(app_dir: &Path, ids: &[&str]) -> Vec<slugc_diagnostics::Warning> {
    BUILTINS
        .iter()
        .filter(|b| ids.contains(&b.id))
        .flat_map(|b| (b.warnings)(app_dir))
        .collect()
}

pub fn find(id: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.id == id)
}

/// True when this process was started as a materialised buildpack's `bin/detect` or
/// `bin/build` (the platform always sets `CNB_BUILDPACK_DIR`).
pub fn started_as_buildpack() -> bool {
    let name = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_owned()));
    matches!(
        name.as_ref().and_then(|n| n.to_str()),
        Some("detect" | "build")
    ) && std::env::var_os("CNB_BUILDPACK_DIR").is_some()
}

#[derive(serde::Deserialize)]
struct DescriptorId {
    buildpack: DescriptorIdInner,
}

#[derive(serde::Deserialize)]
struct DescriptorIdInner {
    id: String,
}

/// Hand over to libcnb for the built-in named by `$CNB_BUILDPACK_DIR/buildpack.toml`. Never
/// returns: libcnb exits with the phase's exit code.
pub fn run_builtin() -> ! {
    let dir = std::env::var_os("CNB_BUILDPACK_DIR").map(PathBuf::from);
    let id = dir
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.join("buildpack.toml")).ok())
        .and_then(|text| toml::from_str::<DescriptorId>(&text).ok())
        .map(|d| d.buildpack.id);
    match id.as_deref().and_then(find) {
        Some(builtin) => {
            set_optional_target_vars();
            (builtin.run)();
            std::process::exit(0)
        }
        None => {
            crate::say!(
                "error: {} does not name a built-in buildpack of this slug binary",
                dir.unwrap_or_default().join("buildpack.toml").display()
            );
            std::process::exit(1)
        }
    }
}

/// The spec makes `CNB_TARGET_DISTRO_NAME` and `CNB_TARGET_DISTRO_VERSION` optional (the
/// lifecycle leaves them out when the base image has no `/etc/os-release`), but libcnb 0.30
/// refuses to run without them (<https://github.com/heroku/libcnb.rs/issues/820>). Under
/// another platform, a missing one is set from this host's `/etc/os-release`, empty when
/// that says nothing; slugc's own platform always sets both.
fn set_optional_target_vars() {
    let host = crate::platform::target::Target::host();
    for (key, value) in [
        ("CNB_TARGET_DISTRO_NAME", host.distro_name),
        ("CNB_TARGET_DISTRO_VERSION", host.distro_version),
    ] {
        if std::env::var_os(key).is_none() {
            // Single-threaded here: libcnb has not started yet.
            std::env::set_var(key, value);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MaterialiseError {
    #[error("unknown built-in buildpack {0:?}")]
    Unknown(String),
    #[error("cannot find the running slug executable: {0}")]
    CurrentExe(std::io::Error),
    #[error("cannot write buildpack dir {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How a materialised buildpack reaches the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinMode {
    /// `bin/build` is a symlink to the running executable (cheap; for the engine's own use).
    Link,
    /// `bin/build` is a copy of the executable (self-contained; for `pack`).
    Copy,
}

/// Write `<dir>` as a CNB buildpack dir for the built-in `id`: `buildpack.toml`, `bin/build`
/// (the `slug` executable) and `bin/detect` (a relative symlink to `build`).
pub fn materialise(id: &str, dir: &Path, mode: BinMode) -> Result<PathBuf, MaterialiseError> {
    let builtin = find(id).ok_or_else(|| MaterialiseError::Unknown(id.to_string()))?;
    let exe = std::env::current_exe().map_err(MaterialiseError::CurrentExe)?;
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MaterialiseError::Write { path, source }
    };
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(write_err(&bin))?;
    let toml_path = dir.join("buildpack.toml");
    std::fs::write(&toml_path, builtin.descriptor).map_err(write_err(&toml_path))?;
    let build = bin.join("build");
    let detect = bin.join("detect");
    for p in [&build, &detect] {
        if p.symlink_metadata().is_ok() {
            std::fs::remove_file(p).map_err(write_err(p))?;
        }
    }
    match mode {
        BinMode::Link => std::os::unix::fs::symlink(&exe, &build).map_err(write_err(&build))?,
        BinMode::Copy => {
            std::fs::copy(&exe, &build).map_err(write_err(&build))?;
        }
    }
    std::os::unix::fs::symlink("build", &detect).map_err(write_err(&detect))?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use slugc_diagnostics::Rule;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name)
    }

    /// `slug doctor`'s source: the same warnings as the build, without building.
    #[test]
    fn warnings_without_a_build_come_from_each_buildpack() {
        let every: Vec<&str> = BUILTINS.iter().map(|b| b.id).collect();
        let rules = |name: &str| -> Vec<Rule> {
            warnings_of(&fixture(name), &every)
                .iter()
                .map(|w| w.rule)
                .collect()
        };
        assert_eq!(rules("node-warn-dev-binary-start"), [Rule::PrunedDevBinary]);
        assert_eq!(rules("python-gunicorn-20"), [Rule::PythonKnownIssue]);
        // tsc runs in the build script, not at start; gunicorn 23 needs no pkg_resources.
        assert!(rules("node-typescript").is_empty());
        assert!(rules("python-flask").is_empty());
        assert!(rules("procfile-only").is_empty());
    }
}
