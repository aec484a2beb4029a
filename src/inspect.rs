//! `slug inspect`: a slug's manifest, each layer's size, and its largest paths — the first
//! thing to look at when a slug is bigger than expected.

use crate::exit::{self, ExitCode};
use slug_format::reader::{self, EntryKind, ReadError};
use slug_format::Release;
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
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Read(#[from] ReadError),
}

impl ExitCode for InspectError {
    fn exit_code(&self) -> i32 {
        let InspectError::Read(e) = self;
        if e.is_not_found() {
            exit::USAGE
        } else if e.is_bad_slug() {
            exit::INVALID_INPUT
        } else {
            exit::OTHER
        }
    }
}

#[derive(Debug, serde::Serialize)]
struct LayerUsage {
    path: String,
    files: u64,
    bytes: u64,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    slug: PathBuf,
    manifest: Option<Release>,
    layers: Vec<LayerUsage>,
    largest: Vec<(String, u64)>,
}

fn scan(slug: &reader::Slug, top: usize) -> Result<Report, InspectError> {
    // Layer prefixes from the manifest, longest first so nested paths match the right part.
    let mut layers: Vec<LayerUsage> = match &slug.release {
        Some(m) => m
            .layers
            .iter()
            .map(|l| LayerUsage {
                path: l.path.clone(),
                files: 0,
                bytes: 0,
            })
            .collect(),
        None => vec![LayerUsage {
            path: "app".into(),
            files: 0,
            bytes: 0,
        }],
    };
    let mut largest: Vec<(String, u64)> = Vec::new();
    slug.read_entries(|entry| {
        let EntryKind::File { size, .. } = entry.kind else {
            return Ok(());
        };
        let name = entry.path.to_string_lossy().into_owned();
        if let Some(layer) = layers
            .iter_mut()
            .filter(|l| name == l.path || name.starts_with(&format!("{}/", l.path)))
            .max_by_key(|l| l.path.len())
        {
            layer.files += 1;
            layer.bytes += size;
        }
        largest.push((name, size));
        if largest.len() > top * 4 + 64 {
            largest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            largest.truncate(top);
        }
        Ok(())
    })?;
    largest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    largest.truncate(top);
    Ok(Report {
        slug: slug.path.clone(),
        manifest: slug.release.clone(),
        layers,
        largest,
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn inspect(args: InspectArgs) -> Result<i32, InspectError> {
    let store = args.store.clone().unwrap_or_else(crate::dirs::store);
    let slug = reader::open(&args.slug, &store, None)?;
    let report = scan(&slug, args.top)?;
    let manifest: Option<&Release> = slug.release.as_ref();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(exit::BUILT);
    }
    println!("Slug: {}", slug.path.display());
    match manifest {
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
