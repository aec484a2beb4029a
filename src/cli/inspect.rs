//! `slug inspect`: a slug's manifest, each layer's size, and its largest paths.

use crate::exit;
use crate::inspect::{self, InspectError};
use slug_format::reader;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A slug file, its manifest, or a sha256 prefix of a slug in the store
    pub slug: String,
    /// The store to look prefixes up in [default: $XDG_DATA_HOME/slugc/slugs]
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// How many of the largest paths to list
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limits: super::LimitArgs,
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn inspect(args: InspectArgs) -> Result<i32, InspectError> {
    let store = args.store.clone().unwrap_or_else(crate::dirs::store);
    let mut slug = reader::open(&args.slug, &store, None)?;
    slug.limits = slug.limits.overridden(args.limits.to_override());
    let report = inspect::scan(&slug, args.top)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(exit::BUILT);
    }
    println!("Slug: {}", slug.path.display());
    match &report.manifest {
        Some(m) => {
            println!("Checksum: {}", m.checksum);
            println!("Size: {} ({} bytes)", mib(m.size), m.size);
            println!("Stack: {}", m.stack.name);
            let bps: Vec<String> = m
                .buildpacks
                .iter()
                .map(|b| format!("{} {}", b.id, b.version))
                .collect();
            println!("Buildpacks: {}", bps.join(", "));
            println!("Process types:");
            for (name, command) in &m.process_types {
                println!("  {name}: {command}");
            }
        }
        None => println!(
            "Manifest: none beside the slug ({})",
            slug.path.with_extension("json").display()
        ),
    }
    println!("Layers (uncompressed file bytes):");
    for l in &report.layers {
        println!("  {:<50} {:>12} {:>8} files", l.path, mib(l.bytes), l.files);
    }
    println!("Largest paths:");
    for (path, size) in &report.largest {
        println!("  {:>12}  {path}", mib(*size));
    }
    Ok(exit::BUILT)
}
