//! `slug image`: the OCI layout and archive it writes, checked by reading them back, by
//! skopeo and umoci, and by running the image under podman.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use support::*;

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn blob(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

/// The manifest and config of the image tagged `tag` in a layout.
fn image_docs(layout: &Path, tag: &str) -> (Value, Value) {
    let index = read_json(&layout.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"))
        .clone();
    let manifest = read_json(&blob(layout, entry["digest"].as_str().unwrap()));
    let config = read_json(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    (manifest, config)
}

fn env_of(config: &Value) -> BTreeMap<String, String> {
    config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            let (k, v) = kv.as_str().unwrap().split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn slug_becomes_the_top_layer_with_launch_config_and_labels() {
    let dir = scratch("image-tiny");
    let base = tiny_base(&dir.path().join("base"));
    let config_vars = BTreeMap::from([("PYTHONUNBUFFERED".to_string(), "1".to_string())]);
    let slug = make_slug(
        &dir.path().join("store"),
        &web_app(),
        web_process_types(),
        config_vars,
    );
    let out = dir.path().join("oci");
    let o = run(slug_bin()
        .arg("image")
        .arg(&slug)
        .arg("--base")
        .arg(format!("{}:tiny", base.display()))
        .args(["--tag", "myapp:1.0", "--output"])
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("myapp:1.0"), "{}", stdout(&o));

    assert_eq!(
        read_json(&out.join("oci-layout"))["imageLayoutVersion"],
        "1.0.0"
    );
    let (manifest, config) = image_docs(&out, "1.0");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "base, slug, launcher: {manifest}");
    // The slug file is the layer blob: same digest, same bytes.
    let slug_hex = sha256_file(&slug);
    assert_eq!(layers[1]["digest"], format!("sha256:{slug_hex}"));
    assert_eq!(
        layers[1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(
        std::fs::read(blob(&out, layers[1]["digest"].as_str().unwrap())).unwrap(),
        std::fs::read(&slug).unwrap()
    );
    // Every blob matches its digest and size, and diff_ids are the uncompressed digests.
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), 3);
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        let path = blob(&out, layer["digest"].as_str().unwrap());
        assert_eq!(
            format!("sha256:{}", sha256_file(&path)),
            layer["digest"].as_str().unwrap()
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            layer["size"].as_u64().unwrap()
        );
        assert_eq!(
            format!("sha256:{}", sha256_gunzipped(&path)),
            diff_id.as_str().unwrap()
        );
    }
    assert_eq!(config["history"].as_array().unwrap().len(), 3);

    let c = &config["config"];
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["User"], "app", "the base's non-root user is kept");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/slugc/launch"]));
    assert_eq!(c["Cmd"], serde_json::json!(["web"]));
    assert!(c["ExposedPorts"]["5000/tcp"].is_object(), "{c}");
    let env = env_of(&config);
    assert_eq!(env["HOME"], "/app");
    assert_eq!(env["PORT"], "5000");
    assert_eq!(env["LANG"], "C.UTF-8", "the base's env is kept");
    assert_eq!(env["PYTHONUNBUFFERED"], "1", "the release's config vars");
    assert_eq!(
        env["GREETING"], "hello from /app",
        ".profile.d made absolute"
    );
    assert_eq!(env["PATH"], "/app/bin:/usr/bin:/bin");
    let labels = &c["Labels"];
    assert_eq!(
        labels["org.slugc.slug.checksum"],
        format!("SHA256:{slug_hex}")
    );
    let types: BTreeMap<String, String> =
        serde_json::from_str(labels["org.slugc.slug.process-types"].as_str().unwrap()).unwrap();
    assert_eq!(types, web_process_types());
}

#[test]
fn same_slug_and_base_give_the_same_image_bytes() {
    let dir = scratch("image-repro");
    let base = tiny_base(&dir.path().join("base"));
    let slug = make_slug(
        &dir.path().join("store"),
        &web_app(),
        web_process_types(),
        BTreeMap::new(),
    );
    let mut outputs = Vec::new();
    for n in 0..2 {
        let out = dir.path().join(format!("oci{n}"));
        let archive = dir.path().join(format!("image{n}.tar"));
        let o = run(slug_bin()
            .arg("image")
            .arg(&slug)
            .arg("--base")
            .arg(&base)
            .arg("--output")
            .arg(&out)
            .arg("--archive")
            .arg(&archive));
        assert!(o.status.success(), "{}", stderr(&o));
        outputs.push((
            std::fs::read(out.join("index.json")).unwrap(),
            std::fs::read(&archive).unwrap(),
        ));
    }
    assert_eq!(outputs[0].0, outputs[1].0, "index.json differs");
    assert!(outputs[0].1 == outputs[1].1, "archives differ");
    // The default tag.
    let (manifest, _) = image_docs(&dir.path().join("oci0"), "latest");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 3);
}

