//! A start command that runs a binary only a devDependency provides (`tsx server.ts`,
//! `nest start`, `ts-node src/index.ts`) fails once the build prunes devDependencies, with
//! `tsx: command not found` at boot. This names the package and the two fixes: move it to
//! `dependencies`, or keep devDependencies with `NPM_CONFIG_PRODUCTION=false` (Heroku's
//! config var, <https://devcenter.heroku.com/articles/nodejs-support#skip-pruning>).
//!
//! The commands checked are the Procfile's (read here, as Heroku's Node.js buildpack reads
//! it), the app's platform files' when the Procfile has no `web` (the engine uses them then:
//! `slugc_start::platform`) and, for a process without either, the default `web`;
//! `npm start`/`npm run X` (and the
//! Yarn and pnpm forms) are followed into their script. After a build, what the prune removed
//! is known from `node_modules/.bin` before and after it; without a build (`slug doctor`), the
//! devDependencies named in package.json and a table of packages whose binary has another
//! name say what would be pruned.

use crate::package_json::PackageJson;
use slugc_diagnostics::{Rule, Warning};
use std::collections::BTreeMap;
use std::path::Path;

/// Packages whose binary is not named like the package (for the check without a build).
const BINARY_PACKAGES: &[(&str, &str)] = &[
    ("tsc", "typescript"),
    ("nest", "@nestjs/cli"),
    ("babel-node", "@babel/node"),
    ("vue-cli-service", "@vue/cli-service"),
    ("ng", "@angular/cli"),
    ("remix-serve", "@remix-run/serve"),
    ("react-scripts", "react-scripts"),
    ("sb", "storybook"),
    ("swc", "@swc/cli"),
    ("tsnd", "ts-node-dev"),
];

/// Words that run the command after them (`npx tsx server.ts`, `exec node …`).
const RUNNERS: &[&str] = &["npx", "exec", "env", "pnpx", "nohup", "time"];

/// The binaries under `node_modules/.bin`, each with the package that provides it when the
/// entry says (npm and Yarn write symlinks into the package; pnpm writes scripts).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Binaries(BTreeMap<String, Option<String>>);

impl Binaries {
    /// The binaries of the tree at `node_modules` (none when there is no tree).
    pub fn read(node_modules: &Path) -> Self {
        let Ok(entries) = std::fs::read_dir(node_modules.join(".bin")) else {
            return Self::default();
        };
        Self(
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let package = std::fs::read_link(e.path())
                        .ok()
                        .and_then(|target| package_of_link(&target));
                    Some((name, package))
                })
                .collect(),
        )
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// `../tsx/dist/cli.mjs` → `tsx`; `../@nestjs/cli/bin/nest.js` → `@nestjs/cli`.
fn package_of_link(target: &Path) -> Option<String> {
    let text = target.to_str()?;
    let rest = text.strip_prefix("../")?;
    let mut parts = rest.split('/');
    let first = parts.next()?;
    if first.starts_with('@') {
        Some(format!("{first}/{}", parts.next()?))
    } else {
        Some(first.to_string())
    }
}

/// One process whose command the check reads: its type and where its command comes from.
struct Process {
    name: String,
    command: String,
    source: String,
}

/// The warnings for the app as built: `before` the binaries of the full tree (none when it
/// was restored already pruned), `after` those left in the slug.
pub fn after_prune(
    app_dir: &Path,
    package_json: &PackageJson,
    default_web: Option<&str>,
    before: &Binaries,
    after: &Binaries,
) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for process in processes(app_dir, default_web) {
        for (binary, source) in binaries_run(&process, package_json) {
            if after.has(&binary) {
                continue;
            }
            let package = match before.0.get(&binary) {
                Some(Some(package)) => Some(package.clone()),
                // Listed before the prune, but by a script that does not say whose.
                Some(None) => dev_package(&binary, package_json)
                    .or_else(|| Some(format!("the devDependency providing `{binary}`"))),
                None => dev_package(&binary, package_json),
            };
            if let Some(package) = package {
                warnings.push(warning(&process.name, &source, &binary, &package));
            }
        }
    }
    warnings
}

