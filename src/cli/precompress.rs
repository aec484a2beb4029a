//! `slug precompress-layer` (hidden): run by a built-in buildpack during `slug build` on a
//! launch layer it has finished, to compress that layer's part ahead of the export.

use crate::export;
use slug_format::ExportError;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct PrecompressArgs {
    /// A complete launch layer: `<build root>/.layers/<buildpack>/<layer>`
    pub layer_dir: PathBuf,
}

pub fn precompress_layer(args: PrecompressArgs) -> Result<i32, ExportError> {
    export::precompress_layer(&args.layer_dir)?;
    Ok(0)
}
