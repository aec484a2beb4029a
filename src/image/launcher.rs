//! The launcher layer: a small, deterministic layer that makes the image start like a dyno.
//!
//! It holds `/slugc/launch` (the entrypoint) and `/slugc/processes/<type>` (one file per
//! process type holding its command). The launcher sets `HOME=/app`, enters `/app`, sources
//! `/app/.profile.d/*.sh` as Heroku does, then:
//!
//! - no argument: runs the `web` process type;
//! - one argument naming a process type: runs that type;
//! - one other argument: runs it as a shell command (`podman run IMG "rake db:migrate"`);
//! - several arguments: executes them as they are (`podman run IMG python -V`).
//!
//! A process runs as `exec bash -c "<command>"`, so `$PORT` and the rest expand at start
//! and the process gets the container's signals directly.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;

pub const LAUNCHER_PATH: &str = "/slugc/launch";

pub const LAUNCHER: &str = r#"#!/bin/bash
# Written by `slug image`: start a slug's process type the way a Heroku dyno does.
export HOME=/app
cd /app || exit 1
for profile in /app/.profile.d/*.sh; do
  if [ -r "$profile" ]; then . "$profile"; fi
done
if [ "$#" -eq 0 ]; then
  set -- web
fi
if [ "$#" -eq 1 ]; then
  case "$1" in
    */*|.*) ;;
    *)
      if [ -f "/slugc/processes/$1" ]; then
        exec bash -c "$(< "/slugc/processes/$1")"
      fi
      ;;
  esac
  if [ "$1" = web ]; then
    echo "slug launcher: this slug has no web process type; its types are:" \
      $(ls /slugc/processes) >&2
    exit 64
  fi
  exec bash -c "$1"
fi
exec "$@"
"#;

/// The launcher layer's gzip blob and the digest of its uncompressed tar (its diff_id).
pub struct Layer {
    pub gzip: Vec<u8>,
    pub diff_id: String,
}

/// Build the layer for these process types. Same process types → same bytes: fixed order,
/// mtime 0 (as every slug entry has one fixed mtime), root-owned, gzip header without name or
/// time.
pub fn layer(process_types: &BTreeMap<String, String>) -> std::io::Result<Layer> {
    let mut builder = tar::Builder::new(Vec::new());
    let dir = |path: &str, builder: &mut tar::Builder<Vec<u8>>| {
        let mut header = header(tar::EntryType::Directory, 0o755, 0);
        builder.append_data(&mut header, path, std::io::empty())
    };
    dir("slugc/", &mut builder)?;
    let mut launch = header(tar::EntryType::Regular, 0o755, LAUNCHER.len() as u64);
    builder.append_data(&mut launch, "slugc/launch", LAUNCHER.as_bytes())?;
    dir("slugc/processes/", &mut builder)?;
    for (name, command) in process_types {
        let body = format!("{command}\n");
        let mut h = header(tar::EntryType::Regular, 0o644, body.len() as u64);
        builder.append_data(&mut h, format!("slugc/processes/{name}"), body.as_bytes())?;
    }
    let tar = builder.into_inner()?;
    let diff_id = format!("sha256:{:x}", Sha256::digest(&tar));
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar)?;
    Ok(Layer {
        gzip: gz.finish()?,
        diff_id,
    })
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_process_types_same_bytes_and_listed_files() {
        let types = BTreeMap::from([
            ("web".to_string(), "python3 server.py".to_string()),
            ("worker".to_string(), "python3 worker.py".to_string()),
        ]);
        let a = layer(&types).unwrap();
        let b = layer(&types).unwrap();
        assert_eq!(a.gzip, b.gzip);
        assert_eq!(a.diff_id, b.diff_id);

        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&a.gzip[..]));
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "slugc/",
                "slugc/launch",
                "slugc/processes/",
                "slugc/processes/web",
                "slugc/processes/worker"
            ]
        );
    }

    #[test]
    fn launcher_is_valid_bash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("launch");
        std::fs::write(&path, LAUNCHER).unwrap();
        let status = std::process::Command::new("bash")
            .arg("-n")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
