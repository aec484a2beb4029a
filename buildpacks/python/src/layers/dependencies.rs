//! The dependencies layer (build + launch + cache): a relocatable virtual environment holding
//! the app's packages, installed by uv's pip interface (or pip when uv cannot be had).
//! Reused untouched, without running any installer, when nothing that affects it changed.

use crate::errors::{io_error, PythonBuildpackError};
use crate::index_config::IndexConfig;
use crate::layers::{reasons_line, uv};
use crate::package_manager::PackageManager;
use crate::python_version::PythonVersion;
use crate::tool_env::ToolEnv;
use crate::{bytecode, fsutil, lockfiles, log, relocate, PythonBuildpack};
use libcnb::build::BuildContext;
use libcnb::data::layer_name;
use libcnb::layer::{
    CachedLayerDefinition, EmptyLayerCause, InvalidMetadataAction, LayerState, RestoredLayerAction,
};
use libcnb::layer_env::{LayerEnv, ModificationBehavior, Scope};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependenciesLayerMetadata {
    pub python_version: String,
    pub arch: String,
    pub distro_name: String,
    pub distro_version: String,
    pub package_manager: String,
    /// `uv <version>` or `pip`.
    pub installer: String,
    /// SHA-256 of each input file (the lockfile or requirements files) by app-relative path.
    pub inputs: BTreeMap<String, String>,
}

impl DependenciesLayerMetadata {
    fn reasons(&self, new: &Self) -> Vec<String> {
        let Self {
            python_version,
            arch,
            distro_name,
            distro_version,
            package_manager,
            installer,
            inputs,
        } = self;
        let mut reasons = Vec::new();
        if python_version != &new.python_version {
            reasons.push(format!("Python {python_version} → {}", new.python_version));
        }
        if arch != &new.arch {
            reasons.push(format!("architecture {arch} → {}", new.arch));
        }
        if (distro_name, distro_version) != (&new.distro_name, &new.distro_version) {
            reasons.push(format!(
                "distro {distro_name} {distro_version} → {} {}",
                new.distro_name, new.distro_version
            ));
        }
        if package_manager != &new.package_manager {
            reasons.push(format!(
                "package manager {package_manager} → {}",
                new.package_manager
            ));
        }
        if installer != &new.installer {
            reasons.push(format!("installer {installer} → {}", new.installer));
        }
        for (file, digest) in &new.inputs {
            match inputs.get(file) {
                Some(old) if old == digest => {}
                Some(_) => reasons.push(format!("{file} changed")),
                None => reasons.push(format!("{file} added")),
            }
        }
        for file in inputs.keys().filter(|f| !new.inputs.contains_key(*f)) {
            reasons.push(format!("{file} removed"));
        }
        reasons
    }
}

pub struct Installed {
    /// The venv dir.
    pub venv: PathBuf,
    /// The bytecode of freshly installed packages, being written in the background (so that
    /// it overlaps `collectstatic`); `None` for a reused venv. Wait for it before the build
    /// ends.
    pub bytecode: Option<bytecode::Pending>,
    /// The uv this build installed with, if it tried.
    pub uv: uv::Availability,
}

