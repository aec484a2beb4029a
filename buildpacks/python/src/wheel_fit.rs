//! A Python line that fits the app's pinned wheels, when the app pins no Python: an old pin
//! of a binary package (`orjson==3.10.6`, `pyarrow==14.0.1`) has wheels only for the Python
//! lines that existed at its release, and on a newer default the installer falls back to
//! building its sdist, which needs a compiler toolchain (Rust, C++) a build rarely has.
//!
//! For each exact pin of `requirements.txt`, the files of that release are read from the
//! configured index's simple API (PEP 691 JSON, or the PEP 503 HTML page), as uv does when it
//! resolves; the answer is kept per (package, version) for the build. A release with no
//! wheel, or with a pure-Python wheel (`py3-none-any`), fits every line and never constrains.
//! The newest available line for which every other pinned release has a wheel is chosen,
//! with the reason in the log and the `.python-version` that pins it. A pinned Python is never
//! overridden (the caller only asks for the default), and an index that cannot be asked
//! leaves the default in place with a note: the install, not this check, decides the build.

use crate::index_config::IndexConfig;
use crate::pins::{normalize, Pin};
use crate::python_version::{self, PythonVersion, VersionRequest};
use serde::Deserialize;
use slugc_diagnostics::{Rule, Warning};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Project pages asked for at once.
const PARALLEL: usize = 8;

/// The most of a project page read (bytes).
const PAGE_CAP: u64 = 64 << 20;

/// A Python line: `(major, minor)`.
pub type Line = (u16, u16);

/// What the check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// No pinned release constrains the default line.
    Default,
    /// The default line lacks wheels for some pins; `line` has wheels for all of them.
    Line { line: Line, warning: Warning },
    /// No available line has wheels for every pin: the default stays, with this warning.
    NoLine(Warning),
    /// The index could not be asked: the default stays, with this note.
    Unchecked(String),
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("cannot reach {url}: {detail}")]
    Network { url: String, detail: String },
    #[error("cannot read the answer of {url}: {detail}")]
    Body { url: String, detail: String },
}

/// The files of releases, asked of one index, each (package, version) once.
pub struct Index {
    agent: ureq::Agent,
    base: String,
    /// Normalised package name → every file name its project page lists.
    pages: BTreeMap<String, Vec<String>>,
}

impl Index {
    pub fn new(config: &IndexConfig) -> Self {
        Self {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout_read(Duration::from_secs(60))
                .build(),
            base: config.index_url().trim_end_matches('/').to_string(),
            pages: BTreeMap::new(),
        }
    }

