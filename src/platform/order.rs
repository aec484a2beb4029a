//! Order resolution: a group whose entries may be meta-buildpacks (a `buildpack.toml` with
//! `[[order]]` and no `bin/`) becomes the groups of component buildpacks that detection tries,
//! in the lifecycle's order: a meta-buildpack's groups expand in place, depth-first and left
//! to right, nested in the outer group; an optional one is also tried without
//! (<https://github.com/buildpacks/spec/blob/main/buildpack.md#order-resolution>).
//!
//! A meta-buildpack names its members by id and version. They are looked up in the dirs next
//! to the meta-buildpack's own (the layout of a buildpack repository such as the CNB samples,
//! and of `slug buildpacks package`), then among the built-ins.

use super::descriptor::{self, Buildpack, DescriptorError, Loaded, Meta};
use super::detect::Candidate;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("{meta}: [[order.group]] {id} {version}: no such buildpack beside it (in {searched}) nor among the built-ins{found}")]
    NotFound {
        meta: PathBuf,
        id: String,
        version: String,
        searched: PathBuf,
        /// Other versions of the id that were found.
        found: String,
    },
    #[error("{meta}: [[order.group]] {id} includes itself (through {chain})")]
    Cycle {
        meta: PathBuf,
        id: String,
        chain: String,
    },
    #[error(transparent)]
    Descriptor(#[from] DescriptorError),
    #[error("{0}")]
    Builtin(String),
}

/// A built-in buildpack by id, when there is one (materialised by the caller).
pub type BuiltinLookup<'a> = dyn Fn(&str) -> Result<Option<Buildpack>, OrderError> + 'a;

/// The groups of component buildpacks `group` stands for (each entry with its `optional`).
pub fn expand(
    group: &[(Loaded, bool)],
    builtin: &BuiltinLookup,
) -> Result<Vec<Vec<Candidate>>, OrderError> {
    expand_group(group, builtin, &mut Vec::new())
}

fn expand_group(
    group: &[(Loaded, bool)],
    builtin: &BuiltinLookup,
    chain: &mut Vec<String>,
) -> Result<Vec<Vec<Candidate>>, OrderError> {
    let mut partials: Vec<Vec<Candidate>> = vec![Vec::new()];
    for (entry, optional) in group {
        match entry {
            Loaded::Component(bp) => {
                for partial in &mut partials {
                    // The lifecycle runs a buildpack once per group: a repeat is skipped.
                    if !partial.iter().any(|c| c.buildpack.id == bp.id) {
                        partial.push(Candidate {
                            buildpack: bp.clone(),
                            optional: *optional,
                        });
                    }
                }
            }
            Loaded::Meta(meta) => {
                if chain.contains(&meta.id) {
                    return Err(OrderError::Cycle {
                        meta: meta.dir.join("buildpack.toml"),
                        id: meta.id.clone(),
                        chain: chain.join(" → "),
                    });
                }
                chain.push(meta.id.clone());
                let mut alternatives = Vec::new();
                for order_group in &meta.order {
                    let mut members = Vec::new();
                    for member in &order_group.group {
                        let loaded = lookup(
                            meta,
                            &member.id.to_string(),
                            &member.version.to_string(),
                            builtin,
                        )?;
                        members.push((loaded, member.optional));
                    }
                    alternatives.extend(expand_group(&members, builtin, chain)?);
                }
                chain.pop();
                let mut next = Vec::new();
                for partial in &partials {
                    for alternative in &alternatives {
                        let mut g = partial.clone();
                        for c in alternative {
                            if !g.iter().any(|x| x.buildpack.id == c.buildpack.id) {
                                g.push(c.clone());
                            }
                        }
                        next.push(g);
                    }
                    if *optional {
                        next.push(partial.clone());
                    }
                }
                partials = next;
            }
        }
    }
    Ok(partials)
}

