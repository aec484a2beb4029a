//! `slug inspect`: a slug's manifest, each layer's size, and its largest paths — the first
//! thing to look at when a slug is bigger than expected.

use crate::exit::{self, ExitCode};
use crate::slug::manifest::{ManifestError, Release};
use crate::slug::store::{self, StoreError};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A slug file, or a sha256 prefix of a slug in the store
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
    Store(#[from] StoreError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot read slug {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ExitCode for InspectError {
    fn exit_code(&self) -> i32 {
        match self {
            InspectError::Read { .. } | InspectError::Manifest(_) => exit::INVALID_INPUT,
            InspectError::Store(_) => exit::USAGE,
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

fn locate(args: &InspectArgs) -> Result<PathBuf, InspectError> {
    let given = Path::new(&args.slug);
    if given.is_file() {
        return Ok(given.to_path_buf());
    }
    let store_dir = args
        .store
        .clone()
        .unwrap_or_else(crate::build::default_store_dir);
    Ok(store::resolve(&store_dir, &args.slug)?)
}

fn scan(path: &Path, manifest: Option<&Release>, top: usize) -> Result<Report, InspectError> {
    let read_err = |source| InspectError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
    let mut archive = tar::Archive::new(gz);
    // Layer prefixes from the manifest, longest first so nested paths match the right part.
    let mut layers: Vec<LayerUsage> = manifest
        .map(|m| {
            m.layers
                .iter()
                .map(|l| LayerUsage {
                    path: l.path.clone(),
                    files: 0,
                    bytes: 0,
                })
                .collect()
        })
        .unwrap_or_else(|| {
            vec![LayerUsage {
                path: "app".into(),
                files: 0,
                bytes: 0,
            }]
        });
    let mut largest: Vec<(String, u64)> = Vec::new();
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let size = entry.header().size().unwrap_or(0);
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().trim_start_matches("./").to_string())
            .map_err(read_err)?;
        // Drain the entry so a corrupt slug is noticed here, not silently skipped.
        std::io::copy(&mut entry.by_ref().take(size), &mut std::io::sink()).map_err(read_err)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
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
    }
    largest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    largest.truncate(top);
    Ok(Report {
        slug: path.to_path_buf(),
        manifest: manifest.cloned(),
        layers,
        largest,
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn inspect(args: InspectArgs) -> Result<i32, InspectError> {
    let slug = locate(&args)?;
    let manifest_path = slug.with_extension("json");
    let manifest = if manifest_path.is_file() {
        Some(Release::read(&manifest_path)?)
    } else {
        None
    };
    let report = scan(&slug, manifest.as_ref(), args.top)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(exit::BUILT);
    }
    println!("Slug: {}", slug.display());
    match &manifest {
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
            manifest_path.display()
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
