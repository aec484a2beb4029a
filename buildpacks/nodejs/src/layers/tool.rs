//! The package manager layer: npm, Yarn or pnpm, fetched from the registry as the package
//! that carries it (Node's registry build ships without npm), with its `bin` entries linked
//! into `bin/` by relative symlinks so the layer runs from any dir.

use super::{diff, discard_unreadable, explain, keep_if_unchanged, Reasons};
use crate::errors::NodejsBuildpackError;
use crate::fsutil::{self, Take};
use crate::package_manager::{PackageManager, Tool};
use crate::registry::{PackageVersion, Packument, Registry};
use crate::NodejsBuildpack;
use libcnb::build::BuildContext;
use libcnb::data::layer::LayerName;
use libcnb::data::layer_name;
use libcnb::layer::CachedLayerDefinition;
use nodejs_semver::{Range, Version};
use serde::{Deserialize, Serialize};
use slug_format::precompress::Precompression;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolMetadata {
    pub package: String,
    pub version: String,
}

/// The npm major that the releases of a Node.js line ship with, from Node's release notes
/// (<https://github.com/nodejs/node/tree/main/doc/changelogs>): Heroku uses the npm that
/// comes with Node unless `engines.npm` says otherwise. The registry's `node-linux-*`
/// packages carry no npm (their `files` leave `lib/` out) and nothing the builder can reach
/// says which npm a release bundles (nodejs.org's `index.json` does), hence this table. A
/// line it does not know gets the newest npm whose `engines.node` accepts it.
fn bundled_npm_major(node: &Version) -> Option<u64> {
    match node.major() {
        18..=23 => Some(10),
        24..=26 => Some(11),
        _ => None,
    }
}

/// Pick the tool version: the newest that matches `requested` (any version when `None`; for
/// npm, the major Node.js ships with, see [`bundled_npm_major`]) and whose own
/// `engines.node` accepts `node`; if none accepts `node`, the newest match (the user asked
/// for it; npm will say what it thinks).
fn resolve(
    tool: Tool,
    packument: &Packument,
    requested: Option<&str>,
    node: &Version,
) -> Result<PackageVersion, NodejsBuildpackError> {
    let range = match requested {
        Some(r) => Range::parse(r).map_err(|_| NodejsBuildpackError::ToolVersion {
            tool: tool.command(),
            package: tool.package(),
            range: r.to_string(),
            nearest: Vec::new(),
        })?,
        None => match bundled_npm_major(node).filter(|_| tool == Tool::Npm) {
            Some(major) => Range::parse(format!("{major}.x")).unwrap_or_else(|_| Range::any()),
            None => Range::any(),
        },
    };
    let mut candidates: Vec<(Version, &PackageVersion)> = packument
        .versions
        .values()
        .filter_map(|pv| Version::parse(&pv.version).ok().map(|v| (v, pv)))
        .filter(|(v, _)| !v.is_prerelease() && range.satisfies(v))
        .collect();
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    let accepts_node = |pv: &PackageVersion| {
        pv.engines_node()
            .and_then(|r| Range::parse(r).ok())
            .map(|r| r.satisfies(node))
            .unwrap_or(true)
    };
    let chosen = candidates
        .iter()
        .rev()
        .find(|(_, pv)| accepts_node(pv))
        .or(candidates.last());
    match chosen {
        Some((_, pv)) => Ok((*pv).clone()),
        None => {
            let mut all: Vec<Version> = packument
                .versions
                .keys()
                .filter_map(|v| Version::parse(v).ok())
                .filter(|v| !v.is_prerelease())
                .collect();
            all.sort();
            let nearest = all
                .iter()
                .rev()
                .take(3)
                .rev()
                .map(|v| v.to_string())
                .collect();
            Err(NodejsBuildpackError::ToolVersion {
                tool: tool.command(),
                package: tool.package(),
                range: requested.unwrap_or("*").to_string(),
                nearest,
            })
        }
    }
}

/// What [`install`] leaves: the tool, its layer's `bin` dir, and the early compression of a
/// fresh layer (to wait for before exiting).
pub struct Installed {
    pub tool: Tool,
    pub version: String,
    pub bin: PathBuf,
    pub compressing: Precompression,
}