    /// Ask for the project pages of `pins` not asked yet, a few at a time: an app pins tens
    /// of packages, and each answer is a round trip and up to a few MB. The first failure is
    /// returned (the check then does not run at all).
    fn prefetch(&mut self, pins: &[Pin]) -> Result<(), IndexError> {
        let wanted: BTreeSet<String> = pins
            .iter()
            .map(Pin::key)
            .filter(|k| !self.pages.contains_key(k))
            .collect();
        let queue = std::sync::Mutex::new(wanted.into_iter().collect::<Vec<_>>());
        let done = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..PARALLEL {
                scope.spawn(|| loop {
                    let Some(key) = queue.lock().ok().and_then(|mut q| q.pop()) else {
                        return;
                    };
                    let files = self.project_files(&key);
                    if let Ok(mut d) = done.lock() {
                        d.push((key, files));
                    }
                });
            }
        });
        for (key, files) in done.into_inner().unwrap_or_default() {
            self.pages.insert(key, files?);
        }
        Ok(())
    }

    /// The wheel files of `pin`'s release.
    fn wheels(&mut self, pin: &Pin) -> Result<Vec<String>, IndexError> {
        let key = pin.key();
        if !self.pages.contains_key(&key) {
            let files = self.project_files(&key)?;
            self.pages.insert(key.clone(), files);
        }
        let files = self.pages.get(&key).map(Vec::as_slice).unwrap_or_default();
        Ok(files
            .iter()
            .filter(|f| {
                wheel_release(f).is_some_and(|(n, v)| n == key && same_version(v, &pin.version))
            })
            .cloned()
            .collect())
    }

    /// The file names of a project page: the JSON form when the index serves it, else the
    /// HTML anchors.
    fn project_files(&self, key: &str) -> Result<Vec<String>, IndexError> {
        let url = format!("{}/{key}/", self.base);
        let response = self
            .agent
            .get(&url)
            .set(
                "Accept",
                "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
            )
            .call();
        // A project the index does not know (one from an extra index or `--find-links`)
        // constrains nothing here; the install finds it where it is.
        if let Err(ureq::Error::Status(404, _)) = response {
            return Ok(Vec::new());
        }
        let response = response.map_err(|e| match e {
            ureq::Error::Status(status, _) => IndexError::Status {
                url: url.clone(),
                status,
            },
            ureq::Error::Transport(t) => IndexError::Network {
                url: url.clone(),
                detail: t.to_string(),
            },
        })?;
        let json = response.content_type().contains("json");
        // Read whole, up to a cap: a big project's page (every release's files) is a few MB,
        // over ureq's 10 MB `into_string` limit for some.
        let mut body = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(response.into_reader(), PAGE_CAP),
            &mut body,
        )
        .map_err(|e| IndexError::Body {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        if json {
            let page: ProjectPage = serde_json::from_str(&body).map_err(|e| IndexError::Body {
                url: url.clone(),
                detail: e.to_string(),
            })?;
            Ok(page.files.into_iter().map(|f| f.filename).collect())
        } else {
            Ok(html_anchors(&body))
        }
    }
}

/// PEP 691's project page, the fields read.
#[derive(Deserialize)]
struct ProjectPage {
    files: Vec<ProjectFile>,
}

#[derive(Deserialize)]
struct ProjectFile {
    filename: String,
}

/// The text of each `<a …>TEXT</a>` of a PEP 503 page: the file names.
fn html_anchors(html: &str) -> Vec<String> {
    html.split("<a ")
        .skip(1)
        .filter_map(|a| {
            let text = &a[a.find('>')? + 1..];
            Some(text[..text.find("</a>")?].trim().to_string())
        })
        .collect()
}

/// A wheel file name's normalised project name and version
/// (`{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`, PEP 427).
fn wheel_release(file: &str) -> Option<(String, &str)> {
    let stem = file.strip_suffix(".whl")?;
    let mut parts = stem.split('-');
    let name = parts.next()?;
    let version = parts.next()?;
    Some((normalize(name), version))
}

