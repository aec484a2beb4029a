//! `slug manifests`: Kubernetes YAML for a slug's image, parsed back and checked the way
//! `kubectl apply --dry-run=client` would look at it (kinds, API versions, names, selectors).

mod support;

use serde::Deserialize;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::Path;
use support::*;

fn docs(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{yaml}")))
        .collect()
}

fn is_dns_label(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| alnum(b) || b == b'-')
        && alnum(s.as_bytes()[0])
        && alnum(s.as_bytes()[s.len() - 1])
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    serde_norway::from_value(v.clone()).unwrap()
}

fn slug_with(store: &Path, types: &[(&str, &str)]) -> std::path::PathBuf {
    make_slug(
        store,
        &web_app(),
        types
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        BTreeMap::from([("PYTHONUNBUFFERED".to_string(), "1".to_string())]),
    )
}

#[test]
fn deployments_service_and_config_map_fit_together() {
    let dir = scratch("manifests");
    let slug = slug_with(
        &dir.path().join("store"),
        &[
            ("web", "python3 server.py"),
            ("worker", "python3 worker.py"),
            ("release_phase", "python3 migrate.py"),
        ],
    );
    let env_file = dir.path().join("prod.env");
    std::fs::write(
        &env_file,
        "# prod\nDATABASE_URL=postgres://db/app\nMODE=file\n",
    )
    .unwrap();
    let o = run(slug_bin()
        .arg("manifests")
        .arg(&slug)
        .args(["--image", "registry.example/myapp:1.0"])
        .args(["--scale", "web=3,worker=2", "--env", "MODE=flag"])
        .arg("--env-file")
        .arg(&env_file));
    assert!(o.status.success(), "{}", stderr(&o));
    let yaml = stdout(&o);
    let docs = docs(&yaml);
    let kinds: Vec<&str> = docs.iter().map(|d| s(&d["kind"])).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "Deployment",
            "Deployment",
            "Service"
        ]
    );
    for d in &docs {
        let name = s(&d["metadata"]["name"]);
        assert!(is_dns_label(name), "{name}");
        let api = s(&d["apiVersion"]);
        match s(&d["kind"]) {
            "Deployment" => assert_eq!(api, "apps/v1"),
            _ => assert_eq!(api, "v1"),
        }
        assert_eq!(
            s(&d["metadata"]["labels"]["app.kubernetes.io/name"]),
            "myapp"
        );
    }

    let config_map = &docs[0];
    assert_eq!(s(&config_map["metadata"]["name"]), "myapp-config");
    let data = labels(&config_map["data"]);
    assert_eq!(
        data,
        BTreeMap::from([
            ("DATABASE_URL".to_string(), "postgres://db/app".to_string()),
            ("MODE".to_string(), "flag".to_string()),
            ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
        ]),
        "release defaults < --env-file < --env"
    );

    let checksum = format!("SHA256:{}", sha256_file(&slug));
    let by_name: BTreeMap<&str, &Value> = docs[1..4]
        .iter()
        .map(|d| (s(&d["metadata"]["name"]), d))
        .collect();
    for (name, process_type, replicas) in [
        ("myapp-web", "web", 3),
        ("myapp-worker", "worker", 2),
        ("myapp-release-phase", "release_phase", 1),
    ] {
        let d = by_name[name];
        let spec = &d["spec"];
        assert_eq!(spec["replicas"].as_u64(), Some(replicas), "{name}");
        // The selector picks exactly this Deployment's pods.
        let selector = labels(&spec["selector"]["matchLabels"]);
        let pod_labels = labels(&spec["template"]["metadata"]["labels"]);
        assert!(!selector.is_empty());
        for (k, v) in &selector {
            assert_eq!(pod_labels.get(k), Some(v), "{name}: selector {k}");
        }
        assert_eq!(
            selector["app.kubernetes.io/component"],
            process_type.replace('_', "-")
        );
        assert_eq!(
            s(&spec["template"]["metadata"]["annotations"]["org.slugc.slug.checksum"]),
            checksum
        );
        let containers = spec["template"]["spec"]["containers"]
            .as_sequence()
            .unwrap();
        assert_eq!(containers.len(), 1);
        let c = &containers[0];
        assert!(is_dns_label(s(&c["name"])));
        assert_eq!(s(&c["image"]), "registry.example/myapp:1.0");
        assert_eq!(c["args"], serde_norway::to_value([process_type]).unwrap());
        assert_eq!(s(&c["envFrom"][0]["configMapRef"]["name"]), "myapp-config");
        assert_eq!(s(&c["env"][0]["name"]), "PORT");
        assert_eq!(s(&c["env"][0]["value"]), "5000");
    }
    let web = &by_name["myapp-web"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(web["ports"][0]["containerPort"].as_u64(), Some(5000));
    assert_eq!(s(&web["ports"][0]["name"]), "http");

    let service = &docs[4];
    assert_eq!(s(&service["metadata"]["name"]), "myapp-web");
    let selector = labels(&service["spec"]["selector"]);
    let web_pods = labels(&by_name["myapp-web"]["spec"]["template"]["metadata"]["labels"]);
    for (k, v) in &selector {
        assert_eq!(web_pods.get(k), Some(v), "service selector {k}");
    }
    let worker_pods = labels(&by_name["myapp-worker"]["spec"]["template"]["metadata"]["labels"]);
    assert!(
        selector.iter().any(|(k, v)| worker_pods.get(k) != Some(v)),
        "the Service must not select worker pods"
    );
    assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(5000));
    assert_eq!(s(&service["spec"]["ports"][0]["targetPort"]), "http");
}