/// The warnings that need no build (`slug doctor`): binaries the start commands run that a
/// devDependency, and no dependency, provides. Unreadable input gives none: the build reports
/// it.
pub fn warnings(app_dir: &Path) -> Vec<Warning> {
    let Ok(package_json) = PackageJson::read(app_dir) else {
        return Vec::new();
    };
    let Ok(pm) = crate::package_manager::PackageManager::detect(app_dir, &package_json) else {
        return Vec::new();
    };
    let default_web = crate::processes::default_web(app_dir, pm.tool)
        .ok()
        .flatten()
        .map(|w| w.command);
    after_prune(
        app_dir,
        &package_json,
        default_web.as_deref(),
        &Binaries::default(),
        &Binaries::default(),
    )
}

/// The devDependency (and not dependency) that provides `binary`, by name or by the table.
fn dev_package(binary: &str, package_json: &PackageJson) -> Option<String> {
    let package = BINARY_PACKAGES
        .iter()
        .find(|(b, _)| *b == binary)
        .map(|(_, p)| *p)
        .unwrap_or(binary);
    (package_json.dev_dependencies.contains_key(package)
        && !package_json.dependencies.contains_key(package))
    .then(|| package.to_string())
}

fn warning(process: &str, source: &str, binary: &str, package: &str) -> Warning {
    Warning::new(
        Rule::PrunedDevBinary,
        format!(
            "the {process} process ({source}) runs `{binary}`, which only the devDependency \
             {package} provides, and devDependencies are pruned from the slug: move {package} \
             to \"dependencies\" in package.json, or set the config var \
             NPM_CONFIG_PRODUCTION=false to keep devDependencies"
        ),
    )
}

/// The Procfile's processes, the platform files' when the Procfile has no `web`, and the
/// default `web` when neither has one.
fn processes(app_dir: &Path, default_web: Option<&str>) -> Vec<Process> {
    let text = slugc_fs::input::read_app_text(app_dir, "Procfile", slugc_fs::input::MANIFEST_CAP)
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut found: Vec<Process> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, command)| Process {
            name: name.trim().to_string(),
            command: command.trim().to_string(),
            source: "Procfile".to_string(),
        })
        .filter(|p| !p.name.is_empty() && !p.command.is_empty())
        .collect();
    // Without a Procfile `web`, the engine takes the app's platform files (`render.yaml`,
    // `fly.toml`, …) over the buildpacks' defaults: their commands run in the slug too.
    if !found.iter().any(|p| p.name == "web") {
        for inferred in slugc_start::platform::infer(app_dir).processes {
            if !found.iter().any(|p| p.name == inferred.process_type) {
                found.push(Process {
                    name: inferred.process_type,
                    command: inferred.command,
                    source: inferred.source,
                });
            }
        }
    }
    if let Some(command) = default_web.filter(|_| !found.iter().any(|p| p.name == "web")) {
        found.push(Process {
            name: "web".to_string(),
            command: command.to_string(),
            source: "the default web process".to_string(),
        });
    }
    found
}

/// The binaries a process runs, each with where its command is written: `npm start` and
/// `npm run X` are followed into package.json's script (once: a script that runs another
/// script is rare in a start command).
fn binaries_run(process: &Process, package_json: &PackageJson) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for words in commands(&process.command) {
        let words: Vec<&str> = words.into_iter().skip_while(|w| is_assignment(w)).collect();
        match script_named(&words, package_json)
            .and_then(|s| package_json.script(s).map(|c| (s, c)))
        {
            Some((script, command)) => {
                let source = format!("{}, scripts.{script} in package.json", process.source);
                for inner in commands(command) {
                    if let Some(binary) = binary_of(tool_run(&inner)) {
                        found.push((binary, source.clone()));
                    }
                }
            }
            None => {
                if let Some(binary) = binary_of(tool_run(&words)) {
                    found.push((binary, process.source.clone()));
                }
            }
        }
    }
    found
}

