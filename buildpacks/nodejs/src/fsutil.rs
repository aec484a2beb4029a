//! File-system helpers: unpacking npm tarballs, copying trees, the `node_modules` link.

use flate2::read::GzDecoder;
use std::io;
use std::path::{Component, Path, PathBuf};

/// What [`unpack_package`] does with an entry, by its stripped path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Skip,
    Unpack,
    /// Unpack it and stop: nothing after it is wanted, so the rest is not even inflated.
    UnpackLast,
}

impl Take {
    /// [`Take::Unpack`] when `wanted`, else [`Take::Skip`].
    pub fn unpack_if(wanted: bool) -> Self {
        if wanted {
            Take::Unpack
        } else {
            Take::Skip
        }
    }
}

/// Unpack an npm package tarball (bytes, or a download as it arrives) into `dest`, dropping
/// the first path component (`package/`) and refusing entries that would land outside
/// `dest`. `take` decides by the stripped path.
pub fn unpack_package(
    tgz: impl io::Read,
    dest: &Path,
    take: impl FnMut(&Path) -> Take,
) -> io::Result<()> {
    unpack_package_tar(GzDecoder::new(tgz), dest, take, &mut |_, _| {})
}

/// [`unpack_package`] of the decompressed tar, telling `unpacked` where in it each unpacked
/// regular file's data begins (the runtime layer keeps the download's blocks of its binary).
pub fn unpack_package_tar(
    tar: impl io::Read,
    dest: &Path,
    take: impl FnMut(&Path) -> Take,
    unpacked: &mut dyn FnMut(&Path, u64),
) -> io::Result<()> {
    std::fs::create_dir_all(dest)?;
    let mut take = take;
    let mut archive = tar::Archive::new(tar);
    archive.set_preserve_permissions(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let stripped: PathBuf = path.components().skip(1).collect();
        if stripped.as_os_str().is_empty() {
            continue;
        }
        let what = take(&stripped);
        if what == Take::Skip {
            continue;
        }
        if stripped
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("tarball entry {} escapes the package dir", path.display()),
            ));
        }
        let target = dest.join(&stripped);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let at = entry.raw_file_position();
        // Only a plain file's data lies in the stream as it is (not a sparse one's).
        let plain = entry.header().entry_type() == tar::EntryType::Regular;
        entry.unpack(&target)?;
        if plain {
            unpacked(&stripped, at);
        }
        if what == Take::UnpackLast {
            break;
        }
    }
    Ok(())
}