#[test]
fn output_file_name_and_port_options() {
    let dir = scratch("manifests-opts");
    let slug = slug_with(
        &dir.path().join("store"),
        &[("worker", "python3 worker.py")],
    );
    let out = dir.path().join("k8s.yaml");
    let o = run(slug_bin()
        .arg("manifests")
        .arg(slug.with_extension("json"))
        .args([
            "--image", "myapp:1", "--name", "billing", "--port", "8080", "-o",
        ])
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let docs = docs(&std::fs::read_to_string(&out).unwrap());
    let kinds: Vec<&str> = docs.iter().map(|d| s(&d["kind"])).collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment"], "no web, no Service");
    assert_eq!(s(&docs[1]["metadata"]["name"]), "billing-worker");
    let c = &docs[1]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(s(&c["env"][0]["value"]), "8080");
    assert!(c.get("ports").is_none());
    // Same input, same bytes.
    let again = run(slug_bin()
        .arg("manifests")
        .arg(&slug)
        .args(["--image", "myapp:1", "--name", "billing", "--port", "8080"]));
    assert_eq!(stdout(&again), std::fs::read_to_string(&out).unwrap());
}

#[test]
fn bad_inputs_exit_with_their_code_and_say_what() {
    let dir = scratch("manifests-bad");
    let store = dir.path().join("store");
    let slug = slug_with(&store, &[("web", "python3 server.py")]);
    let manifests = |extra: &[&str]| {
        run(slug_bin()
            .arg("manifests")
            .arg(&slug)
            .args(["--image", "myapp:1"])
            .args(extra))
    };
    let o = manifests(&["--scale", "web"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("\"web\""), "{}", stderr(&o));

    let o = manifests(&["--scale", "clock=1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("\"clock\""), "{}", stderr(&o));
    assert!(stderr(&o).contains("web"), "{}", stderr(&o));

    let o = manifests(&["--name", "My_App"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("My_App"), "{}", stderr(&o));

    let o = manifests(&["--env", "1BAD=x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let env_file = dir.path().join("broken.env");
    std::fs::write(&env_file, "OK=1\nthis line has no equals\n").unwrap();
    let o = manifests(&["--env-file", env_file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(30), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{}:2", env_file.display())),
        "{}",
        stderr(&o)
    );

    // A slug that is not there: a usage error, as for every command that reads slugs.
    let missing = store.join(format!("sha256-{}.json", "2".repeat(64)));
    let o = run(slug_bin()
        .arg("manifests")
        .arg(&missing)
        .args(["--image", "myapp:1"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("sha256-{}", "2".repeat(64))),
        "{}",
        stderr(&o)
    );

    // Process types that collide once made DNS names.
    let clash = make_slug(
        &store,
        &web_app(),
        BTreeMap::from([
            ("web_x".to_string(), "a".to_string()),
            ("web-x".to_string(), "b".to_string()),
        ]),
        BTreeMap::new(),
    );
    let o = run(slug_bin()
        .arg("manifests")
        .arg(&clash)
        .args(["--image", "myapp:1"]));
    assert_eq!(o.status.code(), Some(30), "{}", stderr(&o));
    assert!(stderr(&o).contains("web-x"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(clash.with_extension("json").to_str().unwrap()),
        "{}",
        stderr(&o)
    );
}

/// The validator installed from PyPI into the test cache; `None` (reason printed) without
/// python3's venv or flock.
fn kubernetes_validate() -> Option<std::path::PathBuf> {
    let venv_ok = std::process::Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !venv_ok {
        eprintln!(
            "SKIPPED: python3 with venv and ensurepip is needed to install kubernetes-validate"
        );
        return None;
    }
    require(&["flock", "sha256sum"], false)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/kubernetes-validate.sh");
    let o = run(std::process::Command::new("bash").arg(&script));
    assert!(o.status.success(), "{script:?}: {}", stderr(&o));
    Some(std::path::PathBuf::from(stdout(&o).trim()))
}

/// Every object validates, strictly (no unknown fields), against the Kubernetes API's
/// OpenAPI schemas: what `kubectl apply --dry-run=client` checks, without a cluster.
#[test]
fn manifests_validate_against_the_kubernetes_schema() {
    let Some(validator) = kubernetes_validate() else {
        return;
    };
    let dir = scratch("manifests-schema");
    let store = dir.path().join("store");
    for (n, (types, extra)) in [
        (
            vec![
                ("web", "python3 server.py"),
                ("worker", "python3 w.py"),
                ("release_phase", "x"),
            ],
            vec!["--scale", "web=3,worker=0", "--env", "A=1"],
        ),
        (
            vec![("worker", "python3 w.py")],
            vec!["--port", "8080", "--name", "jobs"],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let slug = slug_with(&store, &types);
        let yaml = dir.path().join(format!("k8s-{n}.yaml"));
        let o = run(slug_bin()
            .arg("manifests")
            .arg(&slug)
            .args(["--image", "registry.example/myapp:1.0"])
            .args(&extra)
            .arg("-o")
            .arg(&yaml));
        assert!(o.status.success(), "{}", stderr(&o));
        let o = run(std::process::Command::new(&validator)
            .arg("--strict")
            .arg(&yaml));
        assert!(
            o.status.success(),
            "kubernetes-validate rejected {yaml:?}:\n{}{}\n{}",
            stdout(&o),
            stderr(&o),
            std::fs::read_to_string(&yaml).unwrap()
        );
        let passed = stdout(&o).matches(" passed for resource ").count();
        assert_eq!(passed, docs(&std::fs::read_to_string(&yaml).unwrap()).len());
    }
}