/// Install (or reuse) the app's dependencies into the `venv` layer.
pub fn install_dependencies(
    context: &BuildContext<PythonBuildpack>,
    package_manager: PackageManager,
    version: &PythonVersion,
    runtime: &Path,
    tool_env: &ToolEnv,
    uv_prefetch: Option<uv::Prefetch>,
) -> Result<Installed, libcnb::Error<PythonBuildpackError>> {
    let app_dir = &context.app_dir;
    let inputs = input_digests(app_dir, package_manager)?;
    let mut new_metadata = DependenciesLayerMetadata {
        python_version: version.to_string(),
        arch: context.target.arch.clone(),
        distro_name: context.target.distro_name.clone(),
        distro_version: context.target.distro_version.clone(),
        package_manager: package_manager.file().to_string(),
        installer: format!("uv {}", uv::UV_VERSION),
        inputs,
    };
    let layer = context.cached_layer(
        layer_name!("venv"),
        CachedLayerDefinition {
            build: true,
            launch: true,
            invalid_metadata_action: &|_| {
                (
                    InvalidMetadataAction::DeleteLayer,
                    vec!["its metadata is from an older buildpack".to_string()],
                )
            },
            restored_layer_action: &|old: &DependenciesLayerMetadata, _| {
                let reasons = old.reasons(&new_metadata);
                if reasons.is_empty() {
                    (RestoredLayerAction::KeepLayer, reasons)
                } else {
                    (RestoredLayerAction::DeleteLayer, reasons)
                }
            },
        },
    )?;
    let venv = layer.path();
    // Written on every build, restored or not: a restored env file would hold the previous
    // build's root, which the engine cannot map to `$HOME`.
    let mut env = LayerEnv::new().chainable_insert(
        Scope::All,
        ModificationBehavior::Override,
        "VIRTUAL_ENV",
        &venv,
    );
    if package_manager == PackageManager::Uv {
        // A later buildpack's `uv sync`/`uv run` works on this venv, not a new `.venv`.
        env = env.chainable_insert(
            Scope::Build,
            ModificationBehavior::Override,
            "UV_PROJECT_ENVIRONMENT",
            &venv,
        );
    }
    layer.write_env(env)?;
    match &layer.state {
        LayerState::Restored { .. } => {
            log::header(format!(
                "Dependencies unchanged ({package_manager}): using the cached virtual environment"
            ));
            uv::keep_restored(context)?;
            return Ok(Installed {
                venv,
                bytecode: None,
                uv: uv::Availability::NotAsked,
            });
        }
        LayerState::Empty { cause } => {
            log::header(format!("Installing dependencies from {package_manager}"));
            if let EmptyLayerCause::RestoredLayerAction { cause: reasons }
            | EmptyLayerCause::InvalidMetadataAction { cause: reasons } = cause
            {
                log::info(reasons_line(reasons));
            }
        }
    }

    let index = IndexConfig::read(tool_env);
    let uv = uv::install_uv(context, &index, uv_prefetch)?;
    let env = tool_env.clone().with_runtime(runtime);
    let python = runtime.join("bin/python3");
    let minor = version.minor_string();
    match &uv {
        Some(uv) => {
            let uv_env = uv_env(context, &env, &index)?;
            run(
                uv_env
                    .command(uv)
                    .args(["venv", "--relocatable", "--allow-existing", "--quiet"])
                    .arg("--python")
                    .arg(&python)
                    .arg(&venv),
                "creating the virtual environment",
                package_manager.file(),
            )?;
            install_with_uv(uv, &uv_env, &index, package_manager, app_dir, &venv)?;
        }
        None => {
            new_metadata.installer = "pip".to_string();
            if package_manager == PackageManager::Uv {
                return Err(PythonBuildpackError::Command {
                    what: "installing from uv.lock".to_string(),
                    file: "uv.lock".to_string(),
                    detail: "uv.lock needs uv, which could not be installed (see above)."
                        .to_string(),
                }
                .into());
            }
            run(
                env.command(&python).args(["-m", "venv"]).arg(&venv),
                "creating the virtual environment",
                package_manager.file(),
            )?;
            install_with_pip(&env, package_manager, app_dir, &venv)?;
        }
    }
    relocate::relocate_venv(&venv).map_err(io_error(&venv))?;
    let site = venv
        .join("lib")
        .join(format!("python{minor}/site-packages"));
    relocate::relocate_app_distributions(&site, app_dir).map_err(io_error(&site))?;
    let pending = bytecode::spawn(
        &venv.join("bin/python"),
        &site,
        &site,
        &format!("/app/.layers/slugc_python/venv/lib/python{minor}/site-packages"),
        &env,
    )?;
    layer.write_metadata(new_metadata)?;
    Ok(Installed {
        venv,
        bytecode: Some(pending),
        uv: match uv {
            Some(path) => uv::Availability::Installed(path),
            None => uv::Availability::Unavailable,
        },
    })
}

