//! The build's `HOME`: a fresh, empty dir per build, so that what one build (or a buildpack)
//! writes under `~` neither reaches the next build nor the caller's home, and the caller's
//! dotfiles do not change a build unannounced. The spec leaves `HOME` to the platform
//! (<https://github.com/buildpacks/spec/blob/main/buildpack.md#provided-by-the-platform>).
//!
//! The caller's package-manager configuration still reaches the tools through the settings
//! those tools document for pointing at a config file: npm's `userconfig`
//! (`npm_config_userconfig`, <https://docs.npmjs.com/cli/v10/using-npm/config#userconfig>)
//! for `~/.npmrc`, and pip's `PIP_CONFIG_FILE`
//! (<https://pip.pypa.io/en/stable/topics/configuration/#location>) for its user file, and
//! pyenv's `PYENV_ROOT` for `~/.pyenv` (where the Python buildpack looks for interpreters).
//! Each is set only when the caller has the file and has not set the variable.

use super::env::EnvMap;
use std::path::{Path, PathBuf};

/// Make `home` a fresh empty dir and point `env`'s `HOME` at it, keeping the caller's npm and
/// pip user configuration reachable (see the module doc).
pub fn prepare(home: &Path, env: &mut EnvMap) -> std::io::Result<()> {
    slugc_fs::remove(home)?;
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(home)?;
    }
    let caller = env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    if let Some(caller) = caller {
        let has = |name: &str| env.keys().any(|k| k.eq_ignore_ascii_case(name));
        let npmrc = caller.join(".npmrc");
        if !has("npm_config_userconfig") && npmrc.is_file() {
            env.insert(
                "npm_config_userconfig".into(),
                npmrc.to_string_lossy().into_owned(),
            );
        }
        // pip reads `$XDG_CONFIG_HOME/pip/pip.conf` itself when the caller set that; else its
        // user files are under `~`: the newer location wins, as in pip.
        if !env.contains_key("PIP_CONFIG_FILE") && !env.contains_key("XDG_CONFIG_HOME") {
            let pip = [
                caller.join(".config/pip/pip.conf"),
                caller.join(".pip/pip.conf"),
            ]
            .into_iter()
            .find(|p| p.is_file());
            if let Some(pip) = pip {
                env.insert("PIP_CONFIG_FILE".into(), pip.to_string_lossy().into_owned());
            }
        }
        let pyenv = caller.join(".pyenv");
        if !env.contains_key("PYENV_ROOT") && pyenv.is_dir() {
            env.insert("PYENV_ROOT".into(), pyenv.to_string_lossy().into_owned());
        }
    }
    env.insert("HOME".into(), home.to_string_lossy().into_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_home_and_the_callers_config_files() {
        let tmp = tempfile::tempdir().unwrap();
        let caller = tmp.path().join("caller");
        std::fs::create_dir_all(caller.join(".pip")).unwrap();
        std::fs::write(caller.join(".npmrc"), "registry=x\n").unwrap();
        std::fs::write(caller.join(".pip/pip.conf"), "[global]\n").unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join("stale"), "x").unwrap();
        let mut env = EnvMap::from([("HOME".to_string(), caller.display().to_string())]);
        prepare(&home, &mut env).unwrap();
        assert_eq!(env["HOME"], home.display().to_string());
        assert!(!home.join("stale").exists());
        assert_eq!(
            env["npm_config_userconfig"],
            caller.join(".npmrc").display().to_string()
        );
        assert_eq!(
            env["PIP_CONFIG_FILE"],
            caller.join(".pip/pip.conf").display().to_string()
        );
    }
}
