//! `slug image`: an OCI image of a slug over a base image, as a layout dir and/or an archive.

use crate::exit;
use crate::image::{self, ImageError, Options};
use slug_format::reader;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("dest").required(true).multiple(true).args(["output", "archive"])))]
pub struct ImageArgs {
    /// The slug: `sha256-<hex>.tgz`, its `sha256-<hex>.json` manifest, or a sha256 prefix of a
    /// slug in the store
    pub slug: String,
    /// The store to look prefixes up in [default: $XDG_DATA_HOME/slugc/slugs]
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// The base image: an OCI image layout dir, `DIR` or `DIR:REF`
    /// (get one with `skopeo copy docker://debian:bookworm oci:DIR:bookworm`)
    #[arg(long, value_name = "DIR[:REF]")]
    pub base: String,
    /// The image's name and tag, e.g. `myapp:1.0`
    #[arg(long, default_value = "slug:latest")]
    pub tag: String,
    /// Write (or add to) this OCI image layout dir
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Write a tar archive for `podman load` / `docker load` (also an OCI layout inside)
    #[arg(long, value_name = "FILE")]
    pub archive: Option<PathBuf>,
    /// Run as this user instead of the base image's `User`
    #[arg(long)]
    pub user: Option<String>,
    /// The `PORT` the web process listens on (set in `Env`, exposed)
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    /// The release manifest, when it is not beside the slug
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    #[command(flatten)]
    pub limits: super::LimitArgs,
}

pub fn image(args: ImageArgs) -> Result<i32, ImageError> {
    let (repo, tag) = image::split_tag(&args.tag)?;
    let store = args.store.clone().unwrap_or_else(crate::dirs::store);
    let mut slug = reader::open(&args.slug, &store, args.manifest.as_deref())?;
    slug.limits = slug.limits.overridden(args.limits.to_override());
    let image = image::assemble(
        &slug,
        &Options {
            base: &args.base,
            repo,
            tag,
            user: args.user.as_deref(),
            port: args.port,
        },
    )?;
    for warning in &image.warnings {
        eprintln!("warning: {warning}");
    }
    println!("image {} {repo}:{tag}", image.digest);
    println!(
        "  layers: {} from the base, slug sha256:{}, launcher",
        image.base_layers, image.slug_sha256
    );
    match &image.user {
        Some(u) => println!("  user: {u}"),
        None => println!("  user: root (the base sets no User; pass --user to change it)"),
    }
    if let Some(out) = &args.output {
        image.write_layout(out)?;
        println!("  layout: {} (ref {tag})", out.display());
    }
    if let Some(archive) = &args.archive {
        image.write_archive(archive)?;
        println!("  archive: {}", archive.display());
    }
    Ok(exit::BUILT)
}
