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
use crate::reuse::{Keep, ReuseError};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

/// A background compression; killed if dropped without [`Precompression::wait`] (the build
/// failed: nothing will be exported).
#[derive(Debug, Default)]
pub struct Precompression {
    child: Option<Child>,
    /// Reused blocks being saved first, on a thread that then starts the child.
    keeping: Option<JoinHandle<Result<Option<Child>, ReuseError>>>,
}

impl Precompression {
    /// Starts compressing `layer_dir` if the engine offers it; otherwise does nothing. Its
    /// output is discarded: it is an optimisation, and the export reports real problems.
    pub fn start(layer_dir: &Path) -> Self {
        Self {
            child: spawn(layer_dir),
            keeping: None,
        }
    }

    /// Saves `keep` (the layer's reused blocks: hashing the file they stand for is most of
    /// it) beside the buildpack's install, then starts compressing `layer_dir` as
    /// [`Precompression::start`] does.
    pub fn start_after(layer_dir: PathBuf, keep: Keep) -> Self {
        let keeping = std::thread::spawn(move || {
            keep.save()?;
            Ok(spawn(&layer_dir))
        });
        Self {
            child: None,
            keeping: Some(keeping),
        }
    }

    /// Waits for the compression to end (its outcome does not matter); the blocks must have
    /// been saved, since they decide the slug's bytes.
    pub fn wait(mut self) -> Result<(), ReuseError> {
        if let Some(keeping) = self.keeping.take() {
            match keeping.join() {
                Ok(child) => self.child = child?,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        Ok(())
    }
}

fn spawn(layer_dir: &Path) -> Option<Child> {
    let offer = Offer::from_env().filter(|o| o.part_cache.is_some())?;
    Command::new(&offer.exe)
        .arg("precompress-layer")
        .arg(layer_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

impl Drop for Precompression {
    fn drop(&mut self) {
        if let Some(keeping) = self.keeping.take() {
            if let Ok(Ok(child)) = keeping.join() {
                self.child = child;
            }
        }
        if let Some(mut child) = self.child.take() {
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
        drop(Precompression {
            child: Some(child),
            keeping: None,
        });
        // Reaped by the drop: the pid is gone from /proc (or reused, which a 30 s sleep
        // would not explain).
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(!status.contains("sleep"), "{status}");
    }
}