fn same_version(a: &str, b: &str) -> bool {
    use std::str::FromStr;
    match (
        pep440_rs::Version::from_str(a),
        pep440_rs::Version::from_str(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The wheel's tag triples (`cp312`, `cp312`, `manylinux_2_17_x86_64`), expanded from its
/// compressed tag sets (`py2.py3`).
fn tags(file: &str) -> Vec<(String, String, String)> {
    let Some(stem) = file.strip_suffix(".whl") else {
        return Vec::new();
    };
    let parts: Vec<&str> = stem.split('-').collect();
    let [.., python, abi, platform] = parts.as_slice() else {
        return Vec::new();
    };
    if parts.len() < 5 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for p in python.split('.') {
        for a in abi.split('.') {
            for pl in platform.split('.') {
                out.push((p.to_string(), a.to_string(), pl.to_string()));
            }
        }
    }
    out
}

/// A wheel that works on every Python 3 (`py3-none-any`, `py2.py3-none-any`).
fn is_pure(file: &str) -> bool {
    tags(file)
        .iter()
        .any(|(p, a, pl)| (p == "py3" || p.starts_with("py3")) && a == "none" && pl == "any")
}

/// The wheel platform suffix for a CNB arch.
fn wheel_arch(arch: &str) -> &str {
    match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => other,
    }
}

/// Whether the wheel installs on CPython `line` on glibc Linux `arch` (PEP 425 tags, PEP 600
/// `manylinux_*`, the stable ABI `abi3` of PEP 384 for its line and later ones).
fn fits(file: &str, line: Line, arch: &str) -> bool {
    let cp = format!("cp{}{}", line.0, line.1);
    let py = format!("py{}{}", line.0, line.1);
    let arch = wheel_arch(arch);
    tags(file).iter().any(|(p, a, pl)| {
        let platform = pl == "any"
            || ((pl.starts_with("manylinux") || pl.starts_with("linux_"))
                && pl.ends_with(&format!("_{arch}")));
        let python = match a.as_str() {
            "none" => p == "py3" || *p == py || *p == cp,
            "abi3" => p
                .strip_prefix("cp3")
                .and_then(|m| m.parse::<u16>().ok())
                .is_some_and(|m| line.0 == 3 && m <= line.1),
            abi => {
                *p == cp && (abi == cp || abi.strip_prefix(cp.as_str()).is_some_and(|r| r == "m"))
            }
        };
        platform && python
    })
}

/// The pins that constrain (their release has wheels, none of them pure), each with its
/// wheel files.
fn constraining(index: &mut Index, pins: &[Pin]) -> Result<Vec<(Pin, Vec<String>)>, IndexError> {
    index.prefetch(pins)?;
    let mut found = Vec::new();
    for pin in pins {
        let wheels = index.wheels(pin)?;
        if !wheels.is_empty() && !wheels.iter().any(|w| is_pure(w)) {
            found.push((pin.clone(), wheels));
        }
    }
    Ok(found)
}

/// The request to serve: `request` itself unless it is the default, else the line that fits
/// the app's pinned wheels among `available` (the log says why, or why it could not check).
pub fn request(
    app_dir: &std::path::Path,
    request: &VersionRequest,
    available: &[PythonVersion],
    arch: &str,
    config: &IndexConfig,
) -> VersionRequest {
    if *request != VersionRequest::Default {
        return request.clone();
    }
    let pins = crate::pins::read(app_dir);
    let lines = lines_of(
        available
            .iter()
            .copied()
            .filter(python_version::is_supported),
    );
    match fit(&pins, &lines, arch, &mut Index::new(config)) {
        Fit::Default => VersionRequest::Default,
        Fit::Line { line, warning } => {
            crate::log::warning(&warning.message);
            VersionRequest::Minor {
                major: line.0,
                minor: line.1,
            }
        }
        Fit::NoLine(warning) => {
            crate::log::warning(&warning.message);
            VersionRequest::Default
        }
        Fit::Unchecked(note) => {
            crate::log::info(note);
            VersionRequest::Default
        }
    }
}

/// The lines of `versions`, newest first.
fn lines_of(versions: impl IntoIterator<Item = PythonVersion>) -> Vec<Line> {
    let set: BTreeSet<Line> = versions.into_iter().map(|v| (v.major, v.minor)).collect();
    set.into_iter().rev().collect()
}

/// The decision for an app that pins no Python: `lines` are the available lines, newest
/// (the default) first.
pub fn fit(pins: &[Pin], lines: &[Line], arch: &str, index: &mut Index) -> Fit {
    let Some(&default) = lines.first() else {
        return Fit::Default;
    };
    if pins.is_empty() {
        return Fit::Default;
    }
    let constraining = match constraining(index, pins) {
        Ok(c) => c,
        Err(e) => {
            return Fit::Unchecked(format!(
                "Could not check the pinned packages' wheels against the index ({e}); keeping \
                 the default Python {}.{}",
                default.0, default.1
            ))
        }
    };
    decide(&constraining, lines, arch)
}

fn decide(constraining: &[(Pin, Vec<String>)], lines: &[Line], arch: &str) -> Fit {
    let Some(&default) = lines.first() else {
        return Fit::Default;
    };
    let lacking = |line: Line| -> Vec<&Pin> {
        constraining
            .iter()
            .filter(|(_, wheels)| !wheels.iter().any(|w| fits(w, line, arch)))
            .map(|(pin, _)| pin)
            .collect()
    };
    let blockers = lacking(default);
    if blockers.is_empty() {
        return Fit::Default;
    }
    let named = blockers
        .iter()
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect::<Vec<_>>()
        .join(", ");
    let (verb, pronoun) = if blockers.len() == 1 {
        ("has", "it")
    } else {
        ("have", "them")
    };
    let show = |l: Line| format!("{}.{}", l.0, l.1);
    match lines.iter().copied().find(|&l| lacking(l).is_empty()) {
        Some(line) => Fit::Line {
            line,
            warning: Warning::new(
                Rule::PythonWheelFit,
                format!(
                    "Python {} instead of the default {}: {named} {verb} no wheel for Python {} \
                     (the install would build {pronoun} from source), and Python {} has wheels \
                     for every pinned package; pin it with a .python-version file holding `{}`",
                    show(line),
                    show(default),
                    show(default),
                    show(line),
                    show(line)
                ),
            ),
        },
        None => Fit::NoLine(Warning::new(
            Rule::PythonWheelFit,
            format!(
                "{named} {verb} no wheel for Python {} nor for any other available line ({}): \
                 the install builds {pronoun} from source; upgrade {pronoun} to a release with \
                 wheels for Python {}",
                show(default),
                lines
                    .iter()
                    .map(|&l| show(l))
                    .collect::<Vec<_>>()
                    .join(", "),
                show(default)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(name: &str, version: &str) -> Pin {
        Pin {
            name: name.to_string(),
            version: version.to_string(),
        }
    }

    #[test]
    fn wheel_tags_by_line_and_arch() {
        let cp312 = "orjson-3.10.6-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";
        assert!(fits(cp312, (3, 12), "amd64"));
        assert!(!fits(cp312, (3, 13), "amd64"));
        assert!(!fits(cp312, (3, 12), "arm64"));
        let abi3 = "cryptography-42.0.0-cp39-abi3-manylinux_2_28_x86_64.whl";
        assert!(fits(abi3, (3, 13), "amd64"));
        assert!(!fits(abi3, (3, 8), "amd64"));
        assert!(!fits(
            "x-1-cp312-cp312-musllinux_1_1_x86_64.whl",
            (3, 12),
            "amd64"
        ));
        assert!(!fits("x-1-cp312-cp312-win_amd64.whl", (3, 12), "amd64"));
        assert!(is_pure("gunicorn-20.1.0-py3-none-any.whl"));
        assert!(is_pure("six-1.16.0-py2.py3-none-any.whl"));
        assert!(!is_pure(cp312));
        assert_eq!(
            wheel_release("Foo_Bar-1.0-1-cp312-cp312-linux_x86_64.whl"),
            Some(("foo-bar".to_string(), "1.0"))
        );
    }

    #[test]
    fn the_newest_line_with_wheels_for_every_pin_is_chosen() {
        let lines = [(3, 13), (3, 12), (3, 11)];
        let orjson = (
            pin("orjson", "3.10.6"),
            vec![
                "orjson-3.10.6-cp311-cp311-manylinux_2_17_x86_64.whl".to_string(),
                "orjson-3.10.6-cp312-cp312-manylinux_2_17_x86_64.whl".to_string(),
            ],
        );
        let Fit::Line { line, warning } = decide(std::slice::from_ref(&orjson), &lines, "amd64")
        else {
            panic!()
        };
        assert_eq!(line, (3, 12));
        assert_eq!(
            warning.message,
            "Python 3.12 instead of the default 3.13: orjson==3.10.6 has no wheel for Python \
             3.13 (the install would build it from source), and Python 3.12 has wheels for \
             every pinned package; pin it with a .python-version file holding `3.12`"
        );
        // Another pin whose wheels stop at 3.11 takes the choice down to 3.11.
        let older = (
            pin("pyarrow", "12.0.1"),
            vec!["pyarrow-12.0.1-cp311-cp311-manylinux_2_17_x86_64.whl".to_string()],
        );
        let Fit::Line { line, .. } = decide(&[orjson.clone(), older], &lines, "amd64") else {
            panic!()
        };
        assert_eq!(line, (3, 11));
        // Wheels for the default: nothing to say.
        assert_eq!(
            decide(std::slice::from_ref(&orjson), &[(3, 12)], "amd64"),
            Fit::Default
        );
        // No line fits: the default stays, with a warning.
        let Fit::NoLine(w) = decide(&[orjson], &[(3, 13)], "amd64") else {
            panic!()
        };
        assert!(w
            .message
            .starts_with("orjson==3.10.6 has no wheel for Python 3.13"));
    }

    #[test]
    fn an_index_that_cannot_be_reached_keeps_the_default() {
        // Port 9 (discard) on loopback: nothing listens there.
        let config = IndexConfig {
            index_url: Some("http://127.0.0.1:9/simple".to_string()),
            ..IndexConfig::default()
        };
        let mut index = Index::new(&config);
        let fit = fit(
            &[pin("orjson", "3.10.6")],
            &[(3, 13), (3, 12)],
            "amd64",
            &mut index,
        );
        let Fit::Unchecked(note) = fit else {
            panic!("{fit:?}")
        };
        assert!(
            note.starts_with("Could not check the pinned packages' wheels against the index (")
                && note.ends_with("keeping the default Python 3.13"),
            "{note}"
        );
    }

    /// Against the real index (PyPI, or the one this machine's pip is configured for).
    #[test]
    fn the_index_lists_the_files_of_each_pinned_release() {
        let mut env = crate::tool_env::ToolEnv::default();
        if let Ok(url) = std::env::var("PIP_INDEX_URL") {
            env.set("PIP_INDEX_URL", &url);
        }
        let mut index = Index::new(&IndexConfig::read(&env));
        let pins = [
            pin("orjson", "3.10.6"),
            pin("gunicorn", "20.1.0"),
            pin("Flask", "2.0.3"),
        ];
        let found = constraining(&mut index, &pins).unwrap();
        // gunicorn and Flask have pure wheels: only orjson constrains.
        assert_eq!(found.len(), 1, "{found:?}");
        let (orjson, wheels) = &found[0];
        assert_eq!(orjson.name, "orjson");
        assert!(
            wheels.iter().all(|w| w.starts_with("orjson-3.10.6-")),
            "{wheels:?}"
        );
        assert!(
            wheels.iter().any(|w| fits(w, (3, 12), "amd64")),
            "{wheels:?}"
        );
        assert!(
            !wheels.iter().any(|w| fits(w, (3, 13), "amd64")),
            "{wheels:?}"
        );
        assert_eq!(
            decide(&found, &[(3, 13), (3, 12)], "amd64"),
            Fit::Line {
                line: (3, 12),
                warning: Warning::new(
                    Rule::PythonWheelFit,
                    "Python 3.12 instead of the default 3.13: orjson==3.10.6 has no wheel for \
                     Python 3.13 (the install would build it from source), and Python 3.12 has \
                     wheels for every pinned package; pin it with a .python-version file \
                     holding `3.12`"
                )
            }
        );
        // One page per package for the build.
        assert_eq!(index.pages.len(), 3);
    }

    #[test]
    fn pep_503_pages_list_their_files() {
        let html = "<html><body><a href=\"../../x/orjson-3.10.6.tar.gz#sha256=1\">orjson-3.10.6.tar.gz</a>\n\
                    <a href=\"y\" data-requires-python=\"&gt;=3.8\">orjson-3.10.6-cp312-cp312-manylinux_2_17_x86_64.whl</a></body></html>";
        assert_eq!(
            html_anchors(html),
            [
                "orjson-3.10.6.tar.gz",
                "orjson-3.10.6-cp312-cp312-manylinux_2_17_x86_64.whl"
            ]
        );
    }
}
