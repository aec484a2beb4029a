//! `project.toml`, the CNB project descriptor (schema 0.2,
//! <https://github.com/buildpacks/spec/blob/main/extensions/project-descriptor.md>): the parts
//! a platform that builds on the host can honour. `[io.buildpacks] include`/`exclude` shape the
//! snapshot (gitignore patterns, applied before the build), `[[io.buildpacks.group]]` names the
//! buildpacks (a built-in id, or a path relative to the app), `[[io.buildpacks.build.env]]`
//! sets build-time config vars. `slug build --buildpack` replaces the group and `--env`,
//! `--env-file` win over `build.env`. Not honoured: `builder` (there is no builder image),
//! `pre`/`post` groups, inline `script` buildpacks and registry or image URIs (refused).

use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const FILE: &str = "project.toml";
const SCHEMA: &str = "0.2";

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: [io.buildpacks] has both include and exclude; the project descriptor allows one of them")]
    IncludeAndExclude { path: PathBuf },
    #[error("{path}: [[io.buildpacks.build.env]] name {name:?} is not a valid environment variable name")]
    BadEnvName { path: PathBuf, name: String },
    #[error("{path}: [[io.buildpacks.group]] {what}")]
    BadGroupEntry { path: PathBuf, what: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Raw {
    #[serde(rename = "_")]
    project: Option<RawProject>,
    io: Option<RawIo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawProject {
    schema_version: Option<String>,
}

#[derive(Deserialize)]
struct RawIo {
    buildpacks: Option<RawBuildpacks>,
}

#[derive(Deserialize)]
struct RawBuildpacks {
    #[serde(default)]
    include: Option<Vec<String>>,
    #[serde(default)]
    exclude: Option<Vec<String>>,
    #[serde(default)]
    group: Vec<RawGroupEntry>,
    #[serde(default)]
    build: Option<RawBuild>,
}

#[derive(Deserialize)]
struct RawGroupEntry {
    id: Option<String>,
    version: Option<String>,
    uri: Option<String>,
    script: Option<toml::Value>,
}

#[derive(Deserialize)]
struct RawBuild {
    #[serde(default)]
    env: Vec<RawEnv>,
}

#[derive(Deserialize)]
struct RawEnv {
    name: String,
    value: String,
}

/// A buildpack of the project's group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    /// By id (a built-in), with the version asked for.
    Id { id: String, version: Option<String> },
    /// A buildpack dir, absolute.
    Dir(PathBuf),
}

/// What the build takes from `project.toml`.
#[derive(Debug, Clone, Default)]
pub struct Project {
    pub path: PathBuf,
    /// Gitignore patterns: only what they match is built (empty: everything).
    pub include: Vec<String>,
    /// Gitignore patterns: what they match is left out of the build.
    pub exclude: Vec<String>,
    pub group: Vec<GroupRef>,
    pub env: Vec<(String, String)>,
}

fn valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Read `<app>/project.toml`: `None` without one. A file of another schema version is
/// ignored with a warning (`warn`), as the keys mean other things there.
pub fn read(app_dir: &Path, warn: &mut dyn FnMut(String)) -> Result<Option<Project>, ProjectError> {
    let path = app_dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ProjectError::Read { path, source }),
    };
    let raw: Raw = toml::from_str(&text).map_err(|e| ProjectError::Parse {
        path: path.clone(),
        message: e.message().to_string(),
    })?;
    let schema = raw.project.and_then(|p| p.schema_version);
    if schema.as_deref() != Some(SCHEMA) {
        warn(format!(
            "{}: schema-version {} is not supported (only {SCHEMA} is); the file is ignored",
            path.display(),
            schema.as_deref().unwrap_or("(none, i.e. 0.1)")
        ));
        return Ok(None);
    }
    let Some(bp) = raw.io.and_then(|io| io.buildpacks) else {
        return Ok(Some(Project {
            path,
            ..Project::default()
        }));
    };
    if bp.include.is_some() && bp.exclude.is_some() {
        return Err(ProjectError::IncludeAndExclude { path });
    }
    let mut group = Vec::new();
    for entry in bp.group {
        let bad = |what: String| ProjectError::BadGroupEntry {
            path: path.clone(),
            what,
        };
        if entry.script.is_some() {
            return Err(bad(
                "inline script buildpacks are not supported; give a buildpack dir as uri".into(),
            ));
        }
        match (entry.id, entry.uri) {
            (_, Some(uri)) => {
                let local = uri.strip_prefix("file://").unwrap_or(&uri);
                if local.contains("://") || local.starts_with("urn:") {
                    return Err(bad(format!(
                        "uri {uri:?}: only local buildpack dirs can be used (no registry or image)"
                    )));
                }
                group.push(GroupRef::Dir(app_dir.join(local)));
            }
            (Some(id), None) => group.push(GroupRef::Id {
                id,
                version: entry.version,
            }),
            (None, None) => return Err(bad("has neither id nor uri".into())),
        }
    }
    let mut env = Vec::new();
    for e in bp.build.map(|b| b.env).unwrap_or_default() {
        if !valid_env_name(&e.name) {
            return Err(ProjectError::BadEnvName { path, name: e.name });
        }
        env.push((e.name, e.value));
    }
    Ok(Some(Project {
        include: bp.include.unwrap_or_default(),
        exclude: bp.exclude.unwrap_or_default(),
        path,
        group,
        env,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_schema_0_2_and_ignores_others() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join(FILE),
            "[_]\nschema-version = \"0.2\"\n[io.buildpacks]\nexclude = [\"a/\"]\n\
             [[io.buildpacks.group]]\nid = \"slugc/procfile\"\n\
             [[io.buildpacks.group]]\nuri = \"file://bp\"\n\
             [[io.buildpacks.build.env]]\nname = \"X\"\nvalue = \"1\"\n",
        )
        .unwrap();
        let p = read(tmp.path(), &mut |_| {}).unwrap().unwrap();
        assert_eq!(p.exclude, ["a/"]);
        assert_eq!(p.group[1], GroupRef::Dir(tmp.path().join("bp")));
        assert_eq!(p.env, [("X".to_string(), "1".to_string())]);

        std::fs::write(tmp.path().join(FILE), "[[build.env]]\nname = \"X\"\n").unwrap();
        let mut warned = Vec::new();
        assert!(read(tmp.path(), &mut |w| warned.push(w)).unwrap().is_none());
        assert_eq!(warned.len(), 1);
    }
}
