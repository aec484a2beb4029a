//! The `slugc/nodejs` buildpack: Node.js from the npm registry's official Linux builds,
//! dependencies with npm, Yarn or pnpm, Heroku's build scripts, devDependencies pruned,
//! `node_modules` cached so that an unchanged lockfile means no install. See docs/nodejs.md.
//!
//! `build` is the table of contents: one call per step, in order.

pub mod errors;
pub mod fsutil;
pub mod gyp;
pub mod layers;
pub mod node_version;
pub mod npmrc;
pub mod package_json;
pub mod package_manager;
pub mod registry;
pub mod toolchain;

use crate::errors::NodejsBuildpackError;

use crate::layers::dependencies::{self, Plan};
use crate::layers::{headers, runtime, tool, tool_cache, web_env};
use crate::npmrc::RegistryConfig;
use crate::package_json::PackageJson;
use crate::package_manager::{PackageManager, Tool};
use crate::registry::{PackageVersion, Packument, Registry};
use crate::toolchain::{child_env, EnvInputs, Toolchain};
use libcnb::build::{BuildContext, BuildResult, BuildResultBuilder};
use libcnb::data::build_plan::BuildPlanBuilder;
use libcnb::data::launch::{LaunchBuilder, ProcessBuilder};
use libcnb::data::process_type;
use libcnb::detect::{DetectContext, DetectResult, DetectResultBuilder};
use libcnb::generic::{GenericMetadata, GenericPlatform};
use libcnb::{Buildpack, Env, Platform};
use slug_format::precompress::Precompression;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The descriptor the engine writes when it materialises this buildpack.
pub const BUILDPACK_TOML: &str = include_str!("../buildpack.toml");

pub struct NodejsBuildpack;

impl Buildpack for NodejsBuildpack {
    type Platform = GenericPlatform;
    type Metadata = GenericMetadata;
    type Error = NodejsBuildpackError;

    fn detect(&self, context: DetectContext<Self>) -> libcnb::Result<DetectResult, Self::Error> {
        if context.app_dir.join("package.json").is_file() {
            return DetectResultBuilder::pass()
                .build_plan(
                    BuildPlanBuilder::new()
                        .provides("node")
                        .requires("node")
                        .build(),
                )
                .build();
        }
        for entry in ["server.js", "index.js"] {
            if context.app_dir.join(entry).is_file() {
                println!(
                    "Found {entry} but no package.json: a Node.js app needs a package.json at its root \
                     (create one with `npm init -y`, then `npm install` your dependencies)."
                );
            }
        }
        DetectResultBuilder::fail().build()
    }

    fn build(&self, context: BuildContext<Self>) -> libcnb::Result<BuildResult, Self::Error> {
        // The engine prints the "Node.js app detected" header.
        let app_dir = context.app_dir.clone();
        let package_json = PackageJson::read(&app_dir).map_err(NodejsBuildpackError::from)?;
        let package_manager =
            PackageManager::detect(&app_dir, &package_json).map_err(NodejsBuildpackError::from)?;
        let platform_env = context.platform.env().clone();
        let registry = Registry::new(RegistryConfig::load(&app_dir, &|key| {
            platform_env
                .get_string_lossy(key)
                .or_else(|| std::env::var(key).ok())
        }));

        let Installed {
            node_package,
            node_meta,
            node_version,
            node,
            tool_meta,
            tool_bin,
            tool_compressing,
            cache_dir,
            cache_log,
        } = install_node_and_tool(&context, &registry, &package_json, &package_manager)?;
        let tool = package_manager.tool;
        let runtime::Installed {
            home: node_home,
            tarball: node_tarball,
            compressing: node_compressing,
        } = node;
        let node_headers = if headers::needed(&app_dir, package_manager.lockfile) {
            Some(headers::install(
                &context,
                &registry,
                node_package,
                &node_meta,
                node_tarball.as_deref(),
            )?)
        } else {
            None
        };
        drop(node_tarball);
        let _ = std::io::stdout().write_all(&cache_log);

        let toolchain = Toolchain {
            tool,
            tool_version: tool_meta.version.clone(),
            tool_bin: tool_bin.clone(),
            app_dir: app_dir.clone(),
            cache_dir: cache_dir.clone(),
            env: child_env(EnvInputs {
                base: Env::from_current(),
                platform: &platform_env,
                node_home: &node_home,
                node_headers: node_headers.as_deref(),
                tool_bin: &tool_bin,
                tool,
                cache_dir: &cache_dir,
                app_dir: &app_dir,
            }),
        };

        // Heroku's order: heroku-prebuild, install, build (or heroku-postbuild), prune,
        // heroku-cleanup.
        if package_json.script("heroku-prebuild").is_some() {
            toolchain.run_script("heroku-prebuild")?;
        }
        let build_script = ["heroku-postbuild", "build"]
            .into_iter()
            .find(|s| package_json.script(s).is_some());
        let prune = prune_enabled(&platform_env) && !package_json.dev_dependencies.is_empty();
        let plan = Plan {
            metadata: dependencies::DependenciesMetadata {
                node_version: node_version.clone(),
                arch: context.target.arch.clone(),
                package_manager: format!("{}@{}", tool.package(), tool_meta.version),
                install_inputs: dependencies::install_inputs_digest(
                    &app_dir,
                    package_manager.lockfile,
                )?,
                pruned: prune,
            },
            prune,
            has_dev_dependencies: !package_json.dev_dependencies.is_empty(),
            keep_dev_tree: prune && build_script.is_some(),
            lockfile: package_manager.lockfile,
            root_scripts: dependencies::root_install_scripts(
                &app_dir,
                &package_json
                    .scripts
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            ),
        };
        let prepared = dependencies::prepare(&context, &toolchain, &plan)?;
        if let Some(script) = build_script {
            toolchain.run_script(script)?;
        }
        dependencies::finish(prepared, &toolchain, &plan)?;
        if package_json.script("heroku-cleanup").is_some() {
            toolchain.run_script("heroku-cleanup")?;
        }

        web_env::write(&context)?;
        let mut launch = LaunchBuilder::new();
        if let Some(command) = default_web_command(&app_dir, &package_json, tool) {
            println!("-----> Default process: web: {command}");
            launch.process(
                ProcessBuilder::new(process_type!("web"), ["bash", "-c", command.as_str()])
                    .default(true)
                    .build(),
            );
        }
        // The engine exports once this process ends: the compression must be done by then.
        node_compressing.wait();
        tool_compressing.wait();
        BuildResultBuilder::new().launch(launch.build()).build()
    }

