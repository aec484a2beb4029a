//! The dyno runner: `slug run`, `slug exec`, `slug test` (issue 5). Owned by the runner work.

use crate::exit::{self, ExitCode};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A slug file, or a sha256 prefix of a slug in the store.
    pub slug: String,
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    pub slug: String,
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    pub app_dir: std::path::PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("not implemented yet")]
    NotImplemented,
}

impl ExitCode for RunError {
    fn exit_code(&self) -> i32 {
        exit::OTHER
    }
}

pub fn run(_args: RunArgs) -> Result<i32, RunError> {
    Err(RunError::NotImplemented)
}

pub fn exec(_args: ExecArgs) -> Result<i32, RunError> {
    Err(RunError::NotImplemented)
}

pub fn test(_args: TestArgs) -> Result<i32, RunError> {
    Err(RunError::NotImplemented)
}
