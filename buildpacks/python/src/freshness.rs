//! Whether `poetry.lock` and `Pipfile.lock` still match the manifest they were locked from.
//! The buildpack installs from the lockfile alone, so a manifest edited without relocking would
//! otherwise build green and fail at import. Poetry (`poetry sync`) and Pipenv
//! (`pipenv install --deploy`), which Heroku runs, refuse such a lockfile; so does this, with
//! the hash each tool computes.

use crate::errors::PythonBuildpackError;
use slugc_fs::input::{self, clip, clip_message};
use std::fmt::Write as _;
use std::path::Path;

/// Python's `json.dumps` item and key separators.
#[derive(Clone, Copy)]
struct Separators {
    item: &'static str,
    key: &'static str,
}

/// `json.dumps(value, sort_keys=True)`: Poetry's default separators.
const PYTHON_DEFAULT: Separators = Separators {
    item: ", ",
    key: ": ",
};
/// `json.dumps(value, sort_keys=True, separators=(",", ":"))`: Pipenv's.
const COMPACT: Separators = Separators {
    item: ",",
    key: ":",
};

/// `value` as Python's `json.dumps(value, sort_keys=True, ensure_ascii=True)` writes it, so that
/// its SHA-256 is the hash the tool wrote into its lockfile. Keys sort by code point, which is
/// the byte order of UTF-8 (`toml::Table` iterates sorted).
fn python_json(value: &toml::Value, sep: Separators, out: &mut String) {
    match value {
        toml::Value::String(s) => python_json_string(s, out),
        toml::Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        toml::Value::Float(f) => out.push_str(&python_float(*f)),
        toml::Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        // Not JSON: Python's json module refuses it, so no lockfile holds its hash. Written as
        // TOML writes it, which keeps the comparison deterministic (and failing).
        toml::Value::Datetime(d) => python_json_string(&d.to_string(), out),
        toml::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep.item);
                }
                python_json(item, sep, out);
            }
            out.push(']');
        }
        toml::Value::Table(table) => python_json_table(table.iter(), sep, out),
    }
}

fn python_json_table<'a>(
    entries: impl Iterator<Item = (&'a String, &'a toml::Value)>,
    sep: Separators,
    out: &mut String,
) {
    let mut entries: Vec<_> = entries.collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push_str(sep.item);
        }
        python_json_string(key, out);
        out.push_str(sep.key);
        python_json(value, sep, out);
    }
    out.push('}');
}

/// `ensure_ascii=True`: everything outside ASCII as `\uXXXX` (UTF-16, so surrogate pairs).
fn python_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Python's `float.__repr__` for the values a manifest holds: `1.0`, `0.5`, `1e+20`.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    // Python switches to exponent notation at 1e16 and below 1e-4; Rust's `{:?}` gives the
    // same shortest digits.
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        let text = format!("{f:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exponent),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    format!("{f:?}")
}

fn sha256_hex(text: &str) -> String {
    crate::fsutil::sha256_bytes(text.as_bytes())
}

fn parse_toml(file: &str, text: &str) -> Result<toml::Table, PythonBuildpackError> {
    toml::from_str(text).map_err(|e| PythonBuildpackError::Lockfile {
        file: file.to_string(),
        reason: clip_message(&e.to_string()),
    })
}

