//! `launch.toml` processes and their precedence: a Procfile overrides buildpack processes, a
//! later buildpack's process type overrides an earlier one's, and classic buildpacks'
//! `default_process_types` come last.
//!
//! Buildpacks written for the lifecycle name their executables by absolute layer paths
//! (`<layers>/<layer>/bin/x` in `command`, `args` or `working-dir`). The slug runs wherever it
//! is unpacked (`slug run`, `/app` in an image), with `$HOME` at the app root, so the build
//! root in a process is rewritten to `$HOME` as the launch env is (README, "The platform").

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

/// Read `<layers>/launch.toml` into process type → command line (missing file: none);
/// `build_root` (the app dir of the build) becomes `$HOME`.
pub fn read_processes(
    layers_dir: &Path,
    build_root: &Path,
) -> Result<Vec<(String, String)>, LaunchError> {
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
    let root = build_root.to_string_lossy();
    Ok(raw
        .processes
        .iter()
        .map(|p| (p.r#type.clone(), command_line(p, &root)))
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
        let p = read_processes(tmp.path(), Path::new("/nowhere")).unwrap();
        assert_eq!(
            p[0],
            ("web".into(), "gunicorn app:app --bind 0.0.0.0:$PORT".into())
        );
        assert_eq!(p[1], ("worker".into(), "python worker.py 'a b'".into()));
        assert_eq!(p[2], ("cli".into(), "cd sub && node cli.js".into()));
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
        let p = read_processes(tmp.path(), Path::new("/w/app")).unwrap();
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
