//! Where slugc keeps things by default, per the XDG base directory spec: slugs in
//! `$XDG_DATA_HOME/slugc/slugs`, caches (build caches, the machine-wide content cache,
//! unpacked slugs) in `$XDG_CACHE_HOME/slugc`. Without `$HOME` either, under the temp dir.

use std::path::{Path, PathBuf};

/// Overrides the machine-wide content cache's place (a test suite, a CI runner's cache
/// volume); `--content-cache` overrides it in turn.
pub const CONTENT_CACHE_ENV: &str = "SLUGC_CONTENT_CACHE";

/// `$<var>` when set and not empty, else `$HOME/<fallback>`, else the temp dir.
fn xdg(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(fallback))
        })
        .unwrap_or_else(std::env::temp_dir)
}

/// The default slug store: `$XDG_DATA_HOME/slugc/slugs`, else `~/.local/share/slugc/slugs`.
pub fn store() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share").join("slugc/slugs")
}

/// slugc's cache root: `$XDG_CACHE_HOME/slugc`, else `~/.cache/slugc`.
pub fn cache() -> PathBuf {
    xdg("XDG_CACHE_HOME", ".cache").join("slugc")
}

/// The machine-wide content cache: `$SLUGC_CONTENT_CACHE`, else `<cache>/content`.
pub fn content_cache() -> PathBuf {
    std::env::var_os(CONTENT_CACHE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cache().join("content"))
}

/// Where `slug run` unpacks slugs: `<cache>/run`.
pub fn unpack_root() -> PathBuf {
    cache().join("run")
}

/// The machine-wide content cache to use: `content_cache_dir` when given, else the default.
pub fn content(content_cache_dir: Option<&Path>) -> PathBuf {
    content_cache_dir.map_or_else(content_cache, Path::to_path_buf)
}
