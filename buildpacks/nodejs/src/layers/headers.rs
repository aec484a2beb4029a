//! Node's C headers (`include/node`, 63 MB) in a cached build-only layer, for apps that compile
//! native addons with node-gyp. They are left out of the runtime layer so that slugs do not
//! carry them; node-gyp finds them through `npm_config_nodedir` instead of downloading them
//! from nodejs.org, which a build machine may not reach.

use super::explain;
use super::runtime::{node_keyed_cache, Release};
use crate::errors::NodejsBuildpackError;
use crate::fsutil::{self, Take};
use crate::registry::Registry;
use crate::NodejsBuildpack;
use libcnb::build::BuildContext;
use libcnb::data::layer_name;
use std::path::{Path, PathBuf};

/// Whether the install may compile something: a `binding.gyp` in the app, or a lockfile that
/// marks packages with install scripts (npm `hasInstallScript`, pnpm `requiresBuild`) or
/// names node-gyp.
fn needed(app_dir: &Path, lockfile: Option<&str>) -> bool {
    if app_dir.join("binding.gyp").is_file() {
        return true;
    }
    let Some(text) = lockfile.and_then(|l| {
        crate::package_manager::read_lockfile(app_dir, l)
            .ok()
            .flatten()
    }) else {
        return false;
    };
    text.contains("\"hasInstallScript\": true")
        || text.contains("requiresBuild: true")
        || text.contains("node-gyp")
}

/// When the install may compile something ([`needed`]), make the headers layer hold
/// `release`'s `include/`; returns the dir for `npm_config_nodedir`. `tarball` is the runtime's
/// download when there was one; it is dropped here, before the install runs.
pub fn install(
    context: &BuildContext<NodejsBuildpack>,
    registry: &Registry,
    lockfile: Option<&str>,
    release: &Release,
    tarball: Option<Vec<u8>>,
) -> libcnb::Result<Option<PathBuf>, NodejsBuildpackError> {
    if !needed(&context.app_dir, lockfile) {
        return Ok(None);
    }
    // Same inputs as the runtime layer: the same tarball.
    let (layer, new) = node_keyed_cache(context, layer_name!("node_headers"), &release.version)?;
    let path = layer.path();
    if !explain(&layer.state, "Node.js headers") {
        let bytes = match tarball {
            Some(bytes) => bytes,
            None => {
                println!("Fetching Node.js {} for its C headers", new.node_version);
                registry
                    .tarball(release.package, &release.version)
                    .map_err(NodejsBuildpackError::registry(format!(
                        "downloading Node.js {}",
                        new.node_version
                    )))?
            }
        };
        println!("Installing the Node.js C headers for native addons (node-gyp)");
        fsutil::unpack_package(bytes.as_slice(), &path, |p| {
            Take::unpack_if(p.starts_with("include"))
        })
        .map_err(NodejsBuildpackError::io(
            "unpacking the Node.js headers",
            &path,
        ))?;
        layer.write_metadata(new)?;
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed_for_gyp_apps_and_install_scripts() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        assert!(!needed(dir.path(), None));
        write(
            "package-lock.json",
            r#"{"packages":{"node_modules/ms":{"version":"2.1.3"}}}"#,
        );
        assert!(!needed(dir.path(), Some("package-lock.json")));
        write(
            "package-lock.json",
            "{\"packages\":{\"node_modules/bcrypt\":{\"hasInstallScript\": true}}}",
        );
        assert!(needed(dir.path(), Some("package-lock.json")));
        write(
            "pnpm-lock.yaml",
            "packages:\n  bcrypt@5.1.1:\n    requiresBuild: true\n",
        );
        assert!(needed(dir.path(), Some("pnpm-lock.yaml")));
        let gyp = tempfile::tempdir().unwrap();
        std::fs::write(gyp.path().join("binding.gyp"), "{}").unwrap();
        assert!(needed(gyp.path(), None));
    }
}