/// The env uv runs with: never downloads Pythons (it would try GitHub), caches in a cached
/// layer, and uses pip's CA bundle and timeout. Packages are hard-linked from its cache (both
/// layers sit in one dir, so one filesystem): a cold build then writes each file once instead
/// of twice, which on a disk busy with writeback saved 2-3 s of the install. Nothing modifies
/// an installed file in place (bytecode goes to new `__pycache__` files; scripts uv
/// generates itself are not linked), so the cache's copies stay as downloaded.
pub(crate) fn uv_env(
    context: &BuildContext<PythonBuildpack>,
    env: &ToolEnv,
    index: &IndexConfig,
) -> Result<ToolEnv, libcnb::Error<PythonBuildpackError>> {
    let cache = uv::uv_cache_dir(context)?;
    let mut env = env.clone();
    env.set("UV_PYTHON_DOWNLOADS", "never");
    env.set("UV_CACHE_DIR", cache);
    env.set("UV_LINK_MODE", "hardlink");
    env.set("UV_NO_PROGRESS", "1");
    for (k, v) in index.uv_env() {
        env.set(k, v);
    }
    Ok(env)
}

fn install_with_uv(
    uv: &Path,
    env: &ToolEnv,
    index: &IndexConfig,
    package_manager: PackageManager,
    app_dir: &Path,
    venv: &Path,
) -> Result<(), PythonBuildpackError> {
    let file = package_manager.file();
    let mut command = env.command(uv);
    command.current_dir(app_dir);
    match package_manager {
        PackageManager::Uv => {
            // The main dependencies exactly as locked. A package (one with a build system) is
            // installed too, as `uv sync` does, so that a `src/` layout imports at run time;
            // non-editable, so that no `.pth` file points at the build dir. A project that is
            // not a package runs from the app dir and is not installed.
            // <https://docs.astral.sh/uv/concepts/projects/config/#project-packaging>
            command
                .args(["sync", "--locked", "--no-default-groups"])
                .arg(if is_uv_package(app_dir) {
                    "--no-editable"
                } else {
                    "--no-install-project"
                })
                .env("UV_PROJECT_ENVIRONMENT", venv);
        }
        PackageManager::Requirements => {
            if let Some(text) = vcs_rewritten_requirements(app_dir)? {
                return run_with_stdin(
                    command
                        .args(["pip", "install", "-r", "-"])
                        .args(index.uv_args())
                        .arg("--python")
                        .arg(venv.join("bin/python")),
                    text,
                    file,
                );
            }
            command.args(["pip", "install", "-r", "requirements.txt"]);
        }
        PackageManager::Poetry | PackageManager::Pipenv => {
            return install_locked(package_manager, app_dir, |hashes| {
                let mut command = env.command(uv);
                command
                    .current_dir(app_dir)
                    .args(["pip", "install", "--no-deps"])
                    .args(hashes.then_some("--require-hashes"))
                    .args(["-r", "-"])
                    .args(index.uv_args())
                    .arg("--python")
                    .arg(venv.join("bin/python"));
                command
            });
        }
    }
    if package_manager != PackageManager::Uv {
        command.arg("--python").arg(venv.join("bin/python"));
    }
    run(
        command.args(index.uv_args()),
        &format!("installing {file}"),
        file,
    )
}

/// uv's rule: `tool.uv.package` when set, else whether `[build-system]` is declared.
pub fn is_uv_package(app_dir: &Path) -> bool {
    let Ok(Some(text)) =
        slugc_fs::input::read_app_text(app_dir, "pyproject.toml", slugc_fs::input::MANIFEST_CAP)
    else {
        return false;
    };
    let Ok(pyproject) = toml::from_str::<toml::Table>(&text) else {
        return false;
    };
    match pyproject
        .get("tool")
        .and_then(|t| t.get("uv"))
        .and_then(|u| u.get("package"))
        .and_then(toml::Value::as_bool)
    {
        Some(package) => package,
        None => pyproject.contains_key("build-system"),
    }
}

