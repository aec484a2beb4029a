//! The export step of a build: what goes into each part of the slug, then
//! [`slug_format::export()`] writes it. Also compressing one layer's part ahead of the export
//! (`slug precompress-layer`, `slug_format::precompress`).
//!
//! Parts: the build root as `./app` (its `.layers` reduced to the `.layers/<buildpack>/`
//! directories that hold launch layers), then each launch layer as
//! `./app/.layers/<buildpack>/<layer>`, without its env dirs.

use crate::platform::run_buildpacks::Built;
use slug_format::offer::{self, Offer};
use slug_format::{ContentCache, ExportError, ExportOptions, Exported, Part, PartCache};
use std::collections::BTreeSet;
use std::path::Path;

impl crate::exit::ExitCode for ExportError {
    fn exit_code(&self) -> i32 {
        if self.is_input_error() {
            crate::exit::INVALID_INPUT
        } else {
            crate::exit::OTHER
        }
    }
}

/// Layer env dirs: the engine turns them into the `.profile.d` script; buildpacks (libcnb
/// among them) write absolute build paths into them, which must not reach the slug.
const LAYER_ENV_DIRS: &[&str] = &["env", "env.build", "env.launch"];

/// The app's part: the build root, with `.layers/<bp>/` dirs only for buildpacks that have
/// launch layers (those layers are parts of their own), and nothing else of `.layers`.
pub fn app_part(app_dir: &Path, built: &Built) -> std::io::Result<Part> {
    let mut part = Part::new(app_dir, "./app");
    let with_launch: BTreeSet<&str> = built
        .launch_layers
        .iter()
        .map(|l| l.buildpack_id.as_str())
        .collect();
    if with_launch.is_empty() {
        part.exclude.push(".layers".into());
        return Ok(part);
    }
    let layers = app_dir.join(".layers");
    for entry in std::fs::read_dir(&layers)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let rel = format!(".layers/{name}");
        if with_launch.contains(name.as_str()) {
            part.shallow.push(rel);
        } else {
            part.exclude.push(rel);
        }
    }
    Ok(part)
}

/// A launch layer's part.
pub fn layer_part(dir: &Path, buildpack_id: &str, name: &str) -> std::io::Result<Part> {
    layer_part_at(dir, format!("./app/.layers/{buildpack_id}/{name}"))
}

/// The part of a layer at `prefix`, with its reused blocks, if it keeps any: a descriptor
/// that cannot be read or is not well formed is an error, since the slug's bytes depend on
/// it.
fn layer_part_at(dir: &Path, prefix: String) -> std::io::Result<Part> {
    let mut part = Part::new(dir, prefix);
    part.exclude = LAYER_ENV_DIRS.iter().map(|d| d.to_string()).collect();
    // The blocks are the export's, not the app's.
    part.exclude.push(slug_format::reuse::DIR.to_string());
    part.reuse = slug_format::reuse::find(dir).map_err(std::io::Error::other)?;
    Ok(part)
}

/// Every part of the slug, in order.
pub fn parts(app_dir: &Path, built: &Built) -> std::io::Result<Vec<Part>> {
    let mut parts = vec![app_part(app_dir, built)?];
    for layer in &built.launch_layers {
        parts.push(layer_part(&layer.dir, &layer.buildpack_id, &layer.name)?);
    }
    Ok(parts)
}

/// Writes the slug of `parts` into `store_dir`, drawing a progress bar when `progress`.
pub fn export(
    parts: &[Part],
    store_dir: &Path,
    mtime: u64,
    max_size: u64,
    part_cache: Option<&PartCache>,
    progress: bool,
) -> Result<Exported, ExportError> {
    let bar = progress.then(|| progress_bar(slug_format::tar::estimated_size(parts)));
    let draw = |done: u64| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
    };
    let opts = ExportOptions {
        mtime,
        max_size: Some(max_size),
        part_cache,
        progress: Some(&draw),
        ..ExportOptions::default()
    };
    let exported = slug_format::export(parts, store_dir, &opts);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    exported
}

fn progress_bar(estimate: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(estimate),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "exporting slug [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// What the engine offers buildpacks while they run: that the export reads reused blocks,
/// and when there is a content cache, early compression into its part cache and its verified
/// downloads.
pub fn engine_env(
    content: Option<&ContentCache>,
    mtime: u64,
    app_dir: &Path,
) -> Vec<(String, std::ffi::OsString)> {
    let Ok(exe) = std::env::current_exe() else {
        return Vec::new();
    };
    let offer = Offer {
        exe,
        part_cache: content.map(|c| c.parts.dir().to_path_buf()),
        downloads: content.map(|c| c.downloads.dir().to_path_buf()),
        mtime,
        layers_dir: app_dir.join(".layers"),
    };
    vec![(offer::ENV.to_string(), offer.to_env_value().into())]
}

/// Compress the part of `layer_dir` (a complete launch layer of the build that made the
/// engine's offer) into the part cache at low CPU priority while the buildpack goes on, so
/// that the export only copies it. Best effort: without the engine's offer, or for a dir that
/// is not a layer of this build, it does nothing.
pub fn precompress_layer(layer_dir: &Path) -> Result<(), ExportError> {
    let Some(offer) = Offer::from_env() else {
        return Ok(());
    };
    let (Some(part_cache), Some(prefix)) = (&offer.part_cache, offer.layer_prefix(layer_dir))
    else {
        return Ok(());
    };
    // The buildpack's own install goes first: this is work done ahead, not on its path.
    // SAFETY: setpriority only changes this process's scheduling priority.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
    // Early compression is best effort: the export reports such a layer.
    let Ok(layer) = layer_part_at(layer_dir, prefix) else {
        return Ok(());
    };
    // The app part is there only for absolute symlinks that point into the app.
    let app_dir = offer.layers_dir.parent().unwrap_or(&offer.layers_dir);
    let parts = [Part::new(app_dir, "./app"), layer];
    let cache = PartCache::new(part_cache);
    // Every core: the installs it runs beside wait mostly on the network, and the export
    // waits for this (docs/performance.md, "early compression on every core").
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    slug_format::export::precompress(&parts, 1, &cache, offer.mtime, threads)?;
    Ok(())
}
