//! Running the package manager: the environment it gets and the exact command line for each
//! step (install, run a script, prune), per tool.

use crate::errors::NodejsBuildpackError;
use crate::layers::tool;
use crate::package_json::PackageJson;
use crate::package_manager::Tool;
use crate::yarn_berry::{self, BerryMode};
use crate::NodejsBuildpack;
use libcnb::build::BuildContext;
use libcnb::{Env, Platform};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// pnpm's setting that stops `pnpm run` and `pnpm start` from installing first.
const PNPM_VERIFY_DEPS: (&str, &str) = ("pnpm_config_verify_deps_before_run", "false");

/// The step name of the prune, for its error message.
pub const PRUNE_STEP: &str = "devDependencies prune";

pub struct Toolchain {
    pub tool: Tool,
    pub tool_version: String,
    /// The tool layer's `bin`, where the command is run from.
    pub tool_bin: PathBuf,
    pub app_dir: PathBuf,
    pub env: Env,
    /// How a Yarn 2+ app installs (the default for other tools).
    pub berry: BerryMode,
    /// A pnpm app with `pnpm-workspace.yaml` packages.
    pub pnpm_workspace: bool,
    /// A pnpm app with `node-linker=pnp`.
    pub pnpm_pnp: bool,
    /// An npm app whose package.json lists `workspaces`.
    pub npm_workspaces: bool,
    /// A Yarn app (classic, or 2+ with the node-modules linker) whose package.json lists
    /// `workspaces`.
    pub yarn_workspaces: bool,
}

/// Inputs for [`child_env`].
struct EnvInputs<'a> {
    base: Env,
    platform: &'a Env,
    node_home: &'a Path,
    /// Node's C headers, when the app may compile native addons.
    node_headers: Option<&'a Path>,
    tool_bin: &'a Path,
    /// npm's `bin`, when the app's tool is another one.
    npm_bin: Option<&'a Path>,
    tool: Tool,
    tool_version: &'a str,
    cache_dir: &'a Path,
    app_dir: &'a Path,
    berry: BerryMode,
}

/// Whether this package manager warns about `npm_config_*` variables it does not know
/// (npm 11.2 and later; <https://github.com/npm/cli/issues/8153>).
fn warns_on_unknown_env_config(tool: Tool, version: &str) -> bool {
    if tool != Tool::Npm {
        return false;
    }
    // A version npm's registry gave and we resolved: unparseable only if npm changed its
    // scheme, which would be a newer npm.
    let (Ok(version), Ok(from)) = (
        nodejs_semver::Version::parse(version),
        nodejs_semver::Range::parse(">=11.2.0-0"),
    ) else {
        return true;
    };
    version.satisfies(&from)
}

/// Where Node's compile cache goes, when set (<https://nodejs.org/api/module.html#module-compile-cache>).
const COMPILE_CACHE: &str = "NODE_COMPILE_CACHE";
/// Turns Node's compile cache off, whatever a tool asks for (any value does).
const NO_COMPILE_CACHE: &str = "NODE_DISABLE_COMPILE_CACHE";

