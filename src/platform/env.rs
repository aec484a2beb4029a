//! Environment: what each buildpack's build sees (earlier buildpacks' `build = true` layers,
//! through libcnb's `LayerEnv`, which implements the spec's env-file rules), and the launch
//! environment, written as a `$HOME`-relative `.profile.d` script so that the slug runs
//! wherever it is unpacked (README, "The platform").

use libcnb::layer_env::{LayerEnv, Scope};
use libcnb::Env;
use slug_format::user_env::is_layer_path_var;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The environment a process gets, kept sorted so that runs are repeatable.
pub type EnvMap = BTreeMap<String, String>;

pub fn to_libcnb(env: &EnvMap) -> Env {
    let mut out = Env::new();
    for (k, v) in env {
        out.insert(k, v);
    }
    out
}

pub fn from_libcnb(env: &Env) -> EnvMap {
    env.iter()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// `env` with the user-provided env set in it, for a buildpack without `clear-env`: layer
/// path variables get the user's value prepended (`:`-separated), others are overridden
/// (`slug_format::user_env`).
pub fn with_user_env(env: &EnvMap, user: &EnvMap) -> EnvMap {
    let mut out = env.clone();
    for (k, v) in user {
        match out.get(k) {
            Some(old) if is_layer_path_var(k) && !old.is_empty() => {
                let joined = format!("{v}:{old}");
                out.insert(k.clone(), joined);
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// Apply a `build = true` layer's env (`env/`, `env.build/`, and `bin`, `lib`, `include`,
/// `pkgconfig` paths) for the buildpacks that follow.
pub fn apply_build_layer(env: &EnvMap, layer_dir: &Path) -> std::io::Result<EnvMap> {
    let layer_env = LayerEnv::read_from_layer_dir(layer_dir)?;
    Ok(from_libcnb(&layer_env.apply(Scope::Build, &to_libcnb(env))))
}

/// How one env file modifies its variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Override,
    Default,
    Prepend,
    Append,
}

/// Quote `value` for bash, with every occurrence of the build root replaced by `"$HOME"`.
pub fn quote_relocated(value: &str, build_root: &str) -> String {
    let mut out = String::new();
    let pieces: Vec<&str> = if build_root.is_empty() {
        vec![value]
    } else {
        value.split(build_root).collect()
    };
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            out.push_str("\"$HOME\"");
        }
        if !piece.is_empty() {
            out.push('\'');
            out.push_str(&piece.replace('\'', "'\\''"));
            out.push('\'');
        }
    }
    if out.is_empty() {
        out.push_str("''");
    }
    out
}

fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An env dir's modifications in file-name order, and its `.delim` values.
type EnvDir = (Vec<(String, Action, String)>, BTreeMap<String, String>);

fn read_env_dir(dir: &Path) -> std::io::Result<EnvDir> {
    let mut delims: BTreeMap<String, String> = BTreeMap::new();
    let mut mods: Vec<(String, Action, String)> = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok((mods, delims));
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in &files {
        let Some(file_name) = file.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let (name, suffix) = match file_name.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (file_name, None),
        };
        if !valid_name(name) {
            continue;
        }
        let value = std::fs::read_to_string(file)?;
        let action = match suffix {
            None | Some("override") => Action::Override,
            Some("default") => Action::Default,
            Some("prepend") => Action::Prepend,
            Some("append") => Action::Append,
            Some("delim") => {
                delims.insert(name.to_string(), value);
                continue;
            }
            Some(_) => continue,
        };
        mods.push((name.to_string(), action, value));
    }
    Ok((mods, delims))
}

/// The bash lines for one env dir (`env/`, `env.launch/` or `env.launch/<process>/`).
fn env_dir_script(dir: &Path, build_root: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let (mods, delims) = read_env_dir(dir)?;
    for (name, action, value) in mods {
        let v = quote_relocated(&value, build_root);
        let line = match action {
            Action::Override => format!("export {name}={v}"),
            Action::Default => format!("if [ -z \"${{{name}+x}}\" ]; then export {name}={v}; fi"),
            Action::Prepend | Action::Append => {
                let d = quote_relocated(delims.get(&name).map(String::as_str).unwrap_or(""), "");
                let joined = if action == Action::Prepend {
                    format!("{v}{d}\"${name}\"")
                } else {
                    format!("\"${name}\"{d}{v}")
                };
                format!(
                    "if [ -n \"${{{name}:-}}\" ]; then export {name}={joined}; else export {name}={v}; fi"
                )
            }
        };
        out.push(line);
    }
    Ok(())
}

/// One launch layer, in the order the spec applies them (buildpack order, then layer name).
pub struct LaunchLayer {
    pub dir: PathBuf,
}

const EXEC_D_RUNNER: &str = r#"__slugc_exec_d() {
  local out line
  out=$(mktemp "${TMPDIR:-/tmp}/slugc-exec-d.XXXXXX") || return 0
  "$1" 3>"$out" || echo "exec.d: $1 exited with $?" >&2
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*\"(.*)\"[[:space:]]*$ ]]; then
      local val=${BASH_REMATCH[2]}
      val=${val//\\\"/\"}
      val=${val//\\\\/\\}
      export "${BASH_REMATCH[1]}=$val"
    elif [[ $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*\'(.*)\'[[:space:]]*$ ]]; then
      export "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
    fi
  done < "$out"
  rm -f "$out"
}"#;

fn sorted_children(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn is_executable_file(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The plain values launch layers set for every process (`.override` and `.default` in
/// `env/` and `env.launch/`, not paths into the build root): the defaults the manifest lists
/// as `config_vars`, as Heroku's classic `bin/release` does.
pub fn launch_defaults(
    layers: &[LaunchLayer],
    build_root: &Path,
) -> std::io::Result<BTreeMap<String, String>> {
    let root = build_root.to_string_lossy();
    let mut out = BTreeMap::new();
    for layer in layers {
        for sub in ["env", "env.launch"] {
            let (mods, _) = read_env_dir(&layer.dir.join(sub))?;
            for (name, action, value) in mods {
                if value.contains(root.as_ref()) {
                    continue;
                }
                match action {
                    Action::Override => {
                        out.insert(name, value);
                    }
                    Action::Default => {
                        out.entry(name).or_insert(value);
                    }
                    Action::Prepend | Action::Append => {}
                }
            }
        }
    }
    Ok(out)
}

/// The `.profile.d` script that recreates the launch environment at run time: layer paths,
/// env files, process-specific env (keyed on `$DYNO`'s type), exec.d programs, and the
/// classic buildpacks' `config_vars` as defaults. `build_root` is the app dir of the build;
/// it becomes `$HOME`.
pub fn launch_profile(
    layers: &[LaunchLayer],
    build_root: &Path,
    config_vars: &BTreeMap<String, String>,
) -> std::io::Result<String> {
    let root = build_root.to_string_lossy().into_owned();
    let mut lines = vec![
        "# Written by slugc: the launch environment of this slug's buildpack layers.".to_string(),
        "# Paths are relative to $HOME, the app root at run time.".to_string(),
    ];
    let mut exec_d = Vec::new();
    for layer in layers {
        for (sub, var) in [("bin", "PATH"), ("lib", "LD_LIBRARY_PATH")] {
            let p = layer.dir.join(sub);
            if p.is_dir() {
                let v = quote_relocated(&p.to_string_lossy(), &root);
                lines.push(format!(
                    "if [ -n \"${{{var}:-}}\" ]; then export {var}={v}':'\"${var}\"; else export {var}={v}; fi"
                ));
            }
        }
        env_dir_script(&layer.dir.join("env"), &root, &mut lines)?;
        let launch = layer.dir.join("env.launch");
        env_dir_script(&launch, &root, &mut lines)?;
        for sub in sorted_children(&launch) {
            if sub.is_dir() {
                let mut proc_lines = Vec::new();
                env_dir_script(&sub, &root, &mut proc_lines)?;
                if !proc_lines.is_empty() {
                    let name = sub.file_name().unwrap_or_default().to_string_lossy();
                    lines.push(format!(
                        "if [ \"${{DYNO%%.*}}\" = {} ]; then",
                        quote_relocated(&name, "")
                    ));
                    lines.extend(proc_lines.into_iter().map(|l| format!("  {l}")));
                    lines.push("fi".to_string());
                }
            }
        }
        let exec_dir = layer.dir.join("exec.d");
        for entry in sorted_children(&exec_dir) {
            if is_executable_file(&entry) {
                exec_d.push(format!(
                    "__slugc_exec_d {}",
                    quote_relocated(&entry.to_string_lossy(), &root)
                ));
            } else if entry.is_dir() {
                let name = entry
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                for program in sorted_children(&entry)
                    .into_iter()
                    .filter(|p| is_executable_file(p))
                {
                    exec_d.push(format!(
                        "if [ \"${{DYNO%%.*}}\" = {} ]; then __slugc_exec_d {}; fi",
                        quote_relocated(&name, ""),
                        quote_relocated(&program.to_string_lossy(), &root)
                    ));
                }
            }
        }
    }
    for (k, v) in config_vars {
        if valid_name(k) {
            lines.push(format!(
                "if [ -z \"${{{k}+x}}\" ]; then export {k}={}; fi",
                quote_relocated(v, "")
            ));
        }
    }
    if !exec_d.is_empty() {
        lines.push(EXEC_D_RUNNER.to_string());
        lines.extend(exec_d);
        lines.push("unset -f __slugc_exec_d".to_string());
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_env_prepends_layer_paths_and_overrides_the_rest() {
        let env = EnvMap::from([
            ("PATH".to_string(), "/usr/bin".to_string()),
            ("A".to_string(), "old".to_string()),
        ]);
        let user = EnvMap::from([
            ("PATH".to_string(), "/mine".to_string()),
            ("A".to_string(), "new".to_string()),
            ("B".to_string(), "b".to_string()),
        ]);
        let out = with_user_env(&env, &user);
        assert_eq!(out["PATH"], "/mine:/usr/bin");
        assert_eq!(out["A"], "new");
        assert_eq!(out["B"], "b");
    }

    #[test]
    fn relocates_build_root_to_home() {
        assert_eq!(
            quote_relocated("/w/app/.layers/x/bin:/usr/bin", "/w/app"),
            "\"$HOME\"'/.layers/x/bin:/usr/bin'"
        );
        assert_eq!(quote_relocated("it's", ""), "'it'\\''s'");
        assert_eq!(quote_relocated("", "/w"), "''");
    }

    #[test]
    fn profile_orders_files_and_applies_in_bash() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("app");
        let layer = root.join(".layers/bp/l");
        std::fs::create_dir_all(layer.join("env")).unwrap();
        std::fs::create_dir_all(layer.join("env.launch/web")).unwrap();
        std::fs::create_dir_all(layer.join("bin")).unwrap();
        std::fs::write(layer.join("env/A.override"), "over").unwrap();
        std::fs::write(layer.join("env/B.default"), "dflt").unwrap();
        std::fs::write(
            layer.join("env/C.prepend"),
            root.join("p").to_string_lossy().as_ref(),
        )
        .unwrap();
        std::fs::write(layer.join("env/C.delim"), ":").unwrap();
        std::fs::write(layer.join("env.launch/web/W"), "only-web").unwrap();
        let script = launch_profile(
            &[LaunchLayer { dir: layer.clone() }],
            &root,
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(!script.contains(&*root.to_string_lossy()), "{script}");
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("{script}\necho \"$A|$B|$C|${{W:-}}|$PATH\""))
            .env("HOME", "/elsewhere/app")
            .env("B", "user")
            .env("C", "old")
            .env("DYNO", "web.1")
            .env("PATH", "/usr/bin")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "over|user|/elsewhere/app/p:old|only-web|/elsewhere/app/.layers/bp/l/bin:/usr/bin"
        );
    }
}
