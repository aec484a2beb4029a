//! The builder's own npm configuration — the user `.npmrc` that the engine points
//! `npm_config_userconfig` at, and `npm_config_*` variables in the caller's environment —
//! reduced to what reaches a registry: where it is, how to authenticate, TLS, proxies,
//! retries and logging. Everything else is dropped, because settings such as
//! `omit-lockfile-registry-resolved`, `save-exact`, `lockfile-version`, `install-links`,
//! `nodedir` or `ignore-scripts` change which files npm (or Yarn 1 and pnpm, which read
//! npmrc files too) writes into the app and the slug: the slug's bytes must depend on the app,
//! its `.npmrc` and the config vars (`slug build --env`), not on the machine that built it.
//! Heroku's builds never see a user npmrc at all
//! (<https://devcenter.heroku.com/articles/nodejs-support#customizing-the-build-process>:
//! configuration is the app's `.npmrc` and config vars); the network settings are kept so
//! that a private registry configured in `~/.npmrc` still works here.
//!
//! npm's setting names: <https://docs.npmjs.com/cli/v10/using-npm/config>.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Settings that only say how to reach and authenticate to a registry, or how much npm logs.
const NETWORK_SETTINGS: &[&str] = &[
    "registry",
    "_auth",
    "_authtoken",
    "_password",
    "username",
    "email",
    "always-auth",
    "ca",
    "cafile",
    "cert",
    "key",
    "certfile",
    "keyfile",
    "strict-ssl",
    "proxy",
    "https-proxy",
    "http-proxy",
    "noproxy",
    "no-proxy",
    "local-address",
    "maxsockets",
    "fetch-retries",
    "fetch-retry-factor",
    "fetch-retry-mintimeout",
    "fetch-retry-maxtimeout",
    "fetch-timeout",
    "loglevel",
    "color",
    "progress",
    // Where the user config is: replaced by the filtered copy below.
    "userconfig",
];

/// Whether an npmrc key (or an `npm_config_` variable's name, without the prefix) is one of
/// the kept network settings. `@scope:registry` and the per-registry `//host/path/:key`
/// entries (auth for that registry) are.
pub fn is_network_setting(key: &str) -> bool {
    let key = key.trim();
    if key.starts_with("//") {
        return true;
    }
    let key = key.to_ascii_lowercase().replace('_', "-");
    // `_authToken` lowercases with its leading underscore turned into a dash.
    let key = match key.strip_prefix('-') {
        Some(rest) => format!("_{rest}"),
        None => key,
    };
    if key.starts_with('@') && key.ends_with(":registry") {
        return true;
    }
    NETWORK_SETTINGS.contains(&key.as_str())
}

/// What the filter dropped: the names of the settings (for the log; never their values).
pub struct Filtered {
    /// Dropped settings, `~/.npmrc` keys and environment variable names, sorted.
    pub dropped: Vec<String>,
}

