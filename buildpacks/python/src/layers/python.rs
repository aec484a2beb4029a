//! The runtime layer: a CPython install (`bin/python3`, `lib/python3.X/`), from a mirror
//! archive or copied from a host interpreter, with deterministic bytecode.

use crate::errors::{io_error, MirrorArchiveError, PythonBuildpackError};
use crate::layers::reasons_line;
use crate::log;
use crate::python_version::PythonVersion;
use crate::sources::{self, Candidate, HostPython, Source};
use crate::tool_env::ToolEnv;
use crate::trim;
use crate::PythonBuildpack;
use libcnb::build::BuildContext;
use libcnb::data::layer_name;
use libcnb::layer::{
    CachedLayerDefinition, EmptyLayerCause, InvalidMetadataAction, LayerState, RestoredLayerAction,
};
use libcnb::layer_env::{LayerEnv, ModificationBehavior, Scope};
use serde::{Deserialize, Serialize};
use slug_format::precompress::Precompression;
use slugc_fs::Symlinks;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What invalidates the runtime layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonLayerMetadata {
    pub python_version: String,
    pub arch: String,
    pub distro_name: String,
    pub distro_version: String,
    /// The archive (file name and SHA-256) or host interpreter path it came from.
    pub source: String,
    /// What the buildpack leaves out of a runtime (`RUNTIME_LAYOUT`): a cached runtime laid
    /// out by an older rule is rebuilt.
    pub layout: u32,
}

/// Bumped whenever what goes into the runtime layer changes. 2: test suites, IDLE and debug
/// information left out; bytecode reused from the interpreter's own.
pub const RUNTIME_LAYOUT: u32 = 2;

impl PythonLayerMetadata {
    fn new(context: &BuildContext<PythonBuildpack>, candidate: &Candidate) -> Self {
        Self {
            python_version: candidate.version.to_string(),
            arch: context.target.arch.clone(),
            distro_name: context.target.distro_name.clone(),
            distro_version: context.target.distro_version.clone(),
            source: match &candidate.source {
                Source::Mirror {
                    file_name, sha256, ..
                } => format!("mirror {file_name} sha256:{sha256}"),
                Source::Host(h) => format!("host {}", h.executable.display()),
            },
            layout: RUNTIME_LAYOUT,
        }
    }

    /// Every difference, as the log shows it. Destructured so that a new field cannot be
    /// forgotten here.
    fn reasons(&self, new: &Self) -> Vec<String> {
        let Self {
            python_version,
            arch,
            distro_name,
            distro_version,
            source,
            layout,
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
        if source != &new.source && python_version == &new.python_version {
            reasons.push(format!("Python source {source} → {}", new.source));
        }
        if layout != &new.layout {
            reasons.push(format!("runtime layout {layout} → {}", new.layout));
        }
        reasons
    }
}

/// Install (or reuse) the runtime; returns the layer dir and, when it was installed now, its
/// early compression (to be waited for before the build ends).
pub fn install_python(
    context: &BuildContext<PythonBuildpack>,
    candidate: &Candidate,
    tool_env: &ToolEnv,
) -> Result<(PathBuf, Precompression), libcnb::Error<PythonBuildpackError>> {
    let new_metadata = PythonLayerMetadata::new(context, candidate);
    let layer = context.cached_layer(
        layer_name!("runtime"),
        CachedLayerDefinition {
            build: true,
            launch: true,
            invalid_metadata_action: &|_| {
                (
                    InvalidMetadataAction::DeleteLayer,
                    vec!["its metadata is from an older buildpack".to_string()],
                )
            },
            restored_layer_action: &|old: &PythonLayerMetadata, _| {
                let reasons = old.reasons(&new_metadata);
                if reasons.is_empty() {
                    (RestoredLayerAction::KeepLayer, reasons)
                } else {
                    (RestoredLayerAction::DeleteLayer, reasons)
                }
            },
        },
    )?;
    let dir = layer.path();
    match &layer.state {
        LayerState::Restored { .. } => {
            log::header(format!("Using cached Python {}", candidate.version));
            return Ok((dir, Precompression::default()));
        }
        LayerState::Empty { cause } => {
            if let EmptyLayerCause::RestoredLayerAction { cause: reasons }
            | EmptyLayerCause::InvalidMetadataAction { cause: reasons } = cause
            {
                log::info(reasons_line(reasons));
            }
        }
    }
    log::header(format!("Installing Python {}", candidate.version));
    log::info(format!("from {}", candidate.source));
    let stdlib = dir
        .join("lib")
        .join(format!("python{}", candidate.version.minor_string()));
    let bytecode_from = match &candidate.source {
        Source::Mirror { url, sha256, .. } => {
            install_from_mirror(url, sha256, &dir)?;
            trim::prune_stdlib(&stdlib)?;
            stdlib.clone()
        }
        Source::Host(host) => {
            copy_from_host(host, &candidate.version, &dir)?;
            host.stdlib.clone()
        }
    };
    let stripped = trim::strip_debug_info(&dir, tool_env)?;
    if stripped == 0 {
        log::info("(no `strip` on this host: the runtime keeps its debug information)");
    }
    write_stdlib_bytecode(&dir, &bytecode_from, &candidate.version, tool_env)?;

    let mut env = LayerEnv::new();
    // `.default` so that a config var the user sets wins.
    for (key, value) in [("PYTHONUNBUFFERED", "1"), ("LANG", "C.UTF-8")] {
        env = env.chainable_insert(Scope::All, ModificationBehavior::Default, key, value);
    }
    layer.write_env(env)?;
    layer.write_metadata(new_metadata)?;
    // Complete: `slug build` can compress it while the dependencies install.
    let compressing = Precompression::start(&dir);
    Ok((dir, compressing))
}

fn install_from_mirror(url: &str, sha256: &str, dir: &Path) -> Result<(), PythonBuildpackError> {
    let agent = sources::agent();
    let response = sources::get(&agent, url).map_err(MirrorArchiveError::from)?;
    // Download to a temp file while hashing, and unpack only what was verified.
    let mut tmp = tempfile::tempfile().map_err(io_error(std::env::temp_dir()))?;
    let mut reader = HashingReader {
        inner: response.into_reader(),
        hasher: <sha2::Sha256 as sha2::Digest>::new(),
    };
    std::io::copy(&mut reader, &mut tmp).map_err(|e| {
        MirrorArchiveError::Fetch(sources::MirrorError::Read {
            url: url.to_string(),
            source: e,
        })
    })?;
    let actual = slug_format::hex(&sha2::Digest::finalize(reader.hasher));
    if actual != sha256 {
        return Err(MirrorArchiveError::Checksum {
            url: url.to_string(),
            expected: sha256.to_string(),
            actual,
        }
        .into());
    }
    use std::io::Seek;
    let unpack_err = |source| MirrorArchiveError::Unpack {
        url: url.to_string(),
        source,
    };
    tmp.rewind().map_err(unpack_err)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tmp));
    for entry in archive.entries().map_err(unpack_err)? {
        let mut entry = entry.map_err(unpack_err)?;
        let path = entry.path().map_err(unpack_err)?.into_owned();
        // install_only archives hold one top dir, `python/`.
        let Ok(rel) = path.strip_prefix("python") else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            continue; // nothing may escape the layer
        }
        let dest = dir.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(unpack_err)?;
        }
        entry.unpack(&dest).map_err(unpack_err)?;
    }
    if !dir.join("bin/python3").exists() {
        return Err(MirrorArchiveError::Layout {
            url: url.to_string(),
        }
        .into());
    }
    Ok(())
}

struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        Ok(n)
    }
}

/// Copy a host interpreter into the install_only layout: `bin/python3.X` (+ `python3`,
/// `python` links), `lib/python3.X/`, the shared libpython if any, `include/python3.X/`.
fn copy_from_host(
    host: &HostPython,
    version: &PythonVersion,
    dir: &Path,
) -> Result<(), PythonBuildpackError> {
    let minor = version.minor_string();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(io_error(&bin))?;
    let exe_name = format!("python{minor}");
    std::fs::copy(&host.executable, bin.join(&exe_name)).map_err(io_error(&host.executable))?;
    for link in ["python3", "python"] {
        std::os::unix::fs::symlink(&exe_name, bin.join(link)).map_err(io_error(bin.join(link)))?;
    }
    let stdlib_dest = dir.join("lib").join(format!("python{minor}"));
    // Followed: the host's stdlib has absolute symlinks (Debian's `sitecustomize.py` →
    // `/etc/...`), which would dangle in a slug; dangling ones are left out.
    let stdlib = slugc_fs::Options {
        symlinks: Symlinks::Follow,
        filter: Some(&|rel, is_dir| !trim::is_unneeded(rel, is_dir)),
        ..slugc_fs::Options::default()
    };
    slugc_fs::copy_tree(&host.stdlib, &stdlib_dest, &stdlib)
        .map_err(std::io::Error::from)
        .map_err(io_error(&host.stdlib))?;
    let site = stdlib_dest.join("site-packages");
    std::fs::create_dir_all(&site).map_err(io_error(&site))?;
    if let (Some(libdir), Some(shared)) = (&host.libdir, &host.shared_lib) {
        let lib = dir.join("lib");
        let src = libdir.join(shared);
        std::fs::copy(&src, lib.join(shared)).map_err(io_error(&src))?;
        let dev_link = lib.join(format!("libpython{minor}.so"));
        if dev_link.symlink_metadata().is_err() && shared.as_str() != dev_link.as_os_str() {
            std::os::unix::fs::symlink(shared, &dev_link).map_err(io_error(&dev_link))?;
        }
    }
    if host.include.join("Python.h").is_file() {
        let dest = dir.join("include").join(format!("python{minor}"));
        let include = slugc_fs::Options {
            symlinks: Symlinks::Follow,
            ..slugc_fs::Options::default()
        };
        slugc_fs::copy_tree(&host.include, &dest, &include)
            .map_err(std::io::Error::from)
            .map_err(io_error(&host.include))?;
    }
    Ok(())
}

/// Replace whatever bytecode came with the runtime by bytecode that is the same in every
/// build: hash-checked (tar normalises mtimes, which would make timestamp-based `.pyc`s stale)
/// and with a fixed source prefix instead of the build path. `from` is the standard library
/// the layer's was copied from (the layer's own for an unpacked archive): its install-time
/// `.pyc`s are reused where still valid, which saves compiling the whole library.
fn write_stdlib_bytecode(
    dir: &Path,
    from: &Path,
    version: &PythonVersion,
    tool_env: &ToolEnv,
) -> Result<(), PythonBuildpackError> {
    let stdlib = dir
        .join("lib")
        .join(format!("python{}", version.minor_string()));
    let done = crate::bytecode::spawn(
        &dir.join("bin/python3"),
        from,
        &stdlib,
        &format!(
            "/app/.layers/slugc_python/runtime/lib/python{}",
            version.minor_string()
        ),
        &tool_env.clone().with_runtime(dir),
    )?
    .wait()?;
    log::info(format!(
        "Bytecode: {} modules reused from the interpreter's own, {} compiled",
        done.reused, done.compiled
    ));
    if done.failed > 0 {
        // Some stdlib files can be syntax-error fixtures: left as source.
        log::info(format!(
            "({} standard library files were left without bytecode)",
            done.failed
        ));
    }
    Ok(())
}
