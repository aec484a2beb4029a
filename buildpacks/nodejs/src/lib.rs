//! The `slugc/nodejs` buildpack: Node.js from the npm registry's official Linux builds,
//! dependencies with npm, Yarn or pnpm, Heroku's build scripts, devDependencies pruned,
//! `node_modules` cached so that an unchanged lockfile means no install. See docs/nodejs.md.
//!
//! `build` is the table of contents: one call per step, in order.

mod app_files;
mod builder_config;
mod dev_binaries;
mod errors;
mod fsutil;
mod gyp;
mod layers;
mod node_version;
mod npm_workspaces;
mod npmrc;
mod package_json;
mod package_manager;
mod processes;
mod project_settings;
mod registry;
mod toolchain;
mod yarn_berry;

pub use errors::NodejsBuildpackError;

use crate::layers::{build_cache, dependencies, headers, runtime, tool, tool_cache, web_env};
use crate::npmrc::RegistryConfig;
use crate::package_json::PackageJson;
use crate::package_manager::{PackageManager, Tool};
use crate::registry::Registry;
use crate::toolchain::Toolchain;
use libcnb::build::{BuildContext, BuildResult, BuildResultBuilder};
use libcnb::data::build_plan::BuildPlanBuilder;
use libcnb::detect::{DetectContext, DetectResult, DetectResultBuilder};
use libcnb::generic::{GenericMetadata, GenericPlatform};
use libcnb::{Buildpack, Platform};

/// The descriptor the engine writes when it materialises this buildpack.
pub const BUILDPACK_TOML: &str = include_str!("../buildpack.toml");

pub struct NodejsBuildpack;

impl Buildpack for NodejsBuildpack {
    type Platform = GenericPlatform;
    type Metadata = GenericMetadata;
    type Error = NodejsBuildpackError;