/// Drop the builder's non-network npm settings from `env` (the caller's environment, not the
/// config vars) and write the kept lines of the user npmrc to `dir/.slugc-nodejs/npmrc`, pointing
/// `npm_config_userconfig` at it. Lines are copied verbatim, so npm expands `${VAR}` itself.
pub fn filter(env: &mut libcnb::Env, dir: &Path) -> std::io::Result<Filtered> {
    let mut dropped = Vec::new();
    let userconfig_key = |key: &OsStr| {
        key.to_string_lossy()
            .eq_ignore_ascii_case("npm_config_userconfig")
    };
    let user_file = env
        .iter()
        .find(|(k, _)| userconfig_key(k))
        .map(|(_, v)| PathBuf::from(v));
    let mut kept_env = libcnb::Env::new();
    for (key, value) in env.iter() {
        let name = key.to_string_lossy();
        let setting = name
            .get(..11)
            .filter(|p| p.eq_ignore_ascii_case("npm_config_"))
            .map(|_| &name[11..]);
        match setting {
            Some(setting) if !is_network_setting(setting) => dropped.push(name.into_owned()),
            _ if userconfig_key(key) => {}
            _ => {
                kept_env.insert(key, value);
            }
        }
    }
    *env = kept_env;
    if let Some(file) = user_file {
        // Bounded, and a FIFO must not block the build; an unreadable file is as if absent,
        // as for npm.
        let text = slugc_fs::input::read_text(&file, slugc_fs::input::MANIFEST_CAP)
            .ok()
            .unwrap_or_default();
        let mut kept = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            let key = trimmed.split_once('=').map_or(trimmed, |(k, _)| k).trim();
            if is_network_setting(key) && !key.eq_ignore_ascii_case("userconfig") {
                kept.push_str(trimmed);
                kept.push('\n');
            } else {
                dropped.push(format!("{key} (user npmrc)"));
            }
        }
        // Its own file, never `~/.npmrc`: run outside `slug build` (e.g. by `pack`), `HOME`
        // may be a real home whose npmrc is the one being filtered.
        let own = dir.join(".slugc-nodejs");
        std::fs::create_dir_all(&own)?;
        let copy = own.join("npmrc");
        let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
        if same(&copy, &file) {
            return Err(std::io::Error::other(format!(
                "npm_config_userconfig names the filtered copy itself ({})",
                file.display()
            )));
        }
        write_private(&copy, kept.as_bytes())?;
        env.insert("npm_config_userconfig", &copy);
    }
    dropped.sort();
    dropped.dedup();
    Ok(Filtered { dropped })
}

/// Written 0600: the kept lines may hold registry tokens.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::File::options()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_settings_are_kept_and_the_rest_dropped() {
        for key in [
            "registry",
            "@myco:registry",
            "//npm.myco.example/:_authToken",
            "_authToken",
            "https-proxy",
            "strict-ssl",
            "cafile",
        ] {
            assert!(is_network_setting(key), "{key}");
        }
        for key in [
            "omit-lockfile-registry-resolved",
            "nodedir",
            "save-exact",
            "lockfile-version",
            "ignore-scripts",
            "install-links",
            "foreground-scripts",
        ] {
            assert!(!is_network_setting(key), "{key}");
        }
        // Environment spellings.
        assert!(is_network_setting("HTTPS_PROXY"));
        assert!(is_network_setting("_authtoken"));
        assert!(!is_network_setting("omit_lockfile_registry_resolved"));
    }

    #[test]
    fn the_user_npmrc_and_env_are_filtered() {
        let tmp = tempfile::tempdir().unwrap();
        let user = tmp.path().join("user-npmrc");
        std::fs::write(
            &user,
            "omit-lockfile-registry-resolved=true\n# c\nregistry=https://r.example/\n//r.example/:_authToken=${TOKEN}\nnodedir=/usr\n",
        )
        .unwrap();
        let mut env = libcnb::Env::new();
        env.insert("npm_config_userconfig", &user);
        env.insert("NPM_CONFIG_SAVE_EXACT", "true");
        env.insert("npm_config_registry", "https://r.example/");
        env.insert("PATH", "/usr/bin");
        let out = filter(&mut env, &tmp.path().join("home")).unwrap();
        let copy = tmp.path().join("home/.slugc-nodejs/npmrc");
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            "registry=https://r.example/\n//r.example/:_authToken=${TOKEN}\n"
        );
        assert_eq!(env.get("npm_config_userconfig").unwrap(), copy.as_os_str());
        assert!(env.get("NPM_CONFIG_SAVE_EXACT").is_none());
        assert!(env.get("npm_config_registry").is_some());
        assert!(env.get("PATH").is_some());
        assert_eq!(
            out.dropped,
            [
                "NPM_CONFIG_SAVE_EXACT",
                "nodedir (user npmrc)",
                "omit-lockfile-registry-resolved (user npmrc)"
            ]
        );
    }
}
