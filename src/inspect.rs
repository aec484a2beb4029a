//! What a slug holds: its manifest, each layer's file bytes, and its largest paths — the
//! first thing to look at when a slug is bigger than expected.

use crate::exit::{self, ExitCode};
use slug_format::reader::{self, EntryKind, ReadError};
use slug_format::Release;
use std::path::PathBuf;

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
pub struct LayerUsage {
    pub path: String,
    pub files: u64,
    /// Uncompressed file bytes.
    pub bytes: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub slug: PathBuf,
    pub manifest: Option<Release>,
    pub layers: Vec<LayerUsage>,
    /// The `top` largest files as (path, bytes), largest first.
    pub largest: Vec<(String, u64)>,
}

/// One pass over the slug's entries.
pub fn scan(slug: &reader::Slug, top: usize) -> Result<Report, InspectError> {
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
