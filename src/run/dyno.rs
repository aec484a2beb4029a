//! The dyno environment, as Heroku gives it: a clean environment with the config vars,
//! `HOME` = the app root, cwd = the app root, `PORT`, `DYNO` (and the older `PS`), then bash
//! sources `.profile.d/*.sh` (sorted) and `.profile` before the command runs.
//!
//! Config vars are in the environment *before* the profile scripts run, so a buildpack's
//! `export X=${X:-default}` keeps the user's value, as on Heroku.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Heroku's dyno `PATH` before `.profile.d` extends it.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Sources the profile scripts, then hands the command to a fresh `bash -c` with `exec`, as
/// the CNB launcher does for shell processes: the command may be any shell text (`a && b`,
/// pipes), and a simple command ends up as the process group leader itself.
/// `$0` is the dyno name (for bash's own messages), `$1` the command.
const SHELL_LAUNCH: &str = r#"for f in .profile.d/*.sh; do [ -r "$f" ] && . "$f"; done
[ -r .profile ] && . ./.profile
exec bash -c "$1""#;

/// The same, for `slug exec a b c`: the words are run as they are, without a shell re-parse.
const ARGV_LAUNCH: &str = r#"for f in .profile.d/*.sh; do [ -r "$f" ] && . "$f"; done
[ -r .profile ] && . ./.profile
exec "$@""#;

/// What a process is started with, apart from its own `PORT` and name.
#[derive(Debug, Clone)]
pub struct DynoEnv {
    /// Buildpack defaults (manifest `config_vars`), then `--env-file`s, then `--env`s.
    pub config_vars: BTreeMap<String, String>,
}

impl DynoEnv {
    /// The full environment of one process.
    pub fn for_process(&self, app: &Path, name: &str, port: u16) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
        // Keep the developer's terminal and locale settings: they change how output looks,
        // not what the app does, and Heroku's router-facing dynos have no terminal anyway.
        for key in ["TERM", "LANG", "TZ"] {
            if let Ok(v) = std::env::var(key) {
                env.insert(key.to_string(), v);
            }
        }
        env.extend(self.config_vars.clone());
        // The platform's own variables win over config vars, as on Heroku.
        env.insert("HOME".to_string(), app.to_string_lossy().into_owned());
        env.insert("PORT".to_string(), port.to_string());
        env.insert("DYNO".to_string(), name.to_string());
        env.insert("PS".to_string(), name.to_string());
        env
    }

    /// `bash -c` for a Procfile command line.
    pub fn shell_command(&self, app: &Path, name: &str, port: u16, command: &str) -> Command {
        let mut cmd = self.bash(app, name, port, SHELL_LAUNCH);
        cmd.arg(name).arg(command);
        cmd
    }

    /// `bash -c` for an argv (several words given to `slug exec`).
    pub fn argv_command(&self, app: &Path, name: &str, port: u16, argv: &[String]) -> Command {
        let mut cmd = self.bash(app, name, port, ARGV_LAUNCH);
        cmd.arg(name).args(argv);
        cmd
    }

    fn bash(&self, app: &Path, name: &str, port: u16, script: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .current_dir(app)
            .env_clear()
            .envs(self.for_process(app, name, port));
        cmd
    }
}

/// Config vars in precedence order: manifest defaults < env files (in order) < `--env`.
pub fn config_vars(
    defaults: &BTreeMap<String, String>,
    files: &[Vec<(String, String)>],
    flags: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut vars = defaults.clone();
    for pairs in files {
        vars.extend(pairs.iter().cloned());
    }
    vars.extend(flags.iter().cloned());
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_platform_vars() {
        let defaults = BTreeMap::from([
            ("A".to_string(), "default".to_string()),
            ("B".to_string(), "default".to_string()),
        ]);
        let files = vec![vec![
            ("B".into(), "file".into()),
            ("C".into(), "file".into()),
        ]];
        let flags = vec![("C".into(), "flag".into()), ("PORT".into(), "1".into())];
        let vars = config_vars(&defaults, &files, &flags);
        let env = DynoEnv { config_vars: vars }.for_process(Path::new("/x/app"), "web.2", 5001);
        assert_eq!(env["A"], "default");
        assert_eq!(env["B"], "file");
        assert_eq!(env["C"], "flag");
        assert_eq!(env["PORT"], "5001");
        assert_eq!(env["HOME"], "/x/app");
        assert_eq!(env["DYNO"], "web.2");
        assert_eq!(env["PATH"], DEFAULT_PATH);
    }
}
