//! The exact pins of `requirements.txt` (`name==version`, extras and markers allowed), read
//! for the checks that need no install: the Python line that fits the pinned wheels
//! (`wheel_fit`) and the known issues of pinned releases (`known_issues`). Lines that are not
//! an exact pin (ranges, URLs, `-r` includes, editable installs) are passed over: those
//! checks only speak when they are sure.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The name as written (for messages).
    pub name: String,
    /// The version as written after `==`.
    pub version: String,
}

impl Pin {
    /// The PEP 503 normalised name: lower case, runs of `-`, `_`, `.` as one `-`.
    pub fn key(&self) -> String {
        normalize(&self.name)
    }
}

/// PEP 503 (<https://peps.python.org/pep-0503/#normalized-names>).
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The exact pins of the app's `requirements.txt` (none when it has none or it cannot be
/// read: the install reports that).
pub fn read(app_dir: &Path) -> Vec<Pin> {
    slugc_fs::input::read_app_text(app_dir, "requirements.txt", slugc_fs::input::MANIFEST_CAP)
        .ok()
        .flatten()
        .map(|text| parse(&text))
        .unwrap_or_default()
}

/// The names `requirements.txt` lists at all, pinned or not (normalised).
pub fn listed(app_dir: &Path) -> Vec<String> {
    slugc_fs::input::read_app_text(app_dir, "requirements.txt", slugc_fs::input::MANIFEST_CAP)
        .ok()
        .flatten()
        .map(|text| {
            requirement_lines(&text)
                .filter_map(|l| {
                    let end = l
                        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
                        .unwrap_or(l.len());
                    (end > 0).then(|| normalize(&l[..end]))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn parse(text: &str) -> Vec<Pin> {
    requirement_lines(text)
        .filter_map(|line| {
            // Markers (`; python_version < "3.12"`) and options (`--hash=…`) end the pin.
            let spec = line.split(';').next()?.split(" --").next()?.trim();
            let (name, version) = spec.split_once("==")?;
            let name = name.split('[').next()?.trim();
            let version = version.trim();
            let valid_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            let valid_version = !version.is_empty()
                && !version.starts_with('=')
                && version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._+!".contains(c));
            (valid_name && valid_version).then(|| Pin {
                name: name.to_string(),
                version: version.to_string(),
            })
        })
        .collect()
}

/// Requirement lines: comments, blank lines, options (`-r`, `--index-url`) and line
/// continuations' tails left out.
fn requirement_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|l| l.split(" #").next().unwrap_or(l).trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_pins_only() {
        let pins = parse(
            "# app\nFlask==2.0.3\norjson == 3.9.0 ; python_version < \"4\"\n\
             uvicorn[standard]==0.30.0 --hash=sha256:abc\nrequests>=2\n-r base.txt\n\
             pkg===1.0\ngunicorn==20.1.0  # old\n",
        );
        let got: Vec<(&str, &str)> = pins
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Flask", "2.0.3"),
                ("orjson", "3.9.0"),
                ("uvicorn", "0.30.0"),
                ("gunicorn", "20.1.0")
            ]
        );
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalize("Foo.Bar__baz"), "foo-bar-baz");
        assert_eq!(normalize("setuptools"), "setuptools");
    }
}
