//! `slugc/procfile`: a libcnb buildpack that turns the app's Procfile into launch processes,
//! so that an app with only a Procfile builds.

use crate::procfile::{Procfile, ProcfileError};
use libcnb::build::{BuildContext, BuildResult, BuildResultBuilder};
use libcnb::data::launch::{LaunchBuilder, ProcessBuilder};
use libcnb::detect::{DetectContext, DetectResult, DetectResultBuilder};
use libcnb::generic::{GenericMetadata, GenericPlatform};
use libcnb::Buildpack;

pub const BUILDPACK_TOML: &str = r#"api = "0.10"

[buildpack]
id = "slugc/procfile"
version = "0.1.0"
name = "Procfile"

[[targets]]
os = "linux"
"#;

pub struct ProcfileBuildpack;

#[derive(Debug, thiserror::Error)]
pub enum ProcfileBuildpackError {
    #[error(transparent)]
    Procfile(#[from] ProcfileError),
    #[error("invalid process type: {0}")]
    ProcessType(String),
}

impl Buildpack for ProcfileBuildpack {
    type Platform = GenericPlatform;
    type Metadata = GenericMetadata;
    type Error = ProcfileBuildpackError;

    fn detect(&self, context: DetectContext<Self>) -> libcnb::Result<DetectResult, Self::Error> {
        if context.app_dir.join("Procfile").is_file() {
            DetectResultBuilder::pass().build()
        } else {
            println!("no Procfile");
            DetectResultBuilder::fail().build()
        }
    }

    fn build(&self, context: BuildContext<Self>) -> libcnb::Result<BuildResult, Self::Error> {
        let procfile = Procfile::read(&context.app_dir)
            .map_err(|e| libcnb::Error::BuildpackError(e.into()))?
            .unwrap_or_default();
        let mut launch = LaunchBuilder::new();
        for (name, command) in &procfile.processes {
            let process_type = name.parse().map_err(|_| {
                libcnb::Error::BuildpackError(ProcfileBuildpackError::ProcessType(name.clone()))
            })?;
            println!("{name}: {}", slugc_fs::input::clip(command));
            // Run through bash as Heroku does, so `$PORT` and shell syntax work.
            launch.process(
                ProcessBuilder::new(process_type, ["bash", "-c", command.as_str()])
                    .default(name == "web")
                    .build(),
            );
        }
        BuildResultBuilder::new().launch(launch.build()).build()
    }
}
