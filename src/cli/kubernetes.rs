//! `slug manifests`: Kubernetes YAML (a ConfigMap, a Deployment per process type, a Service
//! for web) for a slug's image, on stdout or in a file.

use crate::exit;
use crate::kubernetes::{self, ManifestsError, Options};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ManifestsArgs {
    /// The slug: `sha256-<hex>.tgz`, its `sha256-<hex>.json` manifest, or a sha256 prefix of a
    /// slug in the store
    pub slug: String,
    /// The store to look prefixes up in [default: $XDG_DATA_HOME/slugc/slugs]
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// The image the Deployments run (as pushed from `slug image`), e.g. `registry.example/myapp:1.0`
    #[arg(long)]
    pub image: String,
    /// Replicas per process type, e.g. `web=3,worker=2` (default: 1 each)
    #[arg(long, value_delimiter = ',', value_name = "TYPE=N")]
    pub scale: Vec<String>,
    /// The app's name, prefix of every object's name (default: the image's name)
    #[arg(long)]
    pub name: Option<String>,
    /// A config var for the ConfigMap (repeatable); wins over `--env-file`
    #[arg(long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A `.env` file of config vars for the ConfigMap (repeatable)
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// The `PORT` the web process listens on and the Service serves
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    /// Write the YAML to this file instead of stdout
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The release manifest, when it is not beside the slug
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    #[command(flatten)]
    pub limits: super::LimitArgs,
}

pub fn manifests(args: ManifestsArgs) -> Result<i32, ManifestsError> {
    let yaml = kubernetes::objects(&Options {
        slug: args.slug,
        store: args.store,
        image: args.image,
        scale: args.scale,
        name: args.name,
        env: args.env,
        env_file: args.env_file,
        port: args.port,
        manifest: args.manifest,
        limits: args.limits.to_override(),
    })?
    .to_yaml();
    match &args.output {
        Some(path) => std::fs::write(path, yaml).map_err(|source| ManifestsError::Write {
            path: path.clone(),
            source,
        })?,
        None => print!("{yaml}"),
    }
    Ok(exit::BUILT)
}