fn install_with_pip(
    env: &ToolEnv,
    package_manager: PackageManager,
    app_dir: &Path,
    venv: &Path,
) -> Result<(), PythonBuildpackError> {
    let file = package_manager.file();
    // pip reads pip.conf and PIP_* itself. `--no-compile`: its bytecode is not reproducible.
    let mut command = env.command(venv.join("bin/python"));
    command
        .args([
            "-m",
            "pip",
            "install",
            "--no-compile",
            "--disable-pip-version-check",
        ])
        .current_dir(app_dir);
    match package_manager {
        PackageManager::Requirements => match vcs_rewritten_requirements(app_dir)? {
            Some(text) => run_with_stdin(command.args(["-r", "/dev/stdin"]), text, file),
            None => run(
                command.args(["-r", "requirements.txt"]),
                &format!("installing {file}"),
                file,
            ),
        },
        _ => install_locked(package_manager, app_dir, |hashes| {
            let mut command = env.command(venv.join("bin/python"));
            command
                .args(["-m", "pip", "install", "--no-compile"])
                .args(["--disable-pip-version-check", "--no-deps"])
                .args(hashes.then_some("--require-hashes"))
                .args(["-r", "/dev/stdin"])
                .current_dir(app_dir);
            command
        }),
    }
}

/// A lockfile's packages, `--no-deps` (the lock lists every one): the hashed lines with
/// `--require-hashes`, then the others (git checkouts) in a second run of the installer.
fn install_locked(
    package_manager: PackageManager,
    app_dir: &Path,
    installer: impl Fn(bool) -> Command,
) -> Result<(), PythonBuildpackError> {
    let (hashed, unhashed) =
        lockfiles::split_by_hashes(&locked_requirements(package_manager, app_dir)?);
    for (lines, hashes) in [(hashed, true), (unhashed, false)] {
        if !lines.is_empty() {
            run_with_stdin(&mut installer(hashes), lines, package_manager.file())?;
        }
    }
    Ok(())
}

/// requirements.txt with its editable VCS requirements made plain (`requirements_txt`), when
/// it has any; its `-r`/`-c` lines then resolve from the app dir, the installer's working dir.
fn vcs_rewritten_requirements(app_dir: &Path) -> Result<Option<String>, PythonBuildpackError> {
    let text =
        slugc_fs::input::read_app_text(app_dir, "requirements.txt", slugc_fs::input::MANIFEST_CAP)?
            .unwrap_or_default();
    Ok(crate::requirements_txt::with_vcs_editables_installed(&text))
}

fn locked_requirements(
    package_manager: PackageManager,
    app_dir: &Path,
) -> Result<String, PythonBuildpackError> {
    let text = lockfiles::read(app_dir, package_manager)?;
    match package_manager {
        PackageManager::Poetry => lockfiles::poetry_requirements(&text),
        _ => lockfiles::pipenv_requirements(&text),
    }
}

pub(crate) fn run(
    command: &mut Command,
    what: &str,
    file: &str,
) -> Result<(), PythonBuildpackError> {
    run_installer(command.stdin(Stdio::null()), None, what, file)
}

fn run_with_stdin(
    command: &mut Command,
    input: String,
    file: &str,
) -> Result<(), PythonBuildpackError> {
    run_installer(
        command.stdin(Stdio::piped()),
        Some(input),
        &format!("installing {file}"),
        file,
    )
}