/// Poetry's `content-hash` of a `pyproject.toml`, as `Locker._get_content_hash` computes it:
/// <https://github.com/python-poetry/poetry/blob/main/src/poetry/packages/locker.py>.
/// `with_dependency_groups`: Poetry 2.3 added `[dependency-groups]` to the hash, and still
/// accepts a lockfile written by an older Poetry that hashed without it.
pub fn poetry_content_hash(pyproject: &toml::Table, with_dependency_groups: bool) -> String {
    const LEGACY_KEYS: &[&str] = &["dependencies", "source", "extras", "dev-dependencies"];
    const RELEVANT_KEYS: &[&str] = &[
        "dependencies",
        "source",
        "extras",
        "dev-dependencies",
        "group",
    ];
    const PROJECT_KEYS: &[&str] = &["requires-python", "dependencies", "optional-dependencies"];
    let empty = toml::Table::new();
    fn table<'a>(v: Option<&'a toml::Value>, empty: &'a toml::Table) -> &'a toml::Table {
        v.and_then(toml::Value::as_table).unwrap_or(empty)
    }
    let project = table(pyproject.get("project"), &empty);
    let groups = if with_dependency_groups {
        table(pyproject.get("dependency-groups"), &empty)
    } else {
        &empty
    };
    let poetry = table(pyproject.get("tool").and_then(|t| t.get("poetry")), &empty);

    let mut relevant_project = toml::Table::new();
    for key in PROJECT_KEYS {
        if let Some(v) = project.get(*key) {
            relevant_project.insert((*key).to_string(), v.clone());
        }
    }
    // Python's `None` (a legacy key absent from a legacy-only manifest) is JSON `null`, which
    // TOML cannot hold: those entries are written by hand below.
    let mut relevant_poetry: Vec<(String, Option<toml::Value>)> = Vec::new();
    for key in RELEVANT_KEYS {
        let data = poetry.get(*key);
        if data.is_none()
            && (!LEGACY_KEYS.contains(key) || !relevant_project.is_empty() || !groups.is_empty())
        {
            continue;
        }
        relevant_poetry.push(((*key).to_string(), data.cloned()));
    }
    relevant_poetry.sort_by(|a, b| a.0.cmp(&b.0));
    let mut poetry_json = String::from("{");
    for (i, (key, value)) in relevant_poetry.iter().enumerate() {
        if i > 0 {
            poetry_json.push_str(PYTHON_DEFAULT.item);
        }
        python_json_string(key, &mut poetry_json);
        poetry_json.push_str(PYTHON_DEFAULT.key);
        match value {
            Some(v) => python_json(v, PYTHON_DEFAULT, &mut poetry_json),
            None => poetry_json.push_str("null"),
        }
    }
    poetry_json.push('}');

    if relevant_project.is_empty() && groups.is_empty() {
        // Poetry's backwards compatibility: the [tool.poetry] keys at the top level.
        return sha256_hex(&poetry_json);
    }
    // Keys in sorted order: "dependency-groups" < "project" < "tool".
    let mut json = String::from("{");
    let mut first = true;
    let mut field = |json: &mut String, key: &str| {
        if !first {
            json.push_str(PYTHON_DEFAULT.item);
        }
        first = false;
        python_json_string(key, json);
        json.push_str(PYTHON_DEFAULT.key);
    };
    if !groups.is_empty() {
        field(&mut json, "dependency-groups");
        python_json_table(groups.iter(), PYTHON_DEFAULT, &mut json);
    }
    if !relevant_project.is_empty() {
        field(&mut json, "project");
        python_json_table(relevant_project.iter(), PYTHON_DEFAULT, &mut json);
    }
    field(&mut json, "tool");
    json.push_str("{\"poetry\": ");
    json.push_str(&poetry_json);
    json.push_str("}}");
    sha256_hex(&json)
}

