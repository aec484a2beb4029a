//! The release manifest (`sha256-<hex>.json`): a superset of Heroku's Platform API slug
//! object, without timestamps so that it is reproducible too.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const SCHEMA: &str = "slugc.release/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub schema: String,
    /// `SHA256:<hex>` of the slug file's bytes, as Heroku's slug object spells it.
    pub checksum: String,
    /// Size of the slug file in bytes.
    pub size: u64,
    /// Process type → command, as Heroku's `process_types`.
    pub process_types: BTreeMap<String, String>,
    pub buildpack_provided_description: Option<String>,
    /// git HEAD of the app dir, when it is a git checkout.
    pub commit: Option<String>,
    pub stack: Stack,
    pub buildpacks: Vec<BuildpackRef>,
    /// Defaults the buildpacks ask for (classic `config_vars`); never the user's `--env`.
    pub config_vars: BTreeMap<String, String>,
    pub addons: Vec<String>,
    pub layers: Vec<LayerEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stack {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildpackRef {
    pub id: String,
    pub version: String,
    pub api: String,
}

/// One part of the slug: the app, or one launch layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerEntry {
    /// Path inside the slug, e.g. `app/.layers/slugc_python/runtime`.
    pub path: String,
    /// `sha256:<hex>` of the part's uncompressed tar bytes.
    pub digest: String,
    /// Uncompressed size of the part's tar bytes.
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read release manifest {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("invalid release manifest {path}: {source}")]
    Parse {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
}

impl Release {
    /// The hex digest, without the `SHA256:` prefix.
    pub fn sha256_hex(&self) -> &str {
        self.checksum
            .strip_prefix("SHA256:")
            .unwrap_or(&self.checksum)
    }

    pub fn read(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ManifestError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Pretty JSON with a trailing newline; field order is fixed by the struct and maps are
    /// sorted, so the same release always gives the same bytes.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}