/// `npm start`, `npm run start`, `yarn start`, `yarn run build`, `pnpm start`, `pnpm run x`,
/// and Yarn's and pnpm's `yarn x` for a script x (any of the three runs any app's scripts):
/// the script's name.
fn script_named<'a>(words: &[&'a str], package_json: &PackageJson) -> Option<&'a str> {
    match words {
        ["npm" | "yarn" | "pnpm", "start", ..] => Some("start"),
        ["npm" | "yarn" | "pnpm", "run" | "run-script", script, ..] => Some(script),
        ["yarn" | "pnpm", script, ..] if package_json.script(script).is_some() => Some(script),
        _ => None,
    }
}

/// The words of the binary a package manager runs: `npm exec tsx …`, `pnpm exec tsx …`,
/// `yarn tsx …` and `pnpm tsx …` (not a script: a binary of `node_modules/.bin`).
fn tool_run<'a, 'b>(words: &'b [&'a str]) -> &'b [&'a str] {
    match words {
        ["npm" | "yarn" | "pnpm", "exec", rest @ ..] => rest,
        ["yarn" | "pnpm", first, ..] if !first.starts_with('-') => &words[1..],
        _ => words,
    }
}

/// The command's words, split into the simple commands of a shell list (`a && b; c | d`).
/// Quoting is not interpreted: only the first words of each command matter here.
fn commands(line: &str) -> Vec<Vec<&str>> {
    line.split(['&', ';', '|'])
        .map(|c| c.split_whitespace().collect::<Vec<_>>())
        .filter(|w| !w.is_empty())
        .collect()
}