/// The Poetry version in `poetry.lock`'s first line (`# This file is automatically @generated
/// by Poetry 2.1.3 …`), as (major, minor).
fn poetry_generator(lock_text: &str) -> Option<(u64, u64)> {
    let first = lock_text.lines().next()?;
    let rest = &first[first.find("Poetry ")? + "Poetry ".len()..];
    let version = rest.split_whitespace().next()?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `poetry.lock` against `pyproject.toml`, as `Locker.is_fresh` decides.
pub fn check_poetry(app_dir: &Path, lock_text: &str) -> Result<(), PythonBuildpackError> {
    let stale = |detail: String| PythonBuildpackError::StaleLockfile {
        lockfile: "poetry.lock",
        manifest: "pyproject.toml",
        detail,
        fix: "Run `poetry lock` to update poetry.lock, and commit it.",
    };
    let Some(pyproject_text) =
        input::read_app_text(app_dir, "pyproject.toml", input::MANIFEST_CAP)?
    else {
        return Err(stale(
            "there is no pyproject.toml, which Poetry locks from".to_string(),
        ));
    };
    let pyproject = parse_toml("pyproject.toml", &pyproject_text)?;
    let lock = parse_toml("poetry.lock", lock_text)?;
    let Some(locked) = lock
        .get("metadata")
        .and_then(|m| m.get("content-hash"))
        .and_then(toml::Value::as_str)
    else {
        return Err(stale(
            "poetry.lock has no [metadata] content-hash".to_string(),
        ));
    };
    if poetry_content_hash(&pyproject, true) == locked {
        return Ok(());
    }
    let older = poetry_generator(lock_text).is_some_and(|v| v < (2, 3));
    if older && poetry_content_hash(&pyproject, false) == locked {
        return Ok(());
    }
    Err(stale(
        "pyproject.toml changed significantly since poetry.lock was last generated (its \
         content-hash does not match)"
            .to_string(),
    ))
}

/// The hash Pipenv records in `Pipfile.lock`'s `_meta.hash.sha256`, as plette's
/// `Pipfile.get_hash` computes it:
/// <https://github.com/pypa/pipenv/blob/main/pipenv/vendor/plette/pipfiles.py>.
pub fn pipfile_hash(pipfile: &toml::Table) -> String {
    const SECTIONS: &[&str] = &[
        "source",
        "packages",
        "dev-packages",
        "requires",
        "scripts",
        "pipfile",
        "pipenv",
        "default",
        "develop",
    ];
    // A Pipfile without [[source]] is read with PyPI prepended.
    let default_source = || {
        let mut pypi = toml::Table::new();
        pypi.insert("name".into(), "pypi".into());
        pypi.insert("url".into(), "https://pypi.org/simple".into());
        pypi.insert("verify_ssl".into(), true.into());
        toml::Value::Array(vec![toml::Value::Table(pypi)])
    };
    let section = |key: &str| {
        pipfile
            .get(key)
            .cloned()
            .unwrap_or_else(|| toml::Value::Table(toml::Table::new()))
    };
    let mut meta = toml::Table::new();
    meta.insert(
        "sources".into(),
        pipfile
            .get("source")
            .cloned()
            .unwrap_or_else(default_source),
    );
    meta.insert("requires".into(), section("requires"));
    let mut data = toml::Table::new();
    data.insert("_meta".into(), toml::Value::Table(meta));
    data.insert("default".into(), section("packages"));
    data.insert("develop".into(), section("dev-packages"));
    // Custom package categories count too.
    for (key, value) in pipfile {
        if !SECTIONS.contains(&key.as_str()) {
            data.insert(key.clone(), value.clone());
        }
    }
    let mut json = String::new();
    python_json_table(data.iter(), COMPACT, &mut json);
    sha256_hex(&json)
}

/// `Pipfile.lock` against `Pipfile`, as `pipenv install --deploy` decides. A `Pipfile.lock`
/// without a `Pipfile` is installed as it is: nothing says what it should hold.
pub fn check_pipenv(app_dir: &Path, lock_text: &str) -> Result<(), PythonBuildpackError> {
    let Some(pipfile_text) = input::read_app_text(app_dir, "Pipfile", input::MANIFEST_CAP)? else {
        return Ok(());
    };
    let pipfile = parse_toml("Pipfile", &pipfile_text)?;
    let lock: serde_json::Value =
        serde_json::from_str(lock_text).map_err(|e| PythonBuildpackError::Lockfile {
            file: "Pipfile.lock".to_string(),
            reason: clip_message(&e.to_string()),
        })?;
    let locked = lock["_meta"]["hash"]["sha256"].as_str().unwrap_or("");
    let expected = pipfile_hash(&pipfile);
    if locked == expected {
        return Ok(());
    }
    Err(PythonBuildpackError::StaleLockfile {
        lockfile: "Pipfile.lock",
        manifest: "Pipfile",
        detail: format!(
            "Pipfile changed since Pipfile.lock was last generated: its _meta.hash.sha256 is \
             ({}), the Pipfile hashes to ({expected})",
            clip(locked)
        ),
        fix: "Run `pipenv lock` to update Pipfile.lock, and commit it.",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    /// Hashes computed by Python's `json.dumps` + `hashlib.sha256` over the same documents,
    /// with the code of Poetry 2.5.1 and Pipenv's plette.
    #[test]
    fn poetry_hash_matches_poetry() {
        let pyproject = table(
            r#"
[project]
name = "x"
requires-python = ">=3.11"
dependencies = ["flask==3.1.0", "gunicorn==23.0.0"]

[tool.poetry]
package-mode = false

[tool.poetry.group.dev.dependencies]
pytest = "8.3.4"
"#,
        );
        assert_eq!(
            poetry_content_hash(&pyproject, true),
            "c8f49e3f53be10d0d2940477a70ec8a524a6e40e45c37b7b65bd5f909847f19c"
        );
    }

    #[test]
    fn poetry_hash_legacy_and_dependency_groups() {
        // Legacy [tool.poetry] only: absent legacy keys hash as `null`, non-ASCII as `\u`.
        let legacy = table(
            r#"
[tool.poetry]
name = "x"
[tool.poetry.dependencies]
python = "^3.11"
flask = { version = "3.1.0", extras = ["async"] }
"café" = "1.0"
"#,
        );
        assert_eq!(
            poetry_content_hash(&legacy, true),
            "174fdbb910f9457eb883b5c35fa96af01bb4a2eef3df035670c8492f231c619e"
        );
        let groups = table(
            "[project]\ndependencies = [\"flask\"]\n[dependency-groups]\ndev = [\"pytest>=8\"]\n",
        );
        assert_eq!(
            poetry_content_hash(&groups, true),
            "a85d78ca51f06744388ef4f26a372d475fdd4f13aa6a65122a0807918acf9437"
        );
        assert_eq!(
            poetry_content_hash(&groups, false),
            "0e4221b52c149c982bd0d89177623d7304369401ea2b6783bc2fb71a1648f677"
        );
    }

    /// The fixture's Pipfile.lock was written by Pipenv.
    #[test]
    fn pipfile_hash_matches_pipenv() {
        let pipfile = include_str!("../../../fixtures/python-pipenv/Pipfile");
        assert_eq!(
            pipfile_hash(&table(pipfile)),
            "b874a409b9108a44e8f59bbbdd022741698aa555a549e2d49044eb010afdf3ee"
        );
    }

    #[test]
    fn python_json_escapes_as_python() {
        let mut out = String::new();
        python_json(
            &toml::Value::String("é\"\\\n\u{1F600}\u{1}".into()),
            PYTHON_DEFAULT,
            &mut out,
        );
        assert_eq!(out, r#""\u00e9\"\\\n\ud83d\ude00\u0001""#);
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(1e20), "1e+20");
        assert_eq!(python_float(0.5), "0.5");
    }

    #[test]
    fn poetry_generator_version() {
        assert_eq!(
            poetry_generator("# This file is automatically @generated by Poetry 2.1.3 and …"),
            Some((2, 1))
        );
        assert_eq!(poetry_generator("[[package]]"), None);
    }
}
