//! Exports a directory as a slug, the way `slug build` ends: used by `bench/export.sh` to
//! time the export alone, and handy to look at what the exporter makes of a tree.
//!
//! ```text
//! cargo run --release --example export_tree -- SOURCE STORE [--threads N]
//!     [--part-cache DIR] [--max-size BYTES] [--layer DIR=./app/.layers/x/y]...
//! ```
//!
//! SOURCE becomes `./app` (its `.layers` left out, as the engine does); each `--layer` adds a
//! part. Prints one JSON line: path, sha256, size, parts, warnings, seconds.

use slug_format::{export, mtime_from_env, ExportOptions, Part, PartCache};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("export_tree: {e}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut opts = ExportOptions {
        mtime: mtime_from_env().map_err(|e| e.to_string())?,
        ..ExportOptions::default()
    };
    let mut layers = Vec::new();
    let mut part_cache = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--threads" => {
                opts.threads = value("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?
            }
            "--part-cache" => {
                part_cache = Some(PartCache::new(&PathBuf::from(value("--part-cache")?)))
            }
            "--max-size" => {
                opts.max_size = Some(
                    value("--max-size")?
                        .parse()
                        .map_err(|e| format!("--max-size: {e}"))?,
                )
            }
            "--layer" => {
                let spec = value("--layer")?;
                let (dir, prefix) = spec
                    .split_once('=')
                    .ok_or(format!("--layer {spec}: expected DIR=PREFIX"))?;
                layers.push(Part::new(dir, prefix));
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [source, store] = <[PathBuf; 2]>::try_from(positional)
        .map_err(|_| "usage: export_tree SOURCE STORE [options]".to_string())?;
    let mut app = Part::new(source, "./app");
    app.exclude.push(".layers".into());
    let mut parts = vec![app];
    parts.extend(layers);
    opts.part_cache = part_cache.as_ref();
    let started = std::time::Instant::now();
    let exported = export(&parts, &store, &opts).map_err(|e| e.to_string())?;
    let report = serde_json::json!({
        "path": exported.path,
        "sha256": exported.sha256,
        "size": exported.size,
        "parts": exported.parts,
        "warnings": exported.warnings,
        "seconds": started.elapsed().as_secs_f64(),
    });
    println!("{report}");
    Ok(())
}
