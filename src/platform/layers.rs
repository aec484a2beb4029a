//! Layers: reading `<layer>.toml` types after a build, restoring cached layers before one and
//! saving them after (<https://github.com/buildpacks/spec/blob/main/buildpack.md#layer-types>).
//!
//! Only `cache = true` layers are restored, contents and metadata together, and the restored
//! `<layer>.toml` has no `[types]`: a buildpack that wants the layer again says so. Layer dirs
//! without a `<layer>.toml`, and names ending in `.ignore`, are not layers: they are neither
//! exported nor cached.

use libcnb_data::layer_content_metadata::LayerTypes;
use serde::{Deserialize, Serialize};
use slugc_fs::CopyError;
use std::path::{Path, PathBuf};

/// Files in a buildpack's layers dir that are not layer metadata.
const RESERVED: &[&str] = &["launch", "build", "store"];

#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    pub dir: PathBuf,
    pub types: LayerTypes,
}

/// `<layer>.toml`, read leniently (buildpacks of other API versions add keys).
#[derive(Debug, Default, Deserialize, Serialize)]
struct LayerToml {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    types: Option<LayerTypes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata: Option<toml::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid layer metadata {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(transparent)]
    Copy(#[from] CopyError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LayerError + '_ {
    move |source| LayerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn layer_names(dir: &Path) -> Result<Vec<String>, LayerError> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(io(dir))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".toml")) else {
            continue;
        };
        if RESERVED.contains(&name) || name.ends_with(".ignore") {
            continue;
        }
        names.push(name.to_string());
    }
    names.sort();
    Ok(names)
}

/// The layers a buildpack left, sorted by name, with their types.
pub fn read_layers(layers_dir: &Path) -> Result<Vec<Layer>, LayerError> {
    let mut layers = Vec::new();
    for name in layer_names(layers_dir)? {
        let toml_path = layers_dir.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&toml_path).map_err(io(&toml_path))?;
        let parsed: LayerToml = toml::from_str(&text).map_err(|e| LayerError::Parse {
            path: toml_path.clone(),
            message: e.message().to_string(),
        })?;
        let dir = layers_dir.join(&name);
        layers.push(Layer {
            name,
            dir,
            types: parsed.types.unwrap_or_default(),
        });
    }
    Ok(layers)
}

/// Rename the dir of every layer without a type (`launch`, `build` and `cache` all false) to
/// `<layer>.ignore`, so that later buildpacks cannot depend on it
/// (<https://github.com/buildpacks/spec/blob/main/buildpack.md#ignored-layers>); returns the
/// typed layers.
pub fn ignore_untyped(layers: Vec<Layer>) -> Result<Vec<Layer>, LayerError> {
    let mut typed = Vec::new();
    for layer in layers {
        let t = &layer.types;
        if t.launch || t.build || t.cache {
            typed.push(layer);
            continue;
        }
        if layer.dir.is_dir() {
            let ignored = layer.dir.with_file_name(format!("{}.ignore", layer.name));
            slugc_fs::remove(&ignored).map_err(io(&ignored))?;
            std::fs::rename(&layer.dir, &ignored).map_err(io(&layer.dir))?;
        }
    }
    Ok(typed)
}

/// Executable files under `dir` whose shebang names `root` (the build root): they cannot run
/// from the slug, which is unpacked elsewhere, and the platform does not rewrite file
/// contents (README, "The platform"). At most `limit` are returned; symlinks are not
/// followed.
pub fn shebangs_naming(dir: &Path, root: &Path, limit: usize) -> Vec<PathBuf> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let prefix = format!("#!{}/", root.display());
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push(entry.path());
                continue;
            }
            let executable = ft.is_file()
                && entry
                    .metadata()
                    .is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
            if !executable {
                continue;
            }
            let mut head = vec![0; prefix.len()];
            let read = std::fs::File::open(entry.path()).and_then(|mut f| f.read_exact(&mut head));
            if read.is_ok() && head == prefix.as_bytes() {
                found.push(entry.path());
                if found.len() == limit {
                    return found;
                }
            }
        }
    }
    found
}