    fn detect(&self, context: DetectContext<Self>) -> libcnb::Result<DetectResult, Self::Error> {
        // Any entry named package.json: a hostile one is reported, not passed over.
        if slugc_fs::input::exists(&context.app_dir, "package.json") {
            // Invalid app input fails here, before the build log starts (exit 30, on_error).
            check_input(&context.app_dir)?;
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
        let app_dir = &context.app_dir;
        let package_json = PackageJson::read(app_dir).map_err(NodejsBuildpackError::from)?;
        let package_manager =
            PackageManager::detect(app_dir, &package_json).map_err(NodejsBuildpackError::from)?;
        let settings =
            project_settings::ProjectSettings::read(app_dir).map_err(NodejsBuildpackError::from)?;
        let registry = Registry::new(RegistryConfig::load(app_dir, &|key| {
            context
                .platform
                .env()
                .get_string_lossy(key)
                .or_else(|| std::env::var(key).ok())
        }));

        // The version lists the steps below read (Node.js, the package manager, npm), asked
        // for at once.
        registry.prefetch(
            runtime::node_package(&context.target.arch)
                .ok()
                .into_iter()
                .chain([package_manager.tool.package(), Tool::Npm.package()]),
        );
        let release = runtime::resolve(&context, &registry, &package_json)?;
        let mut node = runtime::install(&context, &registry, release)?;
        let tool = tool::install(&context, &registry, &package_manager, &node.release.semver)?;
        // npm and npx come with Node.js on Heroku whatever the package manager, so that a
        // Yarn or pnpm app can run `npm start` or `npx …` (and no step falls back to a host's
        // npm). Node's registry build carries no npm: it is its own layer.
        let npm = match package_manager.tool {
            Tool::Npm => None,
            _ => Some(tool::install(
                &context,
                &registry,
                &PackageManager {
                    tool: Tool::Npm,
                    lockfile: None,
                    requested: None,
                },
                &node.release.semver,
            )?),
        };
        let node_headers = headers::install(
            &context,
            &registry,
            package_manager.lockfile,
            &node.release,
            node.tarball.take(),
        )?;
        let cache_dir = tool_cache::prepare(&context, &tool)?;
        let builder_env = builder_env()?;
        let toolchain = Toolchain::new(
            &context,
            builder_env,
            &node.home,
            node_headers.as_deref(),
            &tool,
            npm.as_ref().map(|npm| npm.bin.as_path()),
            cache_dir.clone(),
        )
        .with_workspaces(&package_json);
        // Yarn Plug'n'Play reads its packages from the app's `.yarn/cache`, which ships; the
        // cache layer only seeds it (a committed one is the app's and left alone).
        let app_yarn_cache = (toolchain.berry.pnp && !toolchain.berry.zero_install)
            .then(|| yarn_berry::app_cache(app_dir));

        if let Some(warning) = toolchain.unbuilt_addon_warning(&package_json) {
            println!("{warning}");
        }
        // The order of Heroku's Node.js CNB (heroku/buildpacks-nodejs,
        // `test_npm_build_scripts`): install, heroku-prebuild, heroku-build (or build),
        // heroku-postbuild, prune; then heroku-cleanup, which Heroku's classic buildpack runs
        // after the prune.
        let plan = dependencies::plan(
            &context,
            &package_json,
            package_manager.lockfile,
            &node.release.version.version,
            &toolchain,
            &settings,
        )?;
        let committed = app_files::Committed::read(app_dir)
            .map_err(package_json::PackageJsonError::Read)
            .map_err(NodejsBuildpackError::from)?;
        if let Some(app_cache) = &app_yarn_cache {
            tool_cache::seed_app_cache(&cache_dir, app_cache)?;
        }
        let prepared = dependencies::prepare(&context, &toolchain, &plan)?;
        if let Some(app_cache) = &app_yarn_cache {
            tool_cache::keep_app_cache(app_cache, &cache_dir)?;
        }
        // npm's prune reads the installed tree, not the lockfile: the build script sees the
        // committed manifests on cold and warm builds alike. Yarn's and pnpm's prunes read
        // the lockfile they wrote, so theirs are put back after the prune.
        if package_manager.tool == Tool::Npm {
            restore_manifests(&committed, app_dir)?;
        }
        let caches = build_cache::restore(
            &context,
            &node.release.version,
            build_cache::dirs(package_json.cache_directories.as_deref()),
        )?;
        for script in &plan.build_scripts {
            toolchain.run_script(script)?;
        }
        caches.save()?;
        build_cache::drop_next_build_traces(app_dir)?;
        let node_modules = app_dir.join("node_modules");
        let unpruned = dev_binaries::Binaries::read(&node_modules);
        dependencies::finish(prepared, &toolchain, &plan)?;
        restore_manifests(&committed, app_dir)?;
        toolchain.run_script_if_defined(&package_json, "heroku-cleanup")?;
        toolchain.remove_install_state()?;

        web_env::write(&context, &toolchain.launch_defaults())?;
        let web = processes::default_web(app_dir, package_manager.tool).unwrap_or_else(|w| {
            println!("warning: {w}");
            None
        });
        let launch = processes::launch(web.as_ref());
        // Only a prune removes binaries: with devDependencies kept there is nothing to say.
        if plan.prune {
            for warning in dev_binaries::after_prune(
                app_dir,
                &package_json,
                web.as_ref().map(|w| w.command.as_str()),
                &unpruned,
                &dev_binaries::Binaries::read(&node_modules),
            ) {
                println!("{warning}");
            }
        }
        // The engine exports once this process ends: the compression must be done by then.
        node.compressing
            .wait()
            .map_err(NodejsBuildpackError::KeepBlocks)?;
        tool.compressing
            .wait()
            .map_err(NodejsBuildpackError::KeepBlocks)?;
        if let Some(npm) = npm {
            npm.compressing
                .wait()
                .map_err(NodejsBuildpackError::KeepBlocks)?;
        }
        BuildResultBuilder::new().launch(launch).build()
    }

    fn on_error(&self, error: libcnb::Error<Self::Error>) {
        errors::on_error(error)
    }
}

/// Undo the package manager's writes to the app's manifests (see [`app_files`]).
fn restore_manifests(
    committed: &app_files::Committed,
    app_dir: &std::path::Path,
) -> Result<(), NodejsBuildpackError> {
    let changed = committed.restore().map_err(NodejsBuildpackError::io(
        "restoring the app's package.json and lockfile",
        app_dir,
    ))?;
    if !changed.is_empty() {
        println!(
            "Keeping the app's {} as committed (the package manager rewrote or wrote them)",
            changed.join(", ")
        );
    }
    Ok(())
}

/// The environment the tools start from: this process's, with the builder's npm settings
/// reduced to the network ones (see [`builder_config`]). The filtered user npmrc goes into the
/// build's `HOME`, which is private to this build and never exported.
fn builder_env() -> Result<libcnb::Env, NodejsBuildpackError> {
    let mut env = libcnb::Env::from_current();
    let Some(home) = std::env::var_os("HOME").map(std::path::PathBuf::from) else {
        return Ok(env);
    };
    let filtered = builder_config::filter(&mut env, &home).map_err(NodejsBuildpackError::io(
        "writing the builder's npm settings",
        &home,
    ))?;
    if !filtered.dropped.is_empty() {
        println!(
            "Ignoring the builder's npm settings that can change what is installed or written: {} (only registry, auth, TLS, proxy and logging settings of the builder reach the tools; set others in the app's .npmrc or with --env)",
            filtered.dropped.join(", ")
        );
    }
    Ok(env)
}

/// What this buildpack can say about the app without building it (`slug doctor`): start
/// commands that need a devDependency the build will prune.
pub fn warnings(app_dir: &std::path::Path) -> Vec<slugc_diagnostics::Warning> {
    dev_binaries::warnings(app_dir)
}

/// What the build reads from the app before installing, read and parsed the way the build
/// will: `package.json`, the choice of package manager, the lockfile, `engines.node`.
fn check_input(app_dir: &std::path::Path) -> Result<(), NodejsBuildpackError> {
    let package_json = PackageJson::read(app_dir)?;
    let package_manager = PackageManager::detect(app_dir, &package_json)?;
    if let Some(lockfile) = package_manager.lockfile {
        package_manager::check_lockfile(app_dir, lockfile)?;
    }
    node_version::check_requested(package_json.engines.node.as_deref(), node_version::today())?;
    project_settings::ProjectSettings::read(app_dir)?;
    Ok(())
}
