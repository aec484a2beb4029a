//! Framework build caches (`.next/cache`, `node_modules/.cache`, or the app's
//! `cacheDirectories` in package.json, as on Heroku:
//! <https://devcenter.heroku.com/articles/nodejs-support#custom-caching>) kept between builds
//! in the cache-only layer `build_cache`, so that a warm Next.js or webpack build reuses its
//! work. They are moved into the app before the build scripts and out of it after them —
//! renames, the layers being inside the app dir — so they are never in the slug: only the
//! build reads them. Next.js's build traces, which only describe the build, are left out of
//! the slug here too.

use super::explain;
use super::runtime::node_keyed_cache;
use crate::errors::NodejsBuildpackError;
use crate::fsutil;
use crate::registry::PackageVersion;
use crate::NodejsBuildpack;
use libcnb::build::BuildContext;
use libcnb::data::layer_name;
use std::path::{Component, Path, PathBuf};

/// Heroku's defaults when package.json has no `cacheDirectories`.
pub const DEFAULT_DIRS: &[&str] = &[".next/cache", "node_modules/.cache"];

/// The cache dirs, restored into the app; [`Restored::save`] takes them out again.
pub struct Restored {
    layer: PathBuf,
    app_dir: PathBuf,
    dirs: Vec<String>,
}

/// The dirs to cache: `cacheDirectories` (relative paths inside the app, each a plain path
/// without `..`), else [`DEFAULT_DIRS`]. `node_modules` itself is cached as its own layer and
/// must stay in the slug: an entry naming a `node_modules` dir is skipped, with a line saying
/// so, as is any path that could leave the app.
pub fn dirs(requested: Option<&[String]>) -> Vec<String> {
    let Some(requested) = requested else {
        return DEFAULT_DIRS.iter().map(|d| d.to_string()).collect();
    };
    let mut dirs = Vec::new();
    for entry in requested {
        let trimmed = entry.trim().trim_end_matches('/');
        let path = Path::new(trimmed);
        let plain =
            !trimmed.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
        let first = path.components().next();
        if !plain || first == Some(Component::Normal(".layers".as_ref())) {
            println!(
                "Ignoring {} in cacheDirectories: not a relative path inside the app",
                slugc_fs::input::quote(entry)
            );
        } else if path.file_name().is_some_and(|n| n == "node_modules") {
            println!(
                "Ignoring {} in cacheDirectories: node_modules is installed from the lockfile and cached already",
                slugc_fs::input::quote(entry)
            );
        } else if !dirs.iter().any(|d| d == trimmed) {
            dirs.push(trimmed.to_string());
        }
    }
    dirs
}

/// Open the layer and move each cached dir into the app (replacing what the source has there).
pub fn restore(
    context: &BuildContext<NodejsBuildpack>,
    node: &PackageVersion,
    dirs: Vec<String>,
) -> libcnb::Result<Restored, NodejsBuildpackError> {
    // Caches may hold code compiled for one Node.js (native transforms, V8 code caches): the
    // runtime's key.
    let (layer, new) = node_keyed_cache(context, layer_name!("build_cache"), node)?;
    let restored = Restored {
        layer: layer.path(),
        app_dir: context.app_dir.clone(),
        dirs,
    };
    if explain(&layer.state, "build caches") {
        let mut names = Vec::new();
        for dir in &restored.dirs {
            let cached = restored.layer.join(dir);
            if !cached.is_dir() {
                continue;
            }
            let Some(target) = restored.in_app(dir) else {
                continue;
            };
            // A cache inside node_modules goes back only into an installed tree: creating
            // `node_modules` for it would give the app a tree it does not have.
            if Path::new(dir).starts_with("node_modules")
                && !context.app_dir.join("node_modules").is_dir()
            {
                continue;
            }
            fsutil::remove_any(&target).map_err(NodejsBuildpackError::io(
                "replacing a build cache dir",
                &target,
            ))?;
            move_dir(&cached, &target, "restoring a build cache dir")?;
            names.push(dir.as_str());
        }
        if !names.is_empty() {
            println!("Restoring build caches: {}", names.join(", "));
        }
    }
    layer.write_metadata(new)?;
    Ok(restored)
}

impl Restored {
    /// `app/<dir>` when every dir above it in the app is a real dir (or absent): a symlink
    /// there would make the move reach outside the app.
    fn in_app(&self, dir: &str) -> Option<PathBuf> {
        let mut at = self.app_dir.clone();
        let mut parts = Path::new(dir).components().peekable();
        while let Some(part) = parts.next() {
            at.push(part);
            if parts.peek().is_none() {
                break;
            }
            match at.symlink_metadata() {
                Ok(m) if m.is_dir() => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                _ => return None,
            }
        }
        Some(at)
    }

