//! Keep the runtime layer to what a slug runs: every byte left in a launch layer is
//! compressed into every slug (the engine's slowest step on a cold build) and unpacked on
//! every dyno start.
//!
//! Left out: the test suites (`test/`, `*/tests/`, `idlelib/idle_test/` and the `_test*`
//! extension modules), IDLE and the turtle demos, static libraries and the `config-*/` build
//! files, the host's own site-packages. Debug information is stripped from the ELF files
//! (`strip --strip-debug`, as python-build-standalone's `install_only_stripped` does): for
//! pyenv's 3.11 it is 75% of libpython and 60% of the extension modules. Symbol tables stay, so
//! native backtraces still name functions.

use crate::errors::{io_error, PythonBuildpackError};
use crate::tool_env::ToolEnv;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Whether `rel` (a path inside the standard library dir `lib/python3.X/`) is left out.
pub fn is_unneeded(rel: &Path, is_dir: bool) -> bool {
    let top = rel.components().count() == 1;
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if is_dir {
        name == "__pycache__"
            || (top
                && (matches!(
                    name,
                    "test" | "site-packages" | "dist-packages" | "idlelib" | "turtledemo"
                ) || name.starts_with("config-")))
            || (!top && matches!(name, "test" | "tests" | "idle_test"))
    } else {
        // Debian's marker that refuses pip installs, static libs and objects.
        (top && name == "EXTERNALLY-MANAGED")
            || name.ends_with(".a")
            || name.ends_with(".o")
            || (rel.starts_with("lib-dynload") && is_test_extension(name))
    }
}

/// CPython's own test extension modules (`_testcapi`, `_ctypes_test`, `xxlimited`, …).
fn is_test_extension(name: &str) -> bool {
    ["_test", "_ctypes_test", "_xxtestfuzz", "xxlimited"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// Remove what `is_unneeded` names from an unpacked standard library, except `__pycache__`
/// dirs: their install-time bytecode is reused (see `bytecode::reuse_or_compile`), which
/// removes whatever it does not reuse.
pub fn prune_stdlib(stdlib: &Path) -> Result<(), PythonBuildpackError> {
    prune_dir(stdlib, Path::new("")).map_err(io_error(stdlib))
}

fn prune_dir(dir: &Path, rel: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        let rel = rel.join(entry.file_name());
        let is_dir = file_type.is_dir();
        if is_dir && entry.file_name() == "__pycache__" {
            continue;
        }
        if is_unneeded(&rel, is_dir) {
            if is_dir {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        } else if is_dir {
            prune_dir(&entry.path(), &rel)?;
        }
    }
    Ok(())
}

/// Strip debug information from every ELF file in the layer with the host's `strip`, in one
/// run. Returns how many files were stripped; 0 when the host has no `strip` (the runtime
/// then keeps its debug information: bigger, not different in behaviour).
pub fn strip_debug_info(layer: &Path, env: &ToolEnv) -> Result<usize, PythonBuildpackError> {
    let mut files = Vec::new();
    elf_files(layer, &mut files).map_err(io_error(layer))?;
    if files.is_empty() {
        return Ok(0);
    }
    files.sort();
    let output = match env
        .command("strip")
        .arg("--strip-debug")
        .args(&files)
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error("strip")(e)),
    };
    if output.status.success() {
        Ok(files.len())
    } else {
        Err(PythonBuildpackError::Command {
            what: "stripping debug information from the Python runtime".to_string(),
            file: layer.display().to_string(),
            detail: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// Regular files (not symlinks) starting with the ELF magic number.
fn elf_files(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            elf_files(&entry.path(), found)?;
        } else if file_type.is_file() {
            let mut magic = [0u8; 4];
            let mut file = std::fs::File::open(entry.path())?;
            if file.read_exact(&mut magic).is_ok() && &magic == b"\x7fELF" {
                found.push(entry.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_suites_and_build_files_are_unneeded() {
        for (path, is_dir) in [
            ("test", true),
            ("idlelib", true),
            ("turtledemo", true),
            ("config-3.11-x86_64-linux-gnu", true),
            ("unittest/test", true),
            ("lib2to3/tests", true),
            ("idlelib/idle_test", true),
            ("json/__pycache__", true),
            (
                "lib-dynload/_testcapi.cpython-311-x86_64-linux-gnu.so",
                false,
            ),
            (
                "lib-dynload/xxlimited_35.cpython-311-x86_64-linux-gnu.so",
                false,
            ),
            ("libpython3.11.a", false),
        ] {
            assert!(is_unneeded(Path::new(path), is_dir), "{path}");
        }
        for (path, is_dir) in [
            ("json", true),
            ("tkinter", true),
            ("unittest", true),
            ("os.py", false),
            ("test.py", false),
            ("tests", true),
            ("lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so", false),
            ("lib-dynload/_json.cpython-311-x86_64-linux-gnu.so", false),
        ] {
            assert!(!is_unneeded(Path::new(path), is_dir), "{path}");
        }
    }

    #[test]
    fn prune_removes_only_unneeded_entries() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in [
            "unittest/test",
            "json/__pycache__",
            "lib-dynload",
            "idlelib",
        ] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        for file in [
            "unittest/test/t.py",
            "unittest/case.py",
            "json/__init__.py",
            "json/__pycache__/__init__.cpython-311.pyc",
            "lib-dynload/_testcapi.so",
            "lib-dynload/_json.so",
            "idlelib/x.py",
        ] {
            std::fs::write(root.join(file), "").unwrap();
        }
        prune_stdlib(root).unwrap();
        assert!(!root.join("unittest/test").exists());
        assert!(!root.join("idlelib").exists());
        assert!(!root.join("lib-dynload/_testcapi.so").exists());
        assert!(root.join("unittest/case.py").exists());
        assert!(root.join("json/__init__.py").exists());
        assert!(root
            .join("json/__pycache__/__init__.cpython-311.pyc")
            .exists());
        assert!(root.join("lib-dynload/_json.so").exists());
    }
}
