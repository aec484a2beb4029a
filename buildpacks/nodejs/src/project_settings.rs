//! The buildpack's settings in the app's `project.toml`, under the table Heroku's Node.js CNB
//! reads, `[com.heroku.buildpacks.nodejs]`: `actions.prune_dev_dependencies = false` keeps
//! devDependencies in the slug (heroku/buildpacks-nodejs, `test_npm_prune_dev_dependencies_config`
//! and its Yarn and pnpm twins).

use serde::Deserialize;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ProjectSettingsError {
    #[error("{}", .0)]
    Read(slugc_fs::input::InputError),
    #[error("project.toml: [com.heroku.buildpacks.nodejs] is invalid: {}", slugc_fs::input::clip(.0))]
    Invalid(String),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProjectSettings {
    /// `actions.prune_dev_dependencies`; `None` when not set.
    pub prune_dev_dependencies: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Nodejs {
    #[serde(default)]
    actions: Actions,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Actions {
    prune_dev_dependencies: Option<bool>,
}

impl ProjectSettings {
    /// The settings in `app_dir/project.toml`; none when the file or the table is absent.
    /// The engine has already checked that the file is TOML.
    pub fn read(app_dir: &Path) -> Result<Self, ProjectSettingsError> {
        let Some(text) =
            slugc_fs::input::read_app_text(app_dir, "project.toml", slugc_fs::input::MANIFEST_CAP)
                .map_err(ProjectSettingsError::Read)?
        else {
            return Ok(ProjectSettings::default());
        };
        Self::parse(&text)
    }

    fn parse(text: &str) -> Result<Self, ProjectSettingsError> {
        // Only our table is parsed strictly: the rest of project.toml belongs to others.
        let value: toml::Value =
            toml::from_str(text).map_err(|e| ProjectSettingsError::Invalid(e.to_string()))?;
        let table = value
            .get("com")
            .and_then(|v| v.get("heroku"))
            .and_then(|v| v.get("buildpacks"))
            .and_then(|v| v.get("nodejs"));
        let Some(table) = table else {
            return Ok(ProjectSettings::default());
        };
        let nodejs: Nodejs = table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| ProjectSettingsError::Invalid(e.to_string()))?;
        Ok(ProjectSettings {
            prune_dev_dependencies: nodejs.actions.prune_dev_dependencies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_setting() {
        assert_eq!(
            ProjectSettings::parse("").unwrap(),
            ProjectSettings::default()
        );
        assert_eq!(
            ProjectSettings::parse("[_]\nschema-version = \"0.2\"\n[com.other]\nx = 1\n").unwrap(),
            ProjectSettings::default()
        );
        assert_eq!(
            ProjectSettings::parse(
                "[com.heroku.buildpacks.nodejs]\nactions.prune_dev_dependencies = false\n"
            )
            .unwrap()
            .prune_dev_dependencies,
            Some(false)
        );
        let bad = ProjectSettings::parse(
            "[com.heroku.buildpacks.nodejs]\nactions.prune_dev_dependencies = \"no\"\n",
        )
        .unwrap_err();
        assert!(bad.to_string().starts_with("project.toml: "), "{bad}");
        assert!(ProjectSettings::parse(
            "[com.heroku.buildpacks.nodejs]\nactions.prune_devdependencies = false\n"
        )
        .is_err());
    }
}
