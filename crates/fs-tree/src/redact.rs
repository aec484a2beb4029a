//! Credentials out of log text: the userinfo of every URL (`scheme://user:password@host`)
//! is replaced by `***`, as RFC 3986 §3.2.1 advises for displayed URIs
//! (<https://www.rfc-editor.org/rfc/rfc3986#section-3.2.1>). The engine applies it to every
//! line a buildpack prints and the built-in buildpacks to every URL they name.

/// The userinfo of every URL in `text`, redacted; the rest unchanged.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at the first `/`, `?`, `#` or blank (RFC 3986 §3.2).
        let end = after
            .find(|c: char| {
                matches!(c, '/' | '?' | '#') || c.is_whitespace() || c == '"' || c == '\''
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// A URL without its userinfo at all, for naming a registry or an index.
pub fn strip_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_redacted_everywhere() {
        assert_eq!(
            redact("uv is not available (cannot reach http://tok:SECRET@host/simple/uv/: refused)"),
            "uv is not available (cannot reach http://***@host/simple/uv/: refused)"
        );
        assert_eq!(
            redact("a https://u@h:1?x=1 and git+ssh://k:p@g/x, https://plain/y"),
            "a https://***@h:1?x=1 and git+ssh://***@g/x, https://plain/y"
        );
        assert_eq!(redact("no url: a@b"), "no url: a@b");
        assert_eq!(redact("x://"), "x://");
        assert_eq!(
            strip_userinfo("https://t:s@r.example/npm/"),
            "https://r.example/npm/"
        );
    }
}
