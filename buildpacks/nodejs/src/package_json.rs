//! `package.json`: the fields this buildpack reads, parsed once.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PackageJsonError {
    #[error("{}", .0)]
    Read(slugc_fs::input::InputError),
    /// serde_json reports line and column, which is what a user needs to find the typo.
    #[error("{path} is not valid JSON: {message} (line {line}, column {column})")]
    Parse {
        path: PathBuf,
        message: String,
        line: usize,
        column: usize,
    },
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageJson {
    #[serde(default)]
    pub engines: Engines,
    /// Corepack's field, e.g. `"pnpm@9.15.0"` or `"yarn@4.5.1+sha512.…"`.
    pub package_manager: Option<String>,
    #[serde(default)]
    pub scripts: BTreeMap<String, String>,
    /// Dirs the build writes and the next build reuses (Heroku's `cacheDirectories`).
    pub cache_directories: Option<Vec<String>>,
    /// Parsed here so that one that is not an object fails with its position.
    #[serde(default)]
    pub dependencies: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub dev_dependencies: BTreeMap<String, serde_json::Value>,
    /// As `dependencies`.
    #[serde(default)]
    #[expect(dead_code, reason = "parsed to check its type")]
    optional_dependencies: BTreeMap<String, serde_json::Value>,
    /// npm's and Yarn's workspaces: a list of globs, or Yarn 1's `{"packages": [...]}`.
    #[serde(default)]
    workspaces: Option<serde_json::Value>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct Engines {
    pub node: Option<String>,
    pub npm: Option<String>,
    pub yarn: Option<String>,
    pub pnpm: Option<String>,
}

impl PackageJson {
    pub fn read(app_dir: &Path) -> Result<Self, PackageJsonError> {
        let text =
            slugc_fs::input::read_app_text(app_dir, "package.json", slugc_fs::input::MANIFEST_CAP)
                .map_err(PackageJsonError::Read)?
                .unwrap_or_default();
        // Named relative to the app: the build dir means nothing to the user.
        Self::parse(&text, Path::new("package.json"))
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, PackageJsonError> {
        // Editors on Windows write a byte-order mark; npm strips it, so do we.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        serde_json::from_str(text).map_err(|e| PackageJsonError::Parse {
            path: path.to_path_buf(),
            // serde_json quotes the offending value, which may be long.
            message: slugc_fs::input::clip_message(&strip_position(&e.to_string())),
            line: e.line(),
            column: e.column(),
        })
    }

    pub fn script(&self, name: &str) -> Option<&str> {
        self.scripts.get(name).map(String::as_str)
    }

    /// The app is an npm or Yarn workspace root: `workspaces` lists at least one package
    /// glob (<https://docs.npmjs.com/cli/using-npm/workspaces>).
    pub fn has_workspaces(&self) -> bool {
        let globs = match &self.workspaces {
            Some(serde_json::Value::Object(o)) => o.get("packages"),
            other => other.as_ref(),
        };
        globs
            .and_then(serde_json::Value::as_array)
            .is_some_and(|globs| !globs.is_empty())
    }
}

/// serde_json appends " at line L column C" to its message; we print the position ourselves.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_we_use() {
        let p = PackageJson::parse(
            r#"{"name":"x","engines":{"node":"22.x","npm":"^10"},"packageManager":"pnpm@9.1.0",
                "scripts":{"start":"node server.js"},"dependencies":{"express":"^4"},
                "devDependencies":{"typescript":"^5"},"private":true}"#,
            Path::new("package.json"),
        )
        .unwrap();
        assert_eq!(p.engines.node.as_deref(), Some("22.x"));
        assert_eq!(p.engines.npm.as_deref(), Some("^10"));
        assert_eq!(p.package_manager.as_deref(), Some("pnpm@9.1.0"));
        assert_eq!(p.script("start"), Some("node server.js"));
        assert_eq!(p.dev_dependencies.len(), 1);
    }

    #[test]
    fn workspaces_are_a_list_or_yarns_object() {
        let has = |text: &str| {
            PackageJson::parse(text, Path::new("package.json"))
                .unwrap()
                .has_workspaces()
        };
        assert!(has(r#"{"workspaces":["packages/*"]}"#));
        assert!(has(
            r#"{"workspaces":{"packages":["apps/*"],"nohoist":[]}}"#
        ));
        assert!(!has(r#"{"workspaces":[]}"#));
        assert!(!has(r#"{"name":"x"}"#));
    }

    #[test]
    fn invalid_json_names_file_line_and_column() {
        let err = PackageJson::parse(
            "{\n  \"name\": \"x\",\n  oops\n}",
            Path::new("/a/package.json"),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("/a/package.json is not valid JSON: "),
            "{text}"
        );
        assert!(text.ends_with("(line 3, column 3)"), "{text}");
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let p = PackageJson::parse(
            "\u{feff}{\"engines\":{\"node\":\"20.x\"}}",
            Path::new("package.json"),
        )
        .unwrap();
        assert_eq!(p.engines.node.as_deref(), Some("20.x"));
    }

    #[test]
    fn wrong_type_is_an_error_with_position() {
        let err = PackageJson::parse(r#"{"engines": {"node": 22}}"#, Path::new("package.json"))
            .unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
