//! OCI images: a slug wrapped as an image over a base image.
//!
//! The image is the base image's layers, then the slug as one layer (`layer.rs`: the slug
//! file itself when its headers are as `slug build` writes them, so the layer's digest *is*
//! the slug's digest; else its checked entries written again with normalised modes), then
//! a tiny launcher layer (`launcher.rs`) that starts a process type like a dyno. The config
//! carries the launch env made absolute for `/app` (`profile.rs`), `WorkingDir=/app`, the
//! base's non-root `User` (or `--user`), the launcher as entrypoint, and the process types and
//! slug checksum as labels. Every document is serialised from sorted maps with a fixed
//! `created` time, so the same slug over the same base gives the same image digest.

mod launcher;
mod layer;
mod layout;
pub mod oci;
mod profile;

use crate::exit::{self, ExitCode};
use layout::{Base, Image, LayoutError, Source};
use oci::{ContainerConfig, Descriptor, History, Manifest, RootFs};
use sha2::{Digest, Sha256};
use slug_format::reader::{self, EntryKind, ReadError};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid --tag {tag:?}: {reason}")]
    Tag { tag: String, reason: &'static str },
    #[error(transparent)]
    Slug(#[from] ReadError),
    #[error("{0}: no release manifest beside the slug; pass --manifest FILE")]
    NoManifest(PathBuf),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("cannot build the launcher layer: {0}")]
    Launcher(std::io::Error),
    #[error(transparent)]
    Layer(#[from] layer::LayerError),
}

impl ExitCode for ImageError {
    fn exit_code(&self) -> i32 {
        match self {
            ImageError::Tag { .. } => exit::USAGE,
            ImageError::Slug(e) if e.is_not_found() => exit::USAGE,
            ImageError::Slug(e) if !e.is_bad_slug() => exit::OTHER,
            ImageError::Slug(_) | ImageError::NoManifest(_) => exit::INVALID_INPUT,
            ImageError::Layout(LayoutError::Write { .. } | LayoutError::OutputNotLayout { .. }) => {
                exit::OTHER
            }
            ImageError::Layout(_) => exit::INVALID_INPUT,
            ImageError::Launcher(_) => exit::OTHER,
            ImageError::Layer(layer::LayerError::Slug(e)) if e.is_bad_slug() => exit::INVALID_INPUT,
            ImageError::Layer(_) => exit::OTHER,
        }
    }
}

/// Labels written on every image (documented in docs/image.md).
pub const LABEL_CHECKSUM: &str = "org.slugc.slug.checksum";
pub const LABEL_PROCESS_TYPES: &str = "org.slugc.slug.process-types";
pub const LABEL_STACK: &str = "org.slugc.slug.stack";

/// The largest `.profile.d` script read to compute `Env`. A larger one is left to the
/// launcher, which sources it at start; `Env` then holds no profile exports at all rather
/// than values that script may change.
pub const MAX_PROFILE_SCRIPT: u64 = 1 << 20;

/// What the image needs from one checked pass over the slug.
struct Scan {
    /// Hex SHA-256 of the file (the gzip bytes): the layer blob's digest.
    sha256_hex: String,
    size: u64,
    /// `sha256:<hex>` of the uncompressed tar: the layer's diff_id.
    diff_id: String,
    /// Every header as the exporter writes it: the file can be the layer as it is.
    canonical: bool,
    /// `app/.profile.d/*.sh` scripts, sorted by name, as (name, text).
    profile_scripts: Vec<(String, String)>,
    /// The release the build wrote into the slug, when it has one.
    embedded: Option<slug_format::release::BuildRelease>,
    /// Scripts over [`MAX_PROFILE_SCRIPT`], by name.
    oversized_scripts: Vec<String>,
}

fn scan(slug: &reader::Slug) -> Result<Scan, ReadError> {
    let mut profile_scripts = Vec::new();
    let mut embedded = None;
    let mut oversized_scripts = Vec::new();
    let summary = slug.read_entries(|entry| {
        if let Some(release) = slug.embedded_in(entry)? {
            embedded = Some(release);
            return Ok(());
        }
        let script = entry
            .path
            .strip_prefix("app/.profile.d")
            .ok()
            .and_then(|n| n.to_str())
            .filter(|n| n.ends_with(".sh") && !n.contains('/'))
            .map(str::to_string);
        if let (Some(name), EntryKind::File { size, .. }) = (script, &entry.kind) {
            if *size > MAX_PROFILE_SCRIPT {
                oversized_scripts.push(name);
                return Ok(());
            }
            let mut text = Vec::new();
            entry
                .take(MAX_PROFILE_SCRIPT)
                .read_to_end(&mut text)
                .map_err(|e| ReadError::Corrupt {
                    slug: slug.path.clone(),
                    message: format!("bad data in app/.profile.d/{name}: {e}"),
                })?;
            profile_scripts.push((name, String::from_utf8_lossy(&text).into_owned()));
        }
        Ok(())
    })?;
    profile_scripts.sort();
    if !oversized_scripts.is_empty() {
        profile_scripts.clear();
    }
    Ok(Scan {
        sha256_hex: slug.hex.clone(),
        size: slug.size,
        diff_id: summary.diff_id,
        canonical: summary.canonical,
        profile_scripts,
        embedded,
        oversized_scripts,
    })
}

/// What the image is made of besides the slug.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    /// The base image: an OCI image layout dir, `DIR` or `DIR:REF`.
    pub base: &'a str,
    /// The image's name and tag, as [`split_tag`] gives them.
    pub repo: &'a str,
    pub tag: &'a str,
    /// Run as this user instead of the base image's `User`.
    pub user: Option<&'a str>,
    /// The `PORT` the web process listens on (set in `Env`, exposed).
    pub port: u16,
}

