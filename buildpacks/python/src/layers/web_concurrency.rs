//! `WEB_CONCURRENCY` at launch, by Heroku's rule: the lower of `cores * 2 + 1` and
//! `memory MB / 256` (each process gets at least 256 MB), at least 1; a value the user set
//! wins. An exec.d program (run by the launcher with fd 3 open) computes it on the dyno, not
//! at build time.

use crate::errors::{io_error, PythonBuildpackError};
use crate::PythonBuildpack;
use libcnb::build::BuildContext;
use libcnb::data::layer_name;
use libcnb::layer::UncachedLayerDefinition;
use std::os::unix::fs::PermissionsExt;

pub const SCRIPT: &str = r#"#!/usr/bin/env bash
# Written by slugc/python: sets WEB_CONCURRENCY for gunicorn/uvicorn unless already set.
if [[ -n "${WEB_CONCURRENCY:-}" ]]; then exit 0; fi
memory_bytes=""
if [[ -r /sys/fs/cgroup/memory.max ]]; then
  memory_bytes="$(< /sys/fs/cgroup/memory.max)"
elif [[ -r /sys/fs/cgroup/memory/memory.limit_in_bytes ]]; then
  memory_bytes="$(< /sys/fs/cgroup/memory/memory.limit_in_bytes)"
fi
host_kb="$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo 2>/dev/null)"
host_mb=$(( ${host_kb:-524288} / 1024 ))
if [[ "${memory_bytes}" =~ ^[0-9]+$ ]] && (( memory_bytes / 1048576 < host_mb )); then
  memory_mb=$(( memory_bytes / 1048576 ))
else
  memory_mb="${host_mb}"
fi
cores="$(nproc 2>/dev/null || echo 1)"
by_cores=$(( cores * 2 + 1 ))
by_memory=$(( memory_mb / 256 ))
concurrency=$(( by_cores < by_memory ? by_cores : by_memory ))
(( concurrency < 1 )) && concurrency=1
echo "WEB_CONCURRENCY = \"${concurrency}\"" >&3
"#;

pub fn write_web_concurrency(
    context: &BuildContext<PythonBuildpack>,
) -> Result<(), libcnb::Error<PythonBuildpackError>> {
    let layer = context.uncached_layer(
        layer_name!("web-concurrency"),
        UncachedLayerDefinition {
            build: false,
            launch: true,
        },
    )?;
    let dir = layer.path().join("exec.d");
    let script = dir.join("web_concurrency");
    std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    std::fs::write(&script, SCRIPT).map_err(io_error(&script))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .map_err(io_error(&script))?;
    Ok(())
}
