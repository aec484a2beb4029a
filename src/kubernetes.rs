//! Kubernetes manifests for a slug's image.
//!
//! For an image made by `slug image`: one `ConfigMap` with the config vars (the release's
//! defaults, then `--env-file`, then `--env`: the user's explicit input, so they belong here),
//! one `Deployment` per process type whose container runs the image with the process type as
//! its only argument (the launcher in the image starts it), and a `Service` for `web` on
//! `PORT`. Replicas come from `--scale`; a type it does not name runs once, as `slug run`
//! does. Output is multi-document YAML, objects in a fixed order, for `kubectl apply -f -`.

use crate::exit::{self, ExitCode};
use serde::{Deserialize, Serialize};
use slug_format::reader::ReadError;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The slug, the image that runs it, and what the objects say about it.
#[derive(Debug, Clone)]
pub struct Options {
    /// The slug: `sha256-<hex>.tgz`, its `sha256-<hex>.json` manifest, or a sha256 prefix of a
    /// slug in the store.
    pub slug: String,
    /// The store to look prefixes up in [default: `dirs::store`].
    pub store: Option<PathBuf>,
    /// The image the Deployments run.
    pub image: String,
    /// Replicas per process type, `TYPE=N` each (default: 1 each).
    pub scale: Vec<String>,
    /// The app's name, prefix of every object's name (default: the image's name).
    pub name: Option<String>,
    /// Config vars for the ConfigMap, `KEY=VALUE` each; they win over `env_file`.
    pub env: Vec<String>,
    /// `.env` files of config vars for the ConfigMap.
    pub env_file: Vec<PathBuf>,
    /// The `PORT` the web process listens on and the Service serves.
    pub port: u16,
    /// The release manifest, when it is not beside the slug.
    pub manifest: Option<PathBuf>,
    /// Unpack limits instead of the defaults.
    pub limits: slug_format::reader::LimitOverride,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestsError {
    #[error("--scale {0:?}: expected TYPE=N, e.g. web=3,worker=2")]
    BadScale(String),
    #[error("--scale names process type {name:?}, which the slug does not have; it has: {known}")]
    UnknownType { name: String, known: String },
    #[error("--env {0:?}: expected KEY=VALUE with KEY of letters, digits and _")]
    BadEnv(String),
    #[error(transparent)]
    EnvFile(#[from] crate::config_vars::DotenvError),
    #[error("invalid --name {name:?}: {reason}")]
    Name { name: String, reason: String },
    #[error("{path}: process types {a:?} and {b:?} both become the Kubernetes name {dns:?}")]
    TypeClash {
        path: PathBuf,
        a: String,
        b: String,
        dns: String,
    },
    #[error("{path}: the slug declares no process types, so there is nothing to deploy")]
    NoProcessTypes { path: PathBuf },
    #[error(transparent)]
    Slug(#[from] ReadError),
    #[error("{0}: no release manifest beside the slug; pass --manifest FILE")]
    NoManifest(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ExitCode for ManifestsError {
    fn exit_code(&self) -> i32 {
        match self {
            ManifestsError::BadScale(_)
            | ManifestsError::UnknownType { .. }
            | ManifestsError::BadEnv(_)
            | ManifestsError::Name { .. } => exit::USAGE,
            ManifestsError::Slug(e) if e.is_not_found() => exit::USAGE,
            ManifestsError::Slug(e) if !e.is_bad_slug() => exit::OTHER,
            ManifestsError::EnvFile(_)
            | ManifestsError::TypeClash { .. }
            | ManifestsError::NoProcessTypes { .. }
            | ManifestsError::NoManifest(_)
            | ManifestsError::Slug(_) => exit::INVALID_INPUT,
            ManifestsError::Write { .. } => exit::OTHER,
        }
    }
}

// The Kubernetes objects, as much of their schema as is written (field names as the API's).

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A pod template's metadata: labels and annotations, no name (pods get generated ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateMeta {
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: DeploymentSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    pub replicas: u32,
    pub selector: LabelSelector,
    pub template: PodTemplate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    pub metadata: TemplateMeta,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub containers: Vec<Container>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub env_from: Vec<EnvFromSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvFromSource {
    pub config_map_ref: NameRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameRef {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub name: String,
    pub container_port: u16,
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub tcp_socket: TcpSocket,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpSocket {
    /// A port name (an IntOrString in the API).
    pub port: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ServiceSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "type")]
    pub kind: String,
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<ServicePort>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub name: String,
    pub port: u16,
    pub target_port: String,
    pub protocol: String,
}

const LABEL_NAME: &str = "app.kubernetes.io/name";
const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const ANNOTATION_CHECKSUM: &str = "org.slugc.slug.checksum";

/// RFC 1123 label (what Kubernetes calls a DNS label): 1-63 of `a-z 0-9 -`, alphanumeric at
/// both ends. Service names also need a letter first (RFC 1035); the names here start with
/// the app name, which is checked for that.
pub fn is_dns_label(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| alnum(b) || b == b'-')
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum)
}

/// A process type's name as a DNS label: lowercase, `_` → `-`, no `-` at the ends.
fn dns_type(name: &str) -> String {
    name.to_ascii_lowercase()
        .replace('_', "-")
        .trim_matches('-')
        .to_string()
}

/// The app name from an image reference: its last path part, without tag or digest.
fn name_from_image(image: &str) -> String {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    let no_tag = last.split(':').next().unwrap_or(last);
    let mut s: String = no_tag
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s = s.trim_matches('-').to_string();
    s
}

fn parse_scale(
    specs: &[String],
    types: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, u32>, ManifestsError> {
    let mut scale = BTreeMap::new();
    for spec in specs.iter().filter(|s| !s.is_empty()) {
        let (name, count) = spec
            .split_once('=')
            .ok_or_else(|| ManifestsError::BadScale(spec.clone()))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| ManifestsError::BadScale(spec.clone()))?;
        let name = name.trim();
        if !types.contains_key(name) {
            return Err(ManifestsError::UnknownType {
                name: name.to_string(),
                known: types.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        scale.insert(name.to_string(), count);
    }
    Ok(scale)
}

fn config_vars(
    args: &Options,
    defaults: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ManifestsError> {
    let mut vars = defaults.clone();
    for file in &args.env_file {
        vars.extend(crate::config_vars::read(file)?);
    }
    for kv in &args.env {
        match kv.split_once('=') {
            Some((k, v)) if crate::config_vars::valid_key(k) => {
                vars.insert(k.to_string(), v.to_string());
            }
            _ => return Err(ManifestsError::BadEnv(kv.clone())),
        }
    }
    Ok(vars)
}

/// Everything `slug manifests` writes, in output order.
pub struct Objects {
    pub config_map: ConfigMap,
    pub deployments: Vec<Deployment>,
    pub service: Option<Service>,
}

impl Objects {
    pub fn to_yaml(&self) -> String {
        let mut docs = vec![serde_norway::to_string(&self.config_map)];
        docs.extend(self.deployments.iter().map(serde_norway::to_string));
        docs.extend(self.service.iter().map(serde_norway::to_string));
        // Plain string-keyed structs always serialise.
        docs.into_iter()
            .filter_map(Result::ok)
            .map(|d| format!("---\n{d}"))
            .collect()
    }
}

pub fn objects(args: &Options) -> Result<Objects, ManifestsError> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => name_from_image(&args.image),
    };
    let name_err = |reason: &str| ManifestsError::Name {
        name: name.clone(),
        reason: reason.to_string(),
    };
    if !is_dns_label(&name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(name_err(
            "use 1-63 lowercase letters, digits and '-', starting with a letter \
             (give --name when the image's name is not one)",
        ));
    }
    let store = args.store.clone().unwrap_or_else(crate::dirs::store);
    let mut slug = slug_format::reader::open(&args.slug, &store, args.manifest.as_deref())?;
    slug.limits = slug.limits.overridden(args.limits);
    // The same checks as `slug run` makes before anything of it is used, in the pass that
    // reads the release the build wrote into the slug: that one wins over the manifest.
    let embedded = slug.embedded_release()?;
    let (release, release_path) = match (embedded, &slug.release, &slug.manifest_path) {
        (Some(embedded), _, _) => (
            embedded.into_release(
                &slug.hex,
                slug.size,
                Vec::new(),
                slug.release.as_ref().and_then(|m| m.commit.clone()),
            ),
            PathBuf::from(format!(
                "{}:{}",
                slug.path.display(),
                slug_format::release::EMBEDDED_PATH
            )),
        ),
        (None, Some(release), Some(path)) => (release.clone(), path.clone()),
        _ => return Err(ManifestsError::NoManifest(slug.path.clone())),
    };
    let (release, release_path) = (&release, &release_path);
    if release.process_types.is_empty() {
        return Err(ManifestsError::NoProcessTypes {
            path: release_path.clone(),
        });
    }
    let scale = parse_scale(&args.scale, &release.process_types)?;
    let data = config_vars(args, &release.config_vars)?;

    let base_labels = |component: Option<&str>| {
        let mut l = BTreeMap::from([
            (LABEL_NAME.to_string(), name.clone()),
            (LABEL_MANAGED_BY.to_string(), "slugc".to_string()),
        ]);
        if let Some(c) = component {
            l.insert(LABEL_COMPONENT.to_string(), c.to_string());
        }
        l
    };
    let annotations = BTreeMap::from([(ANNOTATION_CHECKSUM.to_string(), release.checksum.clone())]);
    let config_name = format!("{name}-config");
    let config_map = ConfigMap {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        metadata: ObjectMeta {
            name: config_name.clone(),
            labels: base_labels(None),
            annotations: BTreeMap::new(),
        },
        data,
    };

    // web first, then the others by name, as `slug run` orders them.
    let mut types: Vec<&String> = release.process_types.keys().collect();
    types.sort_by_key(|t| (t.as_str() != "web", t.as_str()));
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut deployments = Vec::new();
    for t in types {
        let dns = dns_type(t);
        if let Some(other) = seen.insert(dns.clone(), t.clone()) {
            return Err(ManifestsError::TypeClash {
                path: release_path.clone(),
                a: other,
                b: t.clone(),
                dns,
            });
        }
        let object_name = format!("{name}-{dns}");
        if !is_dns_label(&object_name) {
            return Err(name_err(&format!(
                "{object_name:?} (for process type {t:?}) is longer than 63 characters; give a shorter --name"
            )));
        }
        let labels = base_labels(Some(&dns));
        let selector = BTreeMap::from([
            (LABEL_NAME.to_string(), name.clone()),
            (LABEL_COMPONENT.to_string(), dns.clone()),
        ]);
        let web = t == "web";
        deployments.push(Deployment {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            metadata: ObjectMeta {
                name: object_name,
                labels: labels.clone(),
                annotations: annotations.clone(),
            },
            spec: DeploymentSpec {
                replicas: scale.get(t.as_str()).copied().unwrap_or(1),
                selector: LabelSelector {
                    match_labels: selector,
                },
                template: PodTemplate {
                    metadata: TemplateMeta {
                        labels,
                        annotations: annotations.clone(),
                    },
                    spec: PodSpec {
                        containers: vec![Container {
                            name: dns.clone(),
                            image: args.image.clone(),
                            args: vec![t.clone()],
                            env: vec![EnvVar {
                                name: "PORT".into(),
                                value: args.port.to_string(),
                            }],
                            env_from: vec![EnvFromSource {
                                config_map_ref: NameRef {
                                    name: config_name.clone(),
                                },
                            }],
                            ports: if web {
                                vec![ContainerPort {
                                    name: "http".into(),
                                    container_port: args.port,
                                    protocol: "TCP".into(),
                                }]
                            } else {
                                Vec::new()
                            },
                            readiness_probe: web.then(|| Probe {
                                tcp_socket: TcpSocket {
                                    port: "http".into(),
                                },
                            }),
                        }],
                    },
                },
            },
        });
    }
    let service = release.process_types.contains_key("web").then(|| Service {
        api_version: "v1".into(),
        kind: "Service".into(),
        metadata: ObjectMeta {
            name: format!("{name}-web"),
            labels: base_labels(Some("web")),
            annotations: BTreeMap::new(),
        },
        spec: ServiceSpec {
            kind: "ClusterIP".into(),
            selector: BTreeMap::from([
                (LABEL_NAME.to_string(), name.clone()),
                (LABEL_COMPONENT.to_string(), "web".to_string()),
            ]),
            ports: vec![ServicePort {
                name: "http".into(),
                port: args.port,
                target_port: "http".into(),
                protocol: "TCP".into(),
            }],
        },
    });
    Ok(Objects {
        config_map,
        deployments,
        service,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("myapp-web"));
        assert!(!is_dns_label("MyApp"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label("a_b"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert_eq!(dns_type("Release_Phase"), "release-phase");
    }

    #[test]
    fn names_from_images() {
        assert_eq!(name_from_image("registry.example/myapp:1.0"), "myapp");
        assert_eq!(
            name_from_image("localhost:5000/team/My_App@sha256:ab"),
            "my-app"
        );
        assert_eq!(name_from_image("web"), "web");
    }

    #[test]
    fn scale_specs() {
        let types = BTreeMap::from([
            ("web".to_string(), "a".to_string()),
            ("worker".to_string(), "b".to_string()),
        ]);
        let s = parse_scale(&["web=3".into(), "worker=0".into()], &types).unwrap();
        assert_eq!(s, BTreeMap::from([("web".into(), 3), ("worker".into(), 0)]));
        assert!(matches!(
            parse_scale(&["web".into()], &types),
            Err(ManifestsError::BadScale(_))
        ));
        assert!(matches!(
            parse_scale(&["web=-1".into()], &types),
            Err(ManifestsError::BadScale(_))
        ));
        assert!(matches!(
            parse_scale(&["clock=1".into()], &types),
            Err(ManifestsError::UnknownType { .. })
        ));
    }
}