/// An image ready to be written, as a layout dir or an archive (or both).
pub struct Assembled {
    image: Image,
    reference: String,
    /// `sha256:<hex>` of the image manifest.
    pub digest: String,
    /// How many layers come from the base.
    pub base_layers: usize,
    /// The slug layer's digest, hex: the slug's own, unless it was written again.
    pub slug_sha256: String,
    /// The slug layer was written again with normalised modes (`layer.rs`).
    pub rewritten: bool,
    /// The user the image runs as; `None` is root.
    pub user: Option<String>,
    /// What the caller should tell the user.
    pub warnings: Vec<String>,
    /// The rewritten layer's file, kept until the image is written.
    _layer_file: Option<tempfile::NamedTempFile>,
}

impl Assembled {
    /// Write (or add to) this OCI image layout dir.
    pub fn write_layout(&self, dir: &Path) -> Result<(), ImageError> {
        Ok(layout::write_layout(&self.image, dir)?)
    }

    /// Write a tar archive for `podman load` / `docker load` (an OCI layout inside).
    pub fn write_archive(&self, file: &Path) -> Result<(), ImageError> {
        Ok(layout::write_archive(&self.image, &self.reference, file)?)
    }
}

/// The image of `slug` over `opts.base`: the base's layers, the slug, the launcher.
pub fn assemble(slug: &reader::Slug, opts: &Options) -> Result<Assembled, ImageError> {
    let (repo, tag) = (opts.repo, opts.tag);
    // Every check on the slug first, whatever the base: a hostile slug is refused the same
    // way by every command.
    let mut scan = scan(slug)?;
    let base = Base::open(opts.base)?;
    let mut warnings = Vec::new();
    if !scan.oversized_scripts.is_empty() {
        warnings.push(format!(
            "app/.profile.d/{} is over {} KiB: Env lists no .profile.d exports (the launcher still sources every script at start)",
            scan.oversized_scripts.join(", app/.profile.d/"),
            MAX_PROFILE_SCRIPT / 1024
        ));
    }
    let rewritten = if scan.canonical {
        None
    } else {
        let layer = layer::rewrite(slug, &std::env::temp_dir())?;
        scan.sha256_hex = layer.sha256_hex.clone();
        scan.size = layer.size;
        scan.diff_id = layer.diff_id.clone();
        warnings.push(
            "the slug's modes or owners are not those slug build writes: its layer was written again with normalised modes"
                .to_string(),
        );
        Some(layer)
    };
    // The release written into the slug (its checksum covers it) wins over the manifest.
    let release = match (&scan.embedded, &slug.release) {
        // The commit is only in the manifest, when there is one.
        (Some(embedded), manifest) => embedded.clone().into_release(
            &scan.sha256_hex,
            scan.size,
            Vec::new(),
            manifest.as_ref().and_then(|m| m.commit.clone()),
        ),
        (None, Some(release)) => release.clone(),
        (None, None) => return Err(ImageError::NoManifest(slug.path.clone())),
    };
    let release = &release;
    let launcher = launcher::layer(&release.process_types).map_err(ImageError::Launcher)?;
    let launcher_hex = format!("{:x}", Sha256::digest(&launcher.gzip));
    let created = oci::rfc3339(source_date_epoch());

    // Layers: the base's, the slug, the launcher.
    let mut blobs = BTreeMap::new();
    let mut layers = Vec::new();
    for d in &base.manifest.layers {
        let path = base.layer_path(d)?;
        let mut d = d.clone();
        d.media_type = oci::oci_layer_media_type(&d.media_type).to_string();
        if let Some(hex) = d.sha256_hex() {
            blobs.insert(hex.to_string(), Source::File(path));
        }
        layers.push(d);
    }
    let mut slug_layer = Descriptor::new(
        oci::LAYER_GZIP,
        format!("sha256:{}", scan.sha256_hex),
        scan.size,
    );
    slug_layer.annotations.insert(
        "org.opencontainers.image.title".into(),
        file_name(&slug.path),
    );
    layers.push(slug_layer);
    let layer_path = match &rewritten {
        Some(layer) => layer.file.path().to_path_buf(),
        None => slug.path.clone(),
    };
    blobs.insert(scan.sha256_hex.clone(), Source::File(layer_path));
    layers.push(Descriptor::new(
        oci::LAYER_GZIP,
        format!("sha256:{launcher_hex}"),
        launcher.gzip.len() as u64,
    ));

    // Config: the base's, with the slug's env, entrypoint, user and labels.
    let mut config = base.config.clone();
    config.created = Some(created.clone());
    let mut cc = config.config.take().unwrap_or_default();
    cc.env = Some(launch_env(&cc, opts.port, release, &scan.profile_scripts));
    cc.working_dir = Some("/app".to_string());
    cc.entrypoint = Some(vec![launcher::LAUNCHER_PATH.to_string()]);
    // The process a buildpack marked `default = true`, else `web`, as the lifecycle's
    // exporter sets the default process as the image's command.
    cc.cmd = release
        .default_process
        .clone()
        .filter(|d| release.process_types.contains_key(d))
        .or_else(|| {
            release
                .process_types
                .contains_key("web")
                .then(|| "web".to_string())
        })
        .map(|d| vec![d]);
    cc.user = image_user(&cc, opts.user);
    if release.process_types.contains_key("web") {
        cc.exposed_ports
            .get_or_insert_with(BTreeMap::new)
            .insert(format!("{}/tcp", opts.port), serde_json::json!({}));
    }
    let labels = cc.labels.get_or_insert_with(BTreeMap::new);
    // The buildpacks' `launch.toml` labels, under the engine's own.
    labels.extend(release.labels.clone());
    labels.insert(LABEL_CHECKSUM.into(), release.checksum.clone());
    labels.insert(
        LABEL_PROCESS_TYPES.into(),
        String::from_utf8_lossy(&layout::to_json(&release.process_types)).into_owned(),
    );
    labels.insert(LABEL_STACK.into(), release.stack.name.clone());
    if let Some(commit) = &release.commit {
        labels.insert("org.opencontainers.image.revision".into(), commit.clone());
    }
    let user = cc.user.clone().filter(|u| !u.is_empty());
    config.config = Some(cc);
    config.rootfs = RootFs {
        kind: "layers".to_string(),
        diff_ids: base
            .config
            .rootfs
            .diff_ids
            .iter()
            .cloned()
            .chain([scan.diff_id.clone(), launcher.diff_id.clone()])
            .collect(),
    };
    if let Some(history) = config.history.as_mut() {
        for created_by in [
            format!("slug image: slug {}", release.checksum),
            "slug image: launcher /slugc/launch".to_string(),
        ] {
            history.push(History {
                created: Some(created.clone()),
                created_by: Some(created_by),
                comment: None,
                empty_layer: None,
                other: BTreeMap::new(),
            });
        }
    }
    let config_json = layout::to_json(&config);
    let config_hex = format!("{:x}", Sha256::digest(&config_json));

    let mut manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MANIFEST.to_string()),
        config: Descriptor::new(
            oci::CONFIG,
            format!("sha256:{config_hex}"),
            config_json.len() as u64,
        ),
        layers,
        annotations: BTreeMap::new(),
        other: BTreeMap::new(),
    };
    manifest.annotations.insert(
        "org.opencontainers.image.base.digest".into(),
        base.manifest_digest.clone(),
    );
    manifest
        .annotations
        .insert("org.opencontainers.image.created".into(), created);
    let manifest_json = layout::to_json(&manifest);
    let manifest_hex = format!("{:x}", Sha256::digest(&manifest_json));

    let mut descriptor = Descriptor::new(
        oci::MANIFEST,
        format!("sha256:{manifest_hex}"),
        manifest_json.len() as u64,
    );
    descriptor.platform = Some(oci::Platform {
        architecture: config.architecture.clone(),
        os: config.os.clone(),
        other: BTreeMap::new(),
    });
    descriptor
        .annotations
        .insert(oci::REF_NAME.into(), tag.to_string());
    // containerd's (and `docker buildx`'s) name for the full reference.
    descriptor
        .annotations
        .insert("io.containerd.image.name".into(), format!("{repo}:{tag}"));

    let layer_hexes = config_layer_hexes(&manifest);
    blobs.insert(launcher_hex, Source::Bytes(launcher.gzip));
    blobs.insert(config_hex.clone(), Source::Bytes(config_json));
    blobs.insert(manifest_hex, Source::Bytes(manifest_json));
    let image = Image {
        blobs,
        manifest: descriptor,
        config_hex,
        layer_hexes,
    };

    Ok(Assembled {
        digest: image.manifest.digest.clone(),
        image,
        reference: format!("{repo}:{tag}"),
        base_layers: base.manifest.layers.len(),
        slug_sha256: scan.sha256_hex,
        rewritten: rewritten.is_some(),
        user,
        warnings,
        _layer_file: rewritten.map(|l| l.file),
    })
}