    fn on_error(&self, error: libcnb::Error<Self::Error>) {
        errors::on_error(error)
    }
}

/// What [`install_node_and_tool`] leaves for the rest of the build.
struct Installed {
    node_package: &'static str,
    node_meta: PackageVersion,
    node_version: String,
    node: runtime::Installed,
    tool_meta: PackageVersion,
    tool_bin: PathBuf,
    tool_compressing: Precompression,
    cache_dir: PathBuf,
    /// The tool cache layer's log lines, printed where the install begins.
    cache_log: Vec<u8>,
}

/// Node.js and the package manager, side by side; their log lines in order.
fn install_node_and_tool(
    context: &BuildContext<NodejsBuildpack>,
    registry: &Registry,
    package_json: &PackageJson,
    package_manager: &PackageManager,
) -> libcnb::Result<Installed, NodejsBuildpackError> {
    // Two things run side by side: Node.js downloads as soon as its version is known; the
    // package manager's version list (3 MB for npm; on a warm rebuild the two lists are the
    // only network traffic) arrives and the tool is installed. Their log lines are buffered
    // and printed after Node's.
    let node_package = runtime::node_package(&context.target.arch)?;
    let tool = package_manager.tool;
    let mut tool_log: Vec<u8> = Vec::new();
    let mut cache_log: Vec<u8> = Vec::new();
    // npm's cache does not depend on npm's version: it is opened before that is known.
    let npm_cache = if tool == Tool::Npm {
        Some(tool_cache::prepare(
            context,
            tool,
            tool_cache::NPM_FORMAT,
            &mut cache_log,
        )?)
    } else {
        None
    };
    let (node_meta, node_version, node, tool_meta, cache_dir, tool_installed) = std::thread::scope(
        |scope| -> libcnb::Result<_, NodejsBuildpackError> {
            let tool_list = scope.spawn(move || {
                packument(registry, tool.package(), "listing package manager versions")
            });
            let node_packument = packument(registry, node_package, "listing Node.js versions")?;
            let available = node_version::parse_versions(node_packument.versions.keys());
            let resolved =
                node_version::resolve(package_json.engines.node.as_deref(), &available, today())
                    .map_err(NodejsBuildpackError::from)?;
            let node_version = resolved.version.to_string();
            match &resolved.requested {
                Some(range) => println!(
                    "-----> Installing Node.js {node_version} (engines.node {range:?})"
                ),
                None => println!(
                    "-----> Installing Node.js {node_version} (the newest LTS; set engines.node in package.json to choose)"
                ),
            }
            let node_meta = node_packument
                .versions
                .get(&node_version)
                .cloned()
                .ok_or_else(|| NodejsBuildpackError::from(node_version::NodeVersionError::NoLts))?;
            let meta = node_meta.clone();
            let node_job =
                scope.spawn(move || runtime::install(context, registry, node_package, &meta));

            let tool_packument = tool_list.join().unwrap_or_else(|_| {
                Err(NodejsBuildpackError::Registry {
                    what: "listing package manager versions".into(),
                    source: registry::RegistryError::BadAnswer {
                        url: registry.display_url(),
                        message: "the download thread panicked".into(),
                    },
                })
            })?;
            let tool_meta = tool::resolve(
                tool,
                &tool_packument,
                package_manager.requested.as_deref(),
                &resolved.version,
            )?;
            let cache_dir = match npm_cache {
                Some(dir) => dir,
                None => tool_cache::prepare(context, tool, &tool_meta.version, &mut cache_log)?,
            };
            let _ = writeln!(
                tool_log,
                "-----> Installing {} {}",
                tool.display(),
                tool_meta.version
            );
            let tool_installed = tool::install(context, registry, tool, &tool_meta, &mut tool_log);
            let node = node_job.join().unwrap_or_else(|_| {
                Err(NodejsBuildpackError::Registry {
                    what: format!("installing Node.js {node_version}"),
                    source: registry::RegistryError::BadAnswer {
                        url: registry.display_url(),
                        message: "the install thread panicked".into(),
                    },
                }
                .into())
            });
            Ok((
                node_meta,
                node_version,
                node,
                tool_meta,
                cache_dir,
                tool_installed,
            ))
        },
    )?;
    let _ = std::io::stdout().write_all(&tool_log);
    let (node, (tool_bin, tool_compressing)) = (node?, tool_installed?);
    Ok(Installed {
        node_package,
        node_meta,
        node_version,
        node,
        tool_meta,
        tool_bin,
        tool_compressing,
        cache_dir,
        cache_log,
    })
}

