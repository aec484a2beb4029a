//! node-gyp leaves its whole build tree in the app's `build/` (Makefiles, `config.gypi`,
//! object files, dependency files), full of absolute build paths. Only the compiled
//! `build/Release/*.node` files are loaded at run time (directly or through `bindings`), so the
//! rest is removed, in the app and in every package that node-gyp built: the slug then holds
//! no build path and stays reproducible.

use std::io;
use std::path::Path;

/// Keep `build/Release/*.node` (and `build/Debug/*.node`), remove everything else under
/// `build/`. Apps without `binding.gyp` are left alone: their `build/` is their own.
pub fn strip_build_intermediates(app_dir: &Path) -> io::Result<()> {
    let build = app_dir.join("build");
    if !app_dir.join("binding.gyp").is_file() || !build.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(&build)? {
        let entry = entry?;
        let name = entry.file_name();
        let path = entry.path();
        if (name == "Release" || name == "Debug") && entry.file_type()?.is_dir() {
            for inner in std::fs::read_dir(&path)? {
                let inner = inner?;
                let keep = inner.file_type()?.is_file()
                    && inner.path().extension().is_some_and(|e| e == "node");
                if !keep {
                    crate::fsutil::remove_any(&inner.path())?;
                }
            }
        } else {
            crate::fsutil::remove_any(&path)?;
        }
    }
    Ok(())
}

/// [`strip_build_intermediates`] for every package under `node_modules` that node-gyp built
/// (bcrypt, sqlite3, …). Symlinks are not followed: pnpm's links point into its `.pnpm`
/// dir, which the walk reaches anyway.
pub fn strip_packages(node_modules: &Path) -> io::Result<()> {
    if !node_modules.is_dir() {
        return Ok(());
    }
    strip_build_intermediates(node_modules)?;
    for entry in std::fs::read_dir(node_modules)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            strip_packages(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_addons() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path();
        std::fs::write(app.join("binding.gyp"), "{}").unwrap();
        for dir in [
            "build/Release/.deps/Release",
            "build/Release/obj.target/hello",
        ] {
            std::fs::create_dir_all(app.join(dir)).unwrap();
        }
        for file in [
            "build/Makefile",
            "build/config.gypi",
            "build/Release/hello.node",
            "build/Release/obj.target/hello/hello.o",
        ] {
            std::fs::write(app.join(file), "x").unwrap();
        }
        strip_build_intermediates(app).unwrap();
        let mut left: Vec<String> = walk(&app.join("build"));
        left.sort();
        assert_eq!(left, ["Release", "Release/hello.node"]);
    }

    #[test]
    fn packages_in_node_modules_too() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("node_modules/@scope/native");
        std::fs::create_dir_all(pkg.join("build/Release/obj.target")).unwrap();
        std::fs::write(pkg.join("binding.gyp"), "{}").unwrap();
        std::fs::write(pkg.join("build/Makefile"), "x").unwrap();
        std::fs::write(pkg.join("build/Release/native.node"), "x").unwrap();
        let plain = dir.path().join("node_modules/plain/build");
        std::fs::create_dir_all(&plain).unwrap();
        std::fs::write(plain.join("index.js"), "x").unwrap();
        strip_packages(&dir.path().join("node_modules")).unwrap();
        assert!(!pkg.join("build/Makefile").exists());
        assert!(!pkg.join("build/Release/obj.target").exists());
        assert!(pkg.join("build/Release/native.node").is_file());
        assert!(
            plain.join("index.js").is_file(),
            "a package's own build/ is kept"
        );
    }

    #[test]
    fn leaves_other_apps_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("build")).unwrap();
        std::fs::write(dir.path().join("build/Makefile"), "x").unwrap();
        strip_build_intermediates(dir.path()).unwrap();
        assert!(dir.path().join("build/Makefile").is_file());
    }

    fn walk(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(root).unwrap() {
            let entry = entry.unwrap();
            out.push(entry.file_name().to_string_lossy().into_owned());
            if entry.file_type().unwrap().is_dir() {
                let name = entry.file_name().to_string_lossy().into_owned();
                out.extend(
                    walk(&entry.path())
                        .into_iter()
                        .map(|p| format!("{name}/{p}")),
                );
            }
        }
        out
    }
}