#[test]
fn archive_is_an_oci_layout_and_a_docker_save_archive() {
    let dir = scratch("image-archive");
    let base = tiny_base(&dir.path().join("base"));
    let slug = make_slug(
        &dir.path().join("store"),
        &web_app(),
        web_process_types(),
        BTreeMap::new(),
    );
    let archive = dir.path().join("myapp.tar");
    let o = run(slug_bin()
        .arg("image")
        .arg(&slug)
        .arg("--base")
        .arg(&base)
        .args(["--tag", "registry.example/team/myapp:2"])
        .arg("--archive")
        .arg(&archive));
    assert!(o.status.success(), "{}", stderr(&o));
    let unpacked = dir.path().join("unpacked");
    tar::Archive::new(std::fs::File::open(&archive).unwrap())
        .unpack(&unpacked)
        .unwrap();
    let docker = read_json(&unpacked.join("manifest.json"));
    assert_eq!(
        docker[0]["RepoTags"],
        serde_json::json!(["registry.example/team/myapp:2"])
    );
    let (manifest, config) = image_docs(&unpacked, "2");
    assert_eq!(
        docker[0]["Config"],
        format!(
            "blobs/sha256/{}",
            manifest["config"]["digest"]
                .as_str()
                .unwrap()
                .strip_prefix("sha256:")
                .unwrap()
        )
    );
    let layers: Vec<String> = docker[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        layers.len(),
        config["rootfs"]["diff_ids"].as_array().unwrap().len()
    );
    for l in &layers {
        assert!(unpacked.join(l).is_file(), "{l}");
    }
}

