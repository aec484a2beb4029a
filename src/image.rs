//! OCI export: `slug image` (issue 6). Owned by the image work.

use crate::exit::{self, ExitCode};

#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    pub slug: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("not implemented yet")]
    NotImplemented,
}

impl ExitCode for ImageError {
    fn exit_code(&self) -> i32 {
        exit::OTHER
    }
}

pub fn image(_args: ImageArgs) -> Result<i32, ImageError> {
    Err(ImageError::NotImplemented)
}
