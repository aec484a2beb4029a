//! npm workspaces (`workspaces` in package.json): what npm installs outside the root's
//! `node_modules`, into the app itself.

use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The part of `package-lock.json` (lockfile v2 and v3, npm 7+) read here: its `packages`
/// keys are the paths npm installs to.
#[derive(Deserialize)]
struct Lockfile {
    #[serde(default)]
    packages: BTreeMap<String, IgnoredAny>,
}

/// Why a workspace app must be installed on every build, if it must: npm installs a package
/// whose version conflicts with the root's into the workspace package's own `node_modules`
/// (`packages/greeting/node_modules/ms`), which is in the app, not in the cached tree, so a
/// fresh copy of the source lacks it. Read from the lockfile's install paths
/// (<https://docs.npmjs.com/cli/configuring-npm/package-lock-json#packages>); an app without
/// a lockfile v2+ cannot say, so it is installed too.
pub fn installs_into_the_app(app_dir: &Path) -> Option<String> {
    let lockfile = ["npm-shrinkwrap.json", "package-lock.json"]
        .into_iter()
        .find(|name| slugc_fs::input::is_app_file(app_dir, name));
    let nested = lockfile.and_then(|name| {
        let text =
            slugc_fs::input::read_app_text(app_dir, name, slugc_fs::input::LOCKFILE_CAP).ok()??;
        let lock: Lockfile = serde_json::from_str(&text).ok()?;
        Some((name, nested_path(lock.packages.into_keys())))
    });
    match nested {
        Some((_, None)) => None,
        Some((name, Some(path))) => Some(format!(
            "{name} installs {path} into a workspace package, not into the cached node_modules"
        )),
        None => Some(
            "npm workspaces without a lockfile may install into each workspace package's node_modules, not into the cached one"
                .to_string(),
        ),
    }
}

/// The first install path below a workspace package rather than the root's `node_modules`.
fn nested_path(paths: impl IntoIterator<Item = String>) -> Option<String> {
    paths
        .into_iter()
        .find(|p| !p.starts_with("node_modules/") && p.contains("node_modules/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_below_a_workspace_package_count() {
        let paths = |list: &[&str]| nested_path(list.iter().map(|s| s.to_string()));
        assert_eq!(
            paths(&[
                "",
                "node_modules/ms",
                "node_modules/a/node_modules/b",
                "packages/web"
            ]),
            None
        );
        assert_eq!(
            paths(&["", "node_modules/ms", "packages/greeting/node_modules/ms"]).as_deref(),
            Some("packages/greeting/node_modules/ms")
        );
    }

    #[test]
    fn the_fixtures_lockfile_names_its_nested_install() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("package-lock.json"),
            r#"{"lockfileVersion":3,"packages":{"":{},"packages/greeting/node_modules/ms":{"version":"2.1.3"}}}"#,
        )
        .unwrap();
        let reason = installs_into_the_app(dir.path()).unwrap();
        assert!(
            reason.starts_with("package-lock.json installs packages/greeting/node_modules/ms"),
            "{reason}"
        );
        std::fs::write(
            dir.path().join("package-lock.json"),
            r#"{"lockfileVersion":3,"packages":{"":{},"node_modules/ms":{}}}"#,
        )
        .unwrap();
        assert_eq!(installs_into_the_app(dir.path()), None);
    }
}
