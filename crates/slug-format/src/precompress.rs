//! Early compression: the one contract between `slug build` and the buildpacks it runs.
//!
//! With a part cache, `slug build` sets [`ENV`] to an [`Offer`] (JSON) for every buildpack.
//! A buildpack that has just finished a big launch layer (a language runtime) calls
//! [`Precompression::start`] and goes on with its install while `slug precompress-layer
//! <layer dir>` compresses the layer into the part cache on the cores the install leaves
//! idle. The export then copies the compressed part instead of making it. Nothing happens
//! under another platform (`pack`), where the variable is not set.
//!
//! The buildpack must not change the layer afterwards (if it does, the export notices by the
//! part's digest and compresses it as usual: a wrong guess costs time, never bytes), and must
//! [`Precompression::wait`] before it exits, so that the engine never exports while a child
//! still writes to the cache. Whether this pays is measured in `docs/performance.md`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The variable that holds the [`Offer`].
pub const ENV: &str = "SLUGC_PRECOMPRESS";

/// What `slug build` offers buildpacks, and what `slug precompress-layer` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// The `slug` executable to run as `<exe> precompress-layer <layer dir>`.
    pub exe: PathBuf,
    /// The part cache to fill.
    pub part_cache: PathBuf,
    /// The mtime the export gives every entry: early and late compression must agree.
    pub mtime: u64,
    /// The build root's `.layers` dir: a layer `<layers_dir>/<buildpack>/<layer>` is the part
    /// `./app/.layers/<buildpack>/<layer>`.
    pub layers_dir: PathBuf,
}

impl Offer {
    /// The offer in this process's environment, if any (a malformed one is none: this is an
    /// optimisation, never a reason to fail).
    pub fn from_env() -> Option<Self> {
        let value = std::env::var(ENV).ok()?;
        serde_json::from_str(&value).ok()
    }

    /// The value of [`ENV`] for this offer.
    pub fn to_env_value(&self) -> String {
        // A struct of paths and a number always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The slug prefix of a layer dir under [`Offer::layers_dir`]: `./app/.layers/<bp>/<layer>`.
    pub fn layer_prefix(&self, layer_dir: &Path) -> Option<String> {
        let rel = layer_dir.strip_prefix(&self.layers_dir).ok()?;
        let names: Vec<&str> = rel
            .components()
            .map(|c| match c {
                std::path::Component::Normal(n) => n.to_str(),
                _ => None,
            })
            .collect::<Option<_>>()?;
        match names.as_slice() {
            [bp, layer] => Some(format!("./app/.layers/{bp}/{layer}")),
            _ => None,
        }
    }
}

/// A background compression; killed if dropped without [`Precompression::wait`] (the build
/// failed: nothing will be exported).
#[derive(Debug, Default)]
pub struct Precompression(Option<Child>);

impl Precompression {
    /// Starts compressing `layer_dir` if the engine offers it; otherwise does nothing. Its
    /// output is discarded: it is an optimisation, and the export reports real problems.
    pub fn start(layer_dir: &Path) -> Self {
        let Some(offer) = Offer::from_env() else {
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
    fn an_offer_round_trips_and_names_layer_prefixes() {
        let offer = Offer {
            exe: "/bin/slug".into(),
            part_cache: "/c/parts".into(),
            mtime: 315_532_800,
            layers_dir: "/w/app/.layers".into(),
        };
        let back: Offer = serde_json::from_str(&offer.to_env_value()).unwrap();
        assert_eq!(back, offer);
        assert_eq!(
            offer.layer_prefix(Path::new("/w/app/.layers/slugc_nodejs/node")),
            Some("./app/.layers/slugc_nodejs/node".into())
        );
        for outside in ["/w/app/.layers/x", "/w/app/x/y", "/w/app/.layers/a/../b/c"] {
            assert_eq!(offer.layer_prefix(Path::new(outside)), None, "{outside}");
        }
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
