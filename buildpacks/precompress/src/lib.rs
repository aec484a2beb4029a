//! A built-in buildpack's side of early compression. When `slug build` has a part cache it
//! sets `SLUGC_PRECOMPRESS_EXE` for buildpacks; a buildpack that has just finished a big
//! launch layer (a language runtime) starts `$SLUGC_PRECOMPRESS_EXE precompress-layer <dir>`
//! and goes on with its install while the layer is compressed on the cores that the install
//! leaves idle. The export then copies the compressed part instead of making it. Nothing
//! happens under another platform (`pack`), where the variable is not set.
//!
//! The buildpack must not change the layer afterwards (if it does, the export notices by the
//! layer's digest and compresses it as usual), and must [`Precompression::wait`] before it
//! exits, so that the engine never exports while a child still writes to its cache.

pub mod reuse;

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The variable `slug build` sets (`slugc::build::PRECOMPRESS_EXE_ENV`).
pub const EXE_ENV: &str = "SLUGC_PRECOMPRESS_EXE";

/// A background compression; killed if dropped without [`Precompression::wait`] (the build
/// failed: nothing will be exported).
#[derive(Debug, Default)]
pub struct Precompression(Option<Child>);

impl Precompression {
    /// Starts compressing `layer_dir` if the engine offers it; otherwise does nothing. Its
    /// output is discarded: it is an optimisation, and the export reports real problems.
    pub fn start(layer_dir: &Path) -> Self {
        let Some(exe) = std::env::var_os(EXE_ENV) else {
            return Self(None);
        };
        let child = Command::new(exe)
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
    fn without_the_engine_nothing_starts() {
        std::env::remove_var(EXE_ENV);
        let p = Precompression::start(Path::new("/nonexistent"));
        assert!(p.0.is_none());
        p.wait();
    }

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
