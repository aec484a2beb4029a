//! The user's package index configuration, as pip would read it, turned into uv arguments:
//! uv does not read `pip.conf` (<https://docs.astral.sh/uv/pip/compatibility/>).
//!
//! Sources, later winning: config files (`/etc/xdg/pip/pip.conf`, `/etc/pip.conf`,
//! `~/.pip/pip.conf`, `~/.config/pip/pip.conf`, or only `$PIP_CONFIG_FILE`), sections
//! `[global]` then `[install]`; then `PIP_*` environment variables.
//! <https://pip.pypa.io/en/stable/topics/configuration/>

use crate::tool_env::ToolEnv;
use std::path::PathBuf;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexConfig {
    pub index_url: Option<String>,
    pub extra_index_urls: Vec<String>,
    pub find_links: Vec<String>,
    pub cert: Option<String>,
    pub timeout: Option<String>,
}

impl IndexConfig {
    pub fn read(env: &ToolEnv) -> Self {
        let mut config = Self::default();
        for file in config_files(env) {
            if let Ok(text) = std::fs::read_to_string(&file) {
                config.apply_ini(&text);
            }
        }
        config.apply_env(env);
        config
    }

    fn apply(&mut self, key: &str, value: &str) {
        let list = || value.split_whitespace().map(str::to_string).collect();
        match key.replace('_', "-").as_str() {
            "index-url" | "i" => self.index_url = Some(value.trim().to_string()),
            "extra-index-url" => self.extra_index_urls = list(),
            "find-links" | "f" => self.find_links = list(),
            "cert" => self.cert = Some(value.trim().to_string()),
            "timeout" | "default-timeout" => self.timeout = Some(value.trim().to_string()),
            _ => {}
        }
    }

    /// INI as Python's configparser reads it: `key = value`, continuation lines indented.
    fn apply_ini(&mut self, text: &str) {
        let mut section = String::new();
        let mut pairs: Vec<(String, String, String)> = Vec::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if line.starts_with(char::is_whitespace) {
                if let Some(last) = pairs.last_mut() {
                    last.2.push(' ');
                    last.2.push_str(trimmed);
                }
                continue;
            }
            if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                section = name.trim().to_string();
                continue;
            }
            if let Some((k, v)) = trimmed.split_once(['=', ':']) {
                pairs.push((
                    section.clone(),
                    k.trim().to_lowercase(),
                    v.trim().to_string(),
                ));
            }
        }
        for wanted in ["global", "install"] {
            for (s, k, v) in &pairs {
                if s == wanted {
                    self.apply(k, v);
                }
            }
        }
    }

    fn apply_env(&mut self, env: &ToolEnv) {
        for (var, key) in [
            ("PIP_INDEX_URL", "index-url"),
            ("PIP_EXTRA_INDEX_URL", "extra-index-url"),
            ("PIP_FIND_LINKS", "find-links"),
            ("PIP_CERT", "cert"),
            ("PIP_DEFAULT_TIMEOUT", "timeout"),
            ("PIP_TIMEOUT", "timeout"),
        ] {
            if let Some(value) = env.get(var).filter(|v| !v.is_empty()) {
                self.apply(key, value);
            }
        }
    }

    /// Arguments for `uv pip install` / `uv sync`.
    pub fn uv_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(url) = &self.index_url {
            args.extend(["--index-url".to_string(), url.clone()]);
        }
        for url in &self.extra_index_urls {
            args.extend(["--extra-index-url".to_string(), url.clone()]);
        }
        for link in &self.find_links {
            args.extend(["--find-links".to_string(), link.clone()]);
        }
        args
    }

    /// Environment for uv: the CA bundle and timeout pip was told to use.
    pub fn uv_env(&self) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(cert) = &self.cert {
            env.push(("SSL_CERT_FILE", cert.clone()));
        }
        if let Some(timeout) = &self.timeout {
            env.push(("UV_HTTP_TIMEOUT", timeout.clone()));
        }
        env
    }

    /// The simple-API base URL to fetch packages from.
    pub fn index_url(&self) -> &str {
        self.index_url
            .as_deref()
            .unwrap_or("https://pypi.org/simple")
    }
}

fn config_files(env: &ToolEnv) -> Vec<PathBuf> {
    if let Some(file) = env.get("PIP_CONFIG_FILE") {
        return vec![PathBuf::from(file)];
    }
    let mut files = vec![
        PathBuf::from("/etc/xdg/pip/pip.conf"),
        PathBuf::from("/etc/pip.conf"),
    ];
    if let Some(home) = env.get("HOME") {
        files.push(PathBuf::from(home).join(".pip/pip.conf"));
        let xdg = env
            .get("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(home).join(".config"));
        files.push(xdg.join("pip/pip.conf"));
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_then_env() {
        let mut c = IndexConfig::default();
        c.apply_ini(
            "[global]\nindex-url = https://a/simple\nfind-links =\n  /x\n  /y\n\
             [install]\nextra_index_url = https://b/simple https://c/simple\n[other]\ncert=/no\n",
        );
        assert_eq!(c.index_url.as_deref(), Some("https://a/simple"));
        assert_eq!(c.find_links, vec!["/x", "/y"]);
        assert_eq!(c.extra_index_urls.len(), 2);
        assert_eq!(c.cert, None);
        let mut env = ToolEnv::default();
        env.set("PIP_INDEX_URL", "https://env/simple");
        env.set("PIP_FIND_LINKS", "/opt/wheels");
        c.apply_env(&env);
        assert_eq!(
            c.uv_args(),
            [
                "--index-url",
                "https://env/simple",
                "--extra-index-url",
                "https://b/simple",
                "--extra-index-url",
                "https://c/simple",
                "--find-links",
                "/opt/wheels"
            ]
        );
    }
}
