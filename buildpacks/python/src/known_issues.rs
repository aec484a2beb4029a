//! Python packages that install fine but fail at import because the environment lacks
//! something they need, each with its known remedy: one table, one test per rule. Checked
//! after the install against what the venv holds (its `*.dist-info` and top-level modules),
//! and without an install (`slug doctor`) against `requirements.txt`'s exact pins.
//!
//! A rule is added only for a failure seen with real releases, and names the release range
//! where it starts and ends (read from the packages' own sources, cited per rule).

use crate::pins::{normalize, Pin};
use pep440_rs::{Version, VersionSpecifiers};
use slugc_diagnostics::{Rule, Warning};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One known issue: `package` in the `affected` releases fails when `problem` holds.
struct KnownIssue {
    /// The PEP 503 name.
    package: &'static str,
    /// The project's own spelling, for messages.
    display: &'static str,
    /// A PEP 440 specifier set of the affected releases.
    affected: &'static str,
    problem: Problem,
    /// What goes wrong, after "<package> <version> ".
    why: &'static str,
    /// The change that fixes it.
    remedy: &'static str,
}

enum Problem {
    /// A top-level module the package imports is not installed.
    MissingModule {
        module: &'static str,
        /// The distribution that provides it, named in `requirements.txt` when it is.
        provider: &'static str,
    },
    /// Another distribution is installed at a release the package does not work with.
    TooNew {
        package: &'static str,
        display: &'static str,
        /// A PEP 440 specifier set of the breaking releases.
        breaking: &'static str,
    },
}

const ISSUES: &[KnownIssue] = &[
    // gunicorn 20.x's `gunicorn/util.py` does `import pkg_resources` at import time; 21.0
    // replaced it with importlib.metadata. setuptools 81 and later ship no pkg_resources,
    // and a uv venv holds no setuptools at all.
    KnownIssue {
        package: "gunicorn",
        display: "gunicorn",
        affected: "<21",
        problem: Problem::MissingModule {
            module: "pkg_resources",
            provider: "setuptools",
        },
        why: "imports pkg_resources, which this environment lacks (setuptools 81 and later \
              no longer ship it, and the venv has no older setuptools)",
        remedy: "add `setuptools<81` to requirements.txt, or upgrade gunicorn (21 and later \
                 do not use pkg_resources; 23 is current)",
    },
    // Flask 2.0 and 2.1 do `from werkzeug.urls import url_quote` (flask/helpers.py) and
    // require only `Werkzeug>=2.0`; Werkzeug 3.0 removed `url_quote`.
    KnownIssue {
        package: "flask",
        display: "Flask",
        affected: "<2.2",
        problem: Problem::TooNew {
            package: "werkzeug",
            display: "Werkzeug",
            breaking: ">=3",
        },
        why: "imports werkzeug.urls.url_quote, which Werkzeug 3 removed",
        remedy: "pin `Werkzeug<3` in requirements.txt, or upgrade Flask to 2.2 or later",
    },
];

/// What a venv's site-packages holds: each distribution's version, and its modules.
pub struct Installed {
    site: PathBuf,
    versions: BTreeMap<String, Version>,
}

impl Installed {
    /// Read from the `*.dist-info` dirs of `site` (their `METADATA` `Name` and `Version`).
    pub fn read(site: &Path) -> Self {
        let mut versions = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(site) {
            for entry in entries.flatten() {
                let is_dist_info = entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.ends_with(".dist-info"));
                if !is_dist_info {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(entry.path().join("METADATA")) else {
                    continue;
                };
                if let Some((name, version)) = name_and_version(&text) {
                    versions.insert(normalize(name), version);
                }
            }
        }
        Self {
            site: site.to_path_buf(),
            versions,
        }
    }

    fn has_module(&self, module: &str) -> bool {
        self.site.join(module).join("__init__.py").is_file()
            || self.site.join(format!("{module}.py")).is_file()
    }
}

/// `Name:` and `Version:` of a core metadata file's header.
fn name_and_version(metadata: &str) -> Option<(&str, Version)> {
    let header = metadata.split("\n\n").next()?;
    let field = |key: &str| {
        header
            .lines()
            .find_map(|l| l.strip_prefix(key).map(str::trim))
    };
    let version = Version::from_str(field("Version:")?).ok()?;
    Some((field("Name:")?, version))
}

fn affected(spec: &str, version: &Version) -> bool {
    VersionSpecifiers::from_str(spec).is_ok_and(|s| s.contains(version))
}

fn warning(issue: &KnownIssue, version: &str, extra: &str) -> Warning {
    Warning::new(
        Rule::PythonKnownIssue,
        format!(
            "{} {version} {}{extra}: {}",
            issue.display, issue.why, issue.remedy
        ),
    )
}

