//! The uv layer (build only, cached): the static `uv` binary from the PyPI package `uv`,
//! fetched from the user's index (or find-links dir) and verified by the index's SHA-256.

use crate::errors::PythonBuildpackError;
use crate::index_config::IndexConfig;
use crate::layers::reasons_line;
use crate::log;
use crate::sources::{self, MirrorError};
use crate::PythonBuildpack;
use libcnb::build::BuildContext;
use libcnb::data::layer_name;
use libcnb::layer::{
    CachedLayerDefinition, EmptyLayerCause, InvalidMetadataAction, LayerRef, LayerState,
    RestoredLayerAction,
};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The uv this buildpack installs with (a known-good release; bump deliberately).
pub const UV_VERSION: &str = "0.13.9";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UvLayerMetadata {
    pub uv_version: String,
    pub arch: String,
}

impl UvLayerMetadata {
    fn reasons(&self, new: &Self) -> Vec<String> {
        let Self { uv_version, arch } = self;
        let mut reasons = Vec::new();
        if uv_version != &new.uv_version {
            reasons.push(format!("uv {uv_version} → {}", new.uv_version));
        }
        if arch != &new.arch {
            reasons.push(format!("architecture {arch} → {}", new.arch));
        }
        reasons
    }
}

/// What a build knows of uv so far: not asked for yet (a reused venv), installed, or not to
/// be had (the pip fallback, said once in the log).
#[derive(Clone, Debug)]
pub enum Availability {
    NotAsked,
    Installed(PathBuf),
    Unavailable,
}

/// Why uv could not be had (the caller falls back to pip).
#[derive(Debug, thiserror::Error)]
pub enum UvError {
    #[error(transparent)]
    Fetch(#[from] MirrorError),
    #[error("{0} lists no uv {UV_VERSION} wheel for this platform")]
    NoWheel(String),
    #[error("the uv wheel {url} has SHA-256 {actual}, the index says {expected}")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("cannot unpack the uv wheel: {0}")]
    Unpack(String),
}

/// The uv wheel, fetched on a thread of its own while the runtime is being installed: on a
/// cold build the download (17.6 MB) then costs no wall time.
pub struct Prefetch(std::thread::JoinHandle<Result<Vec<u8>, UvError>>);

/// The `uv` binary's bytes: the verified wheel, unpacked in memory.
fn fetch_binary(index: &IndexConfig, arch: &str) -> Result<Vec<u8>, UvError> {
    extract_uv(&fetch_wheel(index, arch)?)
}

/// Start fetching the uv wheel when no uv layer was restored (a cold build, which will need
/// it). A restored layer is kept or replaced by `install_uv`, which then fetches itself: a warm
/// build that reuses its dependencies must not touch the network for uv.
pub fn prefetch(context: &BuildContext<PythonBuildpack>, index: &IndexConfig) -> Option<Prefetch> {
    if context.layers_dir.join("uv").join("bin/uv").is_file() {
        return None;
    }
    let index = index.clone();
    let arch = context.target.arch.clone();
    Some(Prefetch(std::thread::spawn(move || {
        fetch_binary(&index, &arch)
    })))
}

/// The uv layer as this build wants it: a restored one is kept when it holds this uv for this
/// arch, else emptied (the reasons are in its state).
fn uv_layer(
    context: &BuildContext<PythonBuildpack>,
) -> Result<LayerRef<PythonBuildpack, Vec<String>, Vec<String>>, libcnb::Error<PythonBuildpackError>>
{
    let new_metadata = uv_metadata(context);
    context.cached_layer(
        layer_name!("uv"),
        CachedLayerDefinition {
            build: true,
            launch: false,
            invalid_metadata_action: &|_| {
                (
                    InvalidMetadataAction::DeleteLayer,
                    vec!["its metadata is from an older buildpack".to_string()],
                )
            },
            restored_layer_action: &|old: &UvLayerMetadata, dir: &Path| {
                let mut reasons = old.reasons(&new_metadata);
                if !dir.join("bin/uv").is_file() {
                    reasons.push("the uv binary is missing".to_string());
                }
                if reasons.is_empty() {
                    (RestoredLayerAction::KeepLayer, reasons)
                } else {
                    (RestoredLayerAction::DeleteLayer, reasons)
                }
            },
        },
    )
}

fn uv_metadata(context: &BuildContext<PythonBuildpack>) -> UvLayerMetadata {
    UvLayerMetadata {
        uv_version: UV_VERSION.to_string(),
        arch: context.target.arch.clone(),
    }
}

/// Keep the uv binary and uv's cache that an earlier build left, on a build that does not
/// run uv (its venv was reused). A restored layer that a buildpack does not declare again is
/// not cached ([CNB: layer types are reset on restore](https://github.com/buildpacks/spec/blob/main/buildpack.md#layer-types)),
/// so without this the next dependency change would fetch uv and every package again, and
/// this build would pay for deleting both trees.
pub fn keep_restored(
    context: &BuildContext<PythonBuildpack>,
) -> Result<(), libcnb::Error<PythonBuildpackError>> {
    if context.layers_dir.join("uv").is_dir()
        && matches!(uv_layer(context)?.state, LayerState::Restored { .. })
    {
        log::info(format!(
            "Keeping cached uv {UV_VERSION} for the next dependency change"
        ));
    }
    if context.layers_dir.join("uv-cache").is_dir() {
        uv_cache_dir(context)?;
    }
    Ok(())
}

/// Install (or reuse) uv; `Ok(None)` when it cannot be had (reason logged).
pub fn install_uv(
    context: &BuildContext<PythonBuildpack>,
    index: &IndexConfig,
    prefetched: Option<Prefetch>,
) -> Result<Option<PathBuf>, libcnb::Error<PythonBuildpackError>> {
    let new_metadata = uv_metadata(context);
    let layer = uv_layer(context)?;
    let uv = layer.path().join("bin/uv");
    match &layer.state {
        LayerState::Restored { .. } => {
            log::info(format!("Using cached uv {UV_VERSION}"));
            return Ok(Some(uv));
        }
        LayerState::Empty { cause } => {
            if let EmptyLayerCause::RestoredLayerAction { cause: reasons }
            | EmptyLayerCause::InvalidMetadataAction { cause: reasons } = cause
            {
                log::info(reasons_line(reasons));
            }
        }
    }
    log::info(format!("Installing uv {UV_VERSION}"));
    let binary = match prefetched {
        Some(Prefetch(handle)) => handle
            .join()
            .unwrap_or_else(|_| Err(UvError::Unpack("the download thread panicked".to_string()))),
        None => fetch_binary(index, &context.target.arch),
    };
    match binary.and_then(|bytes| write_uv(&bytes, &uv)) {
        Ok(()) => {
            layer.write_metadata(new_metadata)?;
            Ok(Some(uv))
        }
        Err(e) => {
            log::warning(format!(
                "uv is not available ({e}); installing with pip instead"
            ));
            Ok(None)
        }
    }
}

#[derive(Deserialize)]
struct SimpleProject {
    files: Vec<SimpleFile>,
}

#[derive(Deserialize)]
struct SimpleFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::BTreeMap<String, String>,
}

