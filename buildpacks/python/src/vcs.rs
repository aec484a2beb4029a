//! Git sources of a lockfile (`poetry.lock`, `Pipfile.lock`) as the PEP 508 direct reference
//! the installer gets, `name @ git+URL@REV#subdirectory=DIR`: what Poetry's export writes
//! (poetry-core `VCSDependency._base_pep_508_name`) and what Pipenv hands pip
//! (`requirement_from_lockfile`), both installing the locked revision.
//!
//! uv installs it (pip when uv cannot be had). uv fetches git over `https://`, `http://`,
//! `ssh://` and `file://` only; any other URL is refused here, before the network is used,
//! instead of failing half-way through the install.

/// Why a git source cannot be installed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VcsError {
    #[error(
        "uv does not fetch git over {scheme}:// (only over https://, http://, ssh:// and file://)"
    )]
    Scheme { scheme: String },
    #[error(
        "it is not a git URL uv can fetch (https://, http://, ssh://, file:// or user@host:path)"
    )]
    NotAUrl,
}

/// `name[extras] @ git+URL[@rev][#subdirectory=dir]`, without marker or hashes.
pub fn git_requirement(
    name: &str,
    extras: &[String],
    url: &str,
    rev: Option<&str>,
    subdirectory: Option<&str>,
) -> Result<String, VcsError> {
    let url = fetchable_url(url)?;
    let mut line = name.to_string();
    if !extras.is_empty() {
        line.push_str(&format!("[{}]", extras.join(",")));
    }
    line.push_str(" @ git+");
    line.push_str(&url);
    if let Some(rev) = rev.filter(|r| !r.is_empty()) {
        line.push('@');
        line.push_str(rev);
    }
    if let Some(dir) = subdirectory.filter(|d| !d.is_empty()) {
        line.push_str("#subdirectory=");
        line.push_str(dir);
    }
    Ok(line)
}

/// The URL as uv takes it after `git+`: an scp-like `user@host:path` (git's own syntax,
/// which Poetry accepts) becomes `ssh://user@host/path`, as poetry-core writes it; an
/// environment variable (`${TOKEN}`) is left for the installer to expand, as pip and uv do
/// in requirement files.
fn fetchable_url(raw: &str) -> Result<String, VcsError> {
    let url = raw.trim();
    let url = url.strip_prefix("git+").unwrap_or(url);
    if url.is_empty() || url.contains(char::is_whitespace) {
        return Err(VcsError::NotAUrl);
    }
    if url.starts_with('$') {
        return Ok(url.to_string());
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return match scheme.to_ascii_lowercase().as_str() {
            "https" | "http" | "ssh" | "file" => Ok(url.to_string()),
            _ => Err(VcsError::Scheme {
                scheme: scheme.to_string(),
            }),
        };
    }
    // `git@github.com:org/repo.git`: a user, a host, a colon, a path.
    match url.split_once(':') {
        Some((user_host, path))
            if user_host.contains('@') && !user_host.contains('/') && !path.is_empty() =>
        {
            Ok(format!(
                "ssh://{user_host}/{}",
                path.trim_start_matches('/')
            ))
        }
        _ => Err(VcsError::NotAUrl),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_sources_become_direct_references() {
        let rev = "7bb46d7727e6e89fe56b3c78297b3af2672bbbe2";
        assert_eq!(
            git_requirement(
                "extension.dist",
                &[],
                "https://github.com/pypa/wheel.git",
                Some(rev),
                Some("tests/testdata/extension.dist")
            )
            .unwrap(),
            format!(
                "extension.dist @ git+https://github.com/pypa/wheel.git@{rev}\
                 #subdirectory=tests/testdata/extension.dist"
            )
        );
        assert_eq!(
            git_requirement("a", &["x".into(), "y".into()], "git+file:///r", None, None).unwrap(),
            "a[x,y] @ git+file:///r"
        );
        assert_eq!(
            git_requirement("a", &[], "git@github.com:org/a.git", Some("v1"), None).unwrap(),
            "a @ git+ssh://git@github.com/org/a.git@v1"
        );
        assert_eq!(
            git_requirement("a", &[], "${REPO_URL}", None, None).unwrap(),
            "a @ git+${REPO_URL}"
        );
    }

    #[test]
    fn urls_uv_cannot_fetch_are_refused() {
        assert_eq!(
            git_requirement("a", &[], "git://127.0.0.1/a", None, None),
            Err(VcsError::Scheme {
                scheme: "git".into()
            })
        );
        assert_eq!(
            git_requirement("a", &[], "some/dir", None, None),
            Err(VcsError::NotAUrl)
        );
        assert_eq!(
            git_requirement("a", &[], "", None, None),
            Err(VcsError::NotAUrl)
        );
    }
}
