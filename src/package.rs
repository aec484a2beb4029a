//! `slug buildpacks package`: CNB dirs for `pack` (issue 6). Owned by the image work.

use crate::exit::{self, ExitCode};

#[derive(Debug, clap::Args)]
pub struct PackageArgs {
    pub slug: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("not implemented yet")]
    NotImplemented,
}

impl ExitCode for PackageError {
    fn exit_code(&self) -> i32 {
        exit::OTHER
    }
}

pub fn package(_args: PackageArgs) -> Result<i32, PackageError> {
    Err(PackageError::NotImplemented)
}
