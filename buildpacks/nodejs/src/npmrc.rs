//! The registry the user's npm configuration names, and its auth token, so that the runtime
//! and tool downloads go where `npm install` would go (a mirror, a private registry).
//!
//! npm's precedence (<https://docs.npmjs.com/cli/v10/configuring-npm/npmrc>): environment
//! (`npm_config_registry`, any case) over the project `.npmrc` over the user config
//! (`npm_config_userconfig`, default `~/.npmrc`). Config vars given with `slug build --env`
//! count as environment and come first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org";

#[derive(Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Without a trailing slash.
    pub url: String,
    /// The `_authToken` for that registry, sent as a bearer token. Never printed.
    pub token: Option<String>,
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A lookup of environment variables: the platform env first, then the process env.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl RegistryConfig {
    pub fn load(app_dir: &Path, env: EnvLookup<'_>) -> Self {
        let env_value = |key: &str| env(key).or_else(|| env(&key.to_uppercase()));
        let mut files: Vec<BTreeMap<String, String>> = Vec::new();
        // The app's own is app input: read from inside the app only.
        let app_npmrc =
            slugc_fs::input::read_app_text(app_dir, ".npmrc", slugc_fs::input::MANIFEST_CAP);
        files.push(match app_npmrc {
            Ok(Some(text)) => parse_npmrc(&text, env),
            Ok(None) | Err(_) => BTreeMap::new(),
        });
        let user = env_value("npm_config_userconfig")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".npmrc")));
        if let Some(user) = user {
            files.push(read_npmrc(&user, env));
        }
        let url = env_value("npm_config_registry")
            .or_else(|| files.iter().find_map(|f| f.get("registry").cloned()))
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_REGISTRY.to_string());
        let url = url.trim().trim_end_matches('/').to_string();
        // `//registry.example.com/path/:_authToken=…` keys the token by URL without scheme.
        let nerf = url
            .split_once("://")
            .map(|(_, rest)| format!("//{rest}/"))
            .unwrap_or_default();
        let token = files
            .iter()
            .find_map(|f| f.get(&format!("{nerf}:_authToken")).cloned());
        RegistryConfig { url, token }
    }
}

/// The user's `.npmrc` (`npm_config_userconfig`, else `~/.npmrc`): bounded, and a FIFO
/// must not block the build.
fn read_npmrc(path: &Path, env: EnvLookup<'_>) -> BTreeMap<String, String> {
    let Ok(text) = slugc_fs::input::read_text(path, slugc_fs::input::MANIFEST_CAP) else {
        return BTreeMap::new();
    };
    parse_npmrc(&text, env)
}

/// `key=value` lines; `#`/`;` comments; `${VAR}` expanded from the environment as npm does.
fn parse_npmrc(text: &str, env: EnvLookup<'_>) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim().trim_matches('"');
            (k.trim().to_string(), expand(v, env))
        })
        .collect()
}

fn expand(value: &str, env: EnvLookup<'_>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find('}') {
            Some(end) => {
                let name = &rest[start + 2..start + 2 + end];
                out.push_str(&env(name).unwrap_or_default());
                rest = &rest[start + 2 + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn default_registry() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_of(&[]);
        let c = RegistryConfig::load(dir.path(), &env);
        assert_eq!(c.url, DEFAULT_REGISTRY);
        assert_eq!(c.token, None);
    }

    #[test]
    fn env_beats_project_beats_user() {
        let dir = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join(".npmrc"),
            "registry=https://user.example/\n",
        )
        .unwrap();
        let home_str: &'static str =
            Box::leak(home.path().to_str().unwrap().to_string().into_boxed_str());
        let pairs: &'static [(&str, &str)] = Box::leak(Box::new([("HOME", home_str)]));
        let env = env_of(pairs);
        assert_eq!(
            RegistryConfig::load(dir.path(), &env).url,
            "https://user.example"
        );

        std::fs::write(
            dir.path().join(".npmrc"),
            "# mirror\nregistry = https://project.example/npm/\n//project.example/npm/:_authToken=${TOKEN}\n@myco:registry=https://npm.myco.example/\n",
        )
        .unwrap();
        let pairs: &'static [(&str, &str)] =
            Box::leak(Box::new([("HOME", home_str), ("TOKEN", "s3cret")]));
        let env = env_of(pairs);
        let c = RegistryConfig::load(dir.path(), &env);
        assert_eq!(c.url, "https://project.example/npm");
        assert_eq!(c.token.as_deref(), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));

        let pairs: &'static [(&str, &str)] = Box::leak(Box::new([
            ("HOME", home_str),
            ("NPM_CONFIG_REGISTRY", "https://env.example"),
        ]));
        let env = env_of(pairs);
        let c = RegistryConfig::load(dir.path(), &env);
        assert_eq!(c.url, "https://env.example");
        assert_eq!(c.token, None);
    }
}
