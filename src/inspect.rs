//! `slug inspect`: a slug's manifest, layer sizes and largest paths.

use crate::exit::{self, ExitCode};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    pub slug: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("not implemented yet")]
    NotImplemented,
}

impl ExitCode for InspectError {
    fn exit_code(&self) -> i32 {
        exit::OTHER
    }
}

pub fn inspect(_args: InspectArgs) -> Result<i32, InspectError> {
    Err(InspectError::NotImplemented)
}
