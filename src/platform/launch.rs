//! `launch.toml` (<https://github.com/buildpacks/spec/blob/main/buildpack.md#launchtoml-toml>):
//! processes, the default process and image labels, validated as the lifecycle validates them
//! (at most one `default = true` per file, process types matching `^[A-Za-z0-9_.-]+$`, no type
//! twice, an array `command` from API 0.10 on), and their precedence: a Procfile overrides
//! buildpack processes, a later buildpack's process type overrides an earlier one's (the last
//! `default = true` wins, as in the lifecycle's builder), and classic buildpacks'
//! `default_process_types` come last. Lifecycle reference:
//! <https://github.com/buildpacks/lifecycle/blob/main/phase/builder.go> (`processMap`).
//!
//! Buildpacks written for the lifecycle name their executables by absolute layer paths
//! (`<layers>/<layer>/bin/x` in `command`, `args` or `working-dir`). The slug runs wherever it
//! is unpacked (`slug run`, `/app` in an image), with `$HOME` at the app root, so the build
//! root in a process is rewritten to `$HOME` as the launch env is (README, "The platform").

use libcnb_data::launch::{Label, ProcessType};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `command` is an array from Buildpack API 0.10 on, a string before (0.9).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum CommandField {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
struct RawProcess {
    r#type: String,
    command: CommandField,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    default: bool,
    #[serde(rename = "working-dir", default)]
    working_dir: Option<String>,
}

/// Read leniently otherwise (buildpacks of other API versions add keys such as `slices`).
#[derive(Debug, Clone, Default, Deserialize)]
struct RawLaunch {
    #[serde(default)]
    processes: Vec<RawProcess>,
    #[serde(default)]
    labels: Vec<Label>,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("buildpack {id}: cannot read {path}: {source}")]
    Read {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("buildpack {id}: invalid {path}: {message}")]
    Parse {
        id: String,
        path: PathBuf,
        message: String,
    },
    #[error("buildpack {id}: {path}: process types {first:?} and {second:?} are both `default = true`; at most one may be")]
    MultipleDefaults {
        id: String,
        path: PathBuf,
        first: String,
        second: String,
    },
    #[error("buildpack {id}: {path}: invalid process type {name:?}: use only letters, digits, '.', '_' and '-'")]
    BadType {
        id: String,
        path: PathBuf,
        name: String,
    },
    #[error("buildpack {id}: {path}: process type {name:?} is defined twice")]
    Duplicate {
        id: String,
        path: PathBuf,
        name: String,
    },
    #[error("buildpack {id}: {path}: process type {name:?} has a string `command`; Buildpack API {api} requires an array (e.g. command = [\"bash\", \"-c\", \"...\"])")]
    StringCommand {
        id: String,
        path: PathBuf,
        name: String,
        api: String,
    },
}

/// What one buildpack's `launch.toml` declares, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchFile {
    /// Process type → command line, in file order.
    pub processes: Vec<(String, String)>,
    /// The process type marked `default = true`, if any.
    pub default: Option<String>,
    /// Image labels, in file order.
    pub labels: Vec<(String, String)>,
}

/// Buildpack API 0.10 made `command` an array; 0.9 and before take a string.
fn takes_string_command(api: &str) -> bool {
    api.strip_prefix("0.")
        .and_then(|minor| minor.parse::<u32>().ok())
        .is_some_and(|minor| minor < 10)
}

fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The pieces of `text` around each occurrence of `root` that is a whole path prefix (followed
/// by `/` or by nothing that could continue a file name), as (text before, root follows).
fn split_root<'a>(text: &'a str, root: &str) -> Vec<(&'a str, bool)> {
    let mut out = Vec::new();
    let mut rest = text;
    while !root.is_empty() {
        let Some(at) = rest.find(root) else { break };
        let after = &rest[at + root.len()..];
        let whole = after
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || "-_.".contains(c)));
        if whole {
            out.push((&rest[..at], true));
        } else {
            out.push((&rest[..at + root.len()], false));
        }
        rest = after;
    }
    out.push((rest, false));
    out
}

