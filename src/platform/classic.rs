//! Classic Heroku buildpacks: `bin/compile BUILD_DIR CACHE_DIR ENV_DIR`, `bin/release
//! BUILD_DIR` (YAML with `addons`, `config_vars`, `default_process_types`), and the `export`
//! file a buildpack may leave for the ones after it
//! (<https://devcenter.heroku.com/articles/buildpack-api>).

use super::env::EnvMap;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Default, Deserialize)]
pub struct Release {
    #[serde(default)]
    pub addons: Vec<String>,
    #[serde(default)]
    pub config_vars: BTreeMap<String, String>,
    #[serde(default)]
    pub default_process_types: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClassicError {
    #[error("{path}: invalid bin/release output: {message}")]
    Release {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("cannot source {path}: {message}")]
    Export {
        path: std::path::PathBuf,
        message: String,
    },
}

pub fn parse_release(stdout: &str, path: &Path) -> Result<Release, ClassicError> {
    if stdout.trim().is_empty() {
        return Ok(Release::default());
    }
    // Heroku's YAML allows `config_vars:` with no value; treat null sections as empty.
    #[derive(Deserialize)]
    struct Loose {
        addons: Option<Vec<String>>,
        config_vars: Option<BTreeMap<String, serde_norway::Value>>,
        default_process_types: Option<BTreeMap<String, String>>,
    }
    let loose: Loose = serde_norway::from_str(stdout).map_err(|e| ClassicError::Release {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let config_vars = loose
        .config_vars
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let s = match v {
                serde_norway::Value::String(s) => s,
                other => serde_norway::to_string(&other)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            };
            (k, s)
        })
        .collect();
    Ok(Release {
        addons: loose.addons.unwrap_or_default(),
        config_vars,
        default_process_types: loose.default_process_types.unwrap_or_default(),
    })
}

/// Source `export` in bash over `env` and return the environment it leaves.
pub fn source_export(export: &Path, env: &EnvMap) -> Result<EnvMap, ClassicError> {
    let out = Command::new("bash")
        .arg("-c")
        .arg("set -a; . \"$1\" >/dev/null 2>&1 || exit 1; env -0")
        .arg("bash")
        .arg(export)
        .env_clear()
        .envs(env)
        .output()
        .map_err(|e| ClassicError::Export {
            path: export.to_path_buf(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(ClassicError::Export {
            path: export.to_path_buf(),
            message: format!("bash exited with {}", out.status),
        });
    }
    let mut next = EnvMap::new();
    for item in out.stdout.split(|b| *b == 0) {
        let item = String::from_utf8_lossy(item);
        if let Some((k, v)) = item.split_once('=') {
            // bash's own bookkeeping, not the buildpack's exports.
            if matches!(k, "_" | "SHLVL" | "PWD" | "OLDPWD") {
                continue;
            }
            next.insert(k.to_string(), v.to_string());
        }
    }
    for k in ["PWD", "OLDPWD", "SHLVL", "_"] {
        if let Some(v) = env.get(k) {
            next.insert(k.to_string(), v.clone());
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_yaml() {
        let r = parse_release(
            "---\naddons:\n  - heroku-postgresql\nconfig_vars:\n  LANG: en_US.UTF-8\n  N: 3\ndefault_process_types:\n  web: ./bin/server\n",
            Path::new("bp/bin/release"),
        )
        .unwrap();
        assert_eq!(r.addons, vec!["heroku-postgresql"]);
        assert_eq!(r.config_vars["LANG"], "en_US.UTF-8");
        assert_eq!(r.config_vars["N"], "3");
        assert_eq!(r.default_process_types["web"], "./bin/server");
        let e = parse_release("config_vars: [\n", Path::new("bp/bin/release")).unwrap_err();
        assert!(e.to_string().starts_with("bp/bin/release: invalid"));
    }

    #[test]
    fn export_file_changes_env() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("export");
        std::fs::write(&f, "export FOO=bar\nexport PATH=/x:$PATH\n").unwrap();
        let mut env = EnvMap::new();
        env.insert("PATH".into(), "/usr/bin:/bin".into());
        let next = source_export(&f, &env).unwrap();
        assert_eq!(next["FOO"], "bar");
        assert_eq!(next["PATH"], "/x:/usr/bin:/bin");
    }
}
