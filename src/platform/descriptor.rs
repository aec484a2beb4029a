//! What a buildpack dir is: a CNB buildpack (`buildpack.toml`, `bin/detect`, `bin/build`) or a
//! classic Heroku buildpack (`bin/detect`, `bin/compile`, `bin/release`).

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Buildpack API versions this platform runs. 0.10 is what libcnb 0.30.4 speaks; 0.9 and 0.11
/// differ from it only in ways `launch` and `env` handle (see README "Buildpack APIs").
pub const SUPPORTED_APIS: &[&str] = &["0.9", "0.10", "0.11"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Cnb { api: String },
    Classic,
}

#[derive(Debug, Clone)]
pub struct Buildpack {
    /// Where the buildpack's executables are (for classic ones, a private copy).
    pub dir: PathBuf,
    pub id: String,
    pub version: String,
    pub name: String,
    pub kind: Kind,
}

impl Buildpack {
    pub fn api(&self) -> &str {
        match &self.kind {
            Kind::Cnb { api } => api,
            Kind::Classic => "classic",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    #[error("buildpack dir {0} does not exist")]
    Missing(PathBuf),
    #[error("{0} is not a buildpack: it has neither buildpack.toml (CNB) nor bin/compile (classic Heroku buildpack)")]
    NotABuildpack(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: buildpack API {api:?} is not supported (supported: {supported})", supported = SUPPORTED_APIS.join(", "))]
    UnsupportedApi { path: PathBuf, api: String },
    #[error("{path}: {exe} is missing or not executable")]
    MissingExecutable { path: PathBuf, exe: &'static str },
}

#[derive(Deserialize)]
struct RawDescriptor {
    api: String,
    buildpack: RawInfo,
}

#[derive(Deserialize)]
struct RawInfo {
    id: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    name: String,
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Read a buildpack dir given with `--buildpack`.
pub fn load(dir: &Path) -> Result<Buildpack, DescriptorError> {
    if !dir.is_dir() {
        return Err(DescriptorError::Missing(dir.to_path_buf()));
    }
    let toml_path = dir.join("buildpack.toml");
    if !toml_path.exists() {
        if dir.join("bin/compile").exists() {
            for exe in ["bin/detect", "bin/compile"] {
                if !is_executable(&dir.join(exe)) {
                    return Err(DescriptorError::MissingExecutable {
                        path: dir.to_path_buf(),
                        exe,
                    });
                }
            }
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "classic".to_string());
            return Ok(Buildpack {
                dir: dir.to_path_buf(),
                id: name.clone(),
                version: "classic".to_string(),
                name,
                kind: Kind::Classic,
            });
        }
        return Err(DescriptorError::NotABuildpack(dir.to_path_buf()));
    }
    let text = std::fs::read_to_string(&toml_path).map_err(|source| DescriptorError::Read {
        path: toml_path.clone(),
        source,
    })?;
    let raw: RawDescriptor = toml::from_str(&text).map_err(|e| DescriptorError::Invalid {
        path: toml_path.clone(),
        message: e.message().to_string(),
    })?;
    if !SUPPORTED_APIS.contains(&raw.api.as_str()) {
        return Err(DescriptorError::UnsupportedApi {
            path: toml_path,
            api: raw.api,
        });
    }
    for exe in ["bin/detect", "bin/build"] {
        if !is_executable(&dir.join(exe)) {
            return Err(DescriptorError::MissingExecutable {
                path: dir.to_path_buf(),
                exe,
            });
        }
    }
    let name = if raw.buildpack.name.is_empty() {
        raw.buildpack.id.clone()
    } else {
        raw.buildpack.name
    };
    Ok(Buildpack {
        dir: dir.to_path_buf(),
        id: raw.buildpack.id,
        version: raw.buildpack.version,
        name,
        kind: Kind::Cnb { api: raw.api },
    })
}
