//! Make a virtual environment work wherever the slug is unpacked: no absolute build path in
//! the files that matter at run time.
//!
//! - `bin/python*` are symlinks to the runtime's interpreter: made relative (both layers sit
//!   side by side under the buildpack's layers dir, at build and at run time);
//! - `pyvenv.cfg` loses `home`/`executable`/`command`: CPython then resolves the `bin/python`
//!   symlink and finds the standard library from the real interpreter (checked on 3.10–3.13);
//! - scripts with a `#!/abs/venv/bin/python` shebang (pip's) get uv's relocatable launcher,
//!   and `python -m venv`'s `activate*` scripts the venv's run-time path; `RECORD` lists the
//!   rewritten files' new hashes;
//! - the app's own package, when installed from the app dir, records `file:///app` (where the
//!   slug puts the app) as its origin in `direct_url.json` (PEP 610) instead of the build dir,
//!   and loses uv's `uv_cache.json` (build-time timestamps uv reads to decide reinstalls).

use std::io;
use std::path::{Component, Path, PathBuf};

/// The relocatable launcher uv writes for `uv venv --relocatable` console scripts.
const LAUNCHER: &str = "#!/bin/sh\n'''exec' \"$(dirname -- \"$(realpath -- \"$0\")\")\"/'python' \"$0\" \"$@\"\n' '''\n";

pub fn relocate_venv(venv: &Path) -> io::Result<()> {
    let bin = venv.join("bin");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&bin)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    let mut rewritten = Vec::new();
    for path in entries {
        let meta = path.symlink_metadata()?;
        if meta.is_symlink() {
            let target = std::fs::read_link(&path)?;
            if target.is_absolute() {
                let relative = relative_path(&bin, &target);
                std::fs::remove_file(&path)?;
                std::os::unix::fs::symlink(relative, &path)?;
            }
        } else if meta.is_file()
            && (rewrite_shebang(&path, venv)? || rewrite_activate(&path, venv)?)
        {
            rewritten.push(path);
        }
    }
    if !rewritten.is_empty() {
        update_records(venv, &rewritten)?;
    }
    let cfg = venv.join("pyvenv.cfg");
    let text = std::fs::read_to_string(&cfg)?;
    let kept: String = text
        .lines()
        .filter(|line| {
            let key = line.split('=').next().unwrap_or_default().trim();
            !matches!(key, "home" | "executable" | "command")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&cfg, kept)?;
    Ok(())
}

/// Where the app is at run time.
const APP_URL: &str = "file:///app";

/// Rewrite the origin of every distribution installed from `app_dir` (see the module doc), and
/// its `RECORD` to match, so the slug holds no build path and the same bytes in every build.
/// Files are replaced, never modified in place: uv may have hard-linked them from its cache.
pub fn relocate_app_distributions(site_packages: &Path, app_dir: &Path) -> io::Result<()> {
    let build_url = format!("file://{}", app_dir.display());
    let mut dist_infos: Vec<PathBuf> = std::fs::read_dir(site_packages)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    dist_infos.retain(|p| p.extension().is_some_and(|e| e == "dist-info"));
    dist_infos.sort();
    for dist_info in dist_infos {
        let direct_url_path = dist_info.join("direct_url.json");
        let Ok(text) = std::fs::read_to_string(&direct_url_path) else {
            continue;
        };
        let Ok(mut direct_url) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let Some(url) = direct_url["url"].as_str() else {
            continue;
        };
        let relocated = match url.strip_prefix(&build_url) {
            Some("") => APP_URL.to_string(),
            Some(rest) if rest.starts_with('/') => format!("{APP_URL}{rest}"),
            _ => continue,
        };
        direct_url["url"] = serde_json::Value::String(relocated);
        let new_direct_url = serde_json::to_string(&direct_url).map_err(io::Error::other)?;
        replace_file(&direct_url_path, new_direct_url.as_bytes())?;
        let uv_cache = dist_info.join("uv_cache.json");
        if uv_cache.exists() {
            std::fs::remove_file(&uv_cache)?;
        }
        rewrite_record(&dist_info, new_direct_url.as_bytes())?;
    }
    Ok(())
}