/// Run an installer, its output passing through to the build log. Its stderr is also kept
/// (the last [`STDERR_KEPT`] bytes) to tell a network failure (exit 75, worth retrying) from
/// any other (exit 20).
fn run_installer(
    command: &mut Command,
    input: Option<String>,
    what: &str,
    file: &str,
) -> Result<(), PythonBuildpackError> {
    use std::io::{BufRead, Write};
    let fail = |detail: String| PythonBuildpackError::Command {
        what: what.to_string(),
        file: file.to_string(),
        detail,
    };
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let tee = child.stderr.take().map(|stderr| {
        std::thread::spawn(move || {
            let mut kept: Vec<u8> = Vec::new();
            let mut reader = std::io::BufReader::new(stderr);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let _ = std::io::stderr().write_all(&line);
                kept.extend_from_slice(&line);
                if kept.len() > 2 * STDERR_KEPT {
                    kept.drain(..kept.len() - STDERR_KEPT);
                }
                line.clear();
            }
            String::from_utf8_lossy(&kept).into_owned()
        })
    });
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let status = child.wait().map_err(|e| fail(e.to_string()))?;
    let stderr = tee.and_then(|t| t.join().ok()).unwrap_or_default();
    if status.success() {
        Ok(())
    } else if file == "uv.lock" && stderr.contains(UV_STALE_LOCK) {
        // `uv sync --locked` is the freshness check of a uv.lock (uv alone knows how it
        // would resolve): a stale lock is the app's to fix, like a stale poetry.lock.
        Err(PythonBuildpackError::StaleLockfile {
            lockfile: "uv.lock",
            manifest: "pyproject.toml",
            detail: "pyproject.toml changed since uv.lock was last generated (`uv sync \
                     --locked` says so above)"
                .to_string(),
            fix: "Run `uv lock` to update uv.lock, and commit it.",
        })
    } else if is_network_failure(&stderr) {
        Err(PythonBuildpackError::InstallerNetwork {
            what: what.to_string(),
            file: file.to_string(),
        })
    } else {
        Err(fail(format!(
            "the installer exited with {status}; its output is above."
        )))
    }
}

/// uv's words for a `uv.lock` that does not match its project
/// (<https://docs.astral.sh/uv/concepts/projects/sync/#checking-if-the-lockfile-is-up-to-date>).
const UV_STALE_LOCK: &str = "needs to be updated, but `--locked` was provided";

/// How much of an installer's stderr is kept for [`is_network_failure`].
const STDERR_KEPT: usize = 64 * 1024;

/// uv's and pip's words for a request that never got an answer (refused, unresolvable,
/// unreachable, timed out), as opposed to an index that answered "no such package".
fn is_network_failure(stderr: &str) -> bool {
    const MARKERS: &[&str] = &[
        // uv (reqwest/hyper)
        "error sending request for url",
        "tcp connect error",
        "dns error",
        "failed to lookup address",
        "operation timed out",
        "Connection refused",
        "Connection reset",
        "Network is unreachable",
        // pip (urllib3)
        "NewConnectionError",
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "ReadTimeoutError",
        "ConnectTimeoutError",
    ];
    MARKERS.iter().any(|m| stderr.contains(m))
}

/// The files whose content decides what gets installed.
fn input_digests(
    app_dir: &Path,
    package_manager: PackageManager,
) -> Result<BTreeMap<String, String>, PythonBuildpackError> {
    let mut files = vec![package_manager.file().to_string()];
    match package_manager {
        PackageManager::Uv => files.push("pyproject.toml".to_string()),
        PackageManager::Requirements => {
            included_requirements(app_dir, Path::new("requirements.txt"), &mut files)
        }
        PackageManager::Poetry | PackageManager::Pipenv => {}
    }
    let mut digests = BTreeMap::new();
    // An installed package is a copy of the app's files: any change to them reinstalls it.
    if package_manager == PackageManager::Uv && is_uv_package(app_dir) {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        tree_digest(app_dir, Path::new(""), &mut hasher).map_err(io_error(app_dir))?;
        digests.insert(
            "the project's files".to_string(),
            slug_format::hex(&hasher.finalize()),
        );
    }
    for file in files {
        // Included files that leave the app or are not files are not the app's: pip reports
        // them itself.
        if let Ok(Some(bytes)) =
            slugc_fs::input::read_app_file(app_dir, &file, slugc_fs::input::LOCKFILE_CAP)
        {
            digests.insert(file, fsutil::sha256_bytes(&bytes));
        }
    }
    Ok(digests)
}

