//! Start commands in files written for other platforms, tried in [`RULES`] order; the first
//! file that gives a `web` process is used (with its other process types), the later ones are
//! reported as unused. A file that is malformed, or states nothing this platform can run,
//! gives a [`Warning`] and no process.
//!
//! - `app.json` (<https://devcenter.heroku.com/articles/app-json-schema>): Heroku's schema
//!   gives `formation.<type>` only `quantity` and `size`; a `command` there (as some
//!   templates write) is used. `scripts` are one-off hooks (`postdeploy`), never a process.
//! - `render.yaml` (<https://render.com/docs/blueprint-spec>): `services[].startCommand` of
//!   the `type: web` service (a `worker` service gives a process named after it), unless the
//!   service has a `rootDir` other than the app's root.
//! - `railway.json` / `railway.toml` (<https://docs.railway.com/reference/config-as-code>):
//!   `deploy.startCommand`.
//! - `fly.toml` (<https://fly.io/docs/reference/configuration/#the-processes-section>):
//!   `[processes]`; the one `[http_service]` serves (default `app`) is `web`, the others keep
//!   their names.
//! - `Dockerfile`: the final stage's `ENTRYPOINT`/`CMD`, when it is a plain command (its
//!   program a name on `PATH` or a file of the app, not a path into the image).
//!
//! Every command passes [`crate::port::rewrite`]: these platforms configure the port outside
//! the command, so a literal one in it becomes `$PORT`.

use crate::{port, scan, valid_type_name, Inference, Inferred, Warning};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One file and how to read its processes: `(process type, command, what in the file)`.
struct Rule {
    file: &'static str,
    read: fn(&Path, &str) -> Result<Vec<Found>, RuleError>,
}