/// The environment every tool and script runs with: runtime, tool and the app's
/// `node_modules/.bin` first on `PATH`; tool settings that keep caches in our layer; then the
/// user's config vars (`slug build --env`), which win over everything but the `PATH` entries.
fn child_env(inputs: EnvInputs<'_>) -> Env {
    let mut env = inputs.base;
    let mut defaults: Vec<(&str, OsString)> = vec![
        ("npm_config_update_notifier", "false".into()),
        ("npm_config_fund", "false".into()),
        ("npm_config_audit", "false".into()),
        ("NODE_ENV", "production".into()),
        // Build tools that stamp dates read it (reproducible-builds.org): the slug's own
        // mtime, so a rebuild of the same tree stamps the same.
        (
            "SOURCE_DATE_EPOCH",
            slug_format::export::DEFAULT_MTIME.to_string().into(),
        ),
    ];
    // npm 10.9+ turns on Node's compile cache (`module.enableCompileCache()`, Node 22.1+),
    // which writes V8 code for each of its files into `$TMPDIR/node-compile-cache`, keyed by
    // their paths: every new build dir (every app's cache, every `--no-cache` build) left
    // ~550 files there (2.6 MB) that nothing removes, outside the build and the caches. A
    // build writes nothing of the builder's but its own dirs. A config var that names a
    // compile cache (`NODE_COMPILE_CACHE`) is the user's choice and keeps it.
    if !inputs.platform.contains_key(COMPILE_CACHE) && !env.contains_key(COMPILE_CACHE) {
        defaults.push((NO_COMPILE_CACHE, "1".into()));
    }
    if let Some(headers) = inputs.node_headers {
        // node-gyp 11.4+ reads its options from `npm_package_config_node_gyp_*`, which npm
        // leaves alone; npm 11.2+ warns on every `npm_config_nodedir` it sees, and npm 13 will
        // refuse it (<https://github.com/nodejs/node-gyp/issues/3163>). Older node-gyps (npm
        // 10's, Yarn 1's, pnpm's) only read the latter, which nothing warns about there.
        defaults.push(("npm_package_config_node_gyp_nodedir", headers.into()));
        if !warns_on_unknown_env_config(inputs.tool, inputs.tool_version) {
            defaults.push(("npm_config_nodedir", headers.into()));
        }
    }
    match inputs.tool {
        Tool::Npm => defaults.push(("npm_config_cache", inputs.cache_dir.into())),
        // The tools' output is the build log, a pipe the engine prefixes and stores: Yarn
        // writes colour codes there anyway (Berry's `enableColors` follows CI detection,
        // Yarn 1's chalk `FORCE_COLOR`), which would reach a log file or a non-terminal
        // stderr as escape sequences. A config var that sets them wins.
        Tool::YarnClassic => {
            defaults.push(("YARN_CACHE_FOLDER", inputs.cache_dir.into()));
            defaults.push(("FORCE_COLOR", "0".into()));
        }
        Tool::YarnBerry => {
            defaults.push(("YARN_ENABLE_COLORS", "false".into()));
            defaults.push(("YARN_ENABLE_HYPERLINKS", "false".into()));
            defaults.push(("FORCE_COLOR", "0".into()));
            // `.pnp.cjs` finds each zip by its path from the app: a PnP app's cache is the
            // app's own (seeded from the cache layer), and so is a committed one.
            let cache = if inputs.berry.uses_app_cache() {
                yarn_berry::app_cache(inputs.app_dir)
            } else {
                inputs.cache_dir.to_path_buf()
            };
            defaults.push(("YARN_CACHE_FOLDER", cache.into()));
            defaults.push(("YARN_ENABLE_GLOBAL_CACHE", "false".into()));
            defaults.push(("YARN_ENABLE_TELEMETRY", "0".into()));
            defaults.push(("YARN_ENABLE_PROGRESS_BARS", "false".into()));
            // A node_modules tree can be cached as a layer and needs no loader at run time.
            // An app that set nodeLinker in .yarnrc.yml keeps its choice.
            if !inputs.berry.sets_node_linker {
                defaults.push(("YARN_NODE_LINKER", "node-modules".into()));
            }
        }
        // pnpm 11 checks before `pnpm run` that node_modules matches the lockfile and installs
        // when it cannot tell (`verifyDepsBeforeRun`, <https://pnpm.io/settings>); its state
        // files are not in the slug (they hold dates and build paths), so without this a
        // build script or the dyno's `pnpm start` would install again, from the network.
        Tool::Pnpm => defaults.push((PNPM_VERIFY_DEPS.0, PNPM_VERIFY_DEPS.1.into())),
    }
    for (key, value) in defaults {
        if !env.contains_key(key) {
            env.insert(key, value);
        }
    }
    // npm keeps other `npm_config_*` from the user; only the cache dir is ours.
    if inputs.tool == Tool::Npm {
        env.insert("npm_config_cache", inputs.cache_dir);
    }
    // The layer path variables of the platform env are in the process env already, prepended
    // to the build's own (`slug_format::user_env`): set from the file they would hide the
    // build's tools (git, the compilers native addons need).
    for (key, value) in inputs
        .platform
        .iter()
        .filter(|(key, _)| !slug_format::user_env::is_layer_path_var(key))
    {
        env.insert(key, value);
    }
    if inputs.tool == Tool::YarnBerry {
        // `YARN_PRODUCTION=false` is Heroku's switch for keeping devDependencies (read by the
        // buildpack), but Yarn 2+ reads every `YARN_*` variable as a setting and refuses the
        // install on one it does not know ("Unrecognized or legacy configuration settings").
        env = without(env, |key| key.eq_ignore_ascii_case("YARN_PRODUCTION"));
    }
    if inputs.tool == Tool::Pnpm {
        // pnpm reads its settings from `npm_config_*` variables too
        // (<https://pnpm.io/npmrc>), and every command that touches `node_modules` must see
        // the same store, or it refuses the tree (ERR_PNPM_UNEXPECTED_STORE). As options they
        // would not do: `pnpm prune` rejects `--store-dir` and `--package-import-method`.
        // pnpm hard-links from its store by default; the store is another layer and a slug
        // must hold plain files, so copy.
        // The same settings in another case or prefix (pnpm reads `NPM_CONFIG_*` and
        // `pnpm_config_*` too) would compete with these: drop them.
        env = without(env, |key| {
            let key = key.to_ascii_lowercase();
            ["npm_config_", "pnpm_config_"].iter().any(|prefix| {
                key.strip_prefix(prefix)
                    .is_some_and(|k| k == "store_dir" || k == "package_import_method")
            })
        });
        env.insert("npm_config_store_dir", inputs.cache_dir);
        env.insert("npm_config_package_import_method", "copy");
    }
    // Yarn runs `node-gyp` for packages with a binding.gyp and expects the one that comes with
    // Node's npm (Yarn 1 looks beside `process.execPath`, else tries a global install):
    // npm's `bin/node-gyp-bin`, from the npm layer.
    let node_gyp_bin = match inputs.tool {
        Tool::YarnClassic | Tool::YarnBerry => inputs
            .npm_bin
            .and_then(Path::parent)
            .map(|npm| npm.join("package/bin/node-gyp-bin")),
        Tool::Npm | Tool::Pnpm => None,
    };
    let mut path: Vec<PathBuf> = std::iter::once(inputs.tool_bin)
        .chain(inputs.npm_bin)
        .map(Path::to_path_buf)
        .chain(node_gyp_bin)
        .chain([
            inputs.node_home.join("bin"),
            inputs.app_dir.join("node_modules/.bin"),
        ])
        .collect();
    if let Some(existing) = env.get("PATH") {
        path.extend(std::env::split_paths(existing));
    }
    if let Ok(joined) = std::env::join_paths(path) {
        env.insert("PATH", joined);
    }
    env
}

