//! Kubernetes manifests: `slug manifests` (issue 6). Owned by the image work.

use crate::exit::{self, ExitCode};

#[derive(Debug, clap::Args)]
pub struct ManifestsArgs {
    pub slug: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestsError {
    #[error("not implemented yet")]
    NotImplemented,
}

impl ExitCode for ManifestsError {
    fn exit_code(&self) -> i32 {
        exit::OTHER
    }
}

pub fn manifests(_args: ManifestsArgs) -> Result<i32, ManifestsError> {
    Err(ManifestsError::NotImplemented)
}
