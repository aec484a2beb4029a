//! What a buildpack dir is: a CNB component buildpack (`buildpack.toml`, `bin/detect`,
//! `bin/build`), a CNB meta-buildpack (`buildpack.toml` with `[[order]]` and no `bin/`), or a
//! classic Heroku buildpack (`bin/detect`, `bin/compile`, `bin/release`).
//! (<https://github.com/buildpacks/spec/blob/main/buildpack.md#buildpacktoml-toml>)

use libcnb_data::buildpack::{BuildpackTarget, Order, Stack};
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
    /// `[buildpack] clear-env`: user-provided env is then only in `<platform>/env/`.
    pub clear_env: bool,
    /// The targets it runs on, `[[stacks]]` translated; empty: any (classic buildpacks).
    pub targets: Vec<BuildpackTarget>,
}

impl Buildpack {
    pub fn api(&self) -> &str {
        match &self.kind {
            Kind::Cnb { api } => api,
            Kind::Classic => "classic",
        }
    }
}

/// A meta-buildpack: its order, each group's members named by id and version.
#[derive(Debug)]
pub struct Meta {
    pub dir: PathBuf,
    pub id: String,
    pub version: String,
    pub order: Vec<Order>,
}

/// What a buildpack dir holds.
#[derive(Debug)]
pub enum Loaded {
    Component(Buildpack),
    Meta(Meta),
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
    #[error("{path}: a meta-buildpack (it has [[order]]) cannot be given here")]
    UnexpectedMeta { path: PathBuf },
}

#[derive(Deserialize)]
struct RawDescriptor {
    api: String,
    buildpack: RawInfo,
    #[serde(default)]
    order: Vec<Order>,
    #[serde(default)]
    targets: Vec<BuildpackTarget>,
    #[serde(default)]
    stacks: Vec<Stack>,
}

#[derive(Deserialize)]
struct RawInfo {
    id: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    name: String,
    #[serde(default, rename = "clear-env")]
    clear_env: bool,
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The distro a well-known stack id stands for. The spec translates only
/// `io.buildpacks.stacks.bionic`
/// (<https://github.com/buildpacks/spec/blob/main/buildpack.md#buildpacktoml-toml-stacks-array>);
/// the other CNB and Heroku stacks are the Ubuntu releases they were built on.
fn stack_distro(id: &str) -> Option<(&'static str, &'static str)> {
    match id {
        "io.buildpacks.stacks.bionic" | "heroku-18" => Some(("ubuntu", "18.04")),
        "io.buildpacks.stacks.focal" | "heroku-20" => Some(("ubuntu", "20.04")),
        "io.buildpacks.stacks.jammy" | "heroku-22" => Some(("ubuntu", "22.04")),
        "io.buildpacks.stacks.noble" | "heroku-24" => Some(("ubuntu", "24.04")),
        _ => None,
    }
}

/// `[[targets]]`, else the targets `[[stacks]]` stand for, else the inferred `os = "linux"`
/// (the lifecycle's `ReadBpDescriptor`). A stack id this platform does not know, like the
/// inferred target, constrains nothing but the OS; `*` matches any target.
fn effective_targets(raw: &RawDescriptor) -> Vec<BuildpackTarget> {
    if !raw.targets.is_empty() {
        return raw.targets.clone();
    }
    let any = BuildpackTarget {
        os: None,
        arch: None,
        variant: None,
        distros: Vec::new(),
    };
    let mut targets = Vec::new();
    for stack in &raw.stacks {
        if stack.id == "*" {
            return vec![any];
        }
        if let Some((name, version)) = stack_distro(&stack.id) {
            targets.push(BuildpackTarget {
                os: Some("linux".into()),
                arch: None,
                variant: None,
                distros: vec![libcnb_data::buildpack::Distro {
                    name: name.into(),
                    version: version.into(),
                }],
            });
        }
    }
    if targets.is_empty() {
        targets.push(BuildpackTarget {
            os: Some("linux".into()),
            ..any
        });
    }
    targets
}

/// Read a buildpack dir given with `--buildpack` (a component or classic buildpack).
pub fn load(dir: &Path) -> Result<Buildpack, DescriptorError> {
    match load_any(dir)? {
        Loaded::Component(bp) => Ok(bp),
        Loaded::Meta(m) => Err(DescriptorError::UnexpectedMeta {
            path: m.dir.join("buildpack.toml"),
        }),
    }
}

/// Read a buildpack dir: a component, meta or classic buildpack.
pub fn load_any(dir: &Path) -> Result<Loaded, DescriptorError> {
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
            return Ok(Loaded::Component(Buildpack {
                dir: dir.to_path_buf(),
                id: name.clone(),
                version: "classic".to_string(),
                name,
                kind: Kind::Classic,
                clear_env: false,
                targets: Vec::new(),
            }));
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
    if !raw.order.is_empty() {
        // An order makes it a meta-buildpack whatever else the dir holds, as in the
        // lifecycle's detector: executables it may have are never run.
        return Ok(Loaded::Meta(Meta {
            dir: dir.to_path_buf(),
            id: raw.buildpack.id,
            version: raw.buildpack.version,
            order: raw.order,
        }));
    }
    for exe in ["bin/detect", "bin/build"] {
        if !is_executable(&dir.join(exe)) {
            return Err(DescriptorError::MissingExecutable {
                path: dir.to_path_buf(),
                exe,
            });
        }
    }
    let targets = effective_targets(&raw);
    let name = if raw.buildpack.name.is_empty() {
        raw.buildpack.id.clone()
    } else {
        raw.buildpack.name
    };
    Ok(Loaded::Component(Buildpack {
        dir: dir.to_path_buf(),
        id: raw.buildpack.id,
        version: raw.buildpack.version,
        name,
        kind: Kind::Cnb { api: raw.api },
        clear_env: raw.buildpack.clear_env,
        targets,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(text: &str) -> Vec<BuildpackTarget> {
        let raw: RawDescriptor = toml::from_str(text).unwrap();
        effective_targets(&raw)
    }

    #[test]
    fn stacks_translate_to_targets() {
        let head = "api = \"0.10\"\n[buildpack]\nid = \"a/b\"\n";
        let t = targets(&format!(
            "{head}[[stacks]]\nid = \"io.buildpacks.stacks.bionic\"\n"
        ));
        assert_eq!(t[0].distros[0].version, "18.04");
        let t = targets(&format!("{head}[[stacks]]\nid = \"*\"\n"));
        assert_eq!(t[0].os, None);
        let t = targets(&format!("{head}[[stacks]]\nid = \"org.example.stack\"\n"));
        assert_eq!(t[0].os.as_deref(), Some("linux"));
        assert!(t[0].distros.is_empty());
    }
}
