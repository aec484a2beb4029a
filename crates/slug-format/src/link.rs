//! The one rule for symlinks in a slug. The exporter ([`crate::tar`]) applies it to every
//! link it writes and refuses the build when a link breaks it; the reader
//! ([`crate::reader`]) applies it to every link it reads and refuses the slug. So a slug
//! that `slug build` writes is one that `slug run` accepts, and the other way round.
//!
//! - An **absolute** target is kept as it is: it names a path of the stack the slug runs on
//!   (`venv/bin/python3 -> /usr/bin/python3`) and resolves there at run time, as symlinks in
//!   a CNB image's layers do. (The exporter first rewrites an absolute target that points
//!   into the build root to the equivalent relative one, and refuses one into the rest of
//!   the build's work dir, whose path changes with every build; only it knows those dirs.)
//! - A **relative** target is followed from the link's directory the way the kernel would
//!   (`path_resolution(7)`), through the slug's other symlinks, and must end inside `app/`.
//!   Passing through the slug root is fine (`app/ok -> ../app/real.txt` is `app/real.txt`);
//!   going above it (`../../etc/passwd`), ending beside `app/`, or a loop of more than
//!   [`MAX_HOPS`] links is refused. A walk that meets an absolute link is left to the stack,
//!   like an absolute target. A missing component is taken as a plain name: a dangling link
//!   inside the app is harmless.
//!
//! What makes any target safe to unpack is the reader's other rule: nothing is ever written
//! through a link (no entry lies under one, symlinks are created last).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Symlink hops allowed while resolving one link, as Linux's `MAXSYMLINKS`.
pub const MAX_HOPS: usize = 40;

/// Why a symlink breaks the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("is a symlink without a target")]
    Empty,
    #[error("is a symlink to {0} which points outside the app")]
    Outside(String),
    #[error("is a symlink to {0} through more than 40 symlinks (a loop)")]
    Loop(String),
    /// Only the exporter finds this one: the reader does not know the build's dirs.
    #[error("is a symlink to {0}, in the build's work dir, which the slug does not hold")]
    IntoBuild(String),
}

/// Where a link that keeps the rule leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Inside `app/`: this slug path (`app/...`).
    Inside(PathBuf),
    /// A path of the stack, at run time.
    Stack,
}

/// Checks the link at `link` (a slug path, `app/...`) with target `target`. `lookup(path)`
/// gives the target of the slug's symlink at `path` (a slug path), if there is one there.
pub fn check(
    link: &Path,
    target: &Path,
    lookup: impl Fn(&Path) -> Option<PathBuf>,
) -> Result<Resolved, LinkError> {
    let shown = || target.to_string_lossy().into_owned();
    if target.as_os_str().is_empty() {
        return Err(LinkError::Empty);
    }
    if target.is_absolute() {
        return Ok(Resolved::Stack);
    }
    let mut stack: Vec<OsString> = match link.parent() {
        Some(p) => p.iter().map(OsString::from).collect(),
        None => return Err(LinkError::Outside(shown())),
    };
    let mut pending: Vec<OsString> = target.iter().rev().map(OsString::from).collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == "." {
            continue;
        }
        if part == ".." {
            // An empty stack is the slug root: above it is outside.
            if stack.pop().is_none() {
                return Err(LinkError::Outside(shown()));
            }
            continue;
        }
        stack.push(part);
        let current: PathBuf = stack.iter().collect();
        if let Some(next) = lookup(&current) {
            hops += 1;
            if hops > MAX_HOPS {
                return Err(LinkError::Loop(shown()));
            }
            if next.is_absolute() {
                return Ok(Resolved::Stack);
            }
            if next.as_os_str().is_empty() {
                return Err(LinkError::Outside(shown()));
            }
            stack.pop();
            pending.extend(next.iter().rev().map(OsString::from));
        }
    }
    if stack.first().is_some_and(|first| first == "app") {
        Ok(Resolved::Inside(stack.iter().collect()))
    } else {
        Err(LinkError::Outside(shown()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn links(pairs: &[(&str, &str)]) -> BTreeMap<PathBuf, PathBuf> {
        pairs
            .iter()
            .map(|(a, b)| (PathBuf::from(a), PathBuf::from(b)))
            .collect()
    }

    fn run(l: &BTreeMap<PathBuf, PathBuf>, link: &str) -> Result<Resolved, LinkError> {
        check(Path::new(link), &l[Path::new(link)], |p| l.get(p).cloned())
    }

    #[test]
    fn relative_links_follow_the_others_like_the_kernel() {
        let l = links(&[
            ("app/bin/tool", "../lib/tool.sh"),
            ("app/self", "."),
            ("app/escape", "self/.."),
            ("app/up", ".."),
            ("app/a/b", "../../.."),
            ("app/loop1", "loop2"),
            ("app/loop2", "loop1"),
            ("app/dangling", "missing/file"),
            ("app/ok", "../app/real.txt"),
            ("app/beside", "../other/x"),
            ("app/python3", "/usr/bin/python3"),
            ("app/via-stack", "python3/../lib"),
        ]);
        let inside = |p: &str| Ok(Resolved::Inside(PathBuf::from(p)));
        assert_eq!(run(&l, "app/bin/tool"), inside("app/lib/tool.sh"));
        assert_eq!(run(&l, "app/self"), inside("app"));
        assert_eq!(run(&l, "app/dangling"), inside("app/missing/file"));
        assert_eq!(run(&l, "app/ok"), inside("app/real.txt"));
        assert_eq!(run(&l, "app/python3"), Ok(Resolved::Stack));
        assert_eq!(run(&l, "app/via-stack"), Ok(Resolved::Stack));
        for outside in ["app/escape", "app/up", "app/a/b", "app/beside"] {
            assert!(
                matches!(run(&l, outside), Err(LinkError::Outside(_))),
                "{outside}"
            );
        }
        assert!(matches!(run(&l, "app/loop1"), Err(LinkError::Loop(_))));
        assert_eq!(
            check(Path::new("app/x"), Path::new(""), |_| None),
            Err(LinkError::Empty)
        );
    }
}
