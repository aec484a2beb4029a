//! File helpers for filling layers.

use std::io;
use std::path::Path;

/// SHA-256 of a file's bytes, lower-case hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path)?;
    io::copy(&mut file, &mut hasher)?;
    Ok(slug_format::hex(&hasher.finalize()))
}
