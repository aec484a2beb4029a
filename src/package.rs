//! `slug buildpacks package`: the built-in buildpacks as CNB buildpack dirs for `pack`
//! (issue 6).
//!
//! Each dir is what the engine itself runs (`crate::buildpacks::materialise`): a
//! `buildpack.toml`, `bin/build` (a copy of this `slug` binary, so the dir is self-contained)
//! and `bin/detect` → `build`. Beside them: a `package.toml` in each dir for
//! `pack buildpack package`, and a `builder.toml` example whose order is the engine's default
//! order, for `pack builder create`.

use crate::buildpacks::{self, BinMode, MaterialiseError};
use crate::exit::{self, ExitCode};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct PackageArgs {
    /// Write the buildpack dirs (one per buildpack, named after its id) into this dir
    #[arg(long, visible_alias = "out", value_name = "DIR")]
    pub output: PathBuf,
    /// Only these buildpacks (default: all built-ins), e.g. `slugc/python`
    pub ids: Vec<String>,
}

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

pub fn package(args: PackageArgs) -> Result<i32, PackageError> {
    let known = || {
        buildpacks::BUILTINS
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for id in &args.ids {
        if buildpacks::find(id).is_none() {
            return Err(PackageError::Unknown {
                id: id.clone(),
                known: known(),
            });
        }
    }
    let chosen: Vec<&buildpacks::Builtin> = buildpacks::BUILTINS
        .iter()
        .filter(|b| args.ids.is_empty() || args.ids.iter().any(|id| id == b.id))
        .collect();

    let mut versions = Vec::new();
    for builtin in &chosen {
        let descriptor: Descriptor =
            toml::from_str(builtin.descriptor).map_err(|source| PackageError::Descriptor {
                id: builtin.id.to_string(),
                source,
            })?;
        let dir = args.output.join(dir_name(builtin.id));
        buildpacks::materialise(builtin.id, &dir, BinMode::Copy)?;
        let package_toml = PackageToml {
            buildpack: Uri { uri: ".".into() },
        };
        write(&dir.join("package.toml"), &to_toml(&package_toml))?;
        println!(
            "{} {} -> {}",
            descriptor.buildpack.id,
            descriptor.buildpack.version,
            dir.display()
        );
        versions.push((descriptor.buildpack.id, descriptor.buildpack.version));
    }

    let version_of = |id: &str| {
        versions
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, v)| v.clone())
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
        buildpacks: versions
            .iter()
            .map(|(id, version)| BuilderBuildpack {
                id: id.clone(),
                version: version.clone(),
                uri: format!("./{}", dir_name(id)),
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
    let builder_path = args.output.join("builder.toml");
    write(
        &builder_path,
        &format!("{BUILDER_HEADER}\n{}", to_toml(&builder)),
    )?;
    println!("builder example -> {}", builder_path.display());
    Ok(exit::BUILT)
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
