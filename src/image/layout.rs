//! OCI image layouts on disk: reading the user's base image, writing the result as a layout
//! directory and as a single tar archive (`podman load` / `docker load`).

use super::oci::{self, Descriptor, ImageConfig, Index, LayoutFile, Manifest};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("base image {path}: {reason}")]
    Base { path: PathBuf, reason: String },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{path}: exists and is neither empty nor an OCI image layout; give a new or empty dir"
    )]
    OutputNotLayout { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// The base image, resolved to one linux manifest for the host's architecture.
pub struct Base {
    pub dir: PathBuf,
    pub manifest_digest: String,
    pub manifest: Manifest,
    pub config: ImageConfig,
}

pub fn blob_path(dir: &Path, digest: &str) -> Option<PathBuf> {
    let (alg, hex) = digest.split_once(':')?;
    let ok = !alg.is_empty()
        && !hex.is_empty()
        && alg.bytes().all(|b| b.is_ascii_alphanumeric())
        && hex.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| dir.join("blobs").join(alg).join(hex))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, LayoutError> {
    let bytes = std::fs::read(path).map_err(|source| LayoutError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| LayoutError::Json {
        path: path.to_path_buf(),
        source,
    })
}

impl Base {
    /// Open `spec`, `DIR` or `DIR:REF` as skopeo's `oci:` transport takes it. Without a ref
    /// the layout must hold exactly one image.
    pub fn open(spec: &str) -> Result<Base, LayoutError> {
        let (dir, wanted) = if Path::new(spec).join("index.json").is_file() {
            (PathBuf::from(spec), None)
        } else if let Some((d, r)) = spec.rsplit_once(':') {
            (PathBuf::from(d), Some(r.to_string()))
        } else {
            (PathBuf::from(spec), None)
        };
        let base_err = |reason: String| LayoutError::Base {
            path: dir.clone(),
            reason,
        };
        if !dir.join("index.json").is_file() || !dir.join("oci-layout").is_file() {
            return Err(base_err(
                "not an OCI image layout (no index.json and oci-layout); get one with \
                 `skopeo copy docker://IMAGE oci:DIR:TAG`"
                    .to_string(),
            ));
        }
        let index: Index = read_json(&dir.join("index.json"))?;
        let refs = |index: &Index| {
            let names: Vec<&str> = index
                .manifests
                .iter()
                .filter_map(|d| d.annotations.get(oci::REF_NAME).map(String::as_str))
                .collect();
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        let chosen = match &wanted {
            Some(r) => index
                .manifests
                .iter()
                .find(|d| d.annotations.get(oci::REF_NAME) == Some(r))
                .ok_or_else(|| {
                    base_err(format!("no image tagged {r:?}; its refs: {}", refs(&index)))
                })?,
            None => match index.manifests.as_slice() {
                [one] => one,
                [] => return Err(base_err("index.json lists no image".to_string())),
                _ => {
                    return Err(base_err(format!(
                        "holds several images; name one as {}:REF (refs: {})",
                        dir.display(),
                        refs(&index)
                    )))
                }
            },
        };
        let mut descriptor = chosen.clone();
        // A multi-platform image: take the entry for linux on this machine's architecture.
        if descriptor.media_type == oci::INDEX || descriptor.media_type == oci::DOCKER_MANIFEST_LIST
        {
            let nested: Index = read_json(&Self::blob(&dir, &descriptor)?)?;
            let arch = oci::host_architecture();
            descriptor = nested
                .manifests
                .into_iter()
                .find(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == arch)
                })
                .ok_or_else(|| base_err(format!("has no linux/{arch} image")))?;
        }
        if descriptor.media_type != oci::MANIFEST && descriptor.media_type != oci::DOCKER_MANIFEST {
            return Err(base_err(format!(
                "unsupported manifest media type {:?}",
                descriptor.media_type
            )));
        }
        let manifest_path = Self::blob(&dir, &descriptor)?;
        let manifest_bytes = std::fs::read(&manifest_path).map_err(|source| LayoutError::Read {
            path: manifest_path.clone(),
            source,
        })?;
        let actual = format!("sha256:{:x}", Sha256::digest(&manifest_bytes));
        if actual != descriptor.digest {
            return Err(base_err(format!(
                "manifest {} does not match its digest {}",
                manifest_path.display(),
                descriptor.digest
            )));
        }
        let manifest: Manifest =
            serde_json::from_slice(&manifest_bytes).map_err(|source| LayoutError::Json {
                path: manifest_path.clone(),
                source,
            })?;
        let config: ImageConfig = read_json(&Self::blob(&dir, &manifest.config)?)?;
        if config.os != "linux" {
            return Err(base_err(format!("is a {} image, not linux", config.os)));
        }
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(base_err(format!(
                "config lists {} diff_ids for {} layers",
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            )));
        }
        for layer in &manifest.layers {
            Self::blob(&dir, layer)?;
        }
        Ok(Base {
            dir,
            manifest_digest: descriptor.digest,
            manifest,
            config,
        })
    }

    /// The path of a blob the base must hold, checked to exist with the descriptor's size.
    fn blob(dir: &Path, d: &Descriptor) -> Result<PathBuf, LayoutError> {
        let err = |reason: String| LayoutError::Base {
            path: dir.to_path_buf(),
            reason,
        };
        let path = blob_path(dir, &d.digest)
            .ok_or_else(|| err(format!("invalid digest {:?}", d.digest)))?;
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == d.size => Ok(path),
            Ok(m) => Err(err(format!(
                "blob {} is {} bytes, its descriptor says {}",
                path.display(),
                m.len(),
                d.size
            ))),
            Err(_) => Err(err(format!("blob {} is missing", path.display()))),
        }
    }

    pub fn layer_path(&self, d: &Descriptor) -> Result<PathBuf, LayoutError> {
        Self::blob(&self.dir, d)
    }
}

