//! The `slug` subcommands, one file each: its arguments (clap) and the function that calls
//! the library and prints what comes back. `main` only parses and maps errors to exit codes.

pub mod build;
pub mod buildpacks;
pub mod cache;
pub mod detect;
pub mod image;
pub mod inspect;
pub mod kubernetes;
pub mod precompress;
pub mod run;

use crate::pipeline::Inputs;
use slug_format::reader::LimitOverride;
use std::path::PathBuf;

/// The unpack limits of the commands that read slugs (`run`, `exec`, `inspect`, `image`,
/// `manifests`): all read through the same checks, so all take the same flags.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct LimitArgs {
    /// Refuse a slug whose files add up to more than this many MiB
    /// [default: the manifest's layer sizes plus a quarter, else 4096]
    #[arg(long, value_name = "MiB")]
    pub max_unpacked: Option<u64>,
    /// Refuse a slug of more entries than this
    /// [default: from the manifest's layer sizes, else 1000000]
    #[arg(long, value_name = "N")]
    pub max_unpacked_entries: Option<u64>,
}

impl LimitArgs {
    pub fn to_override(self) -> LimitOverride {
        LimitOverride {
            max_bytes: self
                .max_unpacked
                .map(|m| m.saturating_mul(crate::size::MIB)),
            max_entries: self.max_unpacked_entries,
        }
    }
}

pub use crate::config_vars::EnvArgError;

fn parse_env_pair(index: usize, s: &str) -> Result<(String, String), EnvArgError> {
    match s.split_once('=') {
        Some((k, v)) if crate::config_vars::valid_build_key(k) => {
            Ok((k.to_string(), v.to_string()))
        }
        Some((k, _)) => Err(EnvArgError::BadKey { key: k.to_string() }),
        None => Err(EnvArgError::NoEquals { index }),
    }
}

/// The app and what to build it with: `slug build` and `slug detect` take the same.
#[derive(Debug, Clone, clap::Args)]
pub struct AppArgs {
    /// The app's source dir
    #[arg(default_value = ".")]
    pub app_dir: PathBuf,
    /// A buildpack to use instead of detecting from the built-in ones (repeatable, in order):
    /// a built-in id (slugc/python, slugc/nodejs, slugc/procfile), a CNB buildpack dir, or a
    /// classic Heroku buildpack dir
    #[arg(long = "buildpack", short = 'b', value_name = "ID|DIR")]
    pub buildpacks: Vec<String>,
    /// A config var for the build (repeatable); reaches buildpacks as platform env, never the slug
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A dotenv file of config vars for the build
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
}

impl AppArgs {
    pub fn inputs(self) -> Result<Inputs, EnvArgError> {
        let env = self
            .env
            .iter()
            .enumerate()
            .map(|(i, pair)| parse_env_pair(i + 1, pair))
            .collect::<Result<_, _>>()?;
        Ok(Inputs {
            app_dir: self.app_dir,
            buildpacks: self.buildpacks,
            env,
            env_files: self.env_file,
        })
    }
}