/// Every `node_modules` dir of the app (the root's and each workspace package's), not looking
/// inside them, the layers or hidden dirs.
fn remove_node_modules_dirs(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || !entry.file_type()?.is_dir() {
            continue;
        }
        if name == "node_modules" {
            crate::fsutil::remove_any(&entry.path())?;
        } else {
            remove_node_modules_dirs(&entry.path())?;
        }
    }
    Ok(())
}

/// The Yarn prune plugin in a file of its own, outside the app and the layers; removed when
/// dropped.
fn write_prune_plugin() -> Result<tempfile::NamedTempFile, NodejsBuildpackError> {
    use std::io::Write;
    let dir = std::env::temp_dir();
    let mut file = tempfile::Builder::new()
        .prefix("slugc-yarn-prune-")
        .suffix(".cjs")
        .tempfile_in(&dir)
        .map_err(NodejsBuildpackError::io(
            "writing the Yarn prune plugin",
            &dir,
        ))?;
    file.write_all(yarn_berry::PRUNE_PLUGIN.as_bytes())
        .map_err(NodejsBuildpackError::io(
            "writing the Yarn prune plugin",
            file.path().to_path_buf(),
        ))?;
    Ok(file)
}

/// `env` without the variables whose name `drop` matches.
fn without(env: Env, drop: impl Fn(&str) -> bool) -> Env {
    let mut kept = Env::new();
    for (key, value) in env.iter().filter(|(key, _)| !drop(&key.to_string_lossy())) {
        kept.insert(key, value);
    }
    kept
}

impl Toolchain {
    /// The installed tool, started from the environment `base`, run with Node.js from `node_home` (and its C headers, when the app
    /// may compile addons) and its cache in `cache_dir`.
    pub fn new(
        context: &BuildContext<NodejsBuildpack>,
        base: Env,
        node_home: &Path,
        node_headers: Option<&Path>,
        tool: &tool::Installed,
        npm_bin: Option<&Path>,
        cache_dir: PathBuf,
    ) -> Self {
        let berry = match tool.tool {
            Tool::YarnBerry => BerryMode::detect(&context.app_dir),
            _ => BerryMode::default(),
        };
        let env = child_env(EnvInputs {
            base,
            platform: context.platform.env(),
            node_home,
            node_headers,
            tool_bin: &tool.bin,
            npm_bin,
            tool: tool.tool,
            tool_version: &tool.version,
            cache_dir: &cache_dir,
            app_dir: &context.app_dir,
            berry,
        });
        Toolchain {
            tool: tool.tool,
            tool_version: tool.version.clone(),
            tool_bin: tool.bin.clone(),
            app_dir: context.app_dir.clone(),
            env,
            berry,
            pnpm_workspace: tool.tool == Tool::Pnpm
                && crate::package_manager::is_pnpm_workspace(&context.app_dir),
            pnpm_pnp: tool.tool == Tool::Pnpm
                && crate::package_manager::is_pnpm_pnp(&context.app_dir),
            npm_workspaces: false,
            yarn_workspaces: false,
        }
    }

    /// The toolchain of an npm or Yarn app whose package.json lists `workspaces`, if it does.
    pub fn with_workspaces(mut self, package_json: &PackageJson) -> Self {
        let listed = package_json.has_workspaces();
        self.npm_workspaces = self.tool == Tool::Npm && listed;
        self.yarn_workspaces =
            matches!(self.tool, Tool::YarnClassic | Tool::YarnBerry) && !self.berry.pnp && listed;
        self
    }