/// Why a platform file gives no start command; the warning says it and names the file.
#[derive(Debug, thiserror::Error)]
enum RuleError {
    #[error("not valid JSON ({0})")]
    Json(#[from] serde_json::Error),
    #[error("not valid YAML ({0})")]
    Yaml(#[from] serde_norway::Error),
    #[error("not valid TOML ({})", .0.message())]
    Toml(#[from] toml::de::Error),
    #[error("{field} runs {}, a path in the image rather than a command of the app", slugc_fs::input::quote(.program))]
    ImagePath {
        field: &'static str,
        program: String,
    },
}

struct Found {
    process_type: String,
    command: String,
    field: String,
}

const RULES: &[Rule] = &[
    Rule {
        file: "app.json",
        read: app_json,
    },
    Rule {
        file: "render.yaml",
        read: render_yaml,
    },
    Rule {
        file: "railway.json",
        read: railway_json,
    },
    Rule {
        file: "railway.toml",
        read: railway_toml,
    },
    Rule {
        file: "fly.toml",
        read: fly_toml,
    },
    Rule {
        file: "Dockerfile",
        read: dockerfile,
    },
];

/// The files this module reads, in the order they are tried.
pub fn files() -> impl Iterator<Item = &'static str> {
    RULES.iter().map(|r| r.file)
}

/// The processes the app's platform files state.
pub fn infer(app_dir: &Path) -> Inference {
    let mut out = Inference::default();
    for rule in RULES {
        let text = match scan::text(app_dir, rule.file) {
            Ok(Some(text)) => text,
            Ok(None) => continue,
            Err(w) => {
                out.warnings.push(w);
                continue;
            }
        };
        let found = match (rule.read)(app_dir, &text) {
            Ok(found) => found,
            Err(error) => {
                out.warnings.push(Warning::new(
                    rule.file,
                    format!("{error}; no start command taken from it"),
                ));
                continue;
            }
        };
        let mut processes = Vec::new();
        for f in found {
            if !valid_type_name(&f.process_type) {
                out.warnings.push(Warning::new(
                    rule.file,
                    format!(
                        "{}: {} is not a process type name (1 to 63 letters, digits, '_' or '-'); not used",
                        f.field,
                        slugc_fs::input::quote(&f.process_type)
                    ),
                ));
                continue;
            }
            let (command, changes) = port::rewrite(f.command.trim());
            let mut source = format!("{} {}", rule.file, f.field);
            if !changes.is_empty() {
                source.push_str(&format!("; {}", changes.join(", ")));
            }
            processes.push(Inferred {
                process_type: f.process_type,
                command,
                source,
            });
        }
        let has_web = processes.iter().any(|p| p.process_type == "web");
        if out.web().is_none() && has_web {
            out.processes = processes;
        } else {
            out.unused.extend(processes);
        }
    }
    out
}

fn found(process_type: &str, command: &str, field: impl Into<String>) -> Found {
    Found {
        process_type: process_type.to_string(),
        command: command.to_string(),
        field: field.into(),
    }
}

fn nonempty(command: Option<String>) -> Option<String> {
    command.filter(|c| !c.trim().is_empty())
}

#[derive(Deserialize)]
struct AppJson {
    #[serde(default)]
    formation: BTreeMap<String, AppJsonFormation>,
}

#[derive(Deserialize)]
struct AppJsonFormation {
    command: Option<String>,
}

fn app_json(_: &Path, text: &str) -> Result<Vec<Found>, RuleError> {
    let doc: AppJson = serde_json::from_str(text)?;
    Ok(doc
        .formation
        .into_iter()
        .filter_map(|(t, f)| {
            let c = nonempty(f.command)?;
            Some(found(&t, &c, format!("formation.{t}.command")))
        })
        .collect())
}

#[derive(Deserialize)]
struct RenderYaml {
    #[serde(default)]
    services: Vec<RenderService>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RenderService {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    start_command: Option<String>,
    root_dir: Option<String>,
}

fn render_yaml(_: &Path, text: &str) -> Result<Vec<Found>, RuleError> {
    let doc: RenderYaml = serde_norway::from_str(text)?;
    let mut out = Vec::new();
    for s in doc.services {
        let at_root = s
            .root_dir
            .as_deref()
            .is_none_or(|d| matches!(d.trim_matches('/'), "" | "."));
        let Some(command) = nonempty(s.start_command) else {
            continue;
        };
        if !at_root {
            continue;
        }
        match s.kind.as_deref() {
            Some("web") => out.push(found("web", &command, "startCommand")),
            Some("worker") => {
                if let Some(name) = s.name {
                    out.push(found(
                        &name,
                        &command,
                        format!("startCommand of worker {name}"),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
struct Railway {
    deploy: Option<RailwayDeploy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RailwayDeploy {
    start_command: Option<String>,
}

fn railway(doc: Railway) -> Vec<Found> {
    nonempty(doc.deploy.and_then(|d| d.start_command))
        .map(|c| found("web", &c, "deploy.startCommand"))
        .into_iter()
        .collect()
}

fn railway_json(_: &Path, text: &str) -> Result<Vec<Found>, RuleError> {
    Ok(railway(serde_json::from_str(text)?))
}

fn railway_toml(_: &Path, text: &str) -> Result<Vec<Found>, RuleError> {
    Ok(railway(toml::from_str(text)?))
}

#[derive(Deserialize)]
struct FlyToml {
    #[serde(default)]
    processes: BTreeMap<String, String>,
    http_service: Option<FlyHttpService>,
}

#[derive(Deserialize)]
struct FlyHttpService {
    #[serde(default)]
    processes: Vec<String>,
}

fn fly_toml(_: &Path, text: &str) -> Result<Vec<Found>, RuleError> {
    let doc: FlyToml = toml::from_str(text)?;
    // Fly's default process group is `app`; `[http_service]` names the ones it routes to.
    let served = doc
        .http_service
        .and_then(|h| h.processes.into_iter().next())
        .unwrap_or_else(|| "app".to_string());
    let only = (doc.processes.len() == 1)
        .then(|| doc.processes.keys().next().cloned())
        .flatten();
    Ok(doc
        .processes
        .into_iter()
        .filter(|(_, c)| !c.trim().is_empty())
        .map(|(name, command)| {
            let t = if name == served || only.as_deref() == Some(name.as_str()) {
                "web"
            } else {
                name.as_str()
            };
            found(t, &command, format!("[processes] {name}"))
        })
        .collect())
}

/// The final stage's `ENTRYPOINT` and `CMD` (<https://docs.docker.com/reference/dockerfile/>):
/// an exec-form `ENTRYPOINT` takes the exec-form `CMD` as arguments, a shell-form one ignores
/// it; `sh -c "…"` is unwrapped to its script.
fn dockerfile(app_dir: &Path, text: &str) -> Result<Vec<Found>, RuleError> {
    let mut entrypoint: Option<Form> = None;
    let mut cmd: Option<Form> = None;
    for line in logical_lines(text) {
        let (instruction, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        match instruction.to_ascii_uppercase().as_str() {
            "FROM" => {
                entrypoint = None;
                cmd = None;
            }
            "CMD" => cmd = Some(Form::parse(rest)),
            "ENTRYPOINT" => {
                entrypoint = Some(Form::parse(rest));
                // An ENTRYPOINT resets a CMD of the same stage set before it.
                cmd = None;
            }
            _ => {}
        }
    }
    let (words, field) = match (entrypoint, cmd) {
        (Some(Form::Exec(mut e)), Some(Form::Exec(c))) => {
            e.extend(c);
            (Form::Exec(e), "ENTRYPOINT + CMD")
        }
        (Some(e), _) => (e, "ENTRYPOINT"),
        (None, Some(c)) => (c, "CMD"),
        (None, None) => return Ok(Vec::new()),
    };
    let command = words.into_command();
    let program = command.split_whitespace().next().unwrap_or("");
    let plain = !program.contains('/')
        || (!program.starts_with('/') && slugc_fs::input::is_app_file(app_dir, program));
    if !plain {
        return Err(RuleError::ImagePath {
            field,
            program: program.to_string(),
        });
    }
    Ok(vec![found("web", &command, field)])
}

enum Form {
    Exec(Vec<String>),
    Shell(String),
}

impl Form {
    fn parse(rest: &str) -> Form {
        let rest = rest.trim();
        if rest.starts_with('[') {
            if let Ok(words) = serde_json::from_str::<Vec<String>>(rest) {
                return Form::Exec(words);
            }
        }
        // Docker runs a `[…]` that is not a JSON array of strings as a shell command too.
        Form::Shell(rest.to_string())
    }

    fn into_command(self) -> String {
        match self {
            Form::Shell(s) => s,
            Form::Exec(words) => match words.as_slice() {
                [sh, c, script] if is_shell(sh) && c == "-c" => script.clone(),
                _ => words
                    .iter()
                    .map(|w| shell_word(w))
                    .collect::<Vec<_>>()
                    .join(" "),
            },
        }
    }
}

fn is_shell(program: &str) -> bool {
    matches!(
        program,
        "sh" | "bash" | "/bin/sh" | "/bin/bash" | "/usr/bin/env sh"
    )
}

/// A word of an exec-form array as bash reads it back (`$PORT` in an exec form is not
/// expanded by Docker; here the command runs under bash, so a `$` is kept literal too).
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Lines joined over `\` continuations, without comments and blank lines.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(line);
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_app::app;

    fn web(files: &[(&str, &str)]) -> Option<(String, String)> {
        let dir = app(files);
        let inf = infer(dir.path());
        inf.web().map(|w| (w.command.clone(), w.source.clone()))
    }

    #[test]
    fn render_yaml_start_command_of_the_web_service() {
        let yaml = "services:\n  - type: redis\n    name: cache\n  - type: web\n    name: api\n    runtime: python\n    buildCommand: pip install -r requirements.txt\n    startCommand: uvicorn main:app --host 0.0.0.0 --port $PORT\n  - type: worker\n    name: jobs\n    startCommand: celery -A tasks worker\n";
        let dir = app(&[("render.yaml", yaml)]);
        let inf = infer(dir.path());
        assert_eq!(
            inf.web().unwrap().to_string(),
            "web: uvicorn main:app --host 0.0.0.0 --port $PORT   (from render.yaml startCommand)"
        );
        assert_eq!(inf.processes[1].process_type, "jobs");
        assert!(inf.warnings.is_empty());
        // In another dir of a monorepo: not this app's.
        let yaml = "services:\n  - type: web\n    rootDir: backend\n    startCommand: x\n";
        assert_eq!(web(&[("render.yaml", yaml)]), None);
    }

    #[test]
    fn malformed_files_warn_and_infer_nothing() {
        for (file, text) in [
            ("render.yaml", "services: [\n  - type: web\n"),
            ("render.yaml", "services: 3\n"),
            ("railway.json", "{\"deploy\": "),
            ("railway.toml", "[deploy\nstartCommand = 1"),
            ("fly.toml", "[processes]\napp = 3\n"),
            ("app.json", "{\"formation\": []}"),
        ] {
            let dir = app(&[(file, text)]);
            let inf = infer(dir.path());
            assert_eq!(inf.processes, Vec::new(), "{file}: {text}");
            assert_eq!(inf.warnings.len(), 1, "{file}: {text}");
            assert_eq!(inf.warnings[0].file, file);
            assert!(
                inf.warnings[0]
                    .message
                    .ends_with("no start command taken from it"),
                "{}",
                inf.warnings[0]
            );
        }
    }

    #[test]
    fn railway_app_json_and_fly() {
        assert_eq!(
            web(&[(
                "railway.json",
                r#"{"$schema":"x","deploy":{"startCommand":"node server.js"}}"#
            )]),
            Some((
                "node server.js".into(),
                "railway.json deploy.startCommand".into()
            ))
        );
        assert_eq!(
            web(&[(
                "railway.toml",
                "[deploy]\nstartCommand = \"gunicorn app:app\"\n"
            )]),
            Some((
                "gunicorn app:app".into(),
                "railway.toml deploy.startCommand".into()
            ))
        );
        assert_eq!(
            web(&[(
                "app.json",
                r#"{"scripts":{"postdeploy":"x"},"formation":{"web":{"quantity":1}}}"#
            )]),
            None
        );
        assert_eq!(
            web(&[(
                "app.json",
                r#"{"formation":{"web":{"quantity":1,"command":"npm start"}}}"#
            )]),
            Some(("npm start".into(), "app.json formation.web.command".into()))
        );
        let fly = "app = \"x\"\n[processes]\napp = \"gunicorn app:app --bind :8080\"\nworker = \"python w.py\"\n[http_service]\ninternal_port = 8080\nprocesses = [\"app\"]\n";
        let dir = app(&[("fly.toml", fly)]);
        let inf = infer(dir.path());
        assert_eq!(inf.processes.len(), 2);
        assert_eq!(
            inf.web().unwrap().command,
            "gunicorn app:app --bind 0.0.0.0:$PORT"
        );
        assert_eq!(
            inf.web().unwrap().source,
            "fly.toml [processes] app; --bind :8080 → 0.0.0.0:$PORT"
        );
        assert_eq!(inf.processes[1].process_type, "worker");
        // No [processes]: Fly runs the image's CMD.
        assert_eq!(web(&[("fly.toml", "app = \"x\"\n")]), None);
    }

    #[test]
    fn dockerfile_final_stage_plain_command() {
        let d = "FROM node:20 AS build\nCMD [\"node\", \"build.js\"]\nFROM python:3.12-slim\nWORKDIR /app\nCOPY . .\nEXPOSE 8000\nCMD [\"uvicorn\", \"main:app\", \"--host\", \"0.0.0.0\", \\\n     \"--port\", \"8000\"]\n";
        assert_eq!(
            web(&[("Dockerfile", d)]),
            Some((
                "uvicorn main:app --host 0.0.0.0 --port $PORT".into(),
                "Dockerfile CMD; --port 8000 → $PORT".into()
            ))
        );
        assert_eq!(
            web(&[("Dockerfile", "FROM x\nCMD gunicorn app:app\n")])
                .unwrap()
                .0,
            "gunicorn app:app"
        );
        assert_eq!(
            web(&[(
                "Dockerfile",
                "FROM x\nENTRYPOINT [\"python\"]\nCMD [\"app.py\"]\n"
            )])
            .unwrap(),
            ("python app.py".into(), "Dockerfile ENTRYPOINT + CMD".into())
        );
        assert_eq!(
            web(&[(
                "Dockerfile",
                "FROM x\nCMD [\"sh\", \"-c\", \"node server.js $ARGS\"]\n"
            )])
            .unwrap()
            .0,
            "node server.js $ARGS"
        );
        assert_eq!(
            web(&[
                ("Dockerfile", "FROM x\nCMD [\"./start.sh\"]\n"),
                ("start.sh", "")
            ])
            .unwrap()
            .0,
            "./start.sh"
        );
        let dir = app(&[(
            "Dockerfile",
            "FROM x\nENTRYPOINT [\"/docker-entrypoint.sh\"]\n",
        )]);
        let inf = infer(dir.path());
        assert_eq!(inf.processes, Vec::new());
        assert!(
            inf.warnings[0].message.contains("a path in the image"),
            "{:?}",
            inf.warnings
        );
        assert_eq!(web(&[("Dockerfile", "FROM x\nRUN make\n")]), None);
    }

    #[test]
    fn the_first_file_with_a_web_wins() {
        let dir = app(&[
            (
                "render.yaml",
                "services:\n  - type: web\n    startCommand: from-render\n",
            ),
            ("Dockerfile", "FROM x\nCMD from-docker\n"),
        ]);
        let inf = infer(dir.path());
        assert_eq!(inf.web().unwrap().command, "from-render");
        assert_eq!(inf.unused.len(), 1);
        assert_eq!(inf.unused[0].source, "Dockerfile CMD");
    }
}
