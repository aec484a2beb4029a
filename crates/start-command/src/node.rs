//! The default `web` process of a Node.js app, in this order:
//!
//! 1. the `start` script, run by the app's package manager (Heroku's rule) — unless it runs a
//!    framework's development CLI that only a devDependency provides (`nest start` with
//!    `@nestjs/cli` in devDependencies): the build prunes devDependencies, so that command
//!    cannot run, and the framework's production command below is used instead;
//! 2. the framework defaults of [`FRAMEWORKS`], in order, each selected by a dependency;
//! 3. `main` of `package.json`, when the file exists or a `build` script may create it;
//! 4. `server.js`, then `index.js`.
//!
//! Each server reads `$PORT` itself (Next.js, Nuxt's Nitro, SvelteKit's adapter-node,
//! remix-serve, Nest's `app.listen(process.env.PORT)`); Astro's standalone server listens on
//! localhost unless `HOST` says otherwise, so its command sets `HOST=0.0.0.0`.

use crate::{scan, Inferred, Warning};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What the rules read of `package.json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageJson {
    #[serde(default)]
    pub scripts: BTreeMap<String, String>,
    #[serde(default)]
    pub dependencies: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub dev_dependencies: BTreeMap<String, serde_json::Value>,
    pub main: Option<String>,
}

impl PackageJson {
    /// `package.json` of the app; `Ok(None)` without one.
    pub fn read(app_dir: &Path) -> Result<Option<Self>, Warning> {
        let Some(text) = scan::text(app_dir, "package.json")? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Warning::new("package.json", format!("not valid JSON ({e})")))
    }

    /// The `package.json` of an app without one: no scripts, dependencies or `main`.
    pub fn empty() -> Self {
        PackageJson {
            scripts: BTreeMap::new(),
            dependencies: BTreeMap::new(),
            dev_dependencies: BTreeMap::new(),
            main: None,
        }
    }

    fn has_dependency(&self, name: &str) -> bool {
        self.dependencies.contains_key(name) || self.dev_dependencies.contains_key(name)
    }

    fn only_dev(&self, name: &str) -> bool {
        self.dev_dependencies.contains_key(name) && !self.dependencies.contains_key(name)
    }
}

struct Framework {
    name: &'static str,
    /// All of these must be dependencies (or devDependencies) of the app.
    packages: &'static [&'static str],
    command: fn(&Path) -> String,
    /// The development CLI a `start` script may run, and the package that provides it.
    dev_cli: Option<(&'static str, &'static str)>,
}

const FRAMEWORKS: &[Framework] = &[
    Framework {
        name: "Next.js",
        packages: &["next"],
        command: |_| "next start -p $PORT".to_string(),
        dev_cli: None,
    },
    Framework {
        name: "Nuxt",
        packages: &["nuxt"],
        command: |_| "node .output/server/index.mjs".to_string(),
        dev_cli: None,
    },
    Framework {
        name: "SvelteKit (adapter-node)",
        packages: &["@sveltejs/kit", "@sveltejs/adapter-node"],
        command: |_| "node build".to_string(),
        dev_cli: None,
    },
    Framework {
        name: "Remix",
        packages: &["@remix-run/serve"],
        // Remix 2 with Vite builds `build/server/index.js`; the classic compiler `build/index.js`.
        command: |app| {
            if slugc_fs::input::is_app_file(app, "build/index.js") {
                "remix-serve ./build/index.js".to_string()
            } else {
                "remix-serve ./build/server/index.js".to_string()
            }
        },
        dev_cli: None,
    },
    Framework {
        name: "Astro (@astrojs/node)",
        packages: &["astro", "@astrojs/node"],
        command: |_| "HOST=0.0.0.0 node ./dist/server/entry.mjs".to_string(),
        dev_cli: None,
    },
    Framework {
        name: "NestJS",
        packages: &["@nestjs/core"],
        command: |_| "node dist/main".to_string(),
        dev_cli: Some(("nest", "@nestjs/cli")),
    },
];

/// The frameworks, in the order they are tried, with the packages that select each.
pub fn rules() -> impl Iterator<Item = (&'static str, &'static [&'static str])> {
    FRAMEWORKS.iter().map(|f| (f.name, f.packages))
}

fn web(command: String, source: String) -> Option<Inferred> {
    Some(Inferred {
        process_type: "web".to_string(),
        command,
        source,
    })
}

/// The default `web` process; `start_command` is how the app's package manager runs the
/// `start` script (`npm start`, `yarn start`, `pnpm start`).
pub fn default_web(
    app_dir: &Path,
    package_json: &PackageJson,
    start_command: &str,
) -> Option<Inferred> {
    let framework = FRAMEWORKS
        .iter()
        .find(|f| f.packages.iter().all(|p| package_json.has_dependency(p)));
    if let Some(start) = package_json.scripts.get("start") {
        let program = start.split_whitespace().next().unwrap_or("");
        let pruned_cli = framework.and_then(|f| {
            let (cli, package) = f.dev_cli?;
            (program == cli && package_json.only_dev(package)).then_some((f, package))
        });
        match pruned_cli {
            Some((f, package)) => {
                return web(
                    (f.command)(app_dir),
                    format!(
                        "{} default: the start script `{}` needs {package}, a devDependency the build prunes",
                        f.name,
                        slugc_fs::input::clip(start)
                    ),
                );
            }
            None => {
                return web(
                    start_command.to_string(),
                    "package.json scripts.start".to_string(),
                );
            }
        }
    }
    if let Some(f) = framework {
        return web(
            (f.command)(app_dir),
            format!(
                "{} default: {} in package.json",
                f.name,
                f.packages.join(" and ")
            ),
        );
    }
    if let Some(main) = package_json
        .main
        .as_deref()
        .filter(|m| !m.trim().is_empty())
    {
        let main = main.trim_start_matches("./");
        let exists = slugc_fs::input::is_app_file(app_dir, main);
        let safe = main
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./@".contains(&b));
        if safe && (exists || package_json.scripts.contains_key("build")) {
            return web(format!("node {main}"), "package.json main".to_string());
        }
    }
    ["server.js", "index.js"]
        .into_iter()
        .find(|f| slugc_fs::input::is_app_file(app_dir, f))
        .and_then(|f| web(format!("node {f}"), format!("{f} in the app root")))
}

/// How the package manager the app uses runs `start`, from `packageManager` and the
/// lockfiles, for when the buildpack has not run (`slug doctor`).
pub fn start_command(app_dir: &Path, package_json_text: Option<&str>) -> String {
    let declared = package_json_text
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .and_then(|v| v.get("packageManager")?.as_str().map(str::to_string));
    let tool = match declared.as_deref().and_then(|d| d.split('@').next()) {
        Some(t @ ("pnpm" | "yarn" | "npm")) => t.to_string(),
        _ if slugc_fs::input::is_app_file(app_dir, "pnpm-lock.yaml") => "pnpm".to_string(),
        _ if slugc_fs::input::is_app_file(app_dir, "yarn.lock") => "yarn".to_string(),
        _ => "npm".to_string(),
    };
    format!("{tool} start")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pj(text: &str) -> PackageJson {
        serde_json::from_str(text).unwrap()
    }

    fn web_of(files: &[&str], package_json: &str) -> Option<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        default_web(dir.path(), &pj(package_json), "npm start").map(|w| (w.command, w.source))
    }

    #[test]
    fn start_script_then_frameworks_then_files() {
        assert_eq!(
            web_of(
                &["server.js"],
                r#"{"scripts":{"start":"next start"},"dependencies":{"next":"15"}}"#
            )
            .unwrap()
            .0,
            "npm start"
        );
        assert_eq!(
            web_of(&[], r#"{"dependencies":{"next":"15"}}"#).unwrap(),
            (
                "next start -p $PORT".into(),
                "Next.js default: next in package.json".into()
            )
        );
        assert_eq!(
            web_of(&[], r#"{"dependencies":{"nuxt":"3"}}"#).unwrap().0,
            "node .output/server/index.mjs"
        );
        assert_eq!(
            web_of(
                &[],
                r#"{"devDependencies":{"@sveltejs/kit":"2","@sveltejs/adapter-node":"5"}}"#
            )
            .unwrap()
            .0,
            "node build"
        );
        // SvelteKit with another adapter: not a node server.
        assert_eq!(
            web_of(&[], r#"{"devDependencies":{"@sveltejs/kit":"2"}}"#),
            None
        );
        assert_eq!(
            web_of(
                &["build/index.js"],
                r#"{"dependencies":{"@remix-run/serve":"2"}}"#
            )
            .unwrap()
            .0,
            "remix-serve ./build/index.js"
        );
        assert_eq!(
            web_of(&[], r#"{"dependencies":{"astro":"4","@astrojs/node":"8"}}"#)
                .unwrap()
                .0,
            "HOST=0.0.0.0 node ./dist/server/entry.mjs"
        );
        assert_eq!(
            web_of(&[], r#"{"main":"dist/app.js","scripts":{"build":"tsc"}}"#).unwrap(),
            ("node dist/app.js".into(), "package.json main".into())
        );
        assert_eq!(web_of(&[], r#"{"main":"dist/app.js"}"#), None);
        assert_eq!(
            web_of(&["index.js", "server.js"], "{}").unwrap().0,
            "node server.js"
        );
        assert_eq!(web_of(&["index.js"], "{}").unwrap().0, "node index.js");
        assert_eq!(web_of(&[], "{}"), None);
    }

    #[test]
    fn a_start_script_on_a_pruned_framework_cli_gives_the_framework_command() {
        let nest = r#"{"scripts":{"start":"nest start"},"dependencies":{"@nestjs/core":"10"},"devDependencies":{"@nestjs/cli":"10"}}"#;
        let (command, source) = web_of(&[], nest).unwrap();
        assert_eq!(command, "node dist/main");
        assert!(
            source.contains("needs @nestjs/cli, a devDependency the build prunes"),
            "{source}"
        );
        // Kept as a dependency: the start script runs.
        let kept = r#"{"scripts":{"start":"nest start"},"dependencies":{"@nestjs/core":"10","@nestjs/cli":"10"}}"#;
        assert_eq!(web_of(&[], kept).unwrap().0, "npm start");
        let nest = r#"{"dependencies":{"@nestjs/core":"10"}}"#;
        assert_eq!(web_of(&[], nest).unwrap().0, "node dist/main");
    }

    #[test]
    fn start_command_of_the_package_manager() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(start_command(dir.path(), None), "npm start");
        assert_eq!(
            start_command(dir.path(), Some(r#"{"packageManager":"pnpm@9.1.0"}"#)),
            "pnpm start"
        );
        std::fs::write(dir.path().join("yarn.lock"), "").unwrap();
        assert_eq!(start_command(dir.path(), Some("{}")), "yarn start");
    }
}
