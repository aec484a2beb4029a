//! `launch.toml` processes and their precedence: a Procfile overrides buildpack processes, a
//! later buildpack's process type overrides an earlier one's, and classic buildpacks'
//! `default_process_types` come last.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// `command` is an array from Buildpack API 0.10 on, a string before (0.9); both are read.
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
    #[serde(rename = "working-dir", default)]
    working_dir: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawLaunch {
    #[serde(default)]
    processes: Vec<RawProcess>,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {message}")]
    Parse {
        path: std::path::PathBuf,
        message: String,
    },
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

/// The process as one shell command line, the form Heroku's `process_types` holds.
fn command_line(p: &RawProcess) -> String {
    let mut words: Vec<String> = match &p.command {
        // API 0.9: a string command is the executable itself.
        CommandField::Shell(s) => vec![s.clone()],
        CommandField::Exec(v) => v.clone(),
    };
    words.extend(p.args.iter().cloned());
    let line = match words.as_slice() {
        [sh, flag, script] if (sh == "bash" || sh == "sh") && flag == "-c" => script.clone(),
        _ => words
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" "),
    };
    match &p.working_dir {
        Some(dir) if !dir.is_empty() && dir != "." => format!("cd {} && {line}", shell_quote(dir)),
        _ => line,
    }
}

/// Read `<layers>/launch.toml` into process type → command line (missing file: none).
pub fn read_processes(layers_dir: &Path) -> Result<Vec<(String, String)>, LaunchError> {
    let path = layers_dir.join("launch.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LaunchError::Read { path, source }),
    };
    let raw: RawLaunch = toml::from_str(&text).map_err(|e| LaunchError::Parse {
        path: path.clone(),
        message: e.message().to_string(),
    })?;
    Ok(raw
        .processes
        .iter()
        .map(|p| (p.r#type.clone(), command_line(p)))
        .collect())
}

/// Merge processes by precedence. Each argument is applied over the ones before it.
#[derive(Debug, Default)]
pub struct Processes {
    classic_defaults: BTreeMap<String, String>,
    buildpacks: BTreeMap<String, String>,
    procfile: Option<BTreeMap<String, String>>,
}

impl Processes {
    pub fn add_classic_default(&mut self, name: String, command: String) {
        self.classic_defaults.entry(name).or_insert(command);
    }

    /// Call in buildpack order: a later call overrides an earlier one's type.
    pub fn add_buildpack(&mut self, name: String, command: String) {
        self.buildpacks.insert(name, command);
    }

    pub fn set_procfile(&mut self, processes: Vec<(String, String)>) {
        self.procfile = Some(processes.into_iter().collect());
    }

    pub fn resolve(&self) -> BTreeMap<String, String> {
        let mut out = self.classic_defaults.clone();
        out.extend(self.buildpacks.clone());
        if let Some(p) = &self.procfile {
            out.extend(p.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_api_0_10_and_0_9_forms() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("launch.toml"),
            r#"
[[processes]]
type = "web"
command = ["bash", "-c", "gunicorn app:app --bind 0.0.0.0:$PORT"]
default = true

[[processes]]
type = "worker"
command = "python"
args = ["worker.py", "a b"]

[[processes]]
type = "cli"
command = ["node", "cli.js"]
working-dir = "sub"
"#,
        )
        .unwrap();
        let p = read_processes(tmp.path()).unwrap();
        assert_eq!(
            p[0],
            ("web".into(), "gunicorn app:app --bind 0.0.0.0:$PORT".into())
        );
        assert_eq!(p[1], ("worker".into(), "python worker.py 'a b'".into()));
        assert_eq!(p[2], ("cli".into(), "cd sub && node cli.js".into()));
    }

    #[test]
    fn precedence() {
        let mut p = Processes::default();
        p.add_classic_default("web".into(), "classic".into());
        p.add_classic_default("clock".into(), "classic-clock".into());
        p.add_buildpack("web".into(), "early".into());
        p.add_buildpack("worker".into(), "early-worker".into());
        p.add_buildpack("web".into(), "late".into());
        assert_eq!(p.resolve()["web"], "late");
        assert_eq!(p.resolve()["clock"], "classic-clock");
        p.set_procfile(vec![("worker".into(), "procfile".into())]);
        let r = p.resolve();
        assert_eq!(r["worker"], "procfile");
        assert_eq!(r["web"], "late");
    }
}
