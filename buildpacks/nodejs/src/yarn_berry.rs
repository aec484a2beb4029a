//! Yarn 2+ (Berry): how the app installs (its linker, whether it commits its package cache)
//! and the plugin that prunes devDependencies on every Berry major.
//!
//! Plug'n'Play (<https://yarnpkg.com/features/pnp>) has no `node_modules`: `.pnp.cjs` maps
//! each package to a zip in the cache folder, by a path relative to the project. So a PnP
//! app's cache folder is the project's own `.yarn/cache`, which ships in the slug (after the
//! prune, only the zips production needs), and the cache layer only seeds it. A zero-install
//! repo (<https://yarnpkg.com/features/caching#zero-installs>) commits that folder: Yarn uses it
//! as it is and must not change it (`--immutable-cache`), as Heroku's CNB does.

use std::path::{Path, PathBuf};

/// The plugin behind [`PRUNE_COMMAND`], written out for the prune and passed in
/// `YARN_PLUGINS`.
pub const PRUNE_PLUGIN: &str = include_str!("../assets/yarn-prune-plugin.cjs");

/// The command the plugin adds.
pub const PRUNE_COMMAND: &str = "slugc-prune";

/// Set to `1` in the prune's environment: the plugin then removes the zips production does
/// not need from the project's cache folder.
pub const CACHE_CLEANUP_ENV: &str = "SLUGC_YARN_CACHE_CLEANUP";

/// Yarn's install state, in the app.
pub const INSTALL_STATE: &str = ".yarn/install-state.gz";

/// The project cache folder, Yarn's default when the global cache is off.
pub const APP_CACHE: &str = ".yarn/cache";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BerryMode {
    /// `nodeLinker: pnp` in `.yarnrc.yml`.
    pub pnp: bool,
    /// `.yarn/cache` in the app holds packages (Heroku's rule: any entry not starting with
    /// a dot).
    pub zero_install: bool,
    /// `.yarnrc.yml` sets `nodeLinker` (any value).
    pub sets_node_linker: bool,
}

impl BerryMode {
    /// Read from the app as the source has it, before anything installs.
    pub fn detect(app_dir: &Path) -> Self {
        let linker = node_linker(app_dir);
        BerryMode {
            pnp: linker.as_deref() == Some("pnp"),
            zero_install: zero_install(app_dir),
            sets_node_linker: linker.is_some(),
        }
    }

    /// Whether the packages live in the app's `.yarn/cache` rather than in the cache layer.
    pub fn uses_app_cache(self) -> bool {
        self.pnp || self.zero_install
    }
}

pub fn app_cache(app_dir: &Path) -> PathBuf {
    app_dir.join(APP_CACHE)
}

/// The value of `nodeLinker` in `.yarnrc.yml`, unquoted.
fn node_linker(app_dir: &Path) -> Option<String> {
    let text =
        slugc_fs::input::read_app_text(app_dir, ".yarnrc.yml", slugc_fs::input::MANIFEST_CAP)
            .ok()
            .flatten()?;
    text.lines().find_map(|line| {
        // A top-level key only: settings nested under another key are not the linker.
        let value = line.strip_prefix("nodeLinker:")?;
        let value = value.split('#').next().unwrap_or_default().trim();
        Some(value.trim_matches(|c| c == '"' || c == '\'').to_string())
    })
}

fn zero_install(app_dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(app_cache(app_dir)) else {
        return false;
    };
    entries
        .filter_map(Result::ok)
        .any(|e| !e.file_name().to_string_lossy().starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_from_yarnrc_and_the_committed_cache() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path();
        assert_eq!(BerryMode::detect(app), BerryMode::default());
        std::fs::write(
            app.join(".yarnrc.yml"),
            "enableTelemetry: false\nnodeLinker: \"pnp\" # zips\n",
        )
        .unwrap();
        let mode = BerryMode::detect(app);
        assert!(mode.pnp && mode.sets_node_linker && !mode.zero_install);
        std::fs::write(app.join(".yarnrc.yml"), "nodeLinker: node-modules\n").unwrap();
        let mode = BerryMode::detect(app);
        assert!(!mode.pnp && mode.sets_node_linker && !mode.uses_app_cache());
        std::fs::create_dir_all(app.join(".yarn/cache")).unwrap();
        std::fs::write(app.join(".yarn/cache/.gitignore"), "").unwrap();
        assert!(!BerryMode::detect(app).zero_install, "only hidden files");
        std::fs::write(app.join(".yarn/cache/ms-npm-2.1.3-x.zip"), "").unwrap();
        let mode = BerryMode::detect(app);
        assert!(mode.zero_install && mode.uses_app_cache());
    }
}
