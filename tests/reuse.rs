//! Reused deflate in the export (`slug::reuse`, `slugc_precompress::reuse`): a layer that
//! holds a fragment of a download's own deflate stream for one of its files gets that file
//! into the slug from the fragment, with the same tar, the same bytes on any thread count
//! and with or without the part cache, and exactly the plain slug when the fragment no longer
//! fits.

mod support;

use slugc::slug::{export, precompress, ExportOptions, Exported, Part};
use slugc_precompress::reuse::{self, BlockInflater, DIR};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::tmpfs_dir;

/// Machine-code-like bytes with random stretches (which gzip -9 stores as they are).
fn binary(len: usize) -> Vec<u8> {
    let mut v = b"\x7fELF".to_vec();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (v.len() / 70_000) % 4 == 3 {
            v.extend_from_slice(&x.to_le_bytes());
        } else {
            v.extend_from_slice(
                format!("call {:x}; mov r{}, {}; ", x % 4096, x % 16, x % 977).as_bytes(),
            );
        }
    }
    v.truncate(len);
    v
}

/// A tgz as a registry serves one: `package/LICENSE`, then `package/bin/tool`.
fn download(tool: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data, mode) in [
        ("package/LICENSE", &b"MIT\n"[..], 0o644),
        ("package/bin/tool", tool, 0o755),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_cksum();
        tar.append_data(&mut h, path, data).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// Unpacks the tool into `layer/bin/tool` as a buildpack would, and leaves its fragment.
fn install(layer: &Path, tool: &[u8]) {
    let tgz = download(tool);
    let mut inflater = BlockInflater::new(&tgz[..], true).unwrap();
    let mut tar = Vec::new();
    inflater.read_to_end(&mut tar).unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let entry = archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().to_str() == Some("package/bin/tool"))
        .unwrap();
    let (at, size) = (entry.raw_file_position(), entry.size());
    fs::create_dir_all(layer.join("bin")).unwrap();
    fs::write(layer.join("bin/tool"), tool).unwrap();
    fs::set_permissions(layer.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(layer.join("LICENSE"), "MIT\n").unwrap();
    let (header, fragment) = reuse::prepare(
        &inflater.kept,
        &inflater.borders,
        at,
        size,
        &layer.join("bin/tool"),
    )
    .unwrap()
    .expect("a fragment");
    assert!(
        header.end - header.start > tool.len() as u64 / 2,
        "{header:?}"
    );
    reuse::write(layer, Path::new("bin/tool"), &header, &fragment.bytes).unwrap();
}

/// The app and its layer, as `slug build` makes their parts.
fn parts(app: &Path, layer_name: &str) -> Vec<Part> {
    vec![
        Part {
            source: app.to_path_buf(),
            prefix: "./app".into(),
            exclude: vec![".layers".into()],
        },
        Part {
            source: app.join(".layers/slugc_test").join(layer_name),
            prefix: format!("./app/.layers/slugc_test/{layer_name}"),
            exclude: vec!["env".into(), DIR.into()],
        },
    ]
}

fn opts(threads: usize, part_cache: Option<PathBuf>) -> ExportOptions {
    ExportOptions {
        threads,
        part_cache,
        ..ExportOptions::default()
    }
}

fn gunzip(slug: &Exported) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(fs::File::open(&slug.path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The same app without the fragment.
fn without_fragment(app: &Path, layer_name: &str, to: &Path) -> PathBuf {
    fs::create_dir_all(to).unwrap();
    let copy = to.join("app");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(app)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    fs::remove_dir_all(copy.join(".layers/slugc_test").join(layer_name).join(DIR)).unwrap();
    copy
}

fn check(layer_name: &str) {
    let dir = tmpfs_dir();
    let app = dir.path().join("app");
    fs::create_dir_all(&app).unwrap();
    fs::write(app.join("server.js"), "console.log('hi')\n").unwrap();
    let layer = app.join(".layers/slugc_test").join(layer_name);
    let tool = binary(6_000_000);
    install(&layer, &tool);

    let plain_dir = dir.path().join("plain");
    let plain_app = without_fragment(&app, layer_name, &plain_dir);
    let plain = export(
        &parts(&plain_app, layer_name),
        &plain_dir.join("store"),
        &opts(2, None),
    )
    .unwrap();

    let one = export(
        &parts(&app, layer_name),
        &dir.path().join("s1"),
        &opts(1, None),
    )
    .unwrap();
    // The same tar, with the fragment's bytes in it: a different file than the plain slug.
    assert_eq!(gunzip(&one), gunzip(&plain));
    assert_eq!(one.parts, plain.parts);
    assert_ne!(one.sha256, plain.sha256);
    let tar = gunzip(&one);
    assert!(
        !tar.windows(DIR.len()).any(|w| w == DIR.as_bytes()),
        "the fragments must not be in the slug"
    );
    let status = std::process::Command::new("gzip")
        .arg("-t")
        .arg(&one.path)
        .status()
        .unwrap();
    assert!(status.success());

    for threads in [2, 3] {
        let e = export(
            &parts(&app, layer_name),
            &dir.path().join(format!("t{threads}")),
            &opts(threads, None),
        )
        .unwrap();
        assert_eq!(e.sha256, one.sha256, "{threads} threads");
    }
    // Compressed early into the part cache, then exported twice from it: the same bytes.
    let cache = dir.path().join("parts");
    precompress(&parts(&app, layer_name), 1, &opts(2, Some(cache.clone()))).unwrap();
    for round in 0..2 {
        let e = export(
            &parts(&app, layer_name),
            &dir.path().join(format!("c{round}")),
            &opts(2, Some(cache.clone())),
        )
        .unwrap();
        assert_eq!(e.sha256, one.sha256, "cached export {round}");
    }

    // A file that changed since its fragment was made (same size): the fragment no longer
    // fits and the slug is exactly the plain one of the changed tree.
    let mut changed = tool.clone();
    let middle = changed.len() / 2;
    changed[middle] ^= 0xff;
    fs::write(layer.join("bin/tool"), &changed).unwrap();
    fs::write(
        plain_app
            .join(".layers/slugc_test")
            .join(layer_name)
            .join("bin/tool"),
        &changed,
    )
    .unwrap();
    let stale = export(
        &parts(&app, layer_name),
        &dir.path().join("stale"),
        &opts(2, None),
    )
    .unwrap();
    let changed_plain = export(
        &parts(&plain_app, layer_name),
        &dir.path().join("stale-plain"),
        &opts(2, None),
    )
    .unwrap();
    assert_eq!(stale.sha256, changed_plain.sha256);

    // A damaged fragment file is ignored too.
    fs::write(layer.join("bin/tool"), &tool).unwrap();
    let fragment = layer.join(DIR).join("bin/tool");
    let mut bytes = fs::read(&fragment).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&fragment, bytes).unwrap();
    let damaged = export(
        &parts(&app, layer_name),
        &dir.path().join("damaged"),
        &opts(2, None),
    )
    .unwrap();
    assert_eq!(damaged.sha256, plain.sha256);
}

#[test]
fn a_downloads_own_deflate_is_reused_for_its_file() {
    check("tool");
}

#[test]
fn reuse_finds_the_file_behind_a_pax_path() {
    // A directory name over ustar's 155-byte prefix: the tar names the file in a PAX header.
    check(&"l".repeat(160));
}