/// One word of a command, shell-quoted, with the build root made `"$HOME"`.
fn relocated_word(word: &str, root: &str) -> String {
    let pieces = split_root(word, root);
    if pieces.len() == 1 {
        return shell_quote(word);
    }
    let mut out = String::new();
    let mut literal = String::new();
    for (text, root_follows) in pieces {
        literal.push_str(text);
        if root_follows {
            if !literal.is_empty() {
                out.push_str(&shell_quote(&literal));
                literal.clear();
            }
            out.push_str("\"$HOME\"");
        }
    }
    if !literal.is_empty() {
        out.push_str(&shell_quote(&literal));
    }
    out
}

/// A `bash -c` script with the build root made `${HOME}`: right where the path is bare or in
/// double quotes, which is how scripts name paths; inside single quotes it would not expand
/// (README, "The platform").
fn relocated_script(script: &str, root: &str) -> String {
    let mut out = String::new();
    for (text, root_follows) in split_root(script, root) {
        out.push_str(text);
        if root_follows {
            out.push_str("${HOME}");
        }
    }
    out
}

/// The process as one shell command line, the form Heroku's `process_types` holds, with the
/// build root `root` made `$HOME`.
fn command_line(p: &RawProcess, root: &str) -> String {
    let mut words: Vec<String> = match &p.command {
        // API 0.9: a string command is the executable itself.
        CommandField::Shell(s) => vec![s.clone()],
        CommandField::Exec(v) => v.clone(),
    };
    words.extend(p.args.iter().cloned());
    let line = match words.as_slice() {
        [sh, flag, script] if (sh == "bash" || sh == "sh") && flag == "-c" => {
            relocated_script(script, root)
        }
        _ => words
            .iter()
            .map(|w| relocated_word(w, root))
            .collect::<Vec<_>>()
            .join(" "),
    };
    match &p.working_dir {
        Some(dir) if !dir.is_empty() && dir != "." => {
            format!("cd {} && {line}", relocated_word(dir, root))
        }
        _ => line,
    }
}

/// Read and validate `<layers>/launch.toml` of buildpack `id` (Buildpack API `api`); a
/// missing file declares nothing. `build_root` (the app dir of the build) becomes `$HOME`.
pub fn read_launch(
    layers_dir: &Path,
    id: &str,
    api: &str,
    build_root: &Path,
) -> Result<LaunchFile, LaunchError> {
    let path = layers_dir.join("launch.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LaunchFile::default()),
        Err(source) => {
            return Err(LaunchError::Read {
                id: id.to_string(),
                path,
                source,
            })
        }
    };
    let raw: RawLaunch = toml::from_str(&text).map_err(|e| LaunchError::Parse {
        id: id.to_string(),
        path: path.clone(),
        message: e.message().to_string(),
    })?;
    let root = build_root.to_string_lossy();
    let mut file = LaunchFile::default();
    for p in &raw.processes {
        let name = p.r#type.clone();
        if name.parse::<ProcessType>().is_err() {
            return Err(LaunchError::BadType {
                id: id.to_string(),
                path,
                name,
            });
        }
        if file.processes.iter().any(|(n, _)| *n == name) {
            return Err(LaunchError::Duplicate {
                id: id.to_string(),
                path,
                name,
            });
        }
        if matches!(p.command, CommandField::Shell(_)) && !takes_string_command(api) {
            return Err(LaunchError::StringCommand {
                id: id.to_string(),
                path,
                name,
                api: api.to_string(),
            });
        }
        if p.default {
            if let Some(first) = &file.default {
                return Err(LaunchError::MultipleDefaults {
                    id: id.to_string(),
                    path,
                    first: first.clone(),
                    second: name,
                });
            }
            file.default = Some(name.clone());
        }
        file.processes.push((name, command_line(p, &root)));
    }
    file.labels = raw.labels.into_iter().map(|l| (l.key, l.value)).collect();
    Ok(file)
}

/// A Procfile type name as heroku/buildpacks-procfile turns it into a CNB process type
/// (`_` → `-`, lowercase): <https://github.com/heroku/buildpacks-procfile> `src/procfile.rs`.
fn procfile_cnb_name(name: &str) -> String {
    name.replace('_', "-").to_ascii_lowercase()
}

