//! Make a virtual environment work wherever the slug is unpacked: no absolute build path in
//! the files that matter at run time.
//!
//! - `bin/python*` are symlinks to the runtime's interpreter: made relative (both layers sit
//!   side by side under the buildpack's layers dir, at build and at run time);
//! - `pyvenv.cfg` loses `home`/`executable`/`command`: CPython then resolves the `bin/python`
//!   symlink and finds the standard library from the real interpreter (checked on 3.10–3.13);
//! - scripts with a `#!/abs/venv/bin/python` shebang (pip's) get uv's relocatable launcher.

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
    for path in entries {
        let meta = path.symlink_metadata()?;
        if meta.is_symlink() {
            let target = std::fs::read_link(&path)?;
            if target.is_absolute() {
                let relative = relative_path(&bin, &target);
                std::fs::remove_file(&path)?;
                std::os::unix::fs::symlink(relative, &path)?;
            }
        } else if meta.is_file() {
            rewrite_shebang(&path, venv)?;
        }
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

fn rewrite_shebang(path: &Path, venv: &Path) -> io::Result<()> {
    let bytes = std::fs::read(path)?;
    let prefix = format!("#!{}/bin/python", venv.display());
    if !bytes.starts_with(prefix.as_bytes()) {
        return Ok(());
    }
    let rest = match bytes.iter().position(|b| *b == b'\n') {
        Some(i) => &bytes[i + 1..],
        None => &[][..],
    };
    let mut out = LAUNCHER.as_bytes().to_vec();
    out.extend_from_slice(rest);
    std::fs::write(path, out)
}

/// `to` relative to the dir `from` (both absolute, no `..`).
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to_c: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to_c).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to_c[common..] {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        std::fs::write(
            venv.join("pyvenv.cfg"),
            format!("home = {}\nversion_info = 3.11.2\n", root.path().display()),
        )
        .unwrap();
        relocate_venv(&venv).unwrap();
        assert_eq!(
            std::fs::read_link(venv.join("bin/python")).unwrap(),
            Path::new("../../runtime/bin/python3.11")
        );
        let script = std::fs::read_to_string(venv.join("bin/gunicorn")).unwrap();
        assert!(script.starts_with("#!/bin/sh\n") && script.ends_with("import sys\n"));
        assert_eq!(
            std::fs::read_to_string(venv.join("pyvenv.cfg")).unwrap(),
            "version_info = 3.11.2\n"
        );
    }
}