/// Every path under `rel` (sorted; version control, virtual environment, bytecode and layer
/// dirs left out) with its kind and content or link target.
fn tree_digest(root: &Path, rel: &Path, hasher: &mut sha2::Sha256) -> std::io::Result<()> {
    use sha2::Digest;
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for name in entries {
        // `.layers` holds the buildpacks' layers (this venv among them) during the build.
        if [".layers", ".git", ".hg", ".svn", ".venv", "__pycache__"]
            .iter()
            .any(|skip| name == *skip)
        {
            continue;
        }
        let rel = rel.join(&name);
        let path = root.join(&rel);
        let meta = path.symlink_metadata()?;
        hasher.update(rel.as_os_str().as_encoded_bytes());
        if meta.is_symlink() {
            hasher.update(b"\0link\0");
            hasher.update(std::fs::read_link(&path)?.as_os_str().as_encoded_bytes());
        } else if meta.is_dir() {
            hasher.update(b"\0dir\0");
            tree_digest(root, &rel, hasher)?;
        } else if meta.is_file() {
            hasher.update(b"\0file\0");
            hasher.update(meta.len().to_le_bytes());
            std::io::copy(&mut std::fs::File::open(&path)?, hasher)?;
        }
        hasher.update(b"\0");
    }
    Ok(())
}

/// Files pulled in by `-r`/`-c` lines, recursively, as app-relative paths.
fn included_requirements(app_dir: &Path, file: &Path, found: &mut Vec<String>) {
    let Ok(Some(text)) = slugc_fs::input::read_app_text(
        app_dir,
        &file.to_string_lossy(),
        slugc_fs::input::MANIFEST_CAP,
    ) else {
        return;
    };
    for line in text.lines() {
        let line = line.trim();
        let target = ["-r", "--requirement", "-c", "--constraint"]
            .iter()
            .find_map(|flag| line.strip_prefix(flag))
            .map(|rest| rest.trim_start_matches('=').trim());
        let Some(target) = target.filter(|t| !t.is_empty()) else {
            continue;
        };
        let rel = file.parent().unwrap_or(Path::new("")).join(target);
        let name = rel.to_string_lossy().into_owned();
        if !found.contains(&name) {
            found.push(name);
            included_requirements(app_dir, &rel, found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_failures_are_told_from_missing_packages() {
        assert!(is_network_failure(
            "error: Failed to fetch: `http://127.0.0.1:9/simple/flask/`\n  Caused by: Request failed after 3 retries\n  Caused by: error sending request for url (http://127.0.0.1:9/simple/flask/)\n  Caused by: client error (Connect)\n  Caused by: tcp connect error: Connection refused (os error 111)"
        ));
        assert!(is_network_failure("WARNING: Retrying (Retry(total=4)) after connection broken by 'NewConnectionError(...)'"));
        assert!(!is_network_failure(
            "  × No solution found when resolving dependencies:\n  ╰─▶ Because nope was not found in the package registry"
        ));
    }

    fn metadata(version: &str, req: &str) -> DependenciesLayerMetadata {
        DependenciesLayerMetadata {
            python_version: version.to_string(),
            arch: "amd64".to_string(),
            distro_name: "debian".to_string(),
            distro_version: "12".to_string(),
            package_manager: "requirements.txt".to_string(),
            installer: "uv 0.13.9".to_string(),
            inputs: [("requirements.txt".to_string(), req.to_string())].into(),
        }
    }

    #[test]
    fn every_reason_is_listed() {
        assert!(metadata("3.12.1", "a")
            .reasons(&metadata("3.12.1", "a"))
            .is_empty());
        assert_eq!(
            metadata("3.12.1", "a").reasons(&metadata("3.12.4", "b")),
            ["Python 3.12.1 → 3.12.4", "requirements.txt changed"]
        );
    }

    #[test]
    fn included_files_are_inputs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("requirements.txt"), "-r base.txt\nflask\n").unwrap();
        std::fs::write(dir.path().join("base.txt"), "-c constraints.txt\n").unwrap();
        std::fs::write(dir.path().join("constraints.txt"), "").unwrap();
        let digests = input_digests(dir.path(), PackageManager::Requirements).unwrap();
        assert_eq!(
            digests.keys().collect::<Vec<_>>(),
            ["base.txt", "constraints.txt", "requirements.txt"]
        );
    }
}
