//! Detection: run each candidate's detect in order groups and resolve the build plan
//! (provides/requires with `or` alternatives) as the CNB lifecycle does
//! (<https://github.com/buildpacks/spec/blob/main/buildpack.md#phase-1-detection>).

use super::descriptor::{Buildpack, Kind};
use super::env::{with_user_env, EnvMap};
use super::escape_id;
use super::output::{self, Show};
use super::target::{describe_target, Target};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone)]
pub struct Candidate {
    pub buildpack: Buildpack,
    pub optional: bool,
}

/// What a detect wrote to its `<plan>` file: a main section and `or` alternatives.
#[derive(Debug, Clone, Default, Deserialize)]
struct DetectPlan {
    #[serde(flatten)]
    main: PlanSection,
    #[serde(default)]
    or: Vec<PlanSection>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct PlanSection {
    #[serde(default)]
    provides: Vec<Provide>,
    #[serde(default)]
    requires: Vec<Require>,
}

#[derive(Debug, Clone, Deserialize)]
struct Provide {
    name: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Require {
    name: String,
    /// Deprecated since Buildpack API 0.3: kept as `metadata.version` (see [`fold_version`]).
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    metadata: toml::Table,
}

/// One entry of a buildpack's Buildpack Plan (`[[entries]]` in the file its build reads).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanEntry {
    pub name: String,
    pub metadata: toml::Table,
}

/// The resolved build plan, as `slug detect --json` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedDep {
    pub name: String,
    pub providers: Vec<String>,
    pub requires: Vec<RequiredBy>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequiredBy {
    pub id: String,
    pub metadata: toml::Table,
}

#[derive(Debug, Clone)]
pub struct Detected {
    pub group: Vec<Buildpack>,
    /// The resolved plan: each dependency, its providers and what requires it. The build
    /// hands it out provider by provider ([`plan_for`]).
    pub deps: Vec<ResolvedDep>,
    /// What the log calls the app: a classic detect's output, or the first buildpack's name.
    pub description: String,
}

#[derive(Debug, Clone)]
enum Outcome {
    Pass { plan: DetectPlan, name: String },
    Fail { output: Vec<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("no buildpack group passed detection:\n{}", report.join("\n"))]
    NoneDetected { report: Vec<String> },
    #[error("{id}: detect failed with exit code {code}\n{}", output.join("\n"))]
    Errored {
        id: String,
        code: i32,
        output: Vec<String>,
    },
    /// A detect that exited 30 (slugc's convention for invalid app input, as for build): the
    /// buildpack's own message, whose first line says what and where.
    #[error("{}", invalid_input_message(id, output))]
    InvalidInput { id: String, output: Vec<String> },
    #[error("{id}: cannot run {path}: {source}")]
    Spawn {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{id}: invalid build plan {path}: {message}")]
    BadPlan {
        id: String,
        path: PathBuf,
        message: String,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The buildpack's message as the engine's error: its `error: ` first line becomes the
/// engine's own (`main` adds the prefix once); a message without one is introduced by the
/// buildpack's id.
fn invalid_input_message(id: &str, output: &[String]) -> String {
    let lines: Vec<&str> = output
        .iter()
        .map(|l| l.trim_end())
        .skip_while(|l| l.trim().is_empty())
        .collect();
    match lines.split_first() {
        Some((first, rest)) if first.starts_with("error: ") => {
            let mut text = first["error: ".len()..].to_string();
            for line in rest {
                text.push('\n');
                text.push_str(line);
            }
            text
        }
        _ => format!(
            "{id}: detect found invalid app input (exit code 30)\n{}",
            lines.join("\n")
        ),
    }
}

pub struct DetectContext<'a> {
    pub app_dir: &'a Path,
    pub platform_dir: &'a Path,
    /// Scratch dir for plan files.
    pub scratch: &'a Path,
    pub target: &'a Target,
    pub env: &'a EnvMap,
    /// The user-provided env (`--env`, `--env-file`, project.toml), set in the environment
    /// of CNB buildpacks that do not `clear-env`.
    pub user_env: &'a EnvMap,
}

/// Entries of the plan `id` builds with: every `requires` of each dependency it provides
/// (<https://github.com/buildpacks/spec/blob/main/buildpack.md#phase-5-build-component-buildpacks-only>).
pub fn plan_for(deps: &[ResolvedDep], id: &str) -> Vec<PlanEntry> {
    deps.iter()
        .filter(|d| d.providers.iter().any(|p| p == id))
        .flat_map(|d| {
            d.requires.iter().map(|r| PlanEntry {
                name: d.name.clone(),
                metadata: r.metadata.clone(),
            })
        })
        .collect()
}

/// A `[[requires]]` top-level `version` becomes `metadata.version`, with a warning: the
/// lifecycle of Buildpack API 0.2 did so before the key was removed. Both given and
/// different is an error.
fn fold_version(id: &str, plan: &mut DetectPlan) -> Result<(), String> {
    let sections = std::iter::once(&mut plan.main).chain(plan.or.iter_mut());
    for section in sections {
        for r in &mut section.requires {
            let Some(version) = r.version.take() else {
                continue;
            };
            match r.metadata.get("version") {
                Some(toml::Value::String(v)) if *v == version => {}
                Some(_) => {
                    return Err(format!(
                        "[[requires]] {:?} has a \"version\" and a different \"metadata.version\"",
                        r.name
                    ))
                }
                None => {
                    r.metadata
                        .insert("version".into(), toml::Value::String(version));
                }
            }
            crate::say!(
                " !     Warning: {id}: [[requires]] {:?}: the top-level \"version\" key is deprecated; it is kept as \"metadata.version\", which is where it belongs",
                r.name
            );
        }
    }
    Ok(())
}

fn run_detect(bp: &Buildpack, ctx: &DetectContext) -> Result<Outcome, DetectError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DetectError::Io { path, source }
    };
    let dir = ctx.scratch.join(escape_id(&bp.id));
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let plan_path = dir.join("plan.toml");
    std::fs::write(&plan_path, "").map_err(io_err(&plan_path))?;
    if matches!(bp.kind, Kind::Cnb { .. }) && !bp.targets.iter().any(|t| ctx.target.satisfies(t)) {
        let wanted: Vec<String> = bp.targets.iter().map(describe_target).collect();
        return Ok(Outcome::Fail {
            output: vec![format!(
                "it wants the target {}; this build is {}",
                wanted.join(" or "),
                ctx.target.describe()
            )],
        });
    }
    let exe = bp.dir.join("bin/detect");
    let mut cmd = Command::new(&exe);
    cmd.current_dir(ctx.app_dir).env_clear();
    match bp.kind {
        Kind::Cnb { .. } if !bp.clear_env => {
            cmd.envs(&with_user_env(ctx.env, ctx.user_env));
        }
        _ => {
            cmd.envs(ctx.env);
        }
    }
    match bp.kind {
        Kind::Classic => {
            // Heroku sets STACK for every classic phase.
            cmd.arg(ctx.app_dir).env("STACK", ctx.target.stack_name());
        }
        Kind::Cnb { .. } => {
            cmd.arg(ctx.platform_dir)
                .arg(&plan_path)
                .env("CNB_BUILDPACK_DIR", &bp.dir)
                .env("CNB_PLATFORM_DIR", ctx.platform_dir)
                .env("CNB_BUILD_PLAN_PATH", &plan_path)
                .envs(ctx.target.env());
        }
    }
    let finished =
        output::run(&mut cmd, Show::Quiet, true).map_err(|source| DetectError::Spawn {
            id: bp.id.clone(),
            path: exe.clone(),
            source,
        })?;
    let code = finished.status.code().unwrap_or(-1);
    match (&bp.kind, code) {
        (Kind::Classic, 0) => Ok(Outcome::Pass {
            plan: DetectPlan::default(),
            name: finished
                .stdout
                .lines()
                .next()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .unwrap_or(&bp.name)
                .to_string(),
        }),
        (Kind::Classic, _) | (Kind::Cnb { .. }, 100) => Ok(Outcome::Fail {
            output: finished.output,
        }),
        (Kind::Cnb { .. }, 0) => {
            let text = std::fs::read_to_string(&plan_path).map_err(io_err(&plan_path))?;
            let mut plan: DetectPlan = toml::from_str(&text).map_err(|e| DetectError::BadPlan {
                id: bp.id.clone(),
                path: plan_path.clone(),
                message: e.message().to_string(),
            })?;
            fold_version(&bp.id, &mut plan).map_err(|message| DetectError::BadPlan {
                id: bp.id.clone(),
                path: plan_path.clone(),
                message,
            })?;
            Ok(Outcome::Pass {
                plan,
                name: bp.name.clone(),
            })
        }
        (Kind::Cnb { .. }, 30) => Err(DetectError::InvalidInput {
            id: bp.id.clone(),
            output: finished.output,
        }),
        (Kind::Cnb { .. }, code) => Err(DetectError::Errored {
            id: bp.id.clone(),
            code,
            output: finished.output,
        }),
    }
}

/// Resolve one trial: each member's chosen plan section, or `None` when an optional member
/// is left out. Returns the resolved deps when every `requires` is met by an earlier-or-same
/// `provides` and every `provides` by a later-or-same `requires`.
fn resolve_trial(members: &[(&Buildpack, Option<&PlanSection>)]) -> Option<Vec<ResolvedDep>> {
    #[derive(Default)]
    struct Dep {
        providers: Vec<usize>,
        unrequired: Vec<usize>,
        requires: Vec<(usize, toml::Table)>,
        first_seen: usize,
    }
    let mut deps: BTreeMap<String, Dep> = BTreeMap::new();
    let mut seen = 0;
    for (i, (_, section)) in members.iter().enumerate() {
        let Some(section) = section else { continue };
        for p in &section.provides {
            let d = deps.entry(p.name.clone()).or_insert_with(|| Dep {
                first_seen: seen,
                ..Dep::default()
            });
            seen += 1;
            d.unrequired.push(i);
        }
        for r in &section.requires {
            let d = deps.entry(r.name.clone()).or_insert_with(|| Dep {
                first_seen: seen,
                ..Dep::default()
            });
            seen += 1;
            let pending = std::mem::take(&mut d.unrequired);
            d.providers.extend(pending);
            if d.providers.is_empty() {
                return None;
            }
            d.requires.push((i, r.metadata.clone()));
        }
    }
    if deps.values().any(|d| !d.unrequired.is_empty()) {
        return None;
    }
    let mut ordered: Vec<(&String, &Dep)> = deps.iter().collect();
    ordered.sort_by_key(|(_, d)| d.first_seen);
    let mut resolved = Vec::new();
    for (name, d) in ordered {
        resolved.push(ResolvedDep {
            name: name.clone(),
            providers: d
                .providers
                .iter()
                .map(|&p| members[p].0.id.clone())
                .collect(),
            requires: d
                .requires
                .iter()
                .map(|(i, m)| RequiredBy {
                    id: members[*i].0.id.clone(),
                    metadata: m.clone(),
                })
                .collect(),
        });
    }
    Some(resolved)
}

/// Each group member with its chosen plan section, or `None` when an optional one is left out.
type Trial<'a> = Vec<(&'a Buildpack, Option<&'a PlanSection>)>;

/// Depth-first over each member's alternatives (main section first, then each `or`, then —
/// for optional members — leaving it out), taking the first trial that resolves.
fn search<'a>(
    passed: &'a [(Buildpack, bool, DetectPlan)],
    chosen: &mut Trial<'a>,
) -> Option<(Trial<'a>, Vec<ResolvedDep>)> {
    let i = chosen.len();
    if i == passed.len() {
        return resolve_trial(chosen).map(|deps| (chosen.clone(), deps));
    }
    let (bp, optional, plan) = &passed[i];
    let mut options: Vec<Option<&PlanSection>> = vec![Some(&plan.main)];
    options.extend(plan.or.iter().map(Some));
    if *optional {
        options.push(None);
    }
    for option in options {
        chosen.push((bp, option));
        if let Some(found) = search(passed, chosen) {
            return Some(found);
        }
        chosen.pop();
    }
    None
}

