//! Reading the app's files for the rules: bounded and inside the app (`slugc_fs::input`), a
//! failure a [`Warning`] that names the file.

use crate::Warning;
use slugc_fs::input::{self, MANIFEST_CAP};
use std::path::Path;

/// The most source files one framework rule reads looking for its app object.
const MAX_SOURCES: usize = 64;

/// `rel` as text; `Ok(None)` when the app has no such file.
pub fn text(app_dir: &Path, rel: &str) -> Result<Option<String>, Warning> {
    input::read_app_text(app_dir, rel, MANIFEST_CAP)
        .map(|t| t.map(|t| t.strip_prefix('\u{feff}').unwrap_or(&t).to_string()))
        .map_err(|e| Warning::new(rel, e.to_string()))
}

/// The Python sources a framework rule looks through, in order: the usual entry points first,
/// then the app root's other `.py` files, then those of `app/`, `src/` and `api/`, by name.
pub fn python_sources(app_dir: &Path, preferred: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = preferred
        .iter()
        .filter(|f| input::is_app_file(app_dir, f))
        .map(|f| f.to_string())
        .collect();
    for dir in ["", "app", "src", "api"] {
        let Ok(entries) = std::fs::read_dir(app_dir.join(dir)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".py"))
            .map(|n| {
                if dir.is_empty() {
                    n
                } else {
                    format!("{dir}/{n}")
                }
            })
            .filter(|rel| input::is_app_file(app_dir, rel))
            .collect();
        names.sort();
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out.truncate(MAX_SOURCES);
    out
}
