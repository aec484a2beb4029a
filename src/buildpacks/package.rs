//! The built-in buildpacks as CNB buildpack dirs for `pack`.
//!
//! Each dir is what the engine itself runs (`crate::buildpacks::materialise`): a
//! `buildpack.toml`, `bin/build` (a copy of this `slug` binary, so the dir is self-contained)
//! and `bin/detect` → `build`. Beside them: a `package.toml` in each dir for
//! `pack buildpack package`, and a `builder.toml` example whose order is the engine's default
//! order, for `pack builder create`.

use crate::buildpacks::{self, BinMode, Builtin, MaterialiseError};
use crate::exit::{self, ExitCode};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("unknown buildpack {id:?}; the built-ins are: {known}")]
    Unknown { id: String, known: String },
    #[error(transparent)]
    Materialise(#[from] MaterialiseError),
    #[error("built-in buildpack {id}: invalid buildpack.toml: {source}")]
    Descriptor { id: String, source: toml::de::Error },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ExitCode for PackageError {
    fn exit_code(&self) -> i32 {
        match self {
            PackageError::Unknown { .. } => exit::USAGE,
            _ => exit::OTHER,
        }
    }
}

#[derive(Deserialize)]
struct Descriptor {
    buildpack: DescriptorBuildpack,
}

#[derive(Deserialize)]
struct DescriptorBuildpack {
    id: String,
    version: String,
}

/// `package.toml` for `pack buildpack package --config`.
#[derive(Serialize)]
struct PackageToml {
    buildpack: Uri,
}

#[derive(Serialize)]
struct Uri {
    uri: String,
}

/// `builder.toml` for `pack builder create --config`.
#[derive(Serialize)]
struct BuilderToml {
    description: String,
    buildpacks: Vec<BuilderBuildpack>,
    order: Vec<Group>,
    build: Image,
    run: Run,
}

#[derive(Serialize)]
struct BuilderBuildpack {
    id: String,
    version: String,
    uri: String,
}

#[derive(Serialize)]
struct Group {
    group: Vec<GroupEntry>,
}

#[derive(Serialize)]
struct GroupEntry {
    id: String,
    version: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    optional: bool,
}

#[derive(Serialize)]
struct Image {
    image: String,
}

#[derive(Serialize)]
struct Run {
    images: Vec<Image>,
}

const BUILDER_HEADER: &str = "\
# An example builder with slugc's buildpacks, written by `slug buildpacks package`:
#   pack builder create slugc-builder --config builder.toml
#   pack build myapp --builder slugc-builder
# The build and run images must be CNB stack images whose glibc is at least the one the
# `slug` binary was built against; replace them with your organisation's images.
";

/// The dir name for a buildpack id: `slugc/python` → `slugc_python`, as CNB names layers dirs.
pub fn dir_name(id: &str) -> String {
    id.replace('/', "_")
}

/// The built-ins named by `ids` (all of them when empty), in registry order.
pub fn select(ids: &[String]) -> Result<Vec<&'static Builtin>, PackageError> {
    let known = || {
        buildpacks::BUILTINS
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for id in ids {
        if buildpacks::find(id).is_none() {
            return Err(PackageError::Unknown {
                id: id.clone(),
                known: known(),
            });
        }
    }
    Ok(buildpacks::BUILTINS
        .iter()
        .filter(|b| ids.is_empty() || ids.iter().any(|id| id == b.id))
        .collect())
}

/// A buildpack dir written.
#[derive(Debug, Clone)]
pub struct Packaged {
    pub id: String,
    pub version: String,
    pub dir: PathBuf,
}

/// Write the buildpack dir of `builtin` into `output`, with its `package.toml`.
pub fn write_buildpack(builtin: &Builtin, output: &Path) -> Result<Packaged, PackageError> {
    let descriptor: Descriptor =
        toml::from_str(builtin.descriptor).map_err(|source| PackageError::Descriptor {
            id: builtin.id.to_string(),
            source,
        })?;
    let dir = output.join(dir_name(builtin.id));
    buildpacks::materialise(builtin.id, &dir, BinMode::Copy)?;
    let package_toml = PackageToml {
        buildpack: Uri { uri: ".".into() },
    };
    write(&dir.join("package.toml"), &to_toml(&package_toml))?;
    Ok(Packaged {
        id: descriptor.buildpack.id,
        version: descriptor.buildpack.version,
        dir,
    })
}

/// Write `<output>/builder.toml`, an example builder of the `packaged` buildpacks; returns
/// its path.
pub fn write_builder(output: &Path, packaged: &[Packaged]) -> Result<PathBuf, PackageError> {
    let version_of = |id: &str| {
        packaged
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.version.clone())
    };
    // The engine's default order, less the groups that need a buildpack left out.
    let order = buildpacks::DEFAULT_ORDER
        .iter()
        .filter_map(|group| {
            let entries = group
                .iter()
                .map(|(id, optional)| {
                    version_of(id).map(|version| GroupEntry {
                        id: id.to_string(),
                        version,
                        optional: *optional,
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Group { group: entries })
        })
        .collect();
    let builder = BuilderToml {
        description: "slugc's built-in buildpacks".into(),
        buildpacks: packaged
            .iter()
            .map(|p| BuilderBuildpack {
                id: p.id.clone(),
                version: p.version.clone(),
                uri: format!("./{}", dir_name(&p.id)),
            })
            .collect(),
        order,
        build: Image {
            image: "docker.io/heroku/heroku:24-build".into(),
        },
        run: Run {
            images: vec![Image {
                image: "docker.io/heroku/heroku:24".into(),
            }],
        },
    };
    let builder_path = output.join("builder.toml");
    write(
        &builder_path,
        &format!("{BUILDER_HEADER}\n{}", to_toml(&builder)),
    )?;
    Ok(builder_path)
}

fn to_toml<T: Serialize>(value: &T) -> String {
    // Plain structs of strings, bools and arrays always serialise.
    toml::to_string(value).unwrap_or_default()
}

fn write(path: &Path, text: &str) -> Result<(), PackageError> {
    std::fs::write(path, text).map_err(|source| PackageError::Write {
        path: path.to_path_buf(),
        source,
    })
}