/// `RECORD` (the wheel spec's CSV of `path,sha256=<urlsafe b64>,size`) with the new
/// `direct_url.json` line and without `uv_cache.json`.
fn rewrite_record(dist_info: &Path, direct_url: &[u8]) -> io::Result<()> {
    let record_path = dist_info.join("RECORD");
    let Ok(record) = std::fs::read_to_string(&record_path) else {
        return Ok(());
    };
    let dir_name = dist_info
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let direct_url_entry = format!("{dir_name}/direct_url.json");
    let uv_cache_entry = format!("{dir_name}/uv_cache.json");
    let mut out = String::new();
    for line in record.lines() {
        let path = line.split(',').next().unwrap_or_default();
        if path == uv_cache_entry {
            continue;
        }
        if path == direct_url_entry {
            use sha2::{Digest, Sha256};
            out.push_str(&format!(
                "{path},sha256={},{}\n",
                urlsafe_base64_nopad(&Sha256::digest(direct_url)),
                direct_url.len()
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    replace_file(&record_path, out.as_bytes())
}

/// A new file in place of `path`, with its mode (a script stays executable).
fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let permissions = std::fs::metadata(path)?.permissions();
    std::fs::remove_file(path)?;
    std::fs::write(path, bytes)?;
    std::fs::set_permissions(path, permissions)
}

/// RFC 4648 §5 base64 without padding, as wheel `RECORD` hashes are written.
fn urlsafe_base64_nopad(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Give a `#!/abs/venv/bin/python` script uv's relocatable launcher; whether it had one.
fn rewrite_shebang(path: &Path, venv: &Path) -> io::Result<bool> {
    let bytes = std::fs::read(path)?;
    let prefix = format!("#!{}/bin/python", venv.display());
    if !bytes.starts_with(prefix.as_bytes()) {
        return Ok(false);
    }
    let rest = match bytes.iter().position(|b| *b == b'\n') {
        Some(i) => &bytes[i + 1..],
        None => &[][..],
    };
    let mut out = LAUNCHER.as_bytes().to_vec();
    out.extend_from_slice(rest);
    replace_file(path, &out)?;
    Ok(true)
}

/// `python -m venv`'s `activate`, `activate.csh`, `activate.fish` and `Activate.ps1` name the
/// venv by its absolute build path (uv's relocatable ones compute it): they get the path where
/// the slug puts the venv at run time, `/app/.layers/slugc_python/<venv dir>`, so that the
/// slug holds no build path. Whether the file changed.
fn rewrite_activate(path: &Path, venv: &Path) -> io::Result<bool> {
    let is_activate = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.to_ascii_lowercase().starts_with("activate"));
    let Some(dir_name) = venv.file_name().and_then(|n| n.to_str()) else {
        return Ok(false);
    };
    if !is_activate {
        return Ok(false);
    }
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(false);
    };
    let build_path = venv.display().to_string();
    if !text.contains(&build_path) {
        return Ok(false);
    }
    let run_time = format!("/app/.layers/slugc_python/{dir_name}");
    replace_file(path, text.replace(&build_path, &run_time).as_bytes())?;
    Ok(true)
}

/// Every `RECORD` of the venv's site-packages lists `changed` files (scripts rewritten after
/// installation) with their new SHA-256 and size, as the installer would have written them:
/// otherwise each build's `RECORD` holds the hashes of that build's own paths.
fn update_records(venv: &Path, changed: &[PathBuf]) -> io::Result<()> {
    let lib = venv.join("lib");
    let mut sites: Vec<PathBuf> = match std::fs::read_dir(&lib) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.path().join("site-packages")))
            .collect::<Result<_, _>>()?,
        Err(_) => return Ok(()),
    };
    sites.retain(|p| p.is_dir());
    sites.sort();
    for site in sites {
        let mut records: Vec<PathBuf> = std::fs::read_dir(&site)?
            .map(|e| e.map(|e| e.path().join("RECORD")))
            .collect::<Result<_, _>>()?;
        records.retain(|p| p.is_file());
        records.sort();
        for record_path in records {
            let record = std::fs::read_to_string(&record_path)?;
            let mut out = String::new();
            let mut touched = false;
            for line in record.lines() {
                let entry = line.rsplitn(3, ',').collect::<Vec<_>>();
                let target = match entry.as_slice() {
                    [_, _, path] if !path.starts_with('"') => normalize(&site.join(path)),
                    _ => None,
                };
                match target.filter(|t| changed.contains(t)) {
                    Some(target) => {
                        use sha2::{Digest, Sha256};
                        let bytes = std::fs::read(&target)?;
                        out.push_str(&format!(
                            "{},sha256={},{}\n",
                            entry[2],
                            urlsafe_base64_nopad(&Sha256::digest(&bytes)),
                            bytes.len()
                        ));
                        touched = true;
                    }
                    None => {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
            }
            if touched {
                replace_file(&record_path, out.as_bytes())?;
            }
        }
    }
    Ok(())
}

/// `path` with `.` and `..` resolved lexically (RECORD paths are relative to site-packages).
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

pub use slugc_fs::relative_path;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_hashes_are_urlsafe_base64_without_padding() {
        use sha2::{Digest, Sha256};
        // The RECORD line every wheel installer writes for an empty file.
        assert_eq!(
            urlsafe_base64_nopad(&Sha256::digest(b"")),
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
        assert_eq!(urlsafe_base64_nopad(b"\xfb\xff"), "-_8");
    }

    #[test]
    fn app_distribution_records_the_run_time_app_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("build/app");
        let dist = tmp.path().join("site/greeter-0.1.0.dist-info");
        std::fs::create_dir_all(&dist).unwrap();
        let url = format!("{{\"url\":\"file://{}\",\"dir_info\":{{}}}}", app.display());
        std::fs::write(dist.join("direct_url.json"), &url).unwrap();
        std::fs::write(dist.join("uv_cache.json"), "{\"timestamp\":1}").unwrap();
        std::fs::write(
            dist.join("RECORD"),
            "greeter-0.1.0.dist-info/direct_url.json,sha256=x,9\n\
             greeter-0.1.0.dist-info/uv_cache.json,sha256=y,15\n\
             greeter/__init__.py,sha256=z,1\n",
        )
        .unwrap();
        relocate_app_distributions(&tmp.path().join("site"), &app).unwrap();
        let new = std::fs::read_to_string(dist.join("direct_url.json")).unwrap();
        assert_eq!(new, r#"{"dir_info":{},"url":"file:///app"}"#);
        assert!(!dist.join("uv_cache.json").exists());
        let record = std::fs::read_to_string(dist.join("RECORD")).unwrap();
        assert!(record.starts_with("greeter-0.1.0.dist-info/direct_url.json,sha256="));
        assert!(record.contains(&format!(",{}\n", new.len())));
        assert!(!record.contains("uv_cache.json"));
        assert!(record.ends_with("greeter/__init__.py,sha256=z,1\n"));
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_path(
                Path::new("/w/app/.layers/p/venv/bin"),
                Path::new("/w/app/.layers/p/runtime/bin/python3.11")
            ),
            Path::new("../../runtime/bin/python3.11")
        );
    }

    #[test]
    fn venv_loses_absolute_paths() {
        let root = tempfile::tempdir().unwrap();
        let venv = root.path().join("venv");
        let runtime_python = root.path().join("runtime/bin/python3.11");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::os::unix::fs::symlink(&runtime_python, venv.join("bin/python")).unwrap();
        std::fs::write(
            venv.join("bin/gunicorn"),
            format!("#!{}/bin/python\nimport sys\n", venv.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            venv.join("bin/gunicorn"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(
            venv.join("pyvenv.cfg"),
            format!("home = {}\nversion_info = 3.11.2\n", root.path().display()),
        )
        .unwrap();
        std::fs::write(
            venv.join("bin/activate"),
            format!("VIRTUAL_ENV=\"{}\"\n", venv.display()),
        )
        .unwrap();
        let dist = venv.join("lib/python3.11/site-packages/g-1.dist-info");
        std::fs::create_dir_all(&dist).unwrap();
        std::fs::write(
            dist.join("RECORD"),
            "../../../bin/gunicorn,sha256=old,20\ng/__init__.py,sha256=z,1\n",
        )
        .unwrap();
        relocate_venv(&venv).unwrap();
        assert_eq!(
            std::fs::read_link(venv.join("bin/python")).unwrap(),
            Path::new("../../runtime/bin/python3.11")
        );
        let script = std::fs::read_to_string(venv.join("bin/gunicorn")).unwrap();
        let mode = std::fs::metadata(venv.join("bin/gunicorn"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(script.starts_with("#!/bin/sh\n") && script.ends_with("import sys\n"));
        let activate = std::fs::read_to_string(venv.join("bin/activate")).unwrap();
        assert_eq!(activate, "VIRTUAL_ENV=\"/app/.layers/slugc_python/venv\"\n");
        use sha2::{Digest, Sha256};
        assert_eq!(
            std::fs::read_to_string(venv.join("lib/python3.11/site-packages/g-1.dist-info/RECORD"))
                .unwrap(),
            format!(
                "../../../bin/gunicorn,sha256={},{}\ng/__init__.py,sha256=z,1\n",
                urlsafe_base64_nopad(&Sha256::digest(script.as_bytes())),
                script.len()
            )
        );
        assert_eq!(
            std::fs::read_to_string(venv.join("pyvenv.cfg")).unwrap(),
            "version_info = 3.11.2\n"
        );
    }
}
