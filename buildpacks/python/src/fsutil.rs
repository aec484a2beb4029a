//! File helpers for filling layers.

/// SHA-256 of bytes, lower-case hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    slug_format::hex(&Sha256::digest(bytes))
}
