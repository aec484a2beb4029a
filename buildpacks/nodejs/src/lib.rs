//! The `slugc/nodejs` buildpack (work in progress: detects nothing yet).

use libcnb::build::{BuildContext, BuildResult, BuildResultBuilder};
use libcnb::detect::{DetectContext, DetectResult, DetectResultBuilder};
use libcnb::generic::{GenericMetadata, GenericPlatform};
use libcnb::Buildpack;

/// The descriptor the engine writes when it materialises this buildpack.
pub const BUILDPACK_TOML: &str = include_str!("../buildpack.toml");

pub struct NodejsBuildpack;

#[derive(Debug, thiserror::Error)]
pub enum NodejsBuildpackError {}

impl Buildpack for NodejsBuildpack {
    type Platform = GenericPlatform;
    type Metadata = GenericMetadata;
    type Error = NodejsBuildpackError;

    fn detect(&self, _context: DetectContext<Self>) -> libcnb::Result<DetectResult, Self::Error> {
        DetectResultBuilder::fail().build()
    }

    fn build(&self, _context: BuildContext<Self>) -> libcnb::Result<BuildResult, Self::Error> {
        BuildResultBuilder::new().build()
    }
}