fn wheel_matches(filename: &str, arch: &str) -> bool {
    let machine = match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        _ => return false,
    };
    filename.starts_with(&format!("uv-{UV_VERSION}-"))
        && filename.ends_with(".whl")
        && filename.contains("manylinux")
        && filename.contains(machine)
}

/// The uv wheel's bytes, verified against the index's SHA-256.
fn fetch_wheel(index: &IndexConfig, arch: &str) -> Result<Vec<u8>, UvError> {
    // A find-links dir that holds the wheel wins: it is what pip would use, offline.
    for link in &index.find_links {
        let dir = Path::new(link.strip_prefix("file://").unwrap_or(link));
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if wheel_matches(&name, arch) {
                    return std::fs::read(entry.path())
                        .map_err(|e| UvError::Unpack(format!("{}: {e}", entry.path().display())));
                }
            }
        }
    }
    // The simple repository API in its JSON form (PEP 691), as PyPI serves it.
    let page = format!("{}/uv/", index.index_url().trim_end_matches('/'));
    let agent = sources::agent();
    let response = agent
        .get(&page)
        .set("Accept", "application/vnd.pypi.simple.v1+json")
        .call()
        .map_err(|e| match e {
            ureq::Error::Status(status, _) => MirrorError::Status {
                url: page.clone(),
                status,
            },
            ureq::Error::Transport(t) => MirrorError::Network {
                url: page.clone(),
                detail: t.to_string(),
            },
        })?;
    let text = response.into_string().map_err(|source| MirrorError::Read {
        url: page.clone(),
        source,
    })?;
    let project: SimpleProject = serde_json::from_str(&text)
        .map_err(|e| UvError::Unpack(format!("{page} is not a PEP 691 JSON page: {e}")))?;
    let file = project
        .files
        .into_iter()
        .find(|f| wheel_matches(&f.filename, arch))
        .ok_or_else(|| UvError::NoWheel(page.clone()))?;
    let url = resolve_url(&page, file.url.split('#').next().unwrap_or_default());
    // The index vouches for the wheel's SHA-256: any build on this machine that fetched the
    // same wheel kept it (`slug_format::downloads`), checked against that digest again here.
    let integrity = file
        .hashes
        .get("sha256")
        .and_then(|hex| slug_format::downloads::Integrity::sha256_from_hex(hex));
    let downloads = slug_format::offer::Offer::downloads_from_env();
    if let Some(bytes) = downloads
        .as_ref()
        .zip(integrity.as_ref())
        .and_then(|(downloads, integrity)| downloads.get(integrity))
    {
        return Ok(bytes);
    }
    let mut bytes = Vec::new();
    sources::get(&agent, &url)?
        .into_reader()
        .read_to_end(&mut bytes)
        .map_err(|source| MirrorError::Read {
            url: url.clone(),
            source,
        })?;
    if let Some(expected) = file.hashes.get("sha256") {
        let actual = slug_format::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if &actual != expected {
            return Err(UvError::Checksum {
                url,
                expected: expected.clone(),
                actual,
            });
        }
    }
    if let (Some(downloads), Some(integrity)) = (&downloads, &integrity) {
        // Keeping it only saves a later build the download: never a reason to fail.
        let _ = downloads.put(integrity, &bytes);
    }
    Ok(bytes)
}

