//! Which package manager installs the app, at which version range: from the lockfile, then
//! `packageManager` (Corepack's field), then `engines.<tool>`.

use crate::package_json::PackageJson;
use nodejs_semver::Range;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Npm,
    YarnClassic,
    YarnBerry,
    Pnpm,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackageManagerError {
    #[error("the app has more than one lockfile: {}", .0.join(" and "))]
    TwoLockfiles(Vec<&'static str>),
    #[error("packageManager {} in package.json is not `<npm|yarn|pnpm>@<version>`", slugc_fs::input::quote(.0))]
    BadPackageManagerField(String),
    #[error(
        "packageManager {} in package.json names {named}, but the lockfile is {lockfile}",
        slugc_fs::input::quote(field)
    )]
    Mismatch {
        field: String,
        named: &'static str,
        lockfile: &'static str,
    },
    #[error(
        "engines.{tool} {} in package.json is not a valid semver range",
        slugc_fs::input::quote(range)
    )]
    BadRange { tool: &'static str, range: String },
}

/// The decision, ready to fetch and run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageManager {
    pub tool: Tool,
    /// The lockfile's file name, when there is one.
    pub lockfile: Option<&'static str>,
    /// An npm semver range (or exact version) of the tool; `None`: pick for the Node version.
    pub requested: Option<String>,
}

const LOCKFILES: &[(&str, Tool)] = &[
    ("package-lock.json", Tool::Npm),
    ("npm-shrinkwrap.json", Tool::Npm),
    ("yarn.lock", Tool::YarnClassic),
    ("pnpm-lock.yaml", Tool::Pnpm),
];

impl Tool {
    /// The registry package that carries the tool.
    pub fn package(self) -> &'static str {
        match self {
            Tool::Npm => "npm",
            Tool::YarnClassic => "yarn",
            Tool::YarnBerry => "@yarnpkg/cli-dist",
            Tool::Pnpm => "pnpm",
        }
    }

    /// The command name (and the `bin` entry of its package).
    pub fn command(self) -> &'static str {
        match self {
            Tool::Npm => "npm",
            Tool::YarnClassic | Tool::YarnBerry => "yarn",
            Tool::Pnpm => "pnpm",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            Tool::Npm => "npm",
            Tool::YarnClassic => "Yarn classic",
            Tool::YarnBerry => "Yarn",
            Tool::Pnpm => "pnpm",
        }
    }

    /// `npm start`, `yarn start`, `pnpm start`.
    pub fn start_command(self) -> String {
        format!("{} start", self.command())
    }
}