/// Restore a buildpack's cached layers' metadata from `cached` into `layers_dir`, without
/// `[types]`, and `store.toml`. Returns the layer dirs to bring over, `(cached, restored)`:
/// the caller lends them ([`crate::cache::Cache::lend`]), which moves rather than copies.
pub fn restore(cached: &Path, layers_dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>, LayerError> {
    let mut dirs = Vec::new();
    for name in layer_names(cached)? {
        let src_toml = cached.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&src_toml).map_err(io(&src_toml))?;
        let Ok(mut parsed) = toml::from_str::<LayerToml>(&text) else {
            continue;
        };
        parsed.types = None;
        let src_dir = cached.join(&name);
        if src_dir.is_dir() {
            dirs.push((src_dir, layers_dir.join(&name)));
        }
        let dst_toml = layers_dir.join(format!("{name}.toml"));
        let body = toml::to_string(&parsed).map_err(|e| LayerError::Parse {
            path: src_toml.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&dst_toml, body).map_err(io(&dst_toml))?;
    }
    let store = cached.join("store.toml");
    if store.is_file() {
        let dst = layers_dir.join("store.toml");
        std::fs::copy(&store, &dst).map_err(io(&dst))?;
    }
    Ok(dirs)
}

/// Save the `cache = true` layers (with their full metadata) and `store.toml` into `dest`.
/// The layer dirs are moved, not copied: call this once the slug is exported and the build
/// root is about to be thrown away (moving costs one rename per layer, where copying costs
/// a link per file — thousands for a language runtime).
pub fn save(layers_dir: &Path, layers: &[Layer], dest: &Path) -> Result<(), LayerError> {
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    for layer in layers.iter().filter(|l| l.types.cache) {
        if layer.dir.is_dir() {
            slugc_fs::move_tree(&layer.dir, &dest.join(&layer.name))?;
        }
        let src = layers_dir.join(format!("{}.toml", layer.name));
        let dst = dest.join(format!("{}.toml", layer.name));
        std::fs::copy(&src, &dst).map_err(io(&src))?;
    }
    let store = layers_dir.join("store.toml");
    if store.is_file() {
        let dst = dest.join("store.toml");
        std::fs::copy(&store, &dst).map_err(io(&store))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_executables_whose_shebang_names_the_root() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("app");
        let bin = root.join(".layers/bp/l/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let write = |name: &str, text: String, mode: u32| {
            std::fs::write(bin.join(name), text).unwrap();
            std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(mode))
                .unwrap();
        };
        let layer_interp = format!("#!{}/.layers/bp/l/bin/interp\n", root.display());
        write("bad", layer_interp.clone(), 0o755);
        write("not-executable", layer_interp, 0o644);
        write("fine", "#!/usr/bin/env interp\n".into(), 0o755);
        let found = shebangs_naming(&root.join(".layers/bp/l"), &root, 10);
        assert_eq!(found, [bin.join("bad")]);
    }

    #[test]
    fn restore_strips_types_and_skips_uncached() {
        let tmp = tempfile::tempdir().unwrap();
        let layers = tmp.path().join("layers");
        std::fs::create_dir_all(layers.join("keep")).unwrap();
        std::fs::create_dir_all(layers.join("drop")).unwrap();
        std::fs::write(layers.join("keep/f"), "x").unwrap();
        std::fs::write(
            layers.join("keep.toml"),
            "[types]\ncache = true\nbuild = true\n[metadata]\nv = \"1\"\n",
        )
        .unwrap();
        std::fs::write(layers.join("drop.toml"), "[types]\nlaunch = true\n").unwrap();
        let read = read_layers(&layers).unwrap();
        let cache = tmp.path().join("cache");
        save(&layers, &read, &cache).unwrap();
        let fresh = tmp.path().join("fresh");
        std::fs::create_dir_all(&fresh).unwrap();
        let dirs = restore(&cache, &fresh).unwrap();
        assert_eq!(dirs, vec![(cache.join("keep"), fresh.join("keep"))]);
        std::fs::rename(&dirs[0].0, &dirs[0].1).unwrap();
        assert_eq!(std::fs::read_to_string(fresh.join("keep/f")).unwrap(), "x");
        let toml = std::fs::read_to_string(fresh.join("keep.toml")).unwrap();
        assert!(!toml.contains("types"), "{toml}");
        assert!(toml.contains("v = \"1\""), "{toml}");
        assert!(!fresh.join("drop").exists());
    }
}