/// Make the tool layer hold the newest version of the tool that `package_manager` asks for
/// and that suits Node.js `node` (see [`resolve`]).
pub fn install(
    context: &BuildContext<NodejsBuildpack>,
    registry: &Registry,
    package_manager: &PackageManager,
    node: &Version,
) -> libcnb::Result<Installed, NodejsBuildpackError> {
    let tool = package_manager.tool;
    let versions = registry
        .packument(tool.package())
        .map_err(NodejsBuildpackError::registry(
            "listing package manager versions",
        ))?;
    let version = resolve(tool, &versions, package_manager.requested.as_deref(), node)?;
    let why = match bundled_npm_major(node) {
        Some(major) if tool == Tool::Npm && package_manager.requested.is_none() => format!(
            " (npm {major}, which Node.js {} ships with; set engines.npm in package.json to choose)",
            node.major()
        ),
        _ => String::new(),
    };
    println!(
        "-----> Installing {} {}{why}",
        tool.display(),
        version.version
    );
    let new = ToolMetadata {
        package: tool.package().to_string(),
        version: version.version.clone(),
    };
    let name: LayerName = match tool {
        Tool::Npm => layer_name!("npm"),
        Tool::YarnClassic | Tool::YarnBerry => layer_name!("yarn"),
        Tool::Pnpm => layer_name!("pnpm"),
    };
    let layer = context.cached_layer(
        name,
        CachedLayerDefinition {
            build: true,
            launch: true,
            invalid_metadata_action: &discard_unreadable,
            restored_layer_action: &|old: &ToolMetadata, _: &Path| {
                let ToolMetadata { package, version } = old;
                let mut reasons = Reasons::new();
                diff(&mut reasons, "package", package, &new.package);
                diff(&mut reasons, "version", version, &new.version);
                keep_if_unchanged(reasons)
            },
        },
    )?;
    let path = layer.path();
    let mut installed = Installed {
        tool,
        version: new.version.clone(),
        bin: path.join("bin"),
        compressing: Precompression::default(),
    };
    if explain(&layer.state, tool.display()) {
        println!("Reusing {} {} from the cache", tool.display(), new.version);
        return Ok(installed);
    }
    let bytes =
        registry
            .tarball(tool.package(), &version)
            .map_err(NodejsBuildpackError::registry(format!(
                "downloading {}@{}",
                new.package, new.version
            )))?;
    let package_dir = path.join("package");
    // npm's docs and man pages are a third of its size and never read on a dyno.
    fsutil::unpack_package(bytes.as_slice(), &package_dir, |p| {
        Take::unpack_if(!p.starts_with("docs") && !p.starts_with("man"))
    })
    .map_err(NodejsBuildpackError::io(
        "unpacking the package manager",
        &package_dir,
    ))?;
    link_bins(&version, &package_dir, &installed.bin).map_err(NodejsBuildpackError::io(
        "linking the package manager",
        &installed.bin,
    ))?;
    layer.write_metadata(new)?;
    // Complete: its thousands of small files are compressed while the dependencies install.
    installed.compressing = Precompression::start(&path);
    Ok(installed)
}

/// `bin/<name>` → `../package/<file>` for each `bin` entry, and the file made executable
/// (registry tarballs do not always carry the bit; npm sets it when it installs a package).
fn link_bins(version: &PackageVersion, package_dir: &Path, bin: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin)?;
    let entries: Vec<(String, String)> = match &version.bin {
        serde_json::Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect(),
        _ => Vec::new(),
    };
    for (name, file) in entries {
        let file = file.trim_start_matches("./");
        let target = package_dir.join(file);
        if !target.is_file() || name.contains('/') {
            continue;
        }
        let mut perms = std::fs::metadata(&target)?.permissions();
        perms.set_mode(perms.mode() | 0o755);
        std::fs::set_permissions(&target, perms)?;
        let link = bin.join(&name);
        fsutil::remove_any(&link)?;
        std::os::unix::fs::symlink(Path::new("../package").join(file), &link)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packument() -> Packument {
        serde_json::from_str(
            r#"{"versions":{
            "10.9.2":{"version":"10.9.2","dist":{"tarball":"t"},"engines":{"node":"^18.17.0 || >=20.5.0"}},
            "11.6.0":{"version":"11.6.0","dist":{"tarball":"t"},"engines":{"node":"^20.17.0 || >=22.9.0"}},
            "12.2.2":{"version":"12.2.2","dist":{"tarball":"t"},"engines":{"node":"^22.22.2 || >=26.0.0"}},
            "12.3.0-pre.1":{"version":"12.3.0-pre.1","dist":{"tarball":"t"}}
            }}"#,
        )
        .unwrap()
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn newest_compatible_with_node() {
        let p = packument();
        // Without engines.npm: the npm major the Node.js line ships with.
        assert_eq!(
            resolve(Tool::Npm, &p, None, &v("22.23.5")).unwrap().version,
            "10.9.2"
        );
        assert_eq!(
            resolve(Tool::Npm, &p, None, &v("24.12.0")).unwrap().version,
            "11.6.0"
        );
        // A line the table does not know: the newest npm that accepts it.
        assert_eq!(
            resolve(Tool::Npm, &p, None, &v("27.1.0")).unwrap().version,
            "12.2.2"
        );
        // Another tool is not held to npm's majors.
        assert_eq!(
            resolve(Tool::Pnpm, &p, None, &v("22.23.5"))
                .unwrap()
                .version,
            "12.2.2"
        );
        assert_eq!(
            resolve(Tool::Npm, &p, None, &v("18.20.8")).unwrap().version,
            "10.9.2"
        );
        assert_eq!(
            resolve(Tool::Npm, &p, Some("10.x"), &v("22.23.5"))
                .unwrap()
                .version,
            "10.9.2"
        );
        // Asked for explicitly: honoured even when its engines disagree.
        assert_eq!(
            resolve(Tool::Npm, &p, Some("12"), &v("18.20.8"))
                .unwrap()
                .version,
            "12.2.2"
        );
    }

    #[test]
    fn unknown_version_lists_newest() {
        let err = resolve(Tool::Npm, &packument(), Some("13.x"), &v("22.23.5")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"13.x\" for npm in package.json matches no version of the registry package npm; nearest available: 10.9.2, 11.6.0, 12.2.2"
        );
    }
}
