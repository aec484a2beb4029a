//! `slug buildpacks package`: the built-in buildpacks as CNB dirs for `pack build
//! --buildpack`, with an example `builder.toml`.

use crate::buildpacks::package::{self, PackageError};
use crate::exit;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct PackageArgs {
    /// Write the buildpack dirs (one per buildpack, named after its id) into this dir
    #[arg(long, visible_alias = "out", value_name = "DIR")]
    pub output: PathBuf,
    /// Only these buildpacks (default: all built-ins), e.g. `slugc/python`
    pub ids: Vec<String>,
}

pub fn package(args: PackageArgs) -> Result<i32, PackageError> {
    let mut packaged = Vec::new();
    for builtin in package::select(&args.ids)? {
        let p = package::write_buildpack(builtin, &args.output)?;
        println!("{} {} -> {}", p.id, p.version, p.dir.display());
        packaged.push(p);
    }
    let builder = package::write_builder(&args.output, &packaged)?;
    println!("builder example -> {}", builder.display());
    Ok(exit::BUILT)
}