/// Where a blob's bytes come from.
pub enum Source {
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// The new image: every blob by hex digest, and the manifest's descriptor.
pub struct Image {
    pub blobs: BTreeMap<String, Source>,
    pub manifest: Descriptor,
    pub config_hex: String,
    pub layer_hexes: Vec<String>,
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Write (or add to) the layout dir `out`. An existing layout keeps its other images; an
/// image with the same ref name is replaced, as `skopeo copy` does.
pub fn write_layout(image: &Image, out: &Path) -> Result<(), LayoutError> {
    let mut index = if out.join("index.json").is_file() && out.join("oci-layout").is_file() {
        read_json::<Index>(&out.join("index.json"))?
    } else {
        let non_empty = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some());
        if non_empty || (out.exists() && !out.is_dir()) {
            return Err(LayoutError::OutputNotLayout {
                path: out.to_path_buf(),
            });
        }
        new_index()
    };
    let blobs = out.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(write_err(&blobs))?;
    for (hex, source) in &image.blobs {
        let dest = blobs.join(hex);
        if dest.is_file() {
            continue; // content-addressed: already there means already right.
        }
        let partial = blobs.join(format!(".{hex}.partial"));
        match source {
            Source::Bytes(bytes) => std::fs::write(&partial, bytes).map_err(write_err(&partial))?,
            Source::File(src) => {
                // A hard link costs nothing for a big slug or base layer; copy across devices.
                if std::fs::hard_link(src, &dest).is_ok() {
                    continue;
                }
                std::fs::copy(src, &partial).map_err(write_err(&partial))?;
            }
        }
        std::fs::rename(&partial, &dest).map_err(write_err(&dest))?;
    }
    let name = image.manifest.annotations.get(oci::REF_NAME);
    index
        .manifests
        .retain(|d| name.is_none() || d.annotations.get(oci::REF_NAME) != name);
    index.manifests.push(image.manifest.clone());
    let layout_path = out.join("oci-layout");
    std::fs::write(&layout_path, layout_file()).map_err(write_err(&layout_path))?;
    // index.json last and by rename: a reader sees the old index or the new one, never a torn
    // one, and never an index naming blobs that are not there yet.
    let index_path = out.join("index.json");
    let partial = out.join(".index.json.partial");
    std::fs::write(&partial, to_json(&index)).map_err(write_err(&partial))?;
    std::fs::rename(&partial, &index_path).map_err(write_err(&index_path))
}

fn new_index() -> Index {
    Index {
        schema_version: 2,
        media_type: Some(oci::INDEX.to_string()),
        manifests: Vec::new(),
        annotations: BTreeMap::new(),
        other: BTreeMap::new(),
    }
}

fn layout_file() -> Vec<u8> {
    to_json(&LayoutFile {
        image_layout_version: oci::LAYOUT_VERSION.to_string(),
    })
}

pub fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail (string keys, no non-finite floats).
    serde_json::to_vec(value).unwrap_or_default()
}

/// Docker's `docker save` manifest, which `docker load` and `podman load` read.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveEntry<'a> {
    config: String,
    repo_tags: Vec<&'a str>,
    layers: Vec<String>,
}

/// Write one tar that is both an OCI image layout and a `docker save` archive (as Docker 25
/// writes them): `oci-layout`, `index.json`, `blobs/sha256/*` and `manifest.json`. Entries
/// sorted, mtime 0, root-owned: the same image gives the same bytes.
pub fn write_archive(image: &Image, repo_tag: &str, out: &Path) -> Result<(), LayoutError> {
    let partial = out.with_file_name(format!(
        ".{}.partial",
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let file = std::fs::File::create(&partial).map_err(write_err(&partial))?;
    let mut tar = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, file));
    let mut index = new_index();
    index.manifests.push(image.manifest.clone());
    let docker = [DockerArchiveEntry {
        config: format!("blobs/sha256/{}", image.config_hex),
        repo_tags: vec![repo_tag],
        layers: image
            .layer_hexes
            .iter()
            .map(|h| format!("blobs/sha256/{h}"))
            .collect(),
    }];
    let result = (|| -> io::Result<()> {
        append_dir(&mut tar, "blobs/")?;
        append_dir(&mut tar, "blobs/sha256/")?;
        for (hex, source) in &image.blobs {
            let path = format!("blobs/sha256/{hex}");
            match source {
                Source::Bytes(bytes) => {
                    append_file(&mut tar, &path, bytes.len() as u64, &bytes[..])?
                }
                Source::File(src) => {
                    let f = std::fs::File::open(src)?;
                    let len = f.metadata()?.len();
                    append_file(&mut tar, &path, len, f)?;
                }
            }
        }
        let index_json = to_json(&index);
        append_file(
            &mut tar,
            "index.json",
            index_json.len() as u64,
            &index_json[..],
        )?;
        let manifest_json = to_json(&docker);
        append_file(
            &mut tar,
            "manifest.json",
            manifest_json.len() as u64,
            &manifest_json[..],
        )?;
        let layout = layout_file();
        append_file(&mut tar, "oci-layout", layout.len() as u64, &layout[..])?;
        tar.into_inner()?.flush()
    })();
    result.map_err(write_err(&partial))?;
    std::fs::rename(&partial, out).map_err(write_err(out))
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> io::Result<()> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut h, path, io::empty())
}

fn append_file<W: Write, R: io::Read>(
    tar: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: R,
) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, 0o644, size);
    tar.append_data(&mut h, path, data)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}
