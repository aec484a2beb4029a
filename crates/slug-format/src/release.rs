//! The release manifest (`sha256-<hex>.json`): a superset of Heroku's Platform API slug
//! object, without timestamps so that it is reproducible too.
//!
//! What the build decided about running the slug ([`BuildRelease`]: process types, the
//! default process, labels, buildpacks, …) is also written *into* the slug, at
//! [`EMBEDDED_PATH`], before it is compressed: the slug's checksum covers it, so two builds
//! that differ only in their launch metadata give two slugs, and the manifest beside a slug
//! (the embedded release plus what is measured on the file) can never describe another build.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const SCHEMA: &str = "slugc.release/v1";
/// The schema of the release written into the slug.
pub const EMBEDDED_SCHEMA: &str = "slugc.build-release/v1";
/// Where the slug holds its [`BuildRelease`], as a path of the archive (under `./app/`).
pub const EMBEDDED_PATH: &str = "app/.slugc/release.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub schema: String,
    /// `SHA256:<hex>` of the slug file's bytes, as Heroku's slug object spells it.
    pub checksum: String,
    /// Size of the slug file in bytes.
    pub size: u64,
    /// Process type → command, as Heroku's `process_types`.
    pub process_types: BTreeMap<String, String>,
    /// Process type → where its command came from (`Procfile`, `render.yaml startCommand`, a
    /// buildpack's framework rule, …). Absent from releases that predate it, and left out when
    /// empty, so that the bytes of a release without it do not change.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub process_sources: BTreeMap<String, String>,
    /// The process type a buildpack marked `default = true` in `launch.toml`.
    #[serde(default)]
    pub default_process: Option<String>,
    /// `launch.toml` `[[labels]]` of every buildpack (a later one's key wins).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
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

/// The part of the release that the build decides, written into the slug at
/// [`EMBEDDED_PATH`]; the manifest adds what is measured on the slug file and the source's
/// commit. The commit stays out of the slug: it is where the files came from, not what they
/// are, and the same files at two commits (or in a repo that moved on, as a monorepo does)
/// must give the same slug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRelease {
    pub schema: String,
    pub process_types: BTreeMap<String, String>,
    /// As [`Release::process_sources`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub process_sources: BTreeMap<String, String>,
    pub default_process: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub buildpack_provided_description: Option<String>,
    pub stack: Stack,
    pub buildpacks: Vec<BuildpackRef>,
    pub config_vars: BTreeMap<String, String>,
    pub addons: Vec<String>,
}

impl BuildRelease {
    /// Pretty JSON with a trailing newline, the same bytes for the same release.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The manifest of a slug file holding this release, built from `commit`.
    pub fn into_release(
        self,
        sha256_hex: &str,
        size: u64,
        layers: Vec<LayerEntry>,
        commit: Option<String>,
    ) -> Release {
        Release {
            schema: SCHEMA.to_string(),
            checksum: format!("SHA256:{sha256_hex}"),
            size,
            process_types: self.process_types,
            process_sources: self.process_sources,
            default_process: self.default_process,
            labels: self.labels,
            buildpack_provided_description: self.buildpack_provided_description,
            commit,
            stack: self.stack,
            buildpacks: self.buildpacks,
            config_vars: self.config_vars,
            addons: self.addons,
            layers,
        }
    }
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
