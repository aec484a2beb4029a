//! Finding the slug to run: a file path, or a sha256 prefix looked up in the store, and the
//! release manifest beside it.

use crate::slug::manifest::{ManifestError, Release};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("no slug {arg:?}: not a file, and no sha256-{prefix}*.tgz in the store {store}")]
    NotFound {
        arg: String,
        prefix: String,
        store: PathBuf,
    },
    #[error("no slug file {0}")]
    NoFile(PathBuf),
    #[error("slug prefix {prefix:?} is ambiguous in {store}: {candidates}")]
    Ambiguous {
        prefix: String,
        store: PathBuf,
        candidates: String,
    },
    #[error("cannot read the slug store {store}: {source}")]
    Store {
        store: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path}: checksum {checksum:?} is not SHA256:<64 hex digits>")]
    BadChecksumField { path: PathBuf, checksum: String },
    #[error("neither $XDG_DATA_HOME nor $HOME is set: pass --store DIR")]
    NoHome,
}

/// A slug file and what is known of it before reading it.
#[derive(Debug)]
pub struct SlugRef {
    pub path: PathBuf,
    /// The release manifest beside the slug (`sha256-<hex>.json`), when there is one.
    pub release: Option<Release>,
    pub manifest_path: Option<PathBuf>,
}

impl SlugRef {
    /// The digests the slug's bytes must have: from the manifest's `checksum` and from a
    /// `sha256-<hex>.tgz` file name. Each names where it came from, for the error message.
    pub fn expected_digests(&self) -> Vec<(String, String)> {
        let mut expected = Vec::new();
        if let (Some(release), Some(path)) = (&self.release, &self.manifest_path) {
            expected.push((
                release.sha256_hex().to_ascii_lowercase(),
                format!("the manifest {}", path.display()),
            ));
        }
        if let Some(hex) = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("sha256-"))
            .and_then(|n| n.strip_suffix(".tgz"))
            .filter(|h| is_hex(h) && h.len() == 64)
        {
            expected.push((
                hex.to_ascii_lowercase(),
                format!("its file name {}", self.path.display()),
            ));
        }
        expected
    }
}

pub fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `$XDG_DATA_HOME/slugc/slugs`, else `~/.local/share/slugc/slugs` (DESIGN.md).
pub fn default_store() -> Result<PathBuf, LocateError> {
    crate::dirs::store().ok_or(LocateError::NoHome)
}

/// `$XDG_CACHE_HOME/slugc/run`, else `~/.cache/slugc/run`: where slugs are unpacked.
pub fn default_unpack_root() -> Result<PathBuf, LocateError> {
    crate::dirs::cache()
        .map(|d| d.join("run"))
        .ok_or(LocateError::NoHome)
}

/// Resolve the user's argument: an existing file (the slug, or its `.json` manifest), else a
/// hex prefix (optionally `sha256-`/`sha256:`) of exactly one slug in the store.
pub fn locate(arg: &str, store: Option<&Path>) -> Result<SlugRef, LocateError> {
    let as_path = Path::new(arg);
    if as_path.is_file() {
        let (slug, manifest) = if arg.ends_with(".json") {
            (as_path.with_extension("tgz"), as_path.to_path_buf())
        } else {
            (as_path.to_path_buf(), as_path.with_extension("json"))
        };
        if !slug.is_file() {
            return Err(LocateError::NoFile(slug));
        }
        return with_manifest(slug, manifest);
    }
    let prefix = arg
        .strip_prefix("sha256-")
        .or_else(|| arg.strip_prefix("sha256:"))
        .or_else(|| arg.strip_prefix("SHA256:"))
        .unwrap_or(arg)
        .to_ascii_lowercase();
    // Something that looks like a path but is not a file is a missing file, not a prefix.
    if !is_hex(&prefix) || arg.contains('/') || arg.ends_with(".tgz") {
        return Err(LocateError::NoFile(as_path.to_path_buf()));
    }
    let store = match store {
        Some(s) => s.to_path_buf(),
        None => default_store()?,
    };
    let wanted = format!("sha256-{prefix}");
    let mut found: Vec<PathBuf> = Vec::new();
    match std::fs::read_dir(&store) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(|source| LocateError::Store {
                    store: store.clone(),
                    source,
                })?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with(&wanted) && name.ends_with(".tgz") {
                    found.push(entry.path());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(LocateError::Store { store, source }),
    }
    found.sort();
    match found.len() {
        0 => Err(LocateError::NotFound {
            arg: arg.to_string(),
            prefix,
            store,
        }),
        1 => {
            let slug = found.remove(0);
            let manifest = slug.with_extension("json");
            with_manifest(slug, manifest)
        }
        _ => Err(LocateError::Ambiguous {
            prefix,
            store,
            candidates: found
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn with_manifest(slug: PathBuf, manifest: PathBuf) -> Result<SlugRef, LocateError> {
    if !manifest.is_file() {
        return Ok(SlugRef {
            path: slug,
            release: None,
            manifest_path: None,
        });
    }
    let release = Release::read(&manifest)?;
    let hex = release.sha256_hex();
    if !release.checksum.starts_with("SHA256:") || hex.len() != 64 || !is_hex(hex) {
        return Err(LocateError::BadChecksumField {
            path: manifest,
            checksum: release.checksum.clone(),
        });
    }
    Ok(SlugRef {
        path: slug,
        release: Some(release),
        manifest_path: Some(manifest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_lookup_in_store() {
        let store = tempfile::tempdir().unwrap();
        let a = format!("sha256-ab{}.tgz", "0".repeat(62));
        let b = format!("sha256-ac{}.tgz", "0".repeat(62));
        std::fs::write(store.path().join(&a), b"x").unwrap();
        std::fs::write(store.path().join(&b), b"x").unwrap();
        let found = locate("ab", Some(store.path())).unwrap();
        assert_eq!(found.path, store.path().join(&a));
        assert!(found.release.is_none());
        assert_eq!(
            found.expected_digests()[0].0,
            format!("ab{}", "0".repeat(62))
        );
        let found = locate("sha256:AC", Some(store.path())).unwrap();
        assert_eq!(found.path, store.path().join(&b));
        assert!(matches!(
            locate("a", Some(store.path())),
            Err(LocateError::Ambiguous { .. })
        ));
        let e = locate("ff", Some(store.path())).unwrap_err();
        assert!(e.to_string().contains("no sha256-ff*.tgz in the store"));
        assert!(matches!(
            locate("./nope.tgz", Some(store.path())),
            Err(LocateError::NoFile(_))
        ));
    }
}