/// Remove whatever is at `path` (file, symlink or tree); nothing there is fine.
pub fn remove_any(path: &Path) -> io::Result<()> {
    match path.symlink_metadata() {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Point `link` at `target` with a path relative to `link`'s dir when `target` is under it
/// (our layers live inside the app dir during a build and after unpacking, so the relative
/// link survives relocation); an absolute link otherwise (e.g. `pack`'s `/layers`).
pub fn link_dir(target: &Path, link: &Path) -> io::Result<()> {
    remove_any(link)?;
    let base = link.parent().unwrap_or(Path::new("/"));
    let relative = target.strip_prefix(base).map(Path::to_path_buf);
    std::os::unix::fs::symlink(relative.as_deref().unwrap_or(target), link)
}

/// After `node_modules` moved from `from` to `to`: the links at its top (and under `@scope/`)
/// whose relative targets lead out of it, to workspace packages (`greeting ->
/// ../packages/greeting`, as npm, Yarn and pnpm link them), point where they pointed again,
/// by a relative path from their new place.
pub fn rebase_links(from: &Path, to: &Path) -> io::Result<()> {
    rebase_links_in(from, from, to)
}

/// [`rebase_links`] for the links in `to` (which was `from`), of the tree that was `root`.
fn rebase_links_in(root: &Path, from: &Path, to: &Path) -> io::Result<()> {
    let top = root == from;
    for entry in std::fs::read_dir(to)? {
        let entry = entry?;
        let name = entry.file_name();
        let file_type = entry.file_type()?;
        if top && file_type.is_dir() && name.to_string_lossy().starts_with('@') {
            rebase_links_in(root, &from.join(&name), &to.join(&name))?;
            continue;
        }
        if !file_type.is_symlink() {
            continue;
        }
        let target = std::fs::read_link(entry.path())?;
        if target.is_absolute() || !target.starts_with("..") {
            continue;
        }
        let pointed = normalize(&from.join(&target));
        if pointed.starts_with(root) {
            continue;
        }
        let new = slugc_fs::relative_path(to, &pointed);
        std::fs::remove_file(entry.path())?;
        std::os::unix::fs::symlink(new, entry.path())?;
    }
    Ok(())
}

/// `path` with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, data, mode) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(*mode);
            header.set_cksum();
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn links_to_workspace_packages_survive_the_move_into_a_layer() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path();
        std::fs::create_dir_all(app.join("packages/greeting")).unwrap();
        std::fs::create_dir_all(app.join("node_modules/@scope")).unwrap();
        std::fs::create_dir_all(app.join("node_modules/.pnpm/ms")).unwrap();
        let link = |target: &str, at: &str| {
            std::os::unix::fs::symlink(target, app.join("node_modules").join(at)).unwrap()
        };
        link("../packages/greeting", "greeting");
        link("../../packages/greeting", "@scope/greeting");
        link(".pnpm/ms", "ms");
        let layer = app.join(".layers/slugc_nodejs/modules");
        std::fs::create_dir_all(&layer).unwrap();
        let to = layer.join("node_modules");
        std::fs::rename(app.join("node_modules"), &to).unwrap();
        rebase_links(&app.join("node_modules"), &to).unwrap();
        let read = |at: &str| std::fs::read_link(to.join(at)).unwrap();
        assert_eq!(read("greeting"), Path::new("../../../../packages/greeting"));
        assert_eq!(
            read("@scope/greeting"),
            Path::new("../../../../../packages/greeting")
        );
        assert_eq!(read("ms"), Path::new(".pnpm/ms"), "inside the tree: kept");
        assert!(to.join("greeting").is_dir() && to.join("@scope/greeting").is_dir());
    }

    #[test]
    fn unpack_strips_package_and_filters() {
        use std::os::unix::fs::PermissionsExt;
        let bytes = tarball(&[
            ("package/bin/node", b"ELF", 0o755),
            ("package/share/doc/x", b"doc", 0o644),
            ("package/LICENSE", b"MIT", 0o644),
        ]);
        let dir = tempfile::tempdir().unwrap();
        unpack_package(bytes.as_slice(), dir.path(), |p| {
            Take::unpack_if(!p.starts_with("share"))
        })
        .unwrap();
        assert_eq!(std::fs::read(dir.path().join("bin/node")).unwrap(), b"ELF");
        let mode = std::fs::metadata(dir.path().join("bin/node"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        assert!(dir.path().join("LICENSE").is_file());
        assert!(!dir.path().join("share").exists());

        let dir = tempfile::tempdir().unwrap();
        unpack_package(bytes.as_slice(), dir.path(), |p| {
            if p == Path::new("bin/node") {
                Take::UnpackLast
            } else {
                Take::Unpack
            }
        })
        .unwrap();
        assert!(dir.path().join("bin/node").is_file());
        assert!(!dir.path().join("share/doc/x").exists());
        assert!(!dir.path().join("LICENSE").exists());
    }

    #[test]
    fn link_dir_relative_under_the_dir_absolute_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let dst = dir.path().join("b/node_modules");
        std::fs::create_dir_all(&dst).unwrap();

        let app = dir.path().join("app");
        let layer = app.join(".layers/slugc_nodejs/modules/node_modules");
        std::fs::create_dir_all(&layer).unwrap();
        std::fs::create_dir_all(app.join("node_modules")).unwrap();
        link_dir(&layer, &app.join("node_modules")).unwrap();
        assert_eq!(
            std::fs::read_link(app.join("node_modules")).unwrap(),
            Path::new(".layers/slugc_nodejs/modules/node_modules")
        );
        link_dir(&dst, &app.join("node_modules")).unwrap();
        assert_eq!(std::fs::read_link(app.join("node_modules")).unwrap(), dst);
    }
}