    /// The install command: devDependencies included (they are pruned later), lockfile
    /// enforced, cache preferred over the network.
    pub fn install_args(&self, lockfile: bool) -> Vec<String> {
        let args: &[&str] = match (self.tool, lockfile) {
            (Tool::Npm, true) => &[
                "ci",
                "--include=dev",
                "--prefer-offline",
                "--no-audit",
                "--no-fund",
            ],
            (Tool::Npm, false) => &[
                "install",
                "--include=dev",
                "--prefer-offline",
                "--no-audit",
                "--no-fund",
            ],
            (Tool::YarnClassic, true) => &[
                "install",
                "--frozen-lockfile",
                "--production=false",
                "--prefer-offline",
                "--non-interactive",
            ],
            (Tool::YarnClassic, false) => &[
                "install",
                "--production=false",
                "--prefer-offline",
                "--non-interactive",
            ],
            // A committed cache is the app's: the install may not add to it or drop from it.
            // `--inline-builds`: build scripts' output (node-gyp's errors) in the build log,
            // not in a temporary file (Heroku's CNB passes it too).
            (Tool::YarnBerry, true) if self.berry.zero_install => &[
                "install",
                "--immutable",
                "--immutable-cache",
                "--inline-builds",
            ],
            (Tool::YarnBerry, true) => &["install", "--immutable", "--inline-builds"],
            (Tool::YarnBerry, false) => &["install", "--inline-builds"],
            (Tool::Pnpm, true) => &["install", "--frozen-lockfile", "--prefer-offline"],
            (Tool::Pnpm, false) => &["install", "--prefer-offline"],
        };
        args.iter().map(|s| s.to_string()).collect()
    }