/// Merge processes by precedence. Each argument is applied over the ones before it:
/// classic `default_process_types`, CNB buildpacks in order, the processes the app's platform
/// files state (`slugc_start::platform`, only when the Procfile has no `web`), the Procfile.
#[derive(Debug, Default, Clone)]
pub struct Processes {
    classic_defaults: BTreeMap<String, String>,
    buildpacks: BTreeMap<String, String>,
    /// Where each buildpack process came from: the buildpack, and the rule it names in a
    /// `slugc_start::SOURCE_LABEL_PREFIX` label.
    buildpack_sources: BTreeMap<String, String>,
    default: Option<String>,
    labels: BTreeMap<String, String>,
    inferred: BTreeMap<String, (String, String)>,
    procfile: Option<BTreeMap<String, String>>,
}

impl Processes {
    pub fn add_classic_default(&mut self, name: String, command: String) {
        self.classic_defaults.entry(name).or_insert(command);
    }

    /// Call in buildpack order: a later call overrides an earlier one's type and labels of
    /// the same key. As in the lifecycle's builder, a later `default = true` becomes the
    /// default, and redefining the default type without `default = true` leaves no default;
    /// that case returns a warning for the log. A label under
    /// `slugc_start::SOURCE_LABEL_PREFIX` says where one of the buildpack's processes came
    /// from: it becomes that process's source, not an image label.
    pub fn add_buildpack(&mut self, id: &str, launch: LaunchFile) -> Option<String> {
        let mut warning = None;
        let mut said: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in launch.labels {
            match key.strip_prefix(slugc_start::SOURCE_LABEL_PREFIX) {
                Some(process_type) => {
                    said.insert(process_type.to_string(), value);
                }
                None => {
                    self.labels.insert(key, value);
                }
            }
        }
        for (name, command) in launch.processes {
            if launch.default.as_ref() == Some(&name) {
                self.default = Some(name.clone());
                warning = None;
            } else if self.default.as_ref() == Some(&name) {
                self.default = None;
                warning = Some(format!(
                    "Warning: the default process type {name} is redefined by a process not marked `default = true`: there is no default process now"
                ));
            }
            let source = match said.get(&name) {
                Some(rule) => format!("{id}: {rule}"),
                None => format!("buildpack {id}"),
            };
            self.buildpack_sources.insert(name.clone(), source);
            self.buildpacks.insert(name, command);
        }
        warning
    }

    /// The processes the app's platform files state, over the buildpacks' (the caller only
    /// gives them when the Procfile has no `web`).
    pub fn set_inferred(&mut self, processes: &[slugc_start::Inferred]) {
        self.inferred = processes
            .iter()
            .map(|p| {
                (
                    p.process_type.clone(),
                    (p.command.clone(), p.source.clone()),
                )
            })
            .collect();
    }

    /// The Procfile of the build result. A type a buildpack already turned into a process
    /// under its CNB name with the same command (heroku/procfile writes `release_phase` as
    /// `release-phase`) is not added a second time.
    pub fn set_procfile(&mut self, processes: Vec<(String, String)>) {
        let taken = |name: &str, command: &str| {
            let cnb = procfile_cnb_name(name);
            cnb != name && self.buildpacks.get(&cnb).is_some_and(|c| c == command)
        };
        let own = processes
            .into_iter()
            .filter(|(name, command)| !taken(name, command))
            .collect();
        self.procfile = Some(own);
    }

    /// Where each process of [`Processes::resolve`] came from.
    pub fn sources(&self) -> BTreeMap<String, String> {
        self.resolve()
            .into_keys()
            .map(|name| {
                let source = if self
                    .procfile
                    .as_ref()
                    .is_some_and(|p| p.contains_key(&name))
                {
                    "Procfile".to_string()
                } else if let Some((_, source)) = self.inferred.get(&name) {
                    source.clone()
                } else if let Some(source) = self.buildpack_sources.get(&name) {
                    source.clone()
                } else {
                    "a classic buildpack's default_process_types".to_string()
                };
                (name, source)
            })
            .collect()
    }

    pub fn resolve(&self) -> BTreeMap<String, String> {
        let mut out = self.classic_defaults.clone();
        out.extend(self.buildpacks.clone());
        out.extend(
            self.inferred
                .iter()
                .map(|(k, (c, _))| (k.clone(), c.clone())),
        );
        if let Some(p) = &self.procfile {
            out.extend(p.clone());
        }
        out
    }