#[test]
fn bad_inputs_exit_with_their_code_and_name_the_file() {
    let dir = scratch("image-bad");
    let base = tiny_base(&dir.path().join("base"));
    let store = dir.path().join("store");
    let slug = make_slug(&store, &web_app(), web_process_types(), BTreeMap::new());
    let image = |slug: &Path, base: &Path, extra: &[&str]| {
        run(slug_bin()
            .arg("image")
            .arg(slug)
            .arg("--base")
            .arg(base)
            .args(extra))
    };
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();

    // A slug that is not there: a usage error, as for every command that reads slugs.
    let missing = store.join(format!("sha256-{}.tgz", "0".repeat(64)));
    let o = image(&missing, &base, &["--output", out_s]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(missing.to_str().unwrap()),
        "{}",
        stderr(&o)
    );

    // A slug whose bytes do not match its name.
    let forged = store.join(format!("sha256-{}.tgz", "1".repeat(64)));
    std::fs::copy(&slug, &forged).unwrap();
    std::fs::copy(slug.with_extension("json"), forged.with_extension("json")).unwrap();
    let o = image(&forged, &base, &["--output", out_s]);
    assert_eq!(o.status.code(), Some(30), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(forged.to_str().unwrap()),
        "{}",
        stderr(&o)
    );

    // A tarball with entries outside ./app/ is no slug.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(2);
    h.set_mode(0o644);
    tar.append_data(&mut h, "etc/passwd", &b"x\n"[..]).unwrap();
    let outside = write_slug_bytes(
        &store,
        &gzip(&tar.into_inner().unwrap()),
        web_process_types(),
        BTreeMap::new(),
    );
    let o = image(&outside, &base, &["--output", out_s]);
    assert_eq!(o.status.code(), Some(30), "{}", stderr(&o));
    assert!(stderr(&o).contains("outside ./app/"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(outside.to_str().unwrap()),
        "{}",
        stderr(&o)
    );

    // A manifest that is not JSON.
    let bad_manifest = dir.path().join("bad.json");
    std::fs::write(&bad_manifest, "{").unwrap();
    let o = image(
        &slug,
        &base,
        &[
            "--output",
            out_s,
            "--manifest",
            bad_manifest.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(30), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(bad_manifest.to_str().unwrap()),
        "{}",
        stderr(&o)
    );

    // A base that is not an OCI layout.
    let not_base = dir.path().join("not-a-base");
    std::fs::create_dir_all(&not_base).unwrap();
    let o = image(&slug, &not_base, &["--output", out_s]);
    assert_eq!(o.status.code(), Some(30), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(not_base.to_str().unwrap()),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("skopeo copy"), "{}", stderr(&o));

    // A base ref that the layout does not hold.
    let o = run(slug_bin()
        .arg("image")
        .arg(&slug)
        .arg("--base")
        .arg(format!("{}:nope", base.display()))
        .args(["--output", out_s]));
    assert_eq!(o.status.code(), Some(30), "{}", stderr(&o));
    assert!(stderr(&o).contains("\"nope\""), "{}", stderr(&o));

    // Usage: a bad tag, no destination.
    let o = image(&slug, &base, &["--output", out_s, "--tag", "MyApp:1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("MyApp:1"), "{}", stderr(&o));
    let o = image(&slug, &base, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // An output dir that holds something else is left alone.
    let busy = dir.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    let o = image(&slug, &base, &["--output", busy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(busy.to_str().unwrap()),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
    assert!(!out.exists(), "no failed run wrote the output");
}

#[test]
fn a_second_image_is_added_to_an_existing_layout() {
    let dir = scratch("image-add");
    let base = tiny_base(&dir.path().join("base"));
    let store = dir.path().join("store");
    let slug = make_slug(&store, &web_app(), web_process_types(), BTreeMap::new());
    let out = dir.path().join("oci");
    for tag in ["myapp:1", "myapp:2", "myapp:1"] {
        let o = run(slug_bin()
            .arg("image")
            .arg(&slug)
            .arg("--base")
            .arg(&base)
            .args(["--tag", tag, "--output"])
            .arg(&out));
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let index = read_json(&out.join("index.json"));
    let refs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(refs, ["2", "1"]);
}

/// The whole path a user takes: a Debian 12 base, `slug image`, then skopeo, umoci and podman
/// accept the layout, and the web process answers on a published port.
#[test]
fn image_runs_under_podman_and_answers_http() {
    let Some(base) = debian12_base() else { return };
    if require(&["skopeo", "podman", "runc"], true).is_none() {
        return;
    }
    let dir = scratch("image-podman");
    let slug = make_slug(
        &dir.path().join("store"),
        &web_app(),
        web_process_types(),
        BTreeMap::new(),
    );
    let out = dir.path().join("oci");
    let archive = dir.path().join("myapp.tar");
    let o = run(slug_bin()
        .arg("image")
        .arg(&slug)
        .arg("--base")
        .arg(format!("{}:bookworm", base.display()))
        .args(["--tag", "slugc-test/myapp:1.0", "--output"])
        .arg(&out)
        .arg("--archive")
        .arg(&archive));
    assert!(o.status.success(), "{}", stderr(&o));
    let image_ref = format!("oci:{}:1.0", out.display());

    // skopeo reads it, and sees what the config says.
    let o = run(Command::new("skopeo").args(["inspect", &image_ref]));
    assert!(o.status.success(), "skopeo inspect: {}", stderr(&o));
    let inspect: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        inspect["Labels"]["org.slugc.slug.checksum"],
        format!("SHA256:{}", sha256_file(&slug))
    );
    assert!(inspect["Layers"]
        .as_array()
        .unwrap()
        .contains(&Value::from(format!("sha256:{}", sha256_file(&slug)))));

    // umoci unpacks it: the slug at /app, the launcher beside.
    let bundle = dir.path().join("bundle");
    let o = run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:1.0", out.display()))
        .arg(&bundle));
    assert!(o.status.success(), "umoci unpack: {}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/app/server.py")).unwrap(),
        SERVER_PY
    );
    assert!(bundle.join("rootfs/slugc/launch").is_file());
    assert!(bundle.join("rootfs/usr/bin/python3").exists());

    // podman runs the web process; it answers 200 with the launch env in place.
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.args(["--runtime", "runc"]).args(args);
        c
    };
    let port = free_port();
    let name = format!("slugc-test-{port}");
    let o = run(podman(&[
        "run",
        "-d",
        "--name",
        &name,
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
        "-p",
        &format!("127.0.0.1:{port}:5000"),
        &image_ref,
    ]));
    assert!(o.status.success(), "podman run: {}", stderr(&o));
    let answer = wait_http(port, || {
        let o = run(podman(&[
            "inspect",
            "--format",
            "{{.State.Running}}",
            &name,
        ]));
        stdout(&o).trim() == "true"
    });
    let logs = stderr(&run(podman(&["logs", &name])));
    let _ = run(podman(&["rm", "-f", "-t", "1", &name]));
    let (status, body) = answer.unwrap_or_else(|| panic!("no HTTP answer; logs:\n{logs}"));
    assert_eq!(status, 200);
    assert_eq!(body, "hello from /app home=/app cwd=/app uid=1000\n");

    // Other process types and one-off commands are chosen by the container's args.
    let one_off = |arg: &str| {
        run(podman(&[
            "run",
            "--rm",
            "--ulimit",
            "nofile=4096:4096",
            "--ulimit",
            "nproc=4096:4096",
            &image_ref,
            arg,
        ]))
    };
    let o = one_off("worker");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "worker ran\n");
    let o = one_off("hello; echo $GREETING");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello-from-bin\nhello from /app\n");

    // The archive loads into podman under its tag and runs the same way.
    let o = run(podman(&["load", "-i", archive.to_str().unwrap()]));
    assert!(o.status.success(), "podman load: {}", stderr(&o));
    let o = run(podman(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
        "slugc-test/myapp:1.0",
        "worker",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "worker ran\n");
    let _ = run(podman(&["rmi", "-f", "slugc-test/myapp:1.0"]));
    // podman stored the image it pulled from the layout under the layout's path.
    let _ = run(podman(&[
        "rmi",
        "-f",
        &format!("localhost{}:latest", out.display()),
    ]));
}

/// A slug from the real engine (the Flask fixture, built by the Python buildpack) runs in the
/// image: its relocatable runtime and venv work at `/app` as the base's non-root user.
#[test]
fn built_flask_slug_serves_http_from_the_image() {
    let Some(base) = debian12_base() else { return };
    if require(&["podman", "runc"], true).is_none() {
        return;
    }
    let dir = scratch("image-flask");
    let store = dir.path().join("store");
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/python-flask");
    let o = run(slug_bin()
        .arg("build")
        .arg(&app)
        .arg("--no-cache")
        .arg("--json")
        .arg("--output")
        .arg(&store));
    assert!(o.status.success(), "slug build: {}", stderr(&o));
    let release: Value = serde_json::from_slice(&o.stdout).unwrap();
    let hex = release["checksum"]
        .as_str()
        .unwrap()
        .strip_prefix("SHA256:")
        .unwrap();
    let slug = store.join(format!("sha256-{hex}.tgz"));

    let out = dir.path().join("oci");
    let o = run(slug_bin()
        .arg("image")
        .arg(&slug)
        .arg("--base")
        .arg(format!("{}:bookworm", base.display()))
        .args(["--tag", "flask:1", "--output"])
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let (manifest, config) = image_docs(&out, "1");
    assert_eq!(manifest["layers"][1]["digest"], format!("sha256:{hex}"));
    let env = env_of(&config);
    assert!(
        env["PATH"].starts_with("/app/.layers/slugc_python/"),
        "launch env made absolute: {env:?}"
    );

    let port = free_port();
    let name = format!("slugc-test-flask-{port}");
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.args(["--runtime", "runc"]).args(args);
        run(c)
    };
    let o = podman(&[
        "run",
        "-d",
        "--name",
        &name,
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
        "-p",
        &format!("127.0.0.1:{port}:5000"),
        &format!("oci:{}:1", out.display()),
    ]);
    assert!(o.status.success(), "podman run: {}", stderr(&o));
    let answer = wait_http(port, || {
        stdout(&podman(&[
            "inspect",
            "--format",
            "{{.State.Running}}",
            &name,
        ]))
        .trim()
            == "true"
    });
    let logs = stderr(&podman(&["logs", &name]));
    let _ = podman(&["rm", "-f", "-t", "1", &name]);
    let _ = podman(&["rmi", "-f", &format!("localhost{}:latest", out.display())]);
    let (status, body) = answer.unwrap_or_else(|| panic!("no HTTP answer; logs:\n{logs}"));
    assert_eq!(status, 200, "{logs}");
    assert_eq!(body, "Hello from Flask on slugc\n");
}
