//! File-tree helpers for filling layers.

use std::io;
use std::path::Path;

/// Copy `from` into `to` (created), keeping file modes. `keep(relative_path, is_dir)` decides
/// what is copied. Symlinks are followed (the host's stdlib has absolute ones, e.g. Debian's
/// `sitecustomize.py` → `/etc/...`, which would dangle in a slug); dangling ones are skipped.
pub fn copy_tree(from: &Path, to: &Path, keep: &dyn Fn(&Path, bool) -> bool) -> io::Result<()> {
    copy_dir(from, to, Path::new(""), keep)
}

fn copy_dir(
    from: &Path,
    to: &Path,
    rel: &Path,
    keep: &dyn Fn(&Path, bool) -> bool,
) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    let mut entries: Vec<_> = std::fs::read_dir(from)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let src = entry.path();
        let Ok(meta) = std::fs::metadata(&src) else {
            continue; // dangling symlink
        };
        let rel = rel.join(&name);
        if !keep(&rel, meta.is_dir()) {
            continue;
        }
        let dst = to.join(&name);
        if meta.is_dir() {
            copy_dir(&src, &dst, &rel, keep)?;
        } else if meta.is_file() {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// SHA-256 of a file's bytes, lower-case hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path)?;
    io::copy(&mut file, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_tree_filters_and_follows_file_symlinks() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("a/__pycache__")).unwrap();
        std::fs::write(src.path().join("a/x.py"), "x").unwrap();
        std::fs::write(src.path().join("a/__pycache__/x.pyc"), "c").unwrap();
        std::os::unix::fs::symlink(src.path().join("a/x.py"), src.path().join("link.py")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", src.path().join("dangling")).unwrap();
        copy_tree(src.path(), &dst.path().join("out"), &|rel, _| {
            !rel.ends_with("__pycache__")
        })
        .unwrap();
        let out = dst.path().join("out");
        assert_eq!(std::fs::read_to_string(out.join("a/x.py")).unwrap(), "x");
        assert!(!out.join("a/__pycache__").exists());
        assert!(!out.join("link.py").symlink_metadata().unwrap().is_symlink());
        assert!(out.join("dangling").symlink_metadata().is_err());
    }
}
