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
use std::path::PathBuf;

fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if crate::config_vars::valid_key(k) => Ok((k.to_string(), v.to_string())),
        Some((k, _)) => Err(format!("{k:?} is not a valid environment variable name")),
        None => Err(format!("expected KEY=VALUE, got {s:?} (no '=')")),
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
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,
    /// A dotenv file of config vars for the build
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
}

impl AppArgs {
    pub fn inputs(self) -> Inputs {
        Inputs {
            app_dir: self.app_dir,
            buildpacks: self.buildpacks,
            env: self.env,
            env_files: self.env_file,
        }
    }
}
