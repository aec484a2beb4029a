//! How the app starts: the processes the engine takes from the app's platform files after a
//! build, and the whole picture without building for `slug doctor` (`slug detect --explain`).
//!
//! Precedence, highest first (README, "How an app starts"):
//!
//! 1. the Procfile: a `web` there means no platform file is used at all;
//! 2. the platform files (`slugc_start::platform`: `app.json`, `render.yaml`,
//!    `railway.json`/`railway.toml`, `fly.toml`, `Dockerfile`): the user's own statement of
//!    how the app starts on another platform, so over the buildpacks' guesses;
//! 3. the buildpacks' default processes (for the built-ins, the framework rules of
//!    `slugc_start::python` and `slugc_start::node`).
//!
//! The engine never links the buildpack crates: it runs the same `slugc_start` rules the
//! built-ins use, from the app's declared dependencies instead of what was installed.

use crate::platform::detect::Detected;
use crate::platform::launch::Processes;
use crate::procfile::Procfile;
use slugc_diagnostics::{Rule, Warning};
use slugc_start::{Inference, Inferred};
use std::collections::BTreeMap;
use std::path::Path;

/// Whether a Procfile defines `web`.
fn procfile_web(procfile: Option<&Procfile>) -> bool {
    procfile.is_some_and(|p| p.processes.iter().any(|(name, _)| name == "web"))
}

/// After the build: the platform files' processes over the buildpacks' when the Procfile of
/// the build result has no `web`, each said in the log with its source.
pub fn apply_platform_files(
    app_dir: &Path,
    procfile: Option<&Procfile>,
    processes: &mut Processes,
) {
    let found = slugc_start::platform::infer(app_dir);
    for warning in &found.warnings {
        crate::say!("{}", start_warning(warning));
    }
    if procfile_web(procfile) {
        if let Some(web) = found.web() {
            crate::say!("       Procfile web wins; not used: {web}");
        }
        return;
    }
    if found.processes.is_empty() {
        return;
    }
    crate::say!("-----> Start command from the app's platform files");
    for p in &found.processes {
        crate::say!("       {p}");
    }
    for p in &found.unused {
        crate::say!("       not used (an earlier file has web): {p}");
    }
    processes.set_inferred(&found.processes);
}

/// What `slug doctor` shows: the processes a build would record (with their sources), what
/// a rule found but is overridden, notes on rules that did not apply, and the warnings.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Explained {
    pub processes: Vec<Inferred>,
    pub unused: Vec<Inferred>,
    pub notes: Vec<String>,
    pub warnings: Vec<Warning>,
}

/// The start commands of the app at `app_dir` (its source), for the detected group, without
/// building: the built-ins' defaults from the declared dependencies, the platform files, the
/// Procfile (already checked by detection), then the static checks ([`static_warnings`]).
pub fn explain(app_dir: &Path, detected: &Detected) -> Explained {
    let mut out = Explained::default();
    let mut by_type: BTreeMap<String, Inferred> = BTreeMap::new();
    let in_group = |id: &str| detected.group.iter().any(|bp| bp.id == id);

    if in_group("slugc/python") {
        let (declared, _) = slugc_start::deps::declared(app_dir);
        let has = slugc_start::python::declared_programs(&declared);
        let outcome = slugc_start::python::web(app_dir, &has);
        out.warnings
            .extend(outcome.warnings.iter().map(start_warning));
        out.notes.extend(outcome.notes);
        if let Some(web) = outcome.web {
            by_type.insert(web.process_type.clone(), tagged("slugc/python", web));
        }
    }
    if in_group("slugc/nodejs") {
        let text =
            slugc_fs::input::read_app_text(app_dir, "package.json", slugc_fs::input::MANIFEST_CAP)
                .ok()
                .flatten();
        match slugc_start::node::PackageJson::read(app_dir) {
            Ok(package_json) => {
                let start = slugc_start::node::start_command(app_dir, text.as_deref());
                let package_json =
                    package_json.unwrap_or_else(slugc_start::node::PackageJson::empty);
                if let Some(web) = slugc_start::node::default_web(app_dir, &package_json, &start) {
                    by_type.insert(web.process_type.clone(), tagged("slugc/nodejs", web));
                }
            }
            Err(w) => out.warnings.push(start_warning(&w)),
        }
    }

    let procfile = Procfile::read(app_dir).ok().flatten();
    let Inference {
        processes: platform,
        unused,
        warnings,
    } = slugc_start::platform::infer(app_dir);
    out.warnings.extend(warnings.iter().map(start_warning));
    out.unused.extend(unused);
    if procfile_web(procfile.as_ref()) {
        out.unused.extend(platform);
    } else {
        for p in platform {
            if let Some(shadowed) = by_type.insert(p.process_type.clone(), p) {
                out.unused.push(shadowed);
            }
        }
    }
    for (name, command) in procfile.into_iter().flat_map(|p| p.processes) {
        let p = Inferred {
            process_type: name.clone(),
            command,
            source: "Procfile".to_string(),
        };
        if let Some(shadowed) = by_type.insert(name, p) {
            out.unused.push(shadowed);
        }
    }
    out.processes = by_type.into_values().collect();
    out.warnings.extend(static_warnings(app_dir, detected));
    out
}

/// A built-in buildpack's default, named as the release names it.
fn tagged(id: &str, mut web: Inferred) -> Inferred {
    web.source = format!("{id}: {}", web.source);
    web
}

/// A start-command rule's warning (a platform file that could not be used), as every
/// warning is shown: `warning: <file>: <why>`.
fn start_warning(w: &slugc_start::Warning) -> Warning {
    Warning::new(Rule::StartCommand, w.to_string())
}

/// Checks of the app that need no build, each a warning that names the file and the fix:
/// those of the detected group's built-in buildpacks (pruned devDependency binaries, the
/// Python table of known issues).
pub fn static_warnings(app_dir: &Path, detected: &Detected) -> Vec<Warning> {
    let ids: Vec<&str> = detected.group.iter().map(|bp| bp.id.as_str()).collect();
    crate::buildpacks::warnings_of(app_dir, &ids)
}
