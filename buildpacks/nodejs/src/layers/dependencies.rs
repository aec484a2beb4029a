//! `node_modules`, kept in cached layers so that a rebuild with an unchanged lockfile runs no
//! install at all.
//!
//! Design: the production tree lives in the launch layer `modules` and the app gets a
//! relative symlink `node_modules → .layers/slugc_nodejs/modules/node_modules` (the layers
//! sit inside the app dir both while building and after unpacking, so the link holds
//! wherever the slug runs). When the app has devDependencies, prunes them and has a build
//! script, the unpruned tree is also kept in the cache-only layer `dev_modules`, so a warm
//! rebuild can run the build script again without installing anything.
//!
//! Cold: install into a real `app/node_modules`, run the build, copy the full tree to
//! `dev_modules` (if needed), prune, move the tree into `modules`, link.
//! Warm: move the tree of `dev_modules` (or `modules`) into a real `app/node_modules`, run
//! the build, move it back, link to `modules`. Either way the build script sees a real
//! `app/node_modules` at the same path: tools that record resolved paths (`tsc`'s build
//! info, bundlers' module ids) record the same ones, cold or warm. The moves are renames
//! (the layers are inside the app dir), never copies.

use super::{diff, discard_unreadable, explain, keep_if_unchanged, Reasons};
use crate::errors::NodejsBuildpackError;
use crate::fsutil;
use crate::package_json::PackageJson;
use crate::toolchain::Toolchain;
use crate::NodejsBuildpack;
use libcnb::build::BuildContext;
use libcnb::data::layer_name;
use libcnb::layer::{CachedLayerDefinition, LayerRef, UncachedLayerDefinition};
use libcnb::{Env, Platform};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependenciesMetadata {
    pub node_version: String,
    pub arch: String,
    /// `npm@12.2.2`
    pub package_manager: String,
    /// SHA-256 of everything an install reads from the app (see [`install_inputs_digest`]).
    pub install_inputs: String,
    /// Whether devDependencies were pruned.
    pub pruned: bool,
}

/// What the steps decided, handed from [`prepare`] to [`finish`].
pub struct Prepared {
    modules: LayerRef<NodejsBuildpack, Reasons, Reasons>,
    dev: Option<LayerRef<NodejsBuildpack, Reasons, Reasons>>,
    metadata: DependenciesMetadata,
    /// False: restored from the cache, nothing installed.
    installed: bool,
}

/// What the install must do, decided from package.json and the config vars.
pub struct Plan<'a> {
    pub metadata: DependenciesMetadata,
    /// The scripts that run between the install and the prune, in order (see
    /// [`build_scripts`]).
    pub build_scripts: Vec<&'static str>,
    /// Prune devDependencies after the build.
    pub prune: bool,
    /// package.json lists devDependencies.
    pub has_dev_dependencies: bool,
    /// A build script will run and needs devDependencies on every build.
    pub keep_dev_tree: bool,
    pub lockfile: Option<&'a str>,
    /// Why the app's own install scripts rule out skipping the install, if they do.
    pub root_scripts: Option<String>,
    /// The warning when the prune is skipped because the tool cannot do it safely.
    pub prune_unsafe: Option<String>,
}

/// The plan for an app whose tree is installed by `toolchain` on Node.js `node_version`.
pub fn plan<'a>(
    context: &BuildContext<NodejsBuildpack>,
    package_json: &PackageJson,
    lockfile: Option<&'a str>,
    node_version: &str,
    toolchain: &Toolchain,
    settings: &crate::project_settings::ProjectSettings,
) -> Result<Plan<'a>, NodejsBuildpackError> {
    let app_dir = &context.app_dir;
    let build_scripts = build_scripts(package_json);
    let has_dev_dependencies =
        !package_json.dev_dependencies.is_empty() || toolchain.workspace_packages();
    let scripts: Vec<&str> = package_json.scripts.keys().map(String::as_str).collect();
    let wanted = prune_enabled(context.platform.env(), settings) && has_dev_dependencies;
    let prune_unsafe = wanted
        .then(|| toolchain.prune_is_unsafe(&scripts))
        .flatten();
    let prune = wanted && prune_unsafe.is_none();
    Ok(Plan {
        metadata: DependenciesMetadata {
            node_version: node_version.to_string(),
            arch: context.target.arch.clone(),
            package_manager: format!("{}@{}", toolchain.tool.package(), toolchain.tool_version),
            install_inputs: install_inputs_digest(app_dir, lockfile)?,
            pruned: prune,
        },
        keep_dev_tree: prune && !build_scripts.is_empty(),
        build_scripts,
        prune,
        has_dev_dependencies,
        lockfile,
        root_scripts: root_install_scripts(app_dir, &scripts)
            .or_else(|| toolchain.installs_into_the_app()),
        prune_unsafe,
    })
}

