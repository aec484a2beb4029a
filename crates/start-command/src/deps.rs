//! The Python dependencies an app declares at the top level, by normalised name
//! (<https://packaging.python.org/en/latest/specifications/name-normalization/>), with their
//! extras: what the framework rules look for. Read from `requirements.txt`, `pyproject.toml`
//! (`[project] dependencies`, `[tool.poetry.dependencies]`) and `Pipfile` (`[packages]`).

use crate::{scan, Warning};
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    /// Normalised names.
    pub names: BTreeSet<String>,
    /// `name[extra]`, normalised, for each extra asked for.
    pub extras: BTreeSet<String>,
    /// The files they were read from, for the source shown.
    pub files: Vec<&'static str>,
}

impl Declared {
    pub fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The file that declares dependencies, for a source line (the first one read).
    pub fn file(&self) -> &'static str {
        self.files.first().copied().unwrap_or("the dependencies")
    }

    fn add(&mut self, spec: &str) {
        let spec = spec.trim();
        let end = spec
            .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
            .unwrap_or(spec.len());
        let name = normalise(&spec[..end]);
        if name.is_empty() {
            return;
        }
        if let Some(extras) = spec[end..].trim_start().strip_prefix('[') {
            let extras = extras.split(']').next().unwrap_or("");
            for extra in extras.split(',') {
                self.extras
                    .insert(format!("{name}[{}]", normalise(extra.trim())));
            }
        }
        self.names.insert(name);
    }
}

pub fn normalise(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if "._-".contains(c) {
            '-'
        } else {
            c.to_ascii_lowercase()
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

/// What the app declares; a file that cannot be read or parsed is a warning and adds nothing.
pub fn declared(app_dir: &Path) -> (Declared, Vec<Warning>) {
    let mut d = Declared::default();
    let mut warnings = Vec::new();
    match scan::text(app_dir, "requirements.txt") {
        Ok(Some(text)) => {
            d.files.push("requirements.txt");
            for line in text.lines() {
                let line = line.split(" #").next().unwrap_or("").trim();
                if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
                    continue;
                }
                d.add(line);
            }
        }
        Ok(None) => {}
        Err(w) => warnings.push(w),
    }
    match scan::text(app_dir, "pyproject.toml") {
        Ok(Some(text)) => match toml::from_str::<toml::Table>(&text) {
            Ok(doc) => {
                d.files.push("pyproject.toml");
                let project = doc
                    .get("project")
                    .and_then(|p| p.get("dependencies"))
                    .and_then(|d| d.as_array());
                for spec in project.into_iter().flatten().filter_map(|v| v.as_str()) {
                    d.add(spec);
                }
                let poetry = doc
                    .get("tool")
                    .and_then(|t| t.get("poetry"))
                    .and_then(|p| p.get("dependencies"))
                    .and_then(|d| d.as_table());
                for (name, value) in poetry.into_iter().flatten() {
                    poetry_dep(&mut d, name, value);
                }
            }
            Err(e) => warnings.push(Warning::new(
                "pyproject.toml",
                format!("not valid TOML ({})", e.message()),
            )),
        },
        Ok(None) => {}
        Err(w) => warnings.push(w),
    }
    match scan::text(app_dir, "Pipfile") {
        Ok(Some(text)) => match toml::from_str::<toml::Table>(&text) {
            Ok(doc) => {
                d.files.push("Pipfile");
                for (name, value) in doc
                    .get("packages")
                    .and_then(|p| p.as_table())
                    .into_iter()
                    .flatten()
                {
                    poetry_dep(&mut d, name, value);
                }
            }
            Err(e) => warnings.push(Warning::new(
                "Pipfile",
                format!("not valid TOML ({})", e.message()),
            )),
        },
        Ok(None) => {}
        Err(w) => warnings.push(w),
    }
    d.names.remove("python");
    (d, warnings)
}

/// A `name = "version"` or `name = { version, extras = [...] }` entry (Poetry and Pipfile).
fn poetry_dep(d: &mut Declared, name: &str, value: &toml::Value) {
    let extras: Vec<&str> = value
        .get("extras")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str())
        .collect();
    if extras.is_empty() {
        d.add(name);
    } else {
        d.add(&format!("{name}[{}]", extras.join(",")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_file_kind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("requirements.txt"),
            "# c\n-r base.txt\nFastAPI[standard]==0.115 # web\nzope.interface>=5\nDjango_Rest\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[project]\ndependencies = [\"gunicorn>=23\"]\n[tool.poetry.dependencies]\npython = \"^3.12\"\nuvicorn = { version = \"*\", extras = [\"standard\"] }\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("Pipfile"), "[packages]\nflask = \"*\"\n").unwrap();
        let (d, w) = declared(dir.path());
        assert!(w.is_empty());
        assert_eq!(
            d.names.iter().map(String::as_str).collect::<Vec<_>>(),
            [
                "django-rest",
                "fastapi",
                "flask",
                "gunicorn",
                "uvicorn",
                "zope-interface"
            ]
        );
        assert!(d.extras.contains("fastapi[standard]"));
        assert!(d.extras.contains("uvicorn[standard]"));
        assert_eq!(d.file(), "requirements.txt");
        std::fs::write(dir.path().join("pyproject.toml"), "[project\n").unwrap();
        let (_, w) = declared(dir.path());
        assert_eq!(w[0].file, "pyproject.toml");
    }
}
