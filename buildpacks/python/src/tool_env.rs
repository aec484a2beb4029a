//! The environment the tools this buildpack runs (python, uv, manage.py) see: the engine's
//! process environment, then the platform env (`slug build --env`; its `PATH`-like values only
//! as the platform prepended them), then the runtime's paths.
//! Platform values are passed to tools only; they are never written to layers or the log.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::Command;

#[derive(Clone, Debug, Default)]
pub struct ToolEnv {
    vars: BTreeMap<OsString, OsString>,
}

impl ToolEnv {
    pub fn new(platform_env: &libcnb::Env) -> Self {
        let mut vars: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
        // The layer path variables of the platform env are in the process env already,
        // prepended to the build's own (`slug_format::user_env`): set from the file they would
        // hide the build's tools.
        for (k, v) in platform_env {
            if !slug_format::user_env::is_layer_path_var(k) {
                vars.insert(k.clone(), v.clone());
            }
        }
        // A user's PYTHONHOME/PYTHONPATH would point the copied interpreter elsewhere.
        vars.remove(OsStr::new("PYTHONHOME"));
        vars.remove(OsStr::new("PYTHONPATH"));
        // Bytecode written as a side effect of running Python embeds the build path and is not
        // reproducible; the buildpack compiles bytecode itself, deterministically.
        vars.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
        Self { vars }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(OsStr::new(key)).and_then(|v| v.to_str())
    }

    pub fn set(&mut self, key: impl Into<OsString>, value: impl Into<OsString>) {
        self.vars.insert(key.into(), value.into());
    }

    /// Prepend `dir` to the `:`-separated list in `key`.
    pub fn prepend_path(&mut self, key: &str, dir: &Path) {
        let mut value = dir.as_os_str().to_os_string();
        if let Some(old) = self.vars.get(OsStr::new(key)).filter(|v| !v.is_empty()) {
            value.push(":");
            value.push(old);
        }
        self.vars.insert(key.into(), value);
    }

    /// Put a Python runtime (layer dir with `bin/` and `lib/`) first on the paths; `lib/` on the
    /// library path so that a shared libpython is loaded from the copy, not from the host
    /// (pyenv builds carry an absolute RUNPATH, which LD_LIBRARY_PATH overrides).
    pub fn with_runtime(mut self, runtime: &Path) -> Self {
        self.prepend_path("PATH", &runtime.join("bin"));
        self.prepend_path("LD_LIBRARY_PATH", &runtime.join("lib"));
        self
    }

    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        command.env_clear().envs(&self.vars);
        command
    }
}

impl ToolEnv {
    /// Activate a virtual environment for the tools run after installing (e.g. manage.py).
    pub fn with_venv(mut self, venv: &Path) -> Self {
        self.prepend_path("PATH", &venv.join("bin"));
        self.set("VIRTUAL_ENV", venv);
        self
    }
}
