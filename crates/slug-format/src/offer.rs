//! The one contract between `slug build` and the buildpacks it runs: what the engine offers
//! them from the machine-wide content cache ([`crate::content`]).
//!
//! `slug build` sets [`ENV`] to an [`Offer`] (JSON) for every buildpack. With a content cache
//! (not under `--no-cache`) it offers:
//! - early compression ([`crate::precompress`]): a buildpack that has just finished a big
//!   launch layer has `slug precompress-layer` compress it into the part cache while its
//!   install goes on;
//! - verified downloads ([`crate::downloads`]): a buildpack reads an archive it would fetch
//!   from the cache when the digest it trusts is there, and keeps what it fetched.
//!
//! Always, the offer says that the export reads [`crate::reuse`] blocks, so a buildpack saves
//! them (in every build alike: they decide the slug's bytes). Nothing of this happens under
//! another platform (`pack`), where the variable is not set.

use crate::downloads::Downloads;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The variable that holds the [`Offer`].
pub const ENV: &str = "SLUGC_OFFER";

/// What `slug build` offers buildpacks, and what `slug precompress-layer` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// The `slug` executable to run as `<exe> precompress-layer <layer dir>`.
    pub exe: PathBuf,
    /// The part cache to fill (none under `--no-cache`).
    pub part_cache: Option<PathBuf>,
    /// The verified downloads to read and fill (none under `--no-cache`).
    pub downloads: Option<PathBuf>,
    /// The mtime the export gives every entry: early and late compression must agree.
    pub mtime: u64,
    /// The build root's `.layers` dir: a layer `<layers_dir>/<buildpack>/<layer>` is the part
    /// `./app/.layers/<buildpack>/<layer>`.
    pub layers_dir: PathBuf,
}

impl Offer {
    /// The offer in this process's environment, if any (a malformed one is none: what it
    /// offers saves time, it is never a reason to fail).
    pub fn from_env() -> Option<Self> {
        let value = std::env::var(ENV).ok()?;
        serde_json::from_str(&value).ok()
    }

    /// The verified downloads offered in this process's environment, if any.
    pub fn downloads_from_env() -> Option<Downloads> {
        Self::from_env().and_then(|offer| offer.downloads.map(|d| Downloads::new(&d)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_round_trips_and_names_layer_prefixes() {
        let offer = Offer {
            exe: "/bin/slug".into(),
            part_cache: Some("/c/parts".into()),
            downloads: Some("/c/downloads".into()),
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
}