/// The buildpack `id` `version` of `meta`'s order: a dir beside the meta-buildpack's, else a
/// built-in.
fn lookup(
    meta: &Meta,
    id: &str,
    version: &str,
    builtin: &BuiltinLookup,
) -> Result<Loaded, OrderError> {
    let searched = meta.dir.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut other_versions = Vec::new();
    let mut siblings: Vec<PathBuf> = std::fs::read_dir(&searched)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    siblings.sort();
    for dir in siblings {
        if dir == meta.dir || !dir.join("buildpack.toml").is_file() {
            continue;
        }
        // Dirs beside it that are not valid buildpacks are someone else's business.
        let Ok(loaded) = descriptor::load_any(&dir) else {
            continue;
        };
        let (found_id, found_version) = match &loaded {
            Loaded::Component(bp) => (&bp.id, &bp.version),
            Loaded::Meta(m) => (&m.id, &m.version),
        };
        if found_id == id {
            if found_version == version {
                return Ok(loaded);
            }
            other_versions.push(format!("{found_version} at {}", dir.display()));
        }
    }
    if let Some(bp) = builtin(id)? {
        if bp.version == version {
            return Ok(Loaded::Component(bp));
        }
        other_versions.push(format!("{} (built-in)", bp.version));
    }
    Err(OrderError::NotFound {
        meta: meta.dir.join("buildpack.toml"),
        id: id.to_string(),
        version: version.to_string(),
        searched,
        found: if other_versions.is_empty() {
            String::new()
        } else {
            format!("; found only {}", other_versions.join(", "))
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::descriptor::Kind;

    fn bp(id: &str) -> Loaded {
        Loaded::Component(Buildpack {
            dir: PathBuf::from(format!("/bp/{id}")),
            id: id.into(),
            version: "1.0.0".into(),
            name: id.into(),
            kind: Kind::Cnb { api: "0.10".into() },
            clear_env: false,
            targets: Vec::new(),
        })
    }

    fn ids(groups: &[Vec<Candidate>]) -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| g.iter().map(|c| c.buildpack.id.clone()).collect())
            .collect()
    }

    /// The spec's example: [E, O, F] with O = [[A, B], [C, D]] is [[E, A, B, F], [E, C, D, F]].
    #[test]
    fn a_meta_buildpack_expands_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        for id in ["a", "b", "c", "d"] {
            let dir = tmp.path().join(id);
            std::fs::create_dir_all(dir.join("bin")).unwrap();
            std::fs::write(
                dir.join("buildpack.toml"),
                format!("api = \"0.10\"\n[buildpack]\nid = \"t/{id}\"\nversion = \"1.0.0\"\n"),
            )
            .unwrap();
            for exe in ["detect", "build"] {
                std::fs::write(dir.join("bin").join(exe), "#!/bin/sh\n").unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(
                    dir.join("bin").join(exe),
                    std::fs::Permissions::from_mode(0o755),
                )
                .unwrap();
            }
        }
        let o = tmp.path().join("o");
        std::fs::create_dir_all(&o).unwrap();
        let group = |a: &str, b: &str| {
            format!("[[order]]\n[[order.group]]\nid = \"t/{a}\"\nversion = \"1.0.0\"\n[[order.group]]\nid = \"t/{b}\"\nversion = \"1.0.0\"\n")
        };
        std::fs::write(
            o.join("buildpack.toml"),
            format!(
                "api = \"0.10\"\n[buildpack]\nid = \"t/o\"\nversion = \"1.0.0\"\n{}{}",
                group("a", "b"),
                group("c", "d")
            ),
        )
        .unwrap();
        let meta = descriptor::load_any(&o).unwrap();
        let none = |_: &str| Ok(None);
        let groups = expand(&[(bp("e"), false), (meta, false), (bp("f"), false)], &none).unwrap();
        assert_eq!(
            ids(&groups),
            [["e", "t/a", "t/b", "f"], ["e", "t/c", "t/d", "f"]]
        );
    }
}
