//! `requirements.txt` as the installers get it. Its lines are pip's; one kind is changed:
//! an editable VCS requirement (`-e git+https://…#egg=name`). pip installs those as a checkout
//! in the venv's `src/` with a `.pth` naming its absolute build path, and uv refuses them
//! ("Git sources cannot be editable"); both install the same revision non-editable, the way
//! the slug needs it (the package inside site-packages, no path to the build dir). Editing the
//! checkout in place, the point of `-e`, has no meaning in a slug.

/// The VCS schemes pip knows (<https://pip.pypa.io/en/stable/topics/vcs-support/>).
const VCS_PREFIXES: &[&str] = &["git+", "hg+", "svn+", "bzr+"];

/// `text` with each editable VCS requirement made a plain one; `None` when there is none.
pub fn with_vcs_editables_installed(text: &str) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match editable_vcs_url(line) {
            Some(url) => {
                out.push_str(url);
                changed = true;
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    changed.then_some(out)
}

/// The URL of `-e URL`, `-e=URL`, `--editable URL` or `--editable=URL` when it is a VCS URL.
fn editable_vcs_url(line: &str) -> Option<&str> {
    let trimmed = line.trim();
    let rest = ["--editable", "-e"]
        .iter()
        .find_map(|flag| trimmed.strip_prefix(flag))?;
    let url = rest.strip_prefix('=').unwrap_or(rest).trim();
    // `-egit+…` is not an option pip reads as `-e`; neither is `--editablex`.
    if url.len() == rest.len() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    VCS_PREFIXES
        .iter()
        .any(|p| url.starts_with(p))
        .then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editable_vcs_lines_become_plain_requirements() {
        let text = "flask==3.1.0\n-e git+https://h/r.git@v1#egg=lib\n--editable=hg+https://h/x#egg=x\n-e ./local\n# -e git+https://h/c\n";
        assert_eq!(
            with_vcs_editables_installed(text).unwrap(),
            "flask==3.1.0\ngit+https://h/r.git@v1#egg=lib\nhg+https://h/x#egg=x\n-e ./local\n# -e git+https://h/c\n"
        );
        assert_eq!(with_vcs_editables_installed("flask\n-e ./local\n"), None);
        assert_eq!(with_vcs_editables_installed("-egit+https://h/r\n"), None);
    }
}