    /// The last `default = true` process type of the buildpacks, when it is still a type.
    pub fn default_process(&self) -> Option<String> {
        self.default
            .clone()
            .filter(|d| self.resolve().contains_key(d))
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(text: &str, api: &str) -> Result<LaunchFile, LaunchError> {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("launch.toml"), text).unwrap();
        read_launch(tmp.path(), "test/bp", api, Path::new("/nowhere"))
    }

    #[test]
    fn reads_api_0_10_and_0_9_forms() {
        let p = launch(
            r#"
[[processes]]
type = "web"
command = ["bash", "-c", "gunicorn app:app --bind 0.0.0.0:$PORT"]
default = true

[[processes]]
type = "cli"
command = ["node", "cli.js"]
working-dir = "sub"

[[labels]]
key = "org.example.team"
value = "platform"
"#,
            "0.10",
        )
        .unwrap();
        assert_eq!(
            p.processes[0],
            ("web".into(), "gunicorn app:app --bind 0.0.0.0:$PORT".into())
        );
        assert_eq!(
            p.processes[1],
            ("cli".into(), "cd sub && node cli.js".into())
        );
        assert_eq!(p.default.as_deref(), Some("web"));
        assert_eq!(
            p.labels,
            vec![("org.example.team".into(), "platform".into())]
        );
        let old = launch(
            "[[processes]]\ntype = \"worker\"\ncommand = \"python\"\nargs = [\"worker.py\", \"a b\"]\n",
            "0.9",
        )
        .unwrap();
        assert_eq!(
            old.processes[0],
            ("worker".into(), "python worker.py 'a b'".into())
        );
    }

    #[test]
    fn each_rule_names_the_buildpack_and_the_file() {
        let two_defaults = "[[processes]]\ntype = \"a\"\ncommand = [\"x\"]\ndefault = true\n[[processes]]\ntype = \"b\"\ncommand = [\"y\"]\ndefault = true\n";
        let e = launch(two_defaults, "0.10").unwrap_err().to_string();
        assert!(e.starts_with("buildpack test/bp: "), "{e}");
        assert!(
            e.contains("launch.toml: process types \"a\" and \"b\" are both"),
            "{e}"
        );
        let bad = launch(
            "[[processes]]\ntype = \"we b\"\ncommand = [\"x\"]\n",
            "0.10",
        );
        assert!(matches!(bad, Err(LaunchError::BadType { .. })));
        let twice = "[[processes]]\ntype = \"a\"\ncommand = [\"x\"]\n[[processes]]\ntype = \"a\"\ncommand = [\"y\"]\n";
        assert!(matches!(
            launch(twice, "0.10"),
            Err(LaunchError::Duplicate { .. })
        ));
        let string = "[[processes]]\ntype = \"a\"\ncommand = \"x\"\n";
        assert!(matches!(
            launch(string, "0.10"),
            Err(LaunchError::StringCommand { .. })
        ));
        assert!(matches!(
            launch(string, "0.11"),
            Err(LaunchError::StringCommand { .. })
        ));
        assert!(launch(string, "0.9").is_ok());
    }

