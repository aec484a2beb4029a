//! `slug build`: the app through the pipeline to a slug in the store; the log on stderr, the
//! release manifest on stdout with `--json`.

use super::AppArgs;
use crate::exit;
use crate::pipeline::{self, BuildError, Options};
use crate::platform::process;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// The cache dir [default: $XDG_CACHE_HOME/slugc/<app>-<hash>]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Build without reading or writing a cache (the app's and the machine-wide one)
    #[arg(long)]
    pub no_cache: bool,
    /// The machine-wide content cache, shared by every app's builds
    /// [default: $SLUGC_CONTENT_CACHE, else $XDG_CACHE_HOME/slugc/content]
    #[arg(long, value_name = "DIR")]
    pub content_cache: Option<PathBuf>,
    /// Where slugs and manifests are stored [default: $XDG_DATA_HOME/slugc/slugs]
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Refuse a slug larger than this many MiB
    #[arg(long, value_name = "MiB", default_value_t = pipeline::DEFAULT_MAX_SIZE_MIB)]
    pub max_size: u64,
    /// Warn when the slug is larger than this many MiB
    #[arg(long, value_name = "MiB", default_value_t = pipeline::DEFAULT_WARN_SIZE_MIB)]
    pub warn_size: u64,
    /// Print the release manifest (JSON) on stdout; the log stays on stderr
    #[arg(long)]
    pub json: bool,
    /// Stop the build, every buildpack process with it, when it takes longer than this
    /// (`90s`, `15m`, `1h`; Heroku stops builds at 15m) and exit 20 [default: none]
    #[arg(long, value_name = "DURATION", value_parser = process::parse_duration)]
    pub timeout: Option<Duration>,
}

pub fn build(args: BuildArgs) -> Result<i32, BuildError> {
    // First, before any thread: SIGINT/SIGTERM/SIGHUP and the timeout stop the whole tree.
    process::stop_on(args.timeout).map_err(BuildError::Signals)?;
    let opts = Options {
        inputs: args.app.inputs()?,
        cache_dir: args.cache_dir,
        no_cache: args.no_cache,
        content_cache: args.content_cache,
        store: args.output,
        max_size_mib: args.max_size,
        warn_size_mib: args.warn_size,
    };
    let outcome = pipeline::build(&opts)?;
    if args.json {
        crate::log::stdout(outcome.release.to_json().as_bytes());
    }
    Ok(exit::BUILT)
}