fn packument(
    registry: &Registry,
    name: &str,
    what: &str,
) -> Result<Packument, NodejsBuildpackError> {
    registry
        .packument(name)
        .map_err(|source| NodejsBuildpackError::Registry {
            what: what.to_string(),
            source,
        })
}

/// `NPM_CONFIG_PRODUCTION=false` or `YARN_PRODUCTION=false` (config var or environment, any
/// case) keeps devDependencies in the slug, as on Heroku.
fn prune_enabled(platform_env: &Env) -> bool {
    !(config_is(platform_env, "NPM_CONFIG_PRODUCTION", "false")
        || config_is(platform_env, "YARN_PRODUCTION", "false"))
}

/// Whether the config var or environment variable `key` (in upper or lower case) is `value`.
fn config_is(platform_env: &Env, key: &str, value: &str) -> bool {
    [key.to_uppercase(), key.to_lowercase()].iter().any(|k| {
        platform_env
            .get_string_lossy(k)
            .or_else(|| std::env::var(k).ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
    })
}

/// Heroku's default `web`: the package manager's `start` when a start script exists, else
/// `node server.js` / `node index.js`.
pub fn default_web_command(
    app_dir: &Path,
    package_json: &PackageJson,
    tool: Tool,
) -> Option<String> {
    if package_json.script("start").is_some() {
        return Some(tool.start_command());
    }
    ["server.js", "index.js"]
        .into_iter()
        .find(|f| app_dir.join(f).is_file())
        .map(|f| format!("node {f}"))
}

fn today() -> (i64, u32) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    node_version::year_month(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_process() {
        let dir = tempfile::tempdir().unwrap();
        let pj = |t: &str| PackageJson::parse(t, Path::new("package.json")).unwrap();
        assert_eq!(default_web_command(dir.path(), &pj("{}"), Tool::Npm), None);
        std::fs::write(dir.path().join("index.js"), "").unwrap();
        assert_eq!(
            default_web_command(dir.path(), &pj("{}"), Tool::Npm).as_deref(),
            Some("node index.js")
        );
        std::fs::write(dir.path().join("server.js"), "").unwrap();
        assert_eq!(
            default_web_command(dir.path(), &pj("{}"), Tool::Npm).as_deref(),
            Some("node server.js")
        );
        let with_start = pj(r#"{"scripts":{"start":"node x.js"}}"#);
        assert_eq!(
            default_web_command(dir.path(), &with_start, Tool::Pnpm).as_deref(),
            Some("pnpm start")
        );
    }

    #[test]
    fn pruning_switch() {
        let mut env = Env::new();
        assert!(prune_enabled(&env));
        env.insert("NPM_CONFIG_PRODUCTION", "false");
        assert!(!prune_enabled(&env));
        let mut env = Env::new();
        env.insert("yarn_production", "FALSE");
        assert!(!prune_enabled(&env));
    }
}
