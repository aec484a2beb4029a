//! Where slugc keeps things by default, per the XDG base directory spec: slugs in
//! `$XDG_DATA_HOME/slugc/slugs`, caches (build caches, unpacked slugs) in
//! `$XDG_CACHE_HOME/slugc`.

use std::path::PathBuf;

/// `$<var>` when set and not empty, else `$HOME/<fallback>`; `None` without either.
fn xdg(var: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(fallback))
        })
}

/// The default slug store: `$XDG_DATA_HOME/slugc/slugs`, else `~/.local/share/slugc/slugs`.
pub fn store() -> Option<PathBuf> {
    xdg("XDG_DATA_HOME", ".local/share").map(|d| d.join("slugc/slugs"))
}

/// slugc's cache root: `$XDG_CACHE_HOME/slugc`, else `~/.cache/slugc`.
pub fn cache() -> Option<PathBuf> {
    xdg("XDG_CACHE_HOME", ".cache").map(|d| d.join("slugc"))
}