    /// Remove devDependencies from the installed tree, as Heroku does after the build.
    pub fn prune_args(&self) -> Vec<String> {
        match self.tool {
            Tool::Npm => vec![
                "prune".into(),
                "--omit=dev".into(),
                "--no-audit".into(),
                "--no-fund".into(),
            ],
            // Yarn 1 has no prune: a production install over the tree removes the rest.
            Tool::YarnClassic => [
                "install",
                "--production=true",
                "--frozen-lockfile",
                "--ignore-scripts",
                "--prefer-offline",
                "--non-interactive",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            // Yarn 2 and 3 have no `workspaces focus` without the workspace-tools plugin
            // (fetched from GitHub): our own plugin does its `--all --production` on every
            // Berry major (see assets/yarn-prune-plugin.cjs), as Heroku's CNB does with its
            // `yarn heroku prune`.
            Tool::YarnBerry => vec![yarn_berry::PRUNE_COMMAND.into()],
            // In a workspace `pnpm prune --prod` asks to purge node_modules, and when allowed
            // to drops the links between workspace packages too; a production install into
            // fresh node_modules dirs is what Heroku's CNB runs there (from the store).
            Tool::Pnpm if self.pnpm_workspace => {
                ["install", "--prod", "--frozen-lockfile", "--prefer-offline"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            }
            // `pnpm prune` runs the app's lifecycle scripts unless told not to, and only
            // pnpm after 8.15.6 can be told (Heroku's rule, heroku/buildpacks-nodejs
            // `pnpm_install` prune); see [`Toolchain::prune_is_unsafe`] for the others.
            Tool::Pnpm if self.pnpm_prune_ignores_scripts() => {
                vec!["prune".into(), "--prod".into(), "--ignore-scripts".into()]
            }
            Tool::Pnpm => vec!["prune".into(), "--prod".into()],
        }
    }

    fn pnpm_prune_ignores_scripts(&self) -> bool {
        nodejs_semver::Version::parse(&self.tool_version)
            .is_ok_and(|v| (v.major(), v.minor(), v.patch()) > (8, 15, 6))
    }

    /// Why pruning would be unsafe, if it would be: a pnpm that cannot skip scripts while it
    /// prunes reruns the app's install lifecycle scripts, which may need the devDependencies
    /// being removed. Heroku skips the prune then, with a warning; so do we.
    pub fn prune_is_unsafe(&self, scripts: &[&str]) -> Option<String> {
        if self.tool != Tool::Pnpm || self.pnpm_prune_ignores_scripts() {
            return None;
        }
        let found: Vec<&str> = ["pnpm:devPreinstall", "preinstall", "postinstall", "prepare"]
            .into_iter()
            .filter(|s| scripts.contains(s))
            .collect();
        (!found.is_empty()).then(|| {
            format!(
                "Warning: not pruning devDependencies: pnpm {} runs the {} script(s) of package.json while it prunes, which can fail without devDependencies; pnpm 8.15.7 or newer prunes without running them",
                self.tool_version,
                found.join(", ")
            )
        })
    }

    /// Packages other than the root may declare devDependencies (a pnpm or npm workspace's),
    /// so the prune is worth running even when the root's package.json lists none.
    pub fn workspace_packages(&self) -> bool {
        self.pnpm_workspace || self.npm_workspaces || self.yarn_workspaces
    }

    /// What the dyno's environment needs for the tool to find the installed tree: Yarn 2+
    /// defaults to Plug'n'Play, so `yarn start` on a tree we linked as `node_modules` (the
    /// app set no nodeLinker) fails with "doesn't seem to have been installed" unless it is
    /// told the linker there too.
    pub fn launch_defaults(&self) -> Vec<(&'static str, &'static str)> {
        match self.tool {
            Tool::YarnBerry if !self.berry.sets_node_linker => {
                vec![("YARN_NODE_LINKER", "node-modules")]
            }
            // A dyno runs the tree the build installed (see [`child_env`]).
            Tool::Pnpm => vec![PNPM_VERIFY_DEPS],
            _ => Vec::new(),
        }
    }

    /// Yarn 2+ compiles a `binding.gyp` of the app's own root only when package.json has an
    /// install script (for registry packages it adds `node-gyp rebuild` itself): without one
    /// the build succeeds and the addon is missing at boot. Said before the install.
    pub fn unbuilt_addon_warning(&self, package_json: &PackageJson) -> Option<&'static str> {
        let scripts = ["preinstall", "install", "postinstall"];
        (self.tool == Tool::YarnBerry
            && self.app_dir.join("binding.gyp").is_file()
            && !scripts.iter().any(|s| package_json.script(s).is_some()))
        .then_some(
            "Warning: Yarn 2+ does not compile the app's binding.gyp without an install script; add \"install\": \"node-gyp rebuild\" to the scripts and node-gyp to the devDependencies of package.json",
        )
    }

    /// Yarn 2+'s install state (`.yarn/install-state.gz`, in the app) hashes the absolute
    /// path of every package it built (its build state), so it differs from one build dir to
    /// the next; `yarn run` writes it again from the lockfile when it is missing (no network),
    /// on the dyno as in a warm build's scripts. So the slug does not carry it.
    pub fn remove_install_state(&self) -> Result<(), NodejsBuildpackError> {
        if self.tool != Tool::YarnBerry {
            return Ok(());
        }
        let state = self.app_dir.join(yarn_berry::INSTALL_STATE);
        crate::fsutil::remove_any(&state).map_err(NodejsBuildpackError::io(
            "removing Yarn's install state",
            &state,
        ))?;
        // Yarn made `.yarn` for it alone when the app has no `.yarn` of its own: a warm build,
        // which installs nothing, has no such dir, so the cold slug must not have it either.
        if let Some(dir) = state.parent() {
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }

    /// Why this app is installed on every build although nothing changed, if it is: Yarn's
    /// Plug'n'Play writes `.pnp.cjs`, `.pnp.loader.mjs` and `.yarn/unplugged` into the app
    /// (pnpm's `.pnp.cjs`), and each package of a pnpm workspace gets its own `node_modules`
    /// there; a fresh copy of the source lacks them, and no layer holds them.
    pub fn installs_into_the_app(&self) -> Option<String> {
        if self.berry.pnp {
            return Some("Plug'n'Play (nodeLinker: pnp in .yarnrc.yml) installs into the app (.pnp.cjs, .yarn/unplugged), not into a layer".to_string());
        }
        if self.berry.zero_install {
            return Some("zero-install (.yarn/cache committed): the prune removes the devDependencies' zips from the app's .yarn/cache, which a fresh copy of the source has again".to_string());
        }
        if self.pnpm_pnp {
            return Some(
                "Plug'n'Play (node-linker=pnp in .npmrc) writes .pnp.cjs into the app, not into a layer"
                    .to_string(),
            );
        }
        if self.npm_workspaces {
            return crate::npm_workspaces::installs_into_the_app(&self.app_dir);
        }
        if self.yarn_workspaces {
            // yarn.lock, unlike package-lock.json, does not say where a package is installed:
            // a version that conflicts with the root's goes into the workspace package's own
            // node_modules (`packages/greeting/node_modules/ms`), which is in the app.
            return Some(
                "Yarn workspaces (workspaces in package.json) may install into each workspace package's node_modules, not into the cached one"
                    .to_string(),
            );
        }
        self.pnpm_workspace.then(|| {
            "pnpm-workspace.yaml: each workspace package's node_modules is in the app, not in a layer".to_string()
        })
    }

    /// Files in the top of `node_modules` that only the next install reads and that would make
    /// the slug differ between builds: pnpm's `.modules.yaml` holds the absolute store path and
    /// a `prunedAt` date, its workspace state a timestamp. Nothing reads them at run time.
    pub fn install_state_files(&self, node_modules: &Path) -> Vec<String> {
        if self.tool != Tool::Pnpm {
            return Vec::new();
        }
        let mut names = vec![".modules.yaml".to_string()];
        if let Ok(entries) = std::fs::read_dir(node_modules) {
            names.extend(
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(".pnpm-workspace-state")),
            );
        }
        names.sort();
        names
    }

    pub fn display_command(&self, args: &[String]) -> String {
        std::iter::once(self.tool.command().to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Run the tool in the app dir; its output goes straight to the build log.
    pub fn run(&self, step: &str, args: &[String]) -> Result<(), NodejsBuildpackError> {
        self.run_with(step, args, false, &[])
    }

    /// Install steps run without `NODE_ENV`: under `NODE_ENV=production` pnpm (and older
    /// npm) skip devDependencies, which the build needs; they are pruned afterwards.
    pub fn install(&self, step: &str, args: &[String]) -> Result<(), NodejsBuildpackError> {
        self.run_with(step, args, true, &[])
    }

    /// Remove devDependencies ([`Toolchain::prune_args`]); on Yarn 2+ with our plugin loaded.
    pub fn prune(&self) -> Result<(), NodejsBuildpackError> {
        let args = self.prune_args();
        if self.pnpm_workspace {
            remove_node_modules_dirs(&self.app_dir).map_err(NodejsBuildpackError::io(
                "removing the workspace's node_modules before the production install",
                &self.app_dir,
            ))?;
        }
        if self.tool != Tool::YarnBerry {
            return self.install(PRUNE_STEP, &args);
        }
        let plugin = write_prune_plugin()?;
        let mut plugins = OsString::from(plugin.path());
        // Plugins the user loads this way stay loaded (Yarn splits the list on `;`).
        if let Some(theirs) = self.env.get("YARN_PLUGINS").filter(|v| !v.is_empty()) {
            plugins.push(";");
            plugins.push(theirs);
        }
        let cleanup = if self.berry.uses_app_cache() {
            "1"
        } else {
            "0"
        };
        self.run_with(
            PRUNE_STEP,
            &args,
            true,
            &[
                ("YARN_PLUGINS", plugins),
                (yarn_berry::CACHE_CLEANUP_ENV, cleanup.into()),
            ],
        )
    }

    fn run_with(
        &self,
        step: &str,
        args: &[String],
        install: bool,
        extra_env: &[(&str, OsString)],
    ) -> Result<(), NodejsBuildpackError> {
        let shown = self.display_command(args);
        println!("Running {shown}");
        let mut command = Command::new(self.tool_bin.join(self.tool.command()));
        command
            .args(args)
            .current_dir(&self.app_dir)
            .env_clear()
            .envs(&self.env)
            .envs(extra_env.iter().map(|(k, v)| (k, v)));
        if install {
            command.env_remove("NODE_ENV");
        }
        let failed = |status: String| {
            if install {
                NodejsBuildpackError::Install {
                    step: step.to_string(),
                    command: shown.clone(),
                    status,
                }
            } else {
                NodejsBuildpackError::Script {
                    step: step.to_string(),
                    command: shown.clone(),
                    status,
                }
            }
        };
        let status = command
            .status()
            .map_err(|e| failed(format!("could not start: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(failed(match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_string(),
            }))
        }
    }

    /// [`Toolchain::run_script`] when package.json has a script `name`.
    pub fn run_script_if_defined(
        &self,
        package_json: &PackageJson,
        name: &str,
    ) -> Result<(), NodejsBuildpackError> {
        match package_json.script(name) {
            Some(_) => self.run_script(name),
            None => Ok(()),
        }
    }

    /// `npm run <name>` (yarn/pnpm alike).
    pub fn run_script(&self, name: &str) -> Result<(), NodejsBuildpackError> {
        println!("-----> Running {name} script");
        self.run(
            &format!("\"{name}\" script in package.json"),
            &["run".to_string(), name.to_string()],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toolchain(tool: Tool) -> Toolchain {
        Toolchain {
            tool,
            tool_version: "1.0.0".into(),
            tool_bin: "/l/bin".into(),
            app_dir: "/w/app".into(),
            env: Env::new(),
            berry: BerryMode::default(),
            pnpm_workspace: false,
            pnpm_pnp: false,
            npm_workspaces: false,
            yarn_workspaces: false,
        }
    }

    #[test]
    fn commands_per_tool() {
        let npm = toolchain(Tool::Npm);
        assert_eq!(
            npm.display_command(&npm.install_args(true)),
            "npm ci --include=dev --prefer-offline --no-audit --no-fund"
        );
        assert_eq!(
            npm.display_command(&npm.prune_args()),
            "npm prune --omit=dev --no-audit --no-fund"
        );
        let mut pnpm = toolchain(Tool::Pnpm);
        assert_eq!(
            pnpm.display_command(&pnpm.install_args(true)),
            "pnpm install --frozen-lockfile --prefer-offline"
        );
        // `pnpm prune` takes no store options (they come from the environment).
        pnpm.tool_version = "9.15.9".into();
        assert_eq!(
            pnpm.display_command(&pnpm.prune_args()),
            "pnpm prune --prod --ignore-scripts"
        );
        assert_eq!(pnpm.prune_is_unsafe(&["postinstall"]), None);
        pnpm.tool_version = "8.11.0".into();
        assert_eq!(
            pnpm.display_command(&pnpm.prune_args()),
            "pnpm prune --prod"
        );
        assert_eq!(pnpm.prune_is_unsafe(&["start", "build"]), None);
        assert!(pnpm
            .prune_is_unsafe(&["start", "postinstall"])
            .is_some_and(|w| w.contains("postinstall")));
        let yarn = toolchain(Tool::YarnClassic);
        assert!(yarn
            .display_command(&yarn.install_args(true))
            .starts_with("yarn install --frozen-lockfile"));
        pnpm.pnpm_workspace = true;
        assert_eq!(
            pnpm.display_command(&pnpm.prune_args()),
            "pnpm install --prod --frozen-lockfile --prefer-offline"
        );
        let mut berry = toolchain(Tool::YarnBerry);
        assert_eq!(
            berry.display_command(&berry.prune_args()),
            "yarn slugc-prune"
        );
        assert_eq!(
            berry.display_command(&berry.install_args(true)),
            "yarn install --immutable --inline-builds"
        );
        berry.berry.zero_install = true;
        assert_eq!(
            berry.display_command(&berry.install_args(true)),
            "yarn install --immutable --immutable-cache --inline-builds"
        );
    }

    fn env_for(tool: Tool, platform: &Env, berry: BerryMode) -> Env {
        child_env(EnvInputs {
            base: Env::new(),
            platform,
            node_home: Path::new("/l/node"),
            node_headers: None,
            tool_bin: &Path::new("/l").join(tool.command()).join("bin"),
            npm_bin: Some(Path::new("/l/npm/bin")),
            tool,
            tool_version: "10.0.0",
            cache_dir: Path::new("/l/cache"),
            app_dir: Path::new("/w/app"),
            berry,
        })
    }

    #[test]
    fn yarn_berry_env_drops_yarn_production_and_puts_pnp_packages_in_the_app() {
        let mut platform = Env::new();
        platform.insert("YARN_PRODUCTION", "false");
        platform.insert("yarn_production", "false");
        let env = env_for(Tool::YarnBerry, &platform, BerryMode::default());
        assert!(!env.contains_key("YARN_PRODUCTION"));
        assert!(!env.contains_key("yarn_production"));
        assert_eq!(
            env.get_string_lossy("YARN_CACHE_FOLDER").unwrap(),
            "/l/cache"
        );
        assert_eq!(
            env.get_string_lossy("YARN_NODE_LINKER").unwrap(),
            "node-modules"
        );
        let pnp = BerryMode {
            pnp: true,
            sets_node_linker: true,
            zero_install: false,
        };
        let env = env_for(Tool::YarnBerry, &platform, pnp);
        assert_eq!(
            env.get_string_lossy("YARN_CACHE_FOLDER").unwrap(),
            "/w/app/.yarn/cache"
        );
        assert!(!env.contains_key("YARN_NODE_LINKER"));
        // Yarn 1 keeps the setting it knows.
        let env = env_for(Tool::YarnClassic, &platform, BerryMode::default());
        assert_eq!(env.get_string_lossy("YARN_PRODUCTION").unwrap(), "false");
    }

    #[test]
    fn yarn_berry_warns_about_a_root_addon_it_will_not_compile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("binding.gyp"), "{}").unwrap();
        let mut berry = toolchain(Tool::YarnBerry);
        berry.app_dir = dir.path().to_path_buf();
        let pj = |text| PackageJson::parse(text, Path::new("package.json")).unwrap();
        assert!(berry
            .unbuilt_addon_warning(&pj(r#"{"scripts":{"start":"node a"}}"#))
            .is_some_and(|w| w.contains("node-gyp rebuild")));
        let with_script = pj(r#"{"scripts":{"install":"node-gyp rebuild"}}"#);
        assert_eq!(berry.unbuilt_addon_warning(&with_script), None);
        let mut classic = toolchain(Tool::YarnClassic);
        classic.app_dir = dir.path().to_path_buf();
        assert_eq!(classic.unbuilt_addon_warning(&pj("{}")), None);
    }

    #[test]
    fn nodes_compile_cache_is_off_unless_a_config_var_names_one() {
        let env = env_for(Tool::Npm, &Env::new(), BerryMode::default());
        assert_eq!(env.get_string_lossy(NO_COMPILE_CACHE).as_deref(), Some("1"));
        let mut platform = Env::new();
        platform.insert(COMPILE_CACHE, "/w/app/.cache/v8");
        let env = env_for(Tool::Npm, &platform, BerryMode::default());
        assert!(!env.contains_key(NO_COMPILE_CACHE));
        assert_eq!(
            env.get_string_lossy(COMPILE_CACHE).as_deref(),
            Some("/w/app/.cache/v8")
        );
    }

    #[test]
    fn yarn_finds_the_node_gyp_of_the_npm_layer() {
        let env = env_for(Tool::YarnClassic, &Env::new(), BerryMode::default());
        assert_eq!(
            env.get_string_lossy("PATH").unwrap(),
            "/l/yarn/bin:/l/npm/bin:/l/npm/package/bin/node-gyp-bin:/l/node/bin:/w/app/node_modules/.bin"
        );
    }

    #[test]
    fn pnpm_store_settings_are_the_buildpacks_whatever_the_config_vars() {
        let mut platform = Env::new();
        platform.insert("npm_config_store_dir", "/elsewhere");
        platform.insert("NPM_CONFIG_STORE_DIR", "/elsewhere");
        platform.insert("pnpm_config_package_import_method", "hardlink");
        platform.insert("NPM_CONFIG_REGISTRY", "https://r.example");
        let env = env_for(Tool::Pnpm, &platform, BerryMode::default());
        assert_eq!(
            env.get_string_lossy("npm_config_store_dir").unwrap(),
            "/l/cache"
        );
        assert_eq!(
            env.get_string_lossy("npm_config_package_import_method")
                .unwrap(),
            "copy"
        );
        assert!(!env.contains_key("NPM_CONFIG_STORE_DIR"));
        assert!(!env.contains_key("pnpm_config_package_import_method"));
        assert_eq!(
            env.get_string_lossy("NPM_CONFIG_REGISTRY").unwrap(),
            "https://r.example"
        );
        // npm after the app's tool, before Node and the host.
        assert_eq!(
            env.get_string_lossy("PATH").unwrap(),
            "/l/pnpm/bin:/l/npm/bin:/l/node/bin:/w/app/node_modules/.bin"
        );
    }

    #[test]
    fn env_puts_tools_first_and_config_vars_last() {
        let mut base = Env::new();
        base.insert("PATH", "/usr/bin");
        base.insert("NODE_ENV", "staging");
        let mut platform = Env::new();
        platform.insert("NPM_CONFIG_PRODUCTION", "false");
        let env = child_env(EnvInputs {
            base,
            platform: &platform,
            node_home: Path::new("/l/node"),
            node_headers: Some(Path::new("/l/node_headers")),
            tool_bin: Path::new("/l/npm/bin"),
            npm_bin: None,
            tool: Tool::Npm,
            tool_version: "12.2.2",
            cache_dir: Path::new("/l/npm_cache"),
            app_dir: Path::new("/w/app"),
            berry: BerryMode::default(),
        });
        assert_eq!(
            env.get_string_lossy("PATH").unwrap(),
            "/l/npm/bin:/l/node/bin:/w/app/node_modules/.bin:/usr/bin"
        );
        assert_eq!(env.get_string_lossy("NODE_ENV").unwrap(), "staging");
        assert_eq!(
            env.get_string_lossy("npm_config_cache").unwrap(),
            "/l/npm_cache"
        );
        assert_eq!(
            env.get_string_lossy("NPM_CONFIG_PRODUCTION").unwrap(),
            "false"
        );
        // npm 12 would warn about npm_config_nodedir on every command.
        assert_eq!(
            env.get_string_lossy("npm_package_config_node_gyp_nodedir")
                .unwrap(),
            "/l/node_headers"
        );
        assert!(env.get("npm_config_nodedir").is_none());
    }

    #[test]
    fn only_npm_from_11_2_warns_on_unknown_env_config() {
        assert!(warns_on_unknown_env_config(Tool::Npm, "12.2.2"));
        assert!(warns_on_unknown_env_config(Tool::Npm, "11.2.0"));
        assert!(!warns_on_unknown_env_config(Tool::Npm, "11.1.0"));
        assert!(!warns_on_unknown_env_config(Tool::Npm, "10.9.2"));
        assert!(!warns_on_unknown_env_config(Tool::YarnClassic, "1.22.22"));
    }
}