impl PackageManager {
    pub fn detect(app_dir: &Path, package_json: &PackageJson) -> Result<Self, PackageManagerError> {
        let found: Vec<(&'static str, Tool)> = LOCKFILES
            .iter()
            // Any entry counts: a hostile one (a FIFO, a link out of the app) is then reported
            // when read, rather than passed over.
            .filter(|(name, _)| slugc_fs::input::exists(app_dir, name))
            .copied()
            .collect();
        // npm itself prefers npm-shrinkwrap.json over package-lock.json when both exist, so
        // that pair is not a conflict between two managers.
        let found: Vec<(&'static str, Tool)> = if found.iter().any(|f| f.0 == "npm-shrinkwrap.json")
        {
            found
                .into_iter()
                .filter(|f| f.0 != "package-lock.json")
                .collect()
        } else {
            found
        };
        if found.len() > 1 {
            return Err(PackageManagerError::TwoLockfiles(
                found.iter().map(|f| f.0).collect(),
            ));
        }
        let lockfile = found.first().copied();

        let field = package_json
            .package_manager
            .as_deref()
            .map(parse_package_manager_field)
            .transpose()?;

        let mut tool = match (lockfile, &field) {
            (Some((_, lock_tool)), Some((named, _))) => {
                let named_tool = named_tool(named);
                if !same_family(named_tool, lock_tool) {
                    return Err(PackageManagerError::Mismatch {
                        field: package_json.package_manager.clone().unwrap_or_default(),
                        named: named_tool.command(),
                        lockfile: lockfile.map(|l| l.0).unwrap_or_default(),
                    });
                }
                lock_tool
            }
            (Some((_, lock_tool)), None) => lock_tool,
            (None, Some((named, _))) => named_tool(named),
            (None, None) => Tool::Npm,
        };

        let engines_range = match tool {
            Tool::Npm => package_json.engines.npm.as_deref(),
            Tool::YarnClassic | Tool::YarnBerry => package_json.engines.yarn.as_deref(),
            Tool::Pnpm => package_json.engines.pnpm.as_deref(),
        }
        .map(str::trim)
        .filter(|r| !r.is_empty());
        if let Some(range) = engines_range {
            Range::parse(range).map_err(|_| PackageManagerError::BadRange {
                tool: tool.command(),
                range: range.to_string(),
            })?;
        }
        // packageManager pins an exact version; it wins over an engines range, as Corepack does.
        let requested = field
            .map(|(_, version)| version)
            .or(engines_range.map(str::to_string));

        if tool == Tool::YarnClassic {
            tool = yarn_flavour(app_dir, requested.as_deref());
        }
        let requested = requested.or_else(|| default_range(tool, app_dir));
        Ok(PackageManager {
            tool,
            lockfile: lockfile.map(|l| l.0),
            requested,
        })
    }
}

/// `"pnpm@9.1.0+sha512.abc"` → `("pnpm", "9.1.0")`.
fn parse_package_manager_field(field: &str) -> Result<(&str, String), PackageManagerError> {
    let bad = || PackageManagerError::BadPackageManagerField(field.to_string());
    let (name, rest) = field.trim().split_once('@').ok_or_else(bad)?;
    let version = rest.split('+').next().unwrap_or_default();
    if !matches!(name, "npm" | "yarn" | "pnpm") || nodejs_semver::Version::parse(version).is_err() {
        return Err(bad());
    }
    Ok((name, version.to_string()))
}

fn named_tool(name: &str) -> Tool {
    match name {
        "yarn" => Tool::YarnClassic,
        "pnpm" => Tool::Pnpm,
        _ => Tool::Npm,
    }
}

fn same_family(a: Tool, b: Tool) -> bool {
    a.command() == b.command()
}

/// Yarn 1 and Yarn 2+ are different programs with different lockfiles: a version ≥ 2 asked
/// for, or a Berry lockfile (it starts with a `__metadata:` block), means Berry.
fn yarn_flavour(app_dir: &Path, requested: Option<&str>) -> Tool {
    if let Some(range) = requested.and_then(|r| Range::parse(r).ok()) {
        if let Some(min) = range.min_version() {
            return if min.major() >= 2 {
                Tool::YarnBerry
            } else {
                Tool::YarnClassic
            };
        }
    }
    let berry_lockfile = read_lockfile(app_dir, "yarn.lock")
        .ok()
        .flatten()
        .is_some_and(|text| text.lines().any(|l| l.starts_with("__metadata:")));
    if berry_lockfile {
        Tool::YarnBerry
    } else {
        Tool::YarnClassic
    }
}

/// A pnpm workspace: `pnpm-workspace.yaml` (or `.yml`) that lists `packages` (pnpm 10 also
/// keeps settings there, which alone make no workspace).
pub fn is_pnpm_workspace(app_dir: &Path) -> bool {
    ["pnpm-workspace.yaml", "pnpm-workspace.yml"]
        .iter()
        .any(|name| {
            slugc_fs::input::read_app_text(app_dir, name, slugc_fs::input::MANIFEST_CAP)
                .ok()
                .flatten()
                .is_some_and(|text| text.lines().any(|l| l.starts_with("packages:")))
        })
}

/// pnpm's Plug'n'Play mode: `node-linker=pnp` in the app's `.npmrc`
/// (<https://pnpm.io/npmrc#node-linker>).
pub fn is_pnpm_pnp(app_dir: &Path) -> bool {
    slugc_fs::input::read_app_text(app_dir, ".npmrc", slugc_fs::input::MANIFEST_CAP)
        .ok()
        .flatten()
        .is_some_and(|text| {
            text.lines().any(|line| {
                line.split_once('=').is_some_and(|(key, value)| {
                    key.trim() == "node-linker" && value.trim() == "pnp"
                })
            })
        })
}

/// A lockfile of the app, read boundedly (`slugc_fs::input`).
pub fn read_lockfile(
    app_dir: &Path,
    name: &str,
) -> Result<Option<String>, slugc_fs::input::InputError> {
    slugc_fs::input::read_app_text(app_dir, name, slugc_fs::input::LOCKFILE_CAP)
}

/// The lockfile parses as what it claims to be (npm's are JSON; Yarn's and pnpm's formats
/// are left to their tools, which report their own errors): checked at detection.
pub fn check_lockfile(app_dir: &Path, name: &'static str) -> Result<(), LockfileError> {
    let text = read_lockfile(app_dir, name)?.unwrap_or_default();
    if name.ends_with(".json") {
        serde_json::from_str::<serde_json::Value>(text.trim_start_matches('\u{feff}')).map_err(
            |e| LockfileError::Corrupt {
                name,
                message: slugc_fs::input::clip_message(&e.to_string()),
            },
        )?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum LockfileError {
    #[error(transparent)]
    Input(#[from] slugc_fs::input::InputError),
    #[error("{name} is not valid JSON: {message}")]
    Corrupt { name: &'static str, message: String },
}

/// The version line used when the app names none. npm: `None`, the newest npm whose
/// `engines.node` accepts the chosen Node. pnpm: the newest major that writes the lockfile's
/// format (lockfile v9 → pnpm 10, v6 → 8, v5.x → 7).
fn default_range(tool: Tool, app_dir: &Path) -> Option<String> {
    match tool {
        Tool::Npm => None,
        Tool::YarnClassic => Some("1.x".into()),
        Tool::YarnBerry => Some("4.x".into()),
        Tool::Pnpm => {
            let text = read_lockfile(app_dir, "pnpm-lock.yaml")
                .ok()
                .flatten()
                .unwrap_or_default();
            let version = text
                .lines()
                .find_map(|l| l.strip_prefix("lockfileVersion:"))
                .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string());
            let range = match version.as_deref().and_then(|v| v.split('.').next()) {
                Some("5") => "7.x",
                Some("6") => "8.x",
                _ => "10.x",
            };
            Some(range.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn pj(text: &str) -> PackageJson {
        PackageJson::parse(text, Path::new("package.json")).unwrap()
    }

    #[test]
    fn npm_lockfile() {
        let dir = app(&[("package-lock.json", "{}")]);
        let pm = PackageManager::detect(dir.path(), &pj("{}")).unwrap();
        assert_eq!(pm.tool, Tool::Npm);
        assert_eq!(pm.lockfile, Some("package-lock.json"));
        assert_eq!(pm.requested, None);
    }

    #[test]
    fn no_lockfile_is_npm_without_lockfile() {
        let dir = app(&[]);
        let pm = PackageManager::detect(dir.path(), &pj(r#"{"engines":{"npm":"10.x"}}"#)).unwrap();
        assert_eq!((pm.tool, pm.lockfile), (Tool::Npm, None));
        assert_eq!(pm.requested.as_deref(), Some("10.x"));
    }

    #[test]
    fn two_lockfiles_name_both() {
        let dir = app(&[("package-lock.json", "{}"), ("yarn.lock", "")]);
        let err = PackageManager::detect(dir.path(), &pj("{}")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the app has more than one lockfile: package-lock.json and yarn.lock"
        );
    }

    #[test]
    fn shrinkwrap_wins_over_package_lock() {
        let dir = app(&[("package-lock.json", "{}"), ("npm-shrinkwrap.json", "{}")]);
        let pm = PackageManager::detect(dir.path(), &pj("{}")).unwrap();
        assert_eq!(pm.lockfile, Some("npm-shrinkwrap.json"));
    }

    #[test]
    fn yarn_classic_and_berry() {
        let classic = app(&[("yarn.lock", "# yarn lockfile v1\n")]);
        let pm = PackageManager::detect(classic.path(), &pj("{}")).unwrap();
        assert_eq!(
            (pm.tool, pm.requested.as_deref()),
            (Tool::YarnClassic, Some("1.x"))
        );

        let berry = app(&[("yarn.lock", "__metadata:\n  version: 8\n")]);
        let pm = PackageManager::detect(berry.path(), &pj("{}")).unwrap();
        assert_eq!(
            (pm.tool, pm.requested.as_deref()),
            (Tool::YarnBerry, Some("4.x"))
        );

        let pinned = PackageManager::detect(
            classic.path(),
            &pj(r#"{"packageManager":"yarn@4.5.1+sha224.abc"}"#),
        )
        .unwrap();
        assert_eq!(
            (pinned.tool, pinned.requested.as_deref()),
            (Tool::YarnBerry, Some("4.5.1"))
        );

        let engines =
            PackageManager::detect(classic.path(), &pj(r#"{"engines":{"yarn":"^1.22"}}"#)).unwrap();
        assert_eq!(
            (engines.tool, engines.requested.as_deref()),
            (Tool::YarnClassic, Some("^1.22"))
        );
    }

    #[test]
    fn pnpm_workspaces_list_packages() {
        let dir = app(&[]);
        assert!(!is_pnpm_workspace(dir.path()));
        std::fs::write(
            dir.path().join("pnpm-workspace.yaml"),
            "onlyBuiltDependencies:\n  - esbuild\n",
        )
        .unwrap();
        assert!(!is_pnpm_workspace(dir.path()), "settings only");
        std::fs::write(
            dir.path().join("pnpm-workspace.yaml"),
            "packages:\n  - 'packages/*'\n",
        )
        .unwrap();
        assert!(is_pnpm_workspace(dir.path()));
        assert!(!is_pnpm_pnp(dir.path()));
        std::fs::write(
            dir.path().join(".npmrc"),
            "symlink=false\nnode-linker = pnp\n",
        )
        .unwrap();
        assert!(is_pnpm_pnp(dir.path()));
    }

    #[test]
    fn pnpm_default_follows_lockfile_version() {
        let v9 = app(&[("pnpm-lock.yaml", "lockfileVersion: '9.0'\n")]);
        let pm = PackageManager::detect(v9.path(), &pj("{}")).unwrap();
        assert_eq!(
            (pm.tool, pm.requested.as_deref()),
            (Tool::Pnpm, Some("10.x"))
        );
        let v6 = app(&[("pnpm-lock.yaml", "lockfileVersion: '6.0'\n")]);
        let pm = PackageManager::detect(v6.path(), &pj("{}")).unwrap();
        assert_eq!(pm.requested.as_deref(), Some("8.x"));
    }

    #[test]
    fn package_manager_field_without_lockfile_picks_the_tool() {
        let dir = app(&[]);
        let pm =
            PackageManager::detect(dir.path(), &pj(r#"{"packageManager":"pnpm@9.15.0"}"#)).unwrap();
        assert_eq!(
            (pm.tool, pm.lockfile, pm.requested.as_deref()),
            (Tool::Pnpm, None, Some("9.15.0"))
        );
    }

    #[test]
    fn package_manager_field_contradicting_lockfile() {
        let dir = app(&[("package-lock.json", "{}")]);
        let err = PackageManager::detect(dir.path(), &pj(r#"{"packageManager":"pnpm@9.15.0"}"#))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "packageManager \"pnpm@9.15.0\" in package.json names pnpm, but the lockfile is package-lock.json"
        );
    }

    #[test]
    fn bad_fields() {
        let dir = app(&[]);
        for field in ["bun@1.0.0", "pnpm", "npm@latest"] {
            let err = PackageManager::detect(
                dir.path(),
                &pj(&format!(r#"{{"packageManager":"{field}"}}"#)),
            )
            .unwrap_err();
            assert_eq!(
                err,
                PackageManagerError::BadPackageManagerField(field.into())
            );
        }
        let err =
            PackageManager::detect(dir.path(), &pj(r#"{"engines":{"npm":"ten"}}"#)).unwrap_err();
        assert!(matches!(
            err,
            PackageManagerError::BadRange { tool: "npm", .. }
        ));
    }
}