    #[test]
    fn build_root_becomes_home_in_words_scripts_and_working_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("launch.toml"),
            r#"
[[processes]]
type = "a"
command = ["/w/app/.layers/x/bin/run", "it's /w/app/data", "/w/apple"]
working-dir = "/w/app/.layers/x"

[[processes]]
type = "b"
command = ["bash", "-c", "cd /w/app/.layers/x && exec \"/w/app/.layers/x/run\" /w/apples"]
"#,
        )
        .unwrap();
        let p = read_launch(tmp.path(), "test/bp", "0.10", Path::new("/w/app"))
            .unwrap()
            .processes;
        assert_eq!(
            p[0].1,
            "cd \"$HOME\"/.layers/x && \"$HOME\"/.layers/x/bin/run 'it'\\''s '\"$HOME\"/data /w/apple"
        );
        assert_eq!(
            p[1].1,
            "cd ${HOME}/.layers/x && exec \"${HOME}/.layers/x/run\" /w/apples"
        );
    }

    #[test]
    fn precedence() {
        let file = |procs: &[(&str, &str)], default: Option<&str>| LaunchFile {
            processes: procs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            default: default.map(str::to_string),
            labels: Vec::new(),
        };
        let mut p = Processes::default();
        p.add_classic_default("web".into(), "classic".into());
        p.add_classic_default("clock".into(), "classic-clock".into());
        p.add_buildpack(
            "bp",
            file(
                &[("web", "early"), ("worker", "early-worker")],
                Some("worker"),
            ),
        );
        assert!(p
            .add_buildpack("bp", file(&[("web", "late")], Some("web")))
            .is_none());
        assert_eq!(p.resolve()["web"], "late");
        assert_eq!(p.resolve()["clock"], "classic-clock");
        assert_eq!(p.default_process().as_deref(), Some("web"));
        // Redefined without `default = true`: no default any more, and a warning says so.
        let warning = p.add_buildpack("bp", file(&[("web", "later")], None));
        assert!(warning.is_some_and(|w| w.contains("web")));
        assert_eq!(p.default_process(), None);
        p.set_procfile(vec![("worker".into(), "procfile".into())]);
        let r = p.resolve();
        assert_eq!(r["worker"], "procfile");
        assert_eq!(r["web"], "later");
    }

    #[test]
    fn platform_files_sit_between_buildpacks_and_the_procfile_and_each_type_has_its_source() {
        let mut p = Processes::default();
        p.add_classic_default("clock".into(), "classic-clock".into());
        p.add_buildpack(
            "slugc/python",
            LaunchFile {
                processes: vec![
                    ("web".into(), "gunicorn app:app".into()),
                    ("worker".into(), "w".into()),
                ],
                default: Some("web".into()),
                labels: vec![
                    (
                        format!("{}web", slugc_start::SOURCE_LABEL_PREFIX),
                        "Flask default".into(),
                    ),
                    ("org.example.team".into(), "x".into()),
                ],
            },
        );
        // The source label is a source, not an image label.
        assert_eq!(p.labels().keys().collect::<Vec<_>>(), ["org.example.team"]);
        p.set_inferred(&[slugc_start::Inferred {
            process_type: "web".into(),
            command: "uvicorn main:app".into(),
            source: "render.yaml startCommand".into(),
        }]);
        p.set_procfile(vec![("worker".into(), "procfile-worker".into())]);
        let r = p.resolve();
        assert_eq!(r["web"], "uvicorn main:app");
        assert_eq!(r["worker"], "procfile-worker");
        assert_eq!(p.default_process().as_deref(), Some("web"));
        let sources = p.sources();
        assert_eq!(sources["web"], "render.yaml startCommand");
        assert_eq!(sources["worker"], "Procfile");
        assert_eq!(
            sources["clock"],
            "a classic buildpack's default_process_types"
        );
        let mut q = Processes::default();
        q.add_buildpack(
            "slugc/python",
            LaunchFile {
                processes: vec![("web".into(), "gunicorn app:app".into())],
                default: None,
                labels: vec![(
                    format!("{}web", slugc_start::SOURCE_LABEL_PREFIX),
                    "Flask default".into(),
                )],
            },
        );
        q.add_buildpack(
            "other/bp",
            LaunchFile {
                processes: vec![("api".into(), "x".into())],
                default: None,
                labels: Vec::new(),
            },
        );
        assert_eq!(q.sources()["web"], "slugc/python: Flask default");
        assert_eq!(q.sources()["api"], "buildpack other/bp");
    }

    #[test]
    fn a_procfile_type_a_buildpack_renamed_is_not_doubled() {
        let mut p = Processes::default();
        p.add_buildpack(
            "bp",
            LaunchFile {
                processes: vec![("release-phase".into(), "./migrate".into())],
                default: None,
                labels: Vec::new(),
            },
        );
        p.set_procfile(vec![
            ("release_phase".into(), "./migrate".into()),
            ("other_one".into(), "./other".into()),
        ]);
        let r = p.resolve();
        assert_eq!(r.keys().collect::<Vec<_>>(), ["other_one", "release-phase"]);
    }
}
