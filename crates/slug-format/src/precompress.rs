//! Early compression: a buildpack that has just finished a big launch layer (a language
//! runtime) calls [`Precompression::start`] and goes on with its install while `slug
//! precompress-layer <layer dir>` compresses the layer into the part cache on the cores the
//! install leaves idle. The export then copies the compressed part instead of making it. It
//! runs only when `slug build` makes an [`Offer`].
//!
//! The buildpack must not change the layer afterwards (if it does, the export notices by the
//! part's digest and compresses it as usual: a wrong guess costs time, never bytes), and must
//! [`Precompression::wait`] before it exits, so that the engine never exports while a child
//! still writes to the cache. Whether this pays is measured in `docs/performance.md`.

use crate::offer::Offer;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A background compression; killed if dropped without [`Precompression::wait`] (the build
/// failed: nothing will be exported).
#[derive(Debug, Default)]
pub struct Precompression(Option<Child>);

impl Precompression {
    /// Starts compressing `layer_dir` if the engine offers it; otherwise does nothing. Its
    /// output is discarded: it is an optimisation, and the export reports real problems.
    pub fn start(layer_dir: &Path) -> Self {
        let Some(offer) = Offer::from_env().filter(|o| o.part_cache.is_some()) else {
            return Self(None);
        };
        let child = Command::new(&offer.exe)
            .arg("precompress-layer")
            .arg(layer_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Self(child)
    }

    /// Waits for the compression to end (its outcome does not matter).
    pub fn wait(mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for Precompression {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_kills_the_child() {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        drop(Precompression(Some(child)));
        // Reaped by the drop: the pid is gone from /proc (or reused, which a 30 s sleep
        // would not explain).
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(!status.contains("sleep"), "{status}");
    }
}
