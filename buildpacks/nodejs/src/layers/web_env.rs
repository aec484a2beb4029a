//! The launch environment that is not tied to a cached layer: `NODE_ENV`, the app's
//! `node_modules/.bin` on `PATH`, and `WEB_CONCURRENCY` computed at boot by an exec.d program.
//! Values use `.default` where the user's config vars must win.

use crate::errors::NodejsBuildpackError;
use crate::NodejsBuildpack;
use libcnb::build::BuildContext;
use libcnb::data::layer_name;
use libcnb::layer::UncachedLayerDefinition;
use libcnb::layer_env::{LayerEnv, ModificationBehavior, Scope};

/// Heroku's rule (<https://devcenter.heroku.com/articles/node-concurrency>): the memory
/// available to the dyno (cgroup limit, else the machine's) divided by `WEB_MEMORY` (default
/// 512 MB), at least 1. A value the user set is left alone. The engine runs exec.d programs
/// under bash with fd 3 open for TOML output.
pub const WEB_CONCURRENCY_SH: &str = r#"#!/usr/bin/env bash
# slugc/nodejs: WEB_CONCURRENCY = available memory / WEB_MEMORY (MB), at least 1.
if [ -n "${WEB_CONCURRENCY:-}" ]; then
  exit 0
fi
bytes=""
if [ -r /sys/fs/cgroup/memory.max ]; then
  bytes=$(cat /sys/fs/cgroup/memory.max)
elif [ -r /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
  bytes=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)
fi
case "$bytes" in
  ''|max|*[!0-9]*) bytes="" ;;
esac
# cgroup v1 reports "no limit" as a huge number.
if [ -n "$bytes" ] && [ "$bytes" -ge 9000000000000000000 ]; then
  bytes=""
fi
if [ -z "$bytes" ]; then
  kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)
  bytes=$(( ${kb:-524288} * 1024 ))
fi
available_mb=$(( bytes / 1048576 ))
web_memory=${WEB_MEMORY:-512}
case "$web_memory" in
  ''|*[!0-9]*|0) web_memory=512 ;;
esac
concurrency=$(( available_mb / web_memory ))
if [ "$concurrency" -lt 1 ]; then
  concurrency=1
fi
printf 'WEB_CONCURRENCY = "%s"\nWEB_MEMORY = "%s"\nMEMORY_AVAILABLE = "%s"\n' \
  "$concurrency" "$web_memory" "$available_mb" >&3
"#;

/// `defaults`: more launch variables the package manager needs on the dyno, as defaults (a
/// config var wins).
pub fn write(
    context: &BuildContext<NodejsBuildpack>,
    defaults: &[(&str, &str)],
) -> libcnb::Result<(), NodejsBuildpackError> {
    let layer = context.uncached_layer(
        layer_name!("web_env"),
        UncachedLayerDefinition {
            build: false,
            launch: true,
        },
    )?;
    let path = layer.path();
    let mut env = LayerEnv::new();
    for (key, value) in defaults {
        env.insert(Scope::Launch, ModificationBehavior::Default, key, value);
    }
    layer.write_env(
        env.chainable_insert(
            Scope::Launch,
            ModificationBehavior::Default,
            "NODE_ENV",
            "production",
        )
        .chainable_insert(Scope::Launch, ModificationBehavior::Delimiter, "PATH", ":")
        .chainable_insert(
            Scope::Launch,
            ModificationBehavior::Prepend,
            "PATH",
            context.app_dir.join("node_modules/.bin"),
        ),
    )?;
    let exec_d = path.join("exec.d");
    let script = exec_d.join("web_concurrency");
    std::fs::create_dir_all(&exec_d)
        .and_then(|()| std::fs::write(&script, WEB_CONCURRENCY_SH))
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        })
        .map_err(NodejsBuildpackError::io(
            "writing the WEB_CONCURRENCY program",
            &script,
        ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// Run the program with fd 3 going to stdout, as the engine's launcher does.
    fn run(env: &[(&str, &str)]) -> String {
        let output = Command::new("bash")
            .arg("-c")
            .arg(format!("{{ {WEB_CONCURRENCY_SH}\n}} 3>&1"))
            .env_remove("WEB_CONCURRENCY")
            .envs(env.iter().copied())
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    }

    #[test]
    fn computes_concurrency_as_toml() {
        let out = run(&[]);
        let parsed: toml::Table = toml::from_str(&out).unwrap();
        let n: u64 = parsed["WEB_CONCURRENCY"].as_str().unwrap().parse().unwrap();
        let available: u64 = parsed["MEMORY_AVAILABLE"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(n >= 1);
        assert_eq!(n, (available / 512).max(1));
        let out = run(&[("WEB_MEMORY", "1024")]);
        let parsed: toml::Table = toml::from_str(&out).unwrap();
        let n2: u64 = parsed["WEB_CONCURRENCY"].as_str().unwrap().parse().unwrap();
        assert_eq!(n2, (available / 1024).max(1));
    }

    #[test]
    fn respects_a_user_value() {
        assert_eq!(run(&[("WEB_CONCURRENCY", "3")]), "");
    }
}
