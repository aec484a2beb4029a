//! The slug format: what a slug is on disk, how it is written, and the one way it is read.
//!
//! - [`tar`]: the deterministic tar of a slug's parts (the app, then each launch layer);
//! - [`gzip`]: parallel gzip members, one per chunk of a part's tar;
//! - [`export`]: parts → tar → gzip → `<store>/sha256-<hex>.tgz`;
//! - [`content`]: the machine-wide content cache, bounded by one LRU cap, holding
//!   [`part_cache`] (compressed parts by content, found without hashing a big unchanged
//!   part by [`digest_memo`]) and [`downloads`] (verified downloads);
//! - [`store`]: files written under a temporary name, synced and renamed;
//! - [`release`]: the release manifest beside each slug;
//! - [`link`]: the one rule for symlinks, for the exporter and the reader alike;
//! - [`reader`]: find a slug (path, manifest or digest prefix), verify it, read its entries
//!   under the unpack rules, unpack it;
//! - [`reuse`]: a download's own deflate blocks of a runtime's biggest file, put into the
//!   slug instead of compressing that file again;
//! - [`offer`]: the one contract with the buildpacks a build runs, and [`precompress`]:
//!   compressing a layer early, which it offers;
//! - [`user_env`]: the CNB rule for the user-provided environment that the engine and the
//!   buildpacks both follow (layer path variables prepended, never replaced).
//!
//! Formats, rules and figures: `docs/export.md` in the slugc repository.

pub mod content;
pub mod digest_memo;
pub mod downloads;
pub mod export;
pub mod gzip;
pub mod link;
pub mod offer;
pub mod part_cache;
pub mod precompress;
pub mod reader;
pub mod release;
pub mod reuse;
pub mod store;
pub mod tar;
pub mod user_env;

pub use content::ContentCache;
pub use export::{export, mtime_from_env, ExportError, ExportOptions, Exported, DEFAULT_MTIME};
pub use part_cache::PartCache;
pub use reader::{locate, ReadError, Slug, SlugRef};
pub use release::Release;
pub use tar::Part;

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Non-empty and only hex digits.
pub fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}
