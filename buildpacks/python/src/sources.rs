//! Where a Python runtime can come from, in order of preference:
//! 1. an archive in python-build-standalone's `install_only` layout under a base URL
//!    (`SLUGC_PYTHON_MIRROR`), listed and verified by the release's `SHA256SUMS` file;
//! 2. an interpreter on the build host (Debian's `/usr/bin`, `PATH`, pyenv's versions).

use crate::python_version::{PythonVersion, NEWEST_KNOWN_MINOR, OLDEST_SUPPORTED_MINOR};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The upstream release location (GitHub; unreachable on some networks, then the host serves).
pub const DEFAULT_MIRROR: &str =
    "https://github.com/astral-sh/python-build-standalone/releases/download/20260924";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Mirror {
        /// Full URL of the archive.
        url: String,
        file_name: String,
        sha256: String,
    },
    Host(HostPython),
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct HostPython {
    /// The real (symlink-resolved) interpreter binary.
    pub executable: PathBuf,
    /// The standard library dir (`.../lib/python3.X`).
    pub stdlib: PathBuf,
    /// The C headers dir, when installed.
    pub include: PathBuf,
    /// The dir holding the shared libpython, when the interpreter links one.
    pub libdir: Option<PathBuf>,
    /// The shared libpython's file name (e.g. `libpython3.12.so.1.0`), when there is one.
    pub shared_lib: Option<String>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mirror { url, .. } => write!(f, "mirror archive {url}"),
            Self::Host(h) => write!(f, "host interpreter {}", h.executable.display()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub version: PythonVersion,
    pub source: Source,
}

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("cannot reach {url}: {detail}")]
    Network { url: String, detail: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("cannot read {url}: {source}")]
    Read { url: String, source: std::io::Error },
}

impl MirrorError {
    pub fn is_network(&self) -> bool {
        matches!(self, Self::Network { .. } | Self::Read { .. })
    }
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(120))
        .build()
}

pub fn get(agent: &ureq::Agent, url: &str) -> Result<ureq::Response, MirrorError> {
    agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(status, _) => MirrorError::Status {
            url: url.to_string(),
            status,
        },
        ureq::Error::Transport(t) => MirrorError::Network {
            url: url.to_string(),
            detail: match t.message() {
                Some(message) => format!("{}: {message}", t.kind()),
                None => t.kind().to_string(),
            },
        },
    })
}

/// The python-build-standalone target triple for a CNB arch.
fn triple(arch: &str) -> Option<&'static str> {
    match arch {
        "amd64" => Some("x86_64-unknown-linux-gnu"),
        "arm64" => Some("aarch64-unknown-linux-gnu"),
        _ => None,
    }
}

/// The archives a mirror offers for `arch`, from its `SHA256SUMS`.
pub fn mirror_candidates(
    agent: &ureq::Agent,
    base: &str,
    arch: &str,
) -> Result<Vec<Candidate>, MirrorError> {
    let base = base.trim_end_matches('/');
    let url = format!("{base}/SHA256SUMS");
    let text = get(agent, &url)?
        .into_string()
        .map_err(|source| MirrorError::Read {
            url: url.clone(),
            source,
        })?;
    Ok(parse_sha256sums(&text, base, arch))
}

/// Lines are `<sha256>  <file name>`; keep the `install_only` archives for `arch`.
pub fn parse_sha256sums(text: &str, base: &str, arch: &str) -> Vec<Candidate> {
    let Some(triple) = triple(arch) else {
        return Vec::new();
    };
    let suffix = format!("-{triple}-install_only.tar.gz");
    text.lines()
        .filter_map(|line| {
            let (sha256, file_name) = line.split_once(char::is_whitespace)?;
            let file_name = file_name.trim().trim_start_matches('*');
            let rest = file_name.strip_prefix("cpython-")?.strip_suffix(&suffix)?;
            let (version, _tag) = rest.split_once('+')?;
            let version = PythonVersion::parse(version)?;
            let sha256 = sha256.to_ascii_lowercase();
            (sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit())).then(|| {
                Candidate {
                    version,
                    source: Source::Mirror {
                        // `+` must be escaped in a URL path segment as GitHub serves it.
                        url: format!("{base}/{}", file_name.replace('+', "%2B")),
                        file_name: file_name.to_string(),
                        sha256,
                    },
                }
            })
        })
        .collect()
}

/// Printed by each host interpreter to describe itself (`-I -S`: no site, no user env).
const DESCRIBE: &str = r#"import sys, sysconfig, json, os
shared = sysconfig.get_config_var("Py_ENABLE_SHARED")
print(json.dumps({
  "version": "%d.%d.%d" % sys.version_info[:3],
  "final": sys.version_info.releaselevel == "final" and sys.implementation.name == "cpython",
  "python": {
    "executable": os.path.realpath(sys.executable),
    "stdlib": sysconfig.get_path("stdlib"),
    "include": sysconfig.get_path("include"),
    "libdir": sysconfig.get_config_var("LIBDIR") if shared else None,
    "shared_lib": sysconfig.get_config_var("INSTSONAME") if shared else None,
  }}))"#;

