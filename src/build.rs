//! `slug build`, `slug detect`, `slug cache clear`: one build from source tree to slug.

use crate::exit::{self, ExitCode};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The app's source dir
    #[arg(default_value = ".")]
    pub app_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    #[arg(default_value = ".")]
    pub app_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct CacheClearArgs {
    #[arg(default_value = ".")]
    pub app_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("not implemented yet")]
    NotImplemented,
}

impl ExitCode for BuildError {
    fn exit_code(&self) -> i32 {
        exit::OTHER
    }
}

pub fn build_command(_args: BuildArgs) -> Result<i32, BuildError> {
    Err(BuildError::NotImplemented)
}

pub fn detect_command(_args: DetectArgs) -> Result<i32, BuildError> {
    Err(BuildError::NotImplemented)
}

pub fn cache_clear(_args: CacheClearArgs) -> Result<i32, BuildError> {
    Err(BuildError::NotImplemented)
}