/// The known issues of what the venv holds.
pub fn installed(site: &Path) -> Vec<Warning> {
    let installed = Installed::read(site);
    ISSUES
        .iter()
        .filter_map(|issue| {
            let version = installed.versions.get(issue.package)?;
            if !affected(issue.affected, version) {
                return None;
            }
            match &issue.problem {
                Problem::MissingModule { module, .. } => (!installed.has_module(module))
                    .then(|| warning(issue, &version.to_string(), "")),
                Problem::TooNew {
                    package,
                    display,
                    breaking,
                } => {
                    let other = installed.versions.get(*package)?;
                    affected(breaking, other).then(|| {
                        warning(
                            issue,
                            &version.to_string(),
                            &format!(" (installed: {display} {other})"),
                        )
                    })
                }
            }
        })
        .collect()
}

/// The known issues that `requirements.txt` already shows: an affected release pinned, and
/// the other distribution not named at all (the resolver then takes its newest release,
/// which lacks the module or is one of the breaking releases).
pub fn pinned(pins: &[Pin], listed: &[String]) -> Vec<Warning> {
    ISSUES
        .iter()
        .filter_map(|issue| {
            let pin = pins.iter().find(|p| p.key() == issue.package)?;
            let version = Version::from_str(&pin.version).ok()?;
            if !affected(issue.affected, &version) {
                return None;
            }
            let other = match &issue.problem {
                Problem::MissingModule { provider, .. } => provider,
                Problem::TooNew { package, .. } => package,
            };
            (!listed.iter().any(|l| l == other)).then(|| warning(issue, &pin.version, ""))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A site-packages dir holding these distributions (and their top-level module dirs).
    fn site(dists: &[(&str, &str)], modules: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, version) in dists {
            let info = dir.path().join(format!("{name}-{version}.dist-info"));
            std::fs::create_dir_all(&info).unwrap();
            std::fs::write(
                info.join("METADATA"),
                format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody\n"),
            )
            .unwrap();
        }
        for module in modules {
            let m = dir.path().join(module);
            std::fs::create_dir_all(&m).unwrap();
            std::fs::write(m.join("__init__.py"), "").unwrap();
        }
        dir
    }

    fn pins(text: &str) -> Vec<Pin> {
        crate::pins::parse(text)
    }

    #[test]
    fn gunicorn_20_without_pkg_resources() {
        let s = site(&[("gunicorn", "20.1.0")], &["gunicorn"]);
        let w = installed(s.path());
        assert_eq!(w.len(), 1);
        assert_eq!(
            w[0].to_string(),
            "warning: gunicorn 20.1.0 imports pkg_resources, which this environment lacks \
             (setuptools 81 and later no longer ship it, and the venv has no older \
             setuptools): add `setuptools<81` to requirements.txt, or upgrade gunicorn (21 and \
             later do not use pkg_resources; 23 is current)"
        );
        // With an older setuptools (which ships pkg_resources), or gunicorn 21: no warning.
        let s = site(
            &[("gunicorn", "20.1.0"), ("setuptools", "80.9.0")],
            &["gunicorn", "pkg_resources", "setuptools"],
        );
        assert!(installed(s.path()).is_empty());
        let s = site(&[("gunicorn", "21.2.0")], &["gunicorn"]);
        assert!(installed(s.path()).is_empty());
        // Without an install: the pin, unless setuptools is named.
        assert_eq!(pinned(&pins("gunicorn==20.1.0\n"), &[]).len(), 1);
        assert!(pinned(&pins("gunicorn==20.1.0\n"), &["setuptools".into()]).is_empty());
        assert!(pinned(&pins("gunicorn==23.0.0\n"), &[]).is_empty());
    }

    #[test]
    fn flask_before_2_2_with_werkzeug_3() {
        let s = site(&[("Flask", "2.0.3"), ("Werkzeug", "3.0.6")], &["flask"]);
        let w = installed(s.path());
        assert_eq!(w.len(), 1);
        assert_eq!(
            w[0].message,
            "Flask 2.0.3 imports werkzeug.urls.url_quote, which Werkzeug 3 removed (installed: \
             Werkzeug 3.0.6): pin `Werkzeug<3` in requirements.txt, or upgrade Flask to 2.2 or \
             later"
        );
        let s = site(&[("Flask", "2.0.3"), ("Werkzeug", "2.3.8")], &["flask"]);
        assert!(installed(s.path()).is_empty());
        let s = site(&[("Flask", "2.2.5"), ("Werkzeug", "3.0.6")], &["flask"]);
        assert!(installed(s.path()).is_empty());
        assert_eq!(pinned(&pins("flask==2.1.3\n"), &[]).len(), 1);
        assert!(pinned(&pins("flask==2.1.3\n"), &["werkzeug".into()]).is_empty());
    }

    #[test]
    fn every_rule_parses() {
        for issue in ISSUES {
            assert!(VersionSpecifiers::from_str(issue.affected).is_ok());
            if let Problem::TooNew { breaking, .. } = issue.problem {
                assert!(VersionSpecifiers::from_str(breaking).is_ok());
            }
            assert_eq!(normalize(issue.display), issue.package);
        }
    }
}
