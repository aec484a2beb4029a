//! Node's compile cache (`NODE_COMPILE_CACHE`, Node.js 22.1 and later) as a cached layer that
//! is neither build nor launch: V8's code for the scripts a build runs, so that the next build
//! does not compile the package manager again: Yarn 2+ (a 2.7 MB bundle) starts about 0.15 s
//! sooner from it on a warm build, where the tool's start is most of what a build script run
//! costs; pnpm enables the cache itself, in the machine's temp dir, and uses this dir
//! instead. Node checks every entry against its script's contents, so a stale entry is only
//! recompiled, never run; the layer is dropped when the Node.js version or arch changes, so it
//! holds one version's entries.

use super::explain;
use super::runtime::{node_keyed_cache, Release};
use crate::errors::NodejsBuildpackError;
use crate::NodejsBuildpack;
use libcnb::build::BuildContext;
use libcnb::data::layer_name;
use std::path::PathBuf;

/// The first Node.js that reads `NODE_COMPILE_CACHE`.
const FIRST: (u64, u64) = (22, 1);

/// Open the compile cache layer for Node.js `release` (keyed as the runtime layer is); its
/// dir, or `None` for a Node.js that has no compile cache (it would ignore the variable).
pub fn prepare(
    context: &BuildContext<NodejsBuildpack>,
    release: &Release,
) -> libcnb::Result<Option<PathBuf>, NodejsBuildpackError> {
    if (release.semver.major(), release.semver.minor()) < FIRST {
        return Ok(None);
    }
    let (layer, new) = node_keyed_cache(context, layer_name!("compile_cache"), &release.version)?;
    if !explain(&layer.state, "Node.js compile cache") {
        layer.write_metadata(new)?;
    }
    Ok(Some(layer.path()))
}