fn resolve_url(page: &str, url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else if let Some(rest) = url.strip_prefix('/') {
        // Absolute path on the index's host.
        let origin_end = page
            .find("://")
            .and_then(|i| page[i + 3..].find('/').map(|j| i + 3 + j))
            .unwrap_or(page.len());
        format!("{}/{rest}", &page[..origin_end])
    } else {
        format!("{page}{url}")
    }
}

/// The wheel carries the binary as `uv-<version>.data/scripts/uv`.
fn extract_uv(wheel: &[u8]) -> Result<Vec<u8>, UvError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel))
        .map_err(|e| UvError::Unpack(e.to_string()))?;
    let name = format!("uv-{UV_VERSION}.data/scripts/uv");
    let mut entry = zip
        .by_name(&name)
        .map_err(|e| UvError::Unpack(format!("{name}: {e}")))?;
    let mut binary = Vec::new();
    entry
        .read_to_end(&mut binary)
        .map_err(|e| UvError::Unpack(format!("{name}: {e}")))?;
    Ok(binary)
}

fn write_uv(binary: &[u8], dest: &Path) -> Result<(), UvError> {
    let parent = dest.parent().unwrap_or(dest);
    std::fs::create_dir_all(parent).map_err(|e| UvError::Unpack(e.to_string()))?;
    std::fs::write(dest, binary).map_err(|e| UvError::Unpack(e.to_string()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| UvError::Unpack(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_selection() {
        assert!(wheel_matches(
            "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "amd64"
        ));
        assert!(!wheel_matches(
            "uv-0.13.9-py3-none-musllinux_1_1_x86_64.whl",
            "amd64"
        ));
        assert!(!wheel_matches(
            "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "arm64"
        ));
    }

    #[test]
    fn relative_urls() {
        assert_eq!(
            resolve_url("https://h/simple/uv/", "/files/uv.whl"),
            "https://h/files/uv.whl"
        );
        assert_eq!(
            resolve_url("https://h/simple/uv/", "uv.whl#sha256=1"),
            "https://h/simple/uv/uv.whl#sha256=1"
        );
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UvCacheMetadata {
    pub arch: String,
}

/// uv's download and wheel cache, kept between builds (neither build env nor slug); makes a
/// rebuild after a requirements change fetch only what is new.
pub fn uv_cache_dir(
    context: &BuildContext<PythonBuildpack>,
) -> Result<PathBuf, libcnb::Error<PythonBuildpackError>> {
    let arch = context.target.arch.clone();
    let layer = context.cached_layer(
        layer_name!("uv-cache"),
        CachedLayerDefinition {
            build: false,
            launch: false,
            invalid_metadata_action: &|_| InvalidMetadataAction::DeleteLayer,
            restored_layer_action: &|old: &UvCacheMetadata, _| {
                if old.arch == arch {
                    RestoredLayerAction::KeepLayer
                } else {
                    RestoredLayerAction::DeleteLayer
                }
            },
        },
    )?;
    layer.write_metadata(UvCacheMetadata {
        arch: context.target.arch.clone(),
    })?;
    Ok(layer.path())
}