/// `--user`, else the base's `User`, else the `CNB_USER_ID:CNB_GROUP_ID` that CNB run images
/// declare in their env; `None` (root) when the base names no user.
fn image_user(base: &ContainerConfig, flag: Option<&str>) -> Option<String> {
    if let Some(user) = flag {
        return Some(user.to_string());
    }
    if let Some(user) = base.user.as_ref().filter(|u| !u.is_empty()) {
        return Some(user.clone());
    }
    let env = |name: &str| {
        base.env.iter().flatten().find_map(|kv| {
            kv.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .filter(|v| !v.is_empty())
        })
    };
    match (env("CNB_USER_ID"), env("CNB_GROUP_ID")) {
        (Some(uid), Some(gid)) => Some(format!("{uid}:{gid}")),
        _ => None,
    }
}

fn config_layer_hexes(manifest: &Manifest) -> Vec<String> {
    manifest
        .layers
        .iter()
        .filter_map(|d| d.sha256_hex().map(str::to_string))
        .collect()
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The image's `created` time: `SOURCE_DATE_EPOCH` when set (reproducible-builds.org), else
/// the Unix epoch, so that the config's digest depends on its inputs only.
fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `Env`: the base's, then `HOME` and `PORT`, the release's config vars, then what the
/// `.profile.d` scripts export, with `$HOME` = `/app`. Sorted by name.
fn launch_env(
    base: &ContainerConfig,
    port: u16,
    release: &slug_format::Release,
    scripts: &[(String, String)],
) -> Vec<String> {
    let mut env: BTreeMap<String, String> = base
        .env
        .iter()
        .flatten()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.insert("HOME".into(), "/app".into());
    env.insert("PORT".into(), port.to_string());
    for (k, v) in &release.config_vars {
        env.insert(k.clone(), v.clone());
    }
    for (_, script) in scripts {
        profile::apply_script(script, &mut env);
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Split `name[:tag]` and check it is a reference podman and docker accept: lowercase path
/// components (`[a-z0-9]+([._-][a-z0-9]+)*` separated by `/`, the first may be a
/// `host[:port]`), a tag of `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn split_tag(reference: &str) -> Result<(&str, &str), ImageError> {
    let bad = |reason| ImageError::Tag {
        tag: reference.to_string(),
        reason,
    };
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match reference[last_slash..].rfind(':') {
        Some(i) => (
            &reference[..last_slash + i],
            &reference[last_slash + i + 1..],
        ),
        None => (reference, "latest"),
    };
    if reference.contains('@') {
        return Err(bad("digests are not tags; give name:tag"));
    }
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !tag_ok {
        return Err(bad(
            "the tag must be 1-128 of A-Z a-z 0-9 _ . - (not starting with . or -)",
        ));
    }
    let mut parts: Vec<&str> = repo.split('/').collect();
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        let host_ok = host.split(':').next().is_some_and(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        });
        if !host_ok {
            return Err(bad("invalid registry host"));
        }
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let component_ok = |c: &str| {
        c.bytes().next().is_some_and(alnum)
            && c.bytes().last().is_some_and(alnum)
            && c.bytes().all(|b| alnum(b) || b"._-".contains(&b))
            && !c.contains("..")
            && !c.contains("._")
            && !c.contains("_.")
    };
    if repo.is_empty() || !parts.iter().all(|c| component_ok(c)) {
        return Err(bad(
            "the name must be lowercase letters, digits and . _ - separators, in /-separated parts",
        ));
    }
    Ok((repo, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_from_flag_base_or_cnb_env() {
        let mut base = ContainerConfig::default();
        assert_eq!(image_user(&base, None), None);
        base.env = Some(vec!["CNB_USER_ID=1002".into(), "CNB_GROUP_ID=1000".into()]);
        assert_eq!(image_user(&base, None).as_deref(), Some("1002:1000"));
        base.user = Some("heroku".into());
        assert_eq!(image_user(&base, None).as_deref(), Some("heroku"));
        assert_eq!(image_user(&base, Some("0")).as_deref(), Some("0"));
    }

    #[test]
    fn tags() {
        assert_eq!(split_tag("myapp:1.0").unwrap(), ("myapp", "1.0"));
        assert_eq!(split_tag("myapp").unwrap(), ("myapp", "latest"));
        assert_eq!(
            split_tag("registry.example:5000/team/my-app:v2_x").unwrap(),
            ("registry.example:5000/team/my-app", "v2_x")
        );
        for bad in [
            "MyApp:1",
            "myapp:",
            "myapp:-x",
            "my_:1",
            "a..b:1",
            "a@sha256:00",
            ":1",
            "a//b:1",
        ] {
            assert!(split_tag(bad).is_err(), "{bad}");
        }
    }
}