#[derive(serde::Deserialize)]
struct Described {
    version: String,
    #[serde(rename = "final")]
    is_final: bool,
    python: HostPython,
}

/// The supported CPython interpreters installed on this host, deduplicated by real path.
pub fn host_candidates(env_path: Option<&str>) -> Vec<Candidate> {
    let seen = host_paths(OLDEST_SUPPORTED_MINOR..=NEWEST_KNOWN_MINOR, env_path);
    // Each interpreter describes itself in a process of its own (~40 ms each): run them side
    // by side, keeping the order.
    std::thread::scope(|scope| {
        let running: Vec<_> = seen
            .iter()
            .map(|real| scope.spawn(move || describe(real)))
            .collect();
        running
            .into_iter()
            .filter_map(|handle| handle.join().ok().flatten())
            .collect()
    })
}

/// The host's `python3.<minor>` executables (real paths, deduplicated), where the buildpack
/// looks for interpreters: for saying that one exists when its line is not built.
pub fn host_interpreters_of_line(minor: u16, env_path: Option<&str>) -> Vec<PathBuf> {
    host_paths(minor..=minor, env_path)
}

fn host_paths(minors: std::ops::RangeInclusive<u16>, env_path: Option<&str>) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for minor in minors.clone() {
        let name = format!("python3.{minor}");
        paths.push(Path::new("/usr/bin").join(&name));
        paths.push(Path::new("/usr/local/bin").join(&name));
        // pyenv's shims are scripts that pick a version by pyenv's rules; its versions are
        // listed directly below instead.
        for dir in env_path.unwrap_or_default().split(':') {
            if !dir.is_empty() && !dir.ends_with("/shims") {
                paths.push(Path::new(dir).join(&name));
            }
        }
    }
    if let Some(root) = pyenv_root() {
        if let Ok(entries) = std::fs::read_dir(root.join("versions")) {
            let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            dirs.sort();
            for dir in dirs {
                for minor in minors.clone() {
                    paths.push(dir.join("bin").join(format!("python3.{minor}")));
                }
            }
        }
    }
    let mut seen: Vec<PathBuf> = Vec::new();
    for path in paths {
        if let Ok(real) = std::fs::canonicalize(&path) {
            if !seen.contains(&real) {
                seen.push(real);
            }
        }
    }
    seen
}

fn pyenv_root() -> Option<PathBuf> {
    std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")))
}

fn describe(executable: &Path) -> Option<Candidate> {
    let output = std::process::Command::new(executable)
        .args(["-I", "-S", "-c", DESCRIBE])
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONPATH")
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let described: Described = serde_json::from_slice(&output.stdout).ok()?;
    let version = PythonVersion::parse(&described.version)?;
    (described.is_final && described.python.stdlib.join("os.py").is_file()).then_some(Candidate {
        version,
        source: Source::Host(described.python),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sums_keeps_install_only_archives_for_the_arch() {
        let sums = format!(
            "{a}  cpython-3.12.14+20260924-x86_64-unknown-linux-gnu-install_only.tar.gz\n\
             {a}  cpython-3.12.14+20260924-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz\n\
             {a}  cpython-3.12.14+20260924-aarch64-unknown-linux-gnu-install_only.tar.gz\n\
             {a}  cpython-3.14.0rc1+20260924-x86_64-unknown-linux-gnu-install_only.tar.gz\n\
             nonsense\n",
            a = "ab".repeat(32)
        );
        let found = parse_sha256sums(&sums, "http://m/r", "amd64");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].version, PythonVersion::new(3, 12, 14));
        assert_eq!(
            found[0].source,
            Source::Mirror {
                url: "http://m/r/cpython-3.12.14%2B20260924-x86_64-unknown-linux-gnu-install_only.tar.gz".into(),
                file_name: "cpython-3.12.14+20260924-x86_64-unknown-linux-gnu-install_only.tar.gz".into(),
                sha256: "ab".repeat(32),
            }
        );
        assert_eq!(parse_sha256sums(&sums, "http://m/r", "arm64").len(), 1);
    }

    #[test]
    fn debian_python_is_found_on_the_host() {
        // Debian 12's python3.11 is present on every machine this project builds on.
        let found = host_candidates(None);
        assert!(
            found.iter().any(|c| matches!(&c.source,
                Source::Host(h) if h.executable == Path::new("/usr/bin/python3.11"))
                && c.version.minor == 11),
            "{found:?}"
        );
    }
}