/// The build scripts of Heroku's Node.js CNB, in its order: `heroku-prebuild`, then
/// `heroku-build` or else `build`, then `heroku-postbuild` (heroku/buildpacks-nodejs,
/// `test_npm_build_scripts`, `test_npm_build_scripts_prefers_heroku_build_over_build`).
pub fn build_scripts(package_json: &PackageJson) -> Vec<&'static str> {
    let build = ["heroku-build", "build"]
        .into_iter()
        .find(|s| package_json.script(s).is_some());
    std::iter::once("heroku-prebuild")
        .filter(|s| package_json.script(s).is_some())
        .chain(build)
        .chain(std::iter::once("heroku-postbuild").filter(|s| package_json.script(s).is_some()))
        .collect()
}

/// `NPM_CONFIG_PRODUCTION=false` or `YARN_PRODUCTION=false` (config var or environment, any
/// case), or `actions.prune_dev_dependencies = false` in project.toml, keeps devDependencies
/// in the slug, as on Heroku.
fn prune_enabled(platform_env: &Env, settings: &crate::project_settings::ProjectSettings) -> bool {
    settings.prune_dev_dependencies != Some(false)
        && !(config_is(platform_env, "NPM_CONFIG_PRODUCTION", "false")
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

/// The app's own install-time work writes outside `node_modules` (node-gyp's `build/`, files
/// generated by `postinstall`), which a fresh copy of the app lacks; such an app is installed
/// on every build.
fn root_install_scripts(app_dir: &Path, scripts: &[&str]) -> Option<String> {
    if app_dir.join("binding.gyp").is_file() {
        return Some(
            "binding.gyp: npm compiles the app's addon into build/ during the install".into(),
        );
    }
    let names: Vec<&str> = ["preinstall", "install", "postinstall", "prepare"]
        .into_iter()
        .filter(|s| scripts.contains(s))
        .collect();
    (!names.is_empty()).then(|| {
        format!(
            "package.json has {} script(s) ({}), whose output is not cached",
            names.len(),
            names.join(", ")
        )
    })
}

const NODE_MODULES: &str = "node_modules";

/// Restore `node_modules` or install it; afterwards `app/node_modules` holds the full tree
/// (devDependencies included) for the build script.
pub fn prepare(
    context: &BuildContext<NodejsBuildpack>,
    toolchain: &Toolchain,
    plan: &Plan<'_>,
) -> libcnb::Result<Prepared, NodejsBuildpackError> {
    let new = &plan.metadata;
    let restored_action = |old: &DependenciesMetadata, _: &Path| {
        let DependenciesMetadata {
            node_version,
            arch,
            package_manager,
            install_inputs,
            pruned,
        } = old;
        let mut reasons = Reasons::new();
        diff(
            &mut reasons,
            "Node.js version",
            node_version,
            &new.node_version,
        );
        diff(&mut reasons, "architecture", arch, &new.arch);
        diff(
            &mut reasons,
            "package manager",
            package_manager,
            &new.package_manager,
        );
        if install_inputs != &new.install_inputs {
            reasons.push(format!(
                "{} or the dependencies in package.json changed",
                plan.lockfile.unwrap_or("package.json")
            ));
        }
        if *pruned != new.pruned {
            reasons.push("the devDependencies pruning setting changed".to_string());
        }
        keep_if_unchanged(reasons)
    };
    let modules = context.cached_layer(
        layer_name!("modules"),
        CachedLayerDefinition {
            build: false,
            launch: true,
            invalid_metadata_action: &discard_unreadable,
            restored_layer_action: &restored_action,
        },
    )?;
    let mut restored = explain(&modules.state, "node_modules");
    let dev = if plan.keep_dev_tree {
        let dev = context.cached_layer(
            layer_name!("dev_modules"),
            CachedLayerDefinition {
                build: false,
                launch: false,
                invalid_metadata_action: &discard_unreadable,
                restored_layer_action: &restored_action,
            },
        )?;
        let dev_restored = explain(&dev.state, "devDependencies tree");
        if restored && !dev_restored {
            println!("Discarding cached node_modules: no cached devDependencies tree for the build script");
            restored = false;
        }
        restored &= dev_restored;
        Some(dev)
    } else {
        // A tree from an earlier build that had a build script: not needed any more.
        if context.layers_dir.join("dev_modules").exists() {
            context.uncached_layer(
                layer_name!("dev_modules"),
                UncachedLayerDefinition {
                    build: false,
                    launch: false,
                },
            )?;
        }
        None
    };

    if restored {
        if let Some(reason) = &plan.root_scripts {
            println!("Installing again although nothing changed: {reason}");
            restored = false;
        }
    }

    let app_modules = toolchain.app_dir.join(NODE_MODULES);
    if app_modules.symlink_metadata().is_ok() {
        println!(
            "Ignoring the node_modules dir in the app source: it is installed from the lockfile"
        );
        fsutil::remove_any(&app_modules).map_err(NodejsBuildpackError::io(
            "removing node_modules",
            &app_modules,
        ))?;
    }

    if restored {
        println!(
            "Reusing node_modules from the cache ({}, Node.js and {} unchanged): no install",
            plan.lockfile.unwrap_or("package.json"),
            toolchain.tool.display()
        );
        let tree = dev.as_ref().unwrap_or(&modules).path().join(NODE_MODULES);
        if tree.is_dir() {
            std::fs::rename(&tree, &app_modules).map_err(NodejsBuildpackError::io(
                "moving the cached node_modules into the app",
                &app_modules,
            ))?;
        }
        return Ok(Prepared {
            modules,
            dev,
            metadata: new.clone(),
            installed: false,
        });
    }

    // Either layer may hold a stale tree when only the other was discarded.
    for layer in std::iter::once(&modules).chain(dev.as_ref()) {
        let stale = layer.path().join(NODE_MODULES);
        fsutil::remove_any(&stale).map_err(NodejsBuildpackError::io(
            "removing a stale node_modules",
            &stale,
        ))?;
    }
    println!(
        "-----> Installing dependencies with {} {}",
        toolchain.tool.display(),
        toolchain.tool_version
    );
    if plan.lockfile.is_none() {
        println!(
            "Warning: no lockfile; running {} install resolves versions anew on every build. Commit the lockfile for repeatable builds.",
            toolchain.tool.command()
        );
    }
    toolchain.install(
        "dependency install",
        &toolchain.install_args(plan.lockfile.is_some()),
    )?;
    Ok(Prepared {
        modules,
        dev,
        metadata: new.clone(),
        installed: true,
    })
}

/// After the build script: prune, move the tree into the launch layer, point the link at it.
pub fn finish(
    prepared: Prepared,
    toolchain: &Toolchain,
    plan: &Plan<'_>,
) -> libcnb::Result<(), NodejsBuildpackError> {
    let app_modules = toolchain.app_dir.join(NODE_MODULES);
    let prod_tree = prepared.modules.path().join(NODE_MODULES);
    if !prepared.installed {
        // Back into the layer it came from (see [`prepare`]).
        let from = prepared
            .dev
            .as_ref()
            .unwrap_or(&prepared.modules)
            .path()
            .join(NODE_MODULES);
        if app_modules.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            std::fs::rename(&app_modules, &from).map_err(NodejsBuildpackError::io(
                "moving node_modules back into its layer",
                &from,
            ))?;
        }
        if prod_tree.is_dir() {
            fsutil::link_dir(&prod_tree, &app_modules).map_err(NodejsBuildpackError::io(
                "linking node_modules",
                &app_modules,
            ))?;
        }
        return Ok(());
    }
    let has_tree = app_modules.is_dir();
    if let Some(dev) = &prepared.dev {
        if has_tree {
            let dev_tree = dev.path().join(NODE_MODULES);
            slugc_fs::copy_tree(&app_modules, &dev_tree, &slugc_fs::Options::default())
                .map_err(std::io::Error::from)
                .and_then(|()| fsutil::rebase_links(&app_modules, &dev_tree))
                .map_err(NodejsBuildpackError::io(
                    "keeping the devDependencies tree",
                    &dev_tree,
                ))?;
        }
        dev.write_metadata(prepared.metadata.clone())?;
    }
    if plan.prune {
        println!("-----> Pruning devDependencies");
        toolchain.prune()?;
    } else if let Some(warning) = &plan.prune_unsafe {
        println!("{warning}");
    } else if plan.has_dev_dependencies {
        println!("Keeping devDependencies (actions.prune_dev_dependencies = false in project.toml, or NPM_CONFIG_PRODUCTION or YARN_PRODUCTION is false)");
    }
    if app_modules.is_dir() {
        crate::gyp::strip_packages(&app_modules).map_err(NodejsBuildpackError::io(
            "removing node-gyp's intermediate files",
            &app_modules,
        ))?;
        for name in toolchain.install_state_files(&app_modules) {
            let file = app_modules.join(name);
            fsutil::remove_any(&file)
                .map_err(NodejsBuildpackError::io("removing install state", &file))?;
        }
    }
    // pnpm's Plug'n'Play maps each package by its path under the app's `node_modules`, and
    // Node resolves a module to its real path: through a link into a layer, `.pnp.cjs` would
    // not know the package a `require` comes from and refuse its dependencies. Such an app
    // installs on every build anyway (see [`Toolchain::installs_into_the_app`]), so its tree
    // stays in the app.
    if app_modules.is_dir() && !toolchain.pnpm_pnp {
        std::fs::rename(&app_modules, &prod_tree)
            .and_then(|()| fsutil::rebase_links(&app_modules, &prod_tree))
            .map_err(NodejsBuildpackError::io(
                "moving node_modules into its layer",
                &prod_tree,
            ))?;
        fsutil::link_dir(&prod_tree, &app_modules).map_err(NodejsBuildpackError::io(
            "linking node_modules",
            &app_modules,
        ))?;
    }
    crate::gyp::strip_build_intermediates(&toolchain.app_dir).map_err(NodejsBuildpackError::io(
        "removing node-gyp's intermediate files",
        toolchain.app_dir.join("build"),
    ))?;
    prepared.modules.write_metadata(prepared.metadata.clone())?;
    Ok(())
}

/// SHA-256 over everything an install reads from the app: the lockfile, the package.json
/// fields that drive resolution and install scripts, and the tools' config files.
fn install_inputs_digest(
    app_dir: &Path,
    lockfile: Option<&str>,
) -> Result<String, NodejsBuildpackError> {
    let mut hasher = Sha256::new();
    let text =
        slugc_fs::input::read_app_text(app_dir, "package.json", slugc_fs::input::MANIFEST_CAP)
            .map_err(crate::package_json::PackageJsonError::Read)?
            .unwrap_or_default();
    let value: serde_json::Value =
        serde_json::from_str(text.trim_start_matches('\u{feff}')).unwrap_or_default();
    for key in [
        "dependencies",
        "devDependencies",
        "optionalDependencies",
        "peerDependencies",
        "bundleDependencies",
        "overrides",
        "resolutions",
        "workspaces",
        "pnpm",
    ] {
        hasher.update(key.as_bytes());
        hasher.update(
            value
                .get(key)
                .map(|v| v.to_string())
                .unwrap_or_default()
                .as_bytes(),
        );
    }
    // npm ci runs the app's own install lifecycle scripts.
    for script in ["preinstall", "install", "postinstall", "prepare"] {
        let body = value
            .pointer(&format!("/scripts/{script}"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        hasher.update(script.as_bytes());
        hasher.update(body.as_bytes());
    }
    let files: Vec<PathBuf> = lockfile
        .into_iter()
        .chain([
            ".npmrc",
            ".yarnrc",
            ".yarnrc.yml",
            "pnpm-workspace.yaml",
            ".pnpmfile.cjs",
        ])
        .map(|f| app_dir.join(f))
        .collect();
    for file in files {
        hasher.update(
            file.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        let name = file
            .strip_prefix(app_dir)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        match slugc_fs::input::read_app_file(app_dir, &name, slugc_fs::input::LOCKFILE_CAP) {
            Ok(Some(bytes)) => {
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
            }
            Ok(None) | Err(_) => hasher.update(b"absent"),
        }
    }
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_switch() {
        let none = crate::project_settings::ProjectSettings::default();
        let mut env = Env::new();
        assert!(prune_enabled(&env, &none));
        let off = crate::project_settings::ProjectSettings {
            prune_dev_dependencies: Some(false),
        };
        assert!(!prune_enabled(&env, &off));
        env.insert("NPM_CONFIG_PRODUCTION", "false");
        assert!(!prune_enabled(&env, &none));
        let mut env = Env::new();
        env.insert("yarn_production", "FALSE");
        assert!(!prune_enabled(&env, &none));
    }

    #[test]
    fn heroku_build_is_preferred_over_build_between_prebuild_and_postbuild() {
        let parse = |t: &str| PackageJson::parse(t, Path::new("package.json")).unwrap();
        let all = parse(
            r#"{"scripts":{"heroku-postbuild":"a","build":"b","heroku-build":"c","heroku-prebuild":"d","start":"e"}}"#,
        );
        assert_eq!(
            build_scripts(&all),
            ["heroku-prebuild", "heroku-build", "heroku-postbuild"]
        );
        let plain = parse(r#"{"scripts":{"heroku-postbuild":"a","build":"b"}}"#);
        assert_eq!(build_scripts(&plain), ["build", "heroku-postbuild"]);
        assert!(build_scripts(&parse(r#"{"scripts":{"start":"a"}}"#)).is_empty());
    }

    #[test]
    fn root_scripts_force_an_install() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(root_install_scripts(dir.path(), &["start", "build"]), None);
        assert_eq!(
            root_install_scripts(dir.path(), &["start", "postinstall", "prepare"]).as_deref(),
            Some("package.json has 2 script(s) (postinstall, prepare), whose output is not cached")
        );
        std::fs::write(dir.path().join("binding.gyp"), "{}").unwrap();
        assert!(root_install_scripts(dir.path(), &[])
            .unwrap()
            .starts_with("binding.gyp"));
    }

    #[test]
    fn digest_follows_lockfile_and_deps_but_not_other_scripts() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "package.json",
            r#"{"dependencies":{"a":"1"},"scripts":{"start":"node a"}}"#,
        );
        write("package-lock.json", "{\"v\":1}");
        let d = |lock| install_inputs_digest(dir.path(), lock).unwrap();
        let first = d(Some("package-lock.json"));
        assert_eq!(first, d(Some("package-lock.json")));
        write(
            "package.json",
            r#"{"dependencies":{"a":"1"},"scripts":{"start":"node b"}}"#,
        );
        assert_eq!(
            first,
            d(Some("package-lock.json")),
            "start script does not affect installs"
        );
        write("package-lock.json", "{\"v\":2}");
        assert_ne!(first, d(Some("package-lock.json")));
        let second = d(Some("package-lock.json"));
        write(
            "package.json",
            r#"{"dependencies":{"a":"2"},"scripts":{"start":"node b"}}"#,
        );
        assert_ne!(second, d(Some("package-lock.json")));
        let third = d(Some("package-lock.json"));
        write(".npmrc", "registry=https://x.example\n");
        assert_ne!(third, d(Some("package-lock.json")));
    }
}