/// Run detection over `order` and return the first group that passes.
pub fn detect(order: &[Vec<Candidate>], ctx: &DetectContext) -> Result<Detected, DetectError> {
    let mut memo: HashMap<PathBuf, Outcome> = HashMap::new();
    let mut report = Vec::new();
    for (g, group) in order.iter().enumerate() {
        let mut passed = Vec::new();
        let mut names = Vec::new();
        let mut failed_required = false;
        for candidate in group {
            let bp = &candidate.buildpack;
            let outcome = match memo.get(&bp.dir) {
                Some(o) => o.clone(),
                None => {
                    let o = run_detect(bp, ctx)?;
                    memo.insert(bp.dir.clone(), o.clone());
                    o
                }
            };
            match outcome {
                Outcome::Pass { plan, name } => {
                    report.push(format!("  group {}: {}: pass", g + 1, bp.id));
                    passed.push((bp.clone(), candidate.optional, plan));
                    names.push(name);
                }
                Outcome::Fail { output } => {
                    let why = output
                        .iter()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .map(|l| format!(" ({})", l.trim()))
                        .unwrap_or_default();
                    let opt = if candidate.optional {
                        " (optional)"
                    } else {
                        ""
                    };
                    report.push(format!("  group {}: {}{opt}: fail{why}", g + 1, bp.id));
                    if !candidate.optional {
                        failed_required = true;
                        break;
                    }
                }
            }
        }
        if failed_required || passed.is_empty() {
            continue;
        }
        match search(&passed, &mut Vec::new()) {
            Some((chosen, deps)) => {
                let mut group = Vec::new();
                let mut description = None;
                for ((bp, section), name) in chosen.iter().zip(names) {
                    if section.is_none() {
                        continue;
                    }
                    description.get_or_insert(name);
                    group.push((*bp).clone());
                }
                return Ok(Detected {
                    group,
                    deps,
                    description: description.unwrap_or_default(),
                });
            }
            None => report.push(format!(
                "  group {}: build plan does not resolve (a `requires` has no provider, or a `provides` is not required)",
                g + 1
            )),
        }
    }
    Err(DetectError::NoneDetected { report })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp(id: &str) -> Buildpack {
        Buildpack {
            dir: PathBuf::from(format!("/bp/{id}")),
            id: id.into(),
            version: "1".into(),
            name: id.into(),
            kind: Kind::Cnb { api: "0.10".into() },
            clear_env: false,
            targets: Vec::new(),
        }
    }

    fn plan(text: &str) -> DetectPlan {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn provider_gets_the_requires_metadata() {
        let a = bp("a");
        let b = bp("b");
        let pa = plan("[[provides]]\nname = \"node\"\n");
        let pb = plan("[[requires]]\nname = \"node\"\n[requires.metadata]\nversion = \"22\"\n");
        let deps = resolve_trial(&[(&a, Some(&pa.main)), (&b, Some(&pb.main))]).unwrap();
        let plan_a = plan_for(&deps, "a");
        assert_eq!(plan_a.len(), 1);
        assert_eq!(plan_a[0].metadata["version"].as_str(), Some("22"));
        assert!(plan_for(&deps, "b").is_empty());
        assert_eq!(deps[0].providers, vec!["a"]);
    }

    #[test]
    fn unmet_requires_or_unrequired_provides_fail() {
        let a = bp("a");
        let req = plan("[[requires]]\nname = \"x\"\n");
        assert!(resolve_trial(&[(&a, Some(&req.main))]).is_none());
        let prov = plan("[[provides]]\nname = \"x\"\n");
        assert!(resolve_trial(&[(&a, Some(&prov.main))]).is_none());
        // A require before its provider is unmet too.
        let b = bp("b");
        assert!(resolve_trial(&[(&a, Some(&req.main)), (&b, Some(&prov.main))]).is_none());
    }

    #[test]
    fn or_alternative_and_optional_exclusion() {
        let a = bp("a");
        let b = bp("b");
        // a requires x unless its `or` (nothing) is taken; b is optional and provides y only.
        let pa = plan("[[requires]]\nname = \"x\"\n[[or]]\n");
        let pb = plan("[[provides]]\nname = \"y\"\n");
        let passed = vec![(a.clone(), false, pa), (b.clone(), true, pb)];
        let (chosen, _) = search(&passed, &mut Vec::new()).unwrap();
        assert!(chosen[0].1.is_some());
        assert!(
            chosen[1].1.is_none(),
            "b is left out: its provides is not required"
        );
    }
}