    /// After the build scripts: move each cache dir the build left in the app into the layer
    /// (what the layer held for other dirs is dropped), so the slug never holds them.
    pub fn save(self) -> Result<(), NodejsBuildpackError> {
        if let Ok(entries) = std::fs::read_dir(&self.layer) {
            for entry in entries.flatten() {
                fsutil::remove_any(&entry.path()).map_err(NodejsBuildpackError::io(
                    "clearing the build cache layer",
                    entry.path(),
                ))?;
            }
        }
        let mut names = Vec::new();
        for dir in &self.dirs {
            let Some(source) = self.in_app(dir) else {
                continue;
            };
            if !source.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let cached = self.layer.join(dir);
            move_dir(&source, &cached, "keeping a build cache dir")?;
            names.push(dir.as_str());
        }
        if !names.is_empty() {
            println!(
                "Keeping build caches for the next build (not in the slug): {}",
                names.join(", ")
            );
        }
        Ok(())
    }
}

/// What `next build` writes into `.next` about the build itself: its trace of timings (in
/// microseconds, so different on every build), which `next start` never reads.
const NEXT_BUILD_TRACES: &[&str] = &[".next/trace", ".next/trace-build"];

/// Leave Next.js's build traces out of the slug of an app that `next build` built (it left
/// `.next/BUILD_ID`): they would make each build's slug differ from the last and no server
/// reads them. Only regular files in a real `.next` dir go: a symlink there is the app's, and
/// one at `.next` could lead out of the app.
pub fn drop_next_build_traces(app_dir: &Path) -> Result<(), NodejsBuildpackError> {
    let next = app_dir.join(".next");
    let built = next.symlink_metadata().is_ok_and(|m| m.is_dir())
        && next
            .join("BUILD_ID")
            .symlink_metadata()
            .is_ok_and(|m| m.is_file());
    if !built {
        return Ok(());
    }
    let mut dropped = Vec::new();
    for trace in NEXT_BUILD_TRACES {
        let path = app_dir.join(trace);
        if path.symlink_metadata().is_ok_and(|m| m.is_file()) {
            std::fs::remove_file(&path).map_err(NodejsBuildpackError::io(
                "removing a Next.js build trace",
                &path,
            ))?;
            dropped.push(*trace);
        }
    }
    if !dropped.is_empty() {
        println!(
            "Leaving Next.js's build traces out of the slug: {} (timings of this build, which next start does not read)",
            dropped.join(", ")
        );
    }
    Ok(())
}

/// Rename `from` to `to`, creating `to`'s parent dirs.
fn move_dir(from: &Path, to: &Path, what: &'static str) -> Result<(), NodejsBuildpackError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(NodejsBuildpackError::io(what, parent))?;
    }
    std::fs::rename(from, to).map_err(NodejsBuildpackError::io(what, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dirs_default_and_requested() {
        assert_eq!(dirs(None), DEFAULT_DIRS);
        let requested: Vec<String> = [
            ".angular/cache/",
            "../outside",
            "/abs",
            "node_modules",
            "client/node_modules",
            ".layers/x",
            ".angular/cache",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(dirs(Some(&requested)), [".angular/cache"]);
    }

    #[test]
    fn next_build_traces_go_only_from_a_next_build() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path();
        std::fs::create_dir_all(app.join(".next")).unwrap();
        std::fs::write(app.join(".next/trace"), "[]").unwrap();
        // No BUILD_ID: not a `next build` output, left alone.
        drop_next_build_traces(app).unwrap();
        assert!(app.join(".next/trace").is_file());
        std::fs::write(app.join(".next/BUILD_ID"), "id").unwrap();
        std::os::unix::fs::symlink("trace", app.join(".next/trace-build")).unwrap();
        drop_next_build_traces(app).unwrap();
        assert!(!app.join(".next/trace").exists());
        assert!(app.join(".next/trace-build").symlink_metadata().is_ok());
        assert!(app.join(".next/BUILD_ID").is_file());
    }

    #[test]
    fn a_symlink_above_a_cache_dir_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        std::fs::create_dir_all(app.join("real")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), app.join("link")).unwrap();
        let restored = Restored {
            layer: tmp.path().join("layer"),
            app_dir: app.clone(),
            dirs: vec![],
        };
        assert_eq!(restored.in_app("real/cache"), Some(app.join("real/cache")));
        assert_eq!(restored.in_app("new/cache"), Some(app.join("new/cache")));
        assert_eq!(restored.in_app("link/cache"), None);
    }
}
