//! The package manager's own cache (npm's cacache dir, Yarn's cache folder, pnpm's store) as
//! a cached layer that is neither build nor launch: it only makes a cold `node_modules`
//! install read tarballs from disk instead of the network. Keyed by the tool and its cache
//! format: npm's `_cacache` is shared by every npm version (as a developer's `~/.npm` is),
//! while Yarn's and pnpm's caches are kept per exact tool version.

use super::{diff, discard_unreadable, explain, keep_if_unchanged, tool, Reasons};
use crate::errors::NodejsBuildpackError;
use crate::package_manager::Tool;
use crate::NodejsBuildpack;
use libcnb::build::BuildContext;
use libcnb::data::layer::LayerName;
use libcnb::data::layer_name;
use libcnb::layer::CachedLayerDefinition;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCacheMetadata {
    pub package: String,
    /// [`NPM_FORMAT`] for npm, the exact version for the others.
    pub format: String,
}

/// npm's cache layout (`cacache`: `content-v2`, `index-v5`), the same since npm 5.
const NPM_FORMAT: &str = "cacache";

/// Open the installed tool's cache layer; returns its dir.
pub fn prepare(
    context: &BuildContext<NodejsBuildpack>,
    installed: &tool::Installed,
) -> libcnb::Result<PathBuf, NodejsBuildpackError> {
    let tool = installed.tool;
    let format = match tool {
        Tool::Npm => NPM_FORMAT,
        Tool::YarnClassic | Tool::YarnBerry | Tool::Pnpm => &installed.version,
    };
    let new = ToolCacheMetadata {
        package: tool.package().to_string(),
        format: format.to_string(),
    };
    let name: LayerName = match tool {
        Tool::Npm => layer_name!("npm_cache"),
        Tool::YarnClassic | Tool::YarnBerry => layer_name!("yarn_cache"),
        Tool::Pnpm => layer_name!("pnpm_store"),
    };
    let layer = context.cached_layer(
        name,
        CachedLayerDefinition {
            build: false,
            launch: false,
            invalid_metadata_action: &discard_unreadable,
            restored_layer_action: &|old: &ToolCacheMetadata, _: &Path| {
                let ToolCacheMetadata { package, format } = old;
                let mut reasons = Reasons::new();
                diff(&mut reasons, "package manager", package, &new.package);
                diff(&mut reasons, "cache format", format, &new.format);
                keep_if_unchanged(reasons)
            },
        },
    )?;
    let what = format!("{} cache", tool.display());
    if explain(&layer.state, &what) {
        println!("Reusing the {what} from the previous build");
    } else {
        layer.write_metadata(new)?;
    }
    Ok(layer.path())
}

/// Yarn Plug'n'Play uses the app's own cache folder (see `yarn_berry`): before the install it
/// gets the zips the layer kept, hardlinked, so that only new packages are downloaded.
pub fn seed_app_cache(layer_dir: &Path, app_cache: &Path) -> Result<(), NodejsBuildpackError> {
    if !layer_dir.is_dir() {
        return Ok(());
    }
    let how = slugc_fs::Options {
        files: slugc_fs::Files::Link,
        ..Default::default()
    };
    slugc_fs::copy_tree(layer_dir, app_cache, &how)
        .map_err(std::io::Error::from)
        .map_err(NodejsBuildpackError::io(
            "seeding Yarn's cache in the app",
            app_cache,
        ))
}

/// After the install (before the prune drops the devDependencies' zips): the layer keeps
/// exactly what the app's cache holds, the zips of the whole lockfile.
pub fn keep_app_cache(app_cache: &Path, layer_dir: &Path) -> Result<(), NodejsBuildpackError> {
    let failed = NodejsBuildpackError::io("keeping Yarn's cache", layer_dir);
    let result = (|| {
        if let Ok(entries) = std::fs::read_dir(layer_dir) {
            for entry in entries {
                crate::fsutil::remove_any(&entry?.path())?;
            }
        }
        if !app_cache.is_dir() {
            return Ok(());
        }
        let how = slugc_fs::Options {
            files: slugc_fs::Files::Link,
            ..Default::default()
        };
        slugc_fs::copy_tree(app_cache, layer_dir, &how).map_err(std::io::Error::from)
    })();
    result.map_err(failed)
}