/// The binary a simple command runs: past `VAR=value` assignments and runners (`npx`, `exec`),
/// and past their flags.
fn binary_of(words: &[&str]) -> Option<String> {
    let mut rest = words
        .iter()
        .copied()
        .skip_while(|w| is_assignment(w))
        .peekable();
    loop {
        let word = rest.next()?;
        if RUNNERS.contains(&word) {
            while rest
                .peek()
                .is_some_and(|w| w.starts_with('-') || is_assignment(w))
            {
                rest.next();
            }
            continue;
        }
        // A path (`./node_modules/.bin/tsx`, `node_modules/.bin/tsx`) names its file.
        let name = word.rsplit('/').next().unwrap_or(word);
        return (!name.is_empty()).then(|| name.to_string());
    }
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pj(text: &str) -> PackageJson {
        PackageJson::parse(text, Path::new("package.json")).unwrap()
    }

    fn app(procfile: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(p) = procfile {
            std::fs::write(dir.path().join("Procfile"), p).unwrap();
        }
        dir
    }

    #[test]
    fn a_platform_files_start_command_is_checked_when_the_procfile_has_no_web() {
        let dir = app(None);
        std::fs::write(
            dir.path().join("render.yaml"),
            "services:\n  - type: web\n    name: api\n    startCommand: ts-node src/server.ts\n",
        )
        .unwrap();
        let p = pj(r#"{"devDependencies":{"ts-node":"^10"}}"#);
        let w = after_prune(
            dir.path(),
            &p,
            Some("npm start"),
            &Binaries::default(),
            &Binaries::default(),
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].to_string()
                .starts_with("warning: the web process (render.yaml startCommand) runs `ts-node`"),
            "{}",
            w[0]
        );
    }

    #[test]
    fn procfile_binary_of_a_dev_dependency_is_named_without_a_build() {
        let dir = app(Some("web: tsx server.ts\nworker: node worker.js\n"));
        let p = pj(r#"{"devDependencies":{"tsx":"^4","typescript":"^5"}}"#);
        let w = after_prune(
            dir.path(),
            &p,
            None,
            &Binaries::default(),
            &Binaries::default(),
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(
            w[0].to_string(),
            "warning: the web process (Procfile) runs `tsx`, which only the devDependency tsx \
             provides, and devDependencies are pruned from the slug: move tsx to \
             \"dependencies\" in package.json, or set the config var \
             NPM_CONFIG_PRODUCTION=false to keep devDependencies"
        );
    }

    #[test]
    fn start_script_is_followed_and_binaries_with_other_names_found() {
        let dir = app(None);
        let p = pj(
            r#"{"scripts":{"start":"NODE_ENV=production nest start && tsc -v"},
                      "devDependencies":{"@nestjs/cli":"^10","typescript":"^5"}}"#,
        );
        let w = after_prune(
            dir.path(),
            &p,
            Some("npm start"),
            &Binaries::default(),
            &Binaries::default(),
        );
        let text: Vec<String> = w.iter().map(|w| w.message.clone()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].starts_with(
            "the web process (the default web process, scripts.start in package.json) runs \
             `nest`, which only the devDependency @nestjs/cli provides"
        ));
        assert!(text[1].contains("runs `tsc`, which only the devDependency typescript"));
    }

    #[test]
    fn a_binary_kept_in_the_slug_or_of_a_dependency_is_no_warning() {
        let dir = app(Some("web: npx tsx server.ts\n"));
        // Listed in both: npm keeps it.
        let p = pj(r#"{"dependencies":{"tsx":"^4"},"devDependencies":{"tsx":"^4"}}"#);
        let none = Binaries::default();
        assert!(after_prune(dir.path(), &p, None, &none, &none).is_empty());
        // Kept by the build (NPM_CONFIG_PRODUCTION=false): no warning either.
        let p = pj(r#"{"devDependencies":{"tsx":"^4"}}"#);
        let kept = Binaries([("tsx".to_string(), Some("tsx".to_string()))].into());
        assert!(after_prune(dir.path(), &p, None, &kept, &kept).is_empty());
        // `node` is nobody's devDependency.
        let dir = app(Some("web: node server.js\n"));
        assert!(after_prune(dir.path(), &p, None, &none, &none).is_empty());
    }

    #[test]
    fn the_tree_before_the_prune_names_the_package() {
        let dir = app(Some("web: ./node_modules/.bin/ts-node-esm src/main.ts\n"));
        let p = pj(r#"{"devDependencies":{"ts-node":"^10"}}"#);
        let before = Binaries([("ts-node-esm".to_string(), Some("ts-node".to_string()))].into());
        let w = after_prune(dir.path(), &p, None, &before, &Binaries::default());
        assert_eq!(w.len(), 1);
        assert!(w[0]
            .message
            .contains("runs `ts-node-esm`, which only the devDependency ts-node provides"));
    }

    #[test]
    fn links_name_their_package() {
        assert_eq!(
            package_of_link(Path::new("../tsx/dist/cli.mjs")).as_deref(),
            Some("tsx")
        );
        assert_eq!(
            package_of_link(Path::new("../@nestjs/cli/bin/nest.js")).as_deref(),
            Some("@nestjs/cli")
        );
        assert_eq!(package_of_link(Path::new("/abs/x")), None);
    }

    #[test]
    fn package_managers_run_binaries_and_scripts() {
        let dir = app(Some(
            "web: NODE_ENV=production yarn serve\nworker: pnpm exec tsx w.ts\n",
        ));
        let p = pj(r#"{"scripts":{"serve":"ts-node src/main.ts"},
                      "devDependencies":{"ts-node":"^10","tsx":"^4"}}"#);
        let none = Binaries::default();
        let w: Vec<String> = after_prune(dir.path(), &p, None, &none, &none)
            .into_iter()
            .map(|w| w.message)
            .collect();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with(
                "the web process (Procfile, scripts.serve in package.json) runs `ts-node`"
            ),
            "{w:?}"
        );
        assert!(
            w[1].starts_with("the worker process (Procfile) runs `tsx`"),
            "{w:?}"
        );
    }

    #[test]
    fn words_of_commands() {
        assert_eq!(
            binary_of(&["PORT=1", "exec", "tsx", "a.ts"]).as_deref(),
            Some("tsx")
        );
        assert_eq!(
            binary_of(&["npx", "--yes", "nest", "start"]).as_deref(),
            Some("nest")
        );
        assert_eq!(binary_of(&["A=1"]), None);
        assert_eq!(commands("a b && c; d | e").len(), 4);
    }
}
