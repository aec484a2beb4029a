//! The app's default `web` process, chosen as Heroku's Node.js buildpack chooses it.

use crate::package_json::PackageJson;
use crate::package_manager::Tool;
use libcnb::data::launch::{Launch, LaunchBuilder, ProcessBuilder};
use libcnb::data::process_type;
use std::path::Path;

/// The launch config with the default `web` process, when there is one (the log says which).
pub fn launch(app_dir: &Path, package_json: &PackageJson, tool: Tool) -> Launch {
    let mut launch = LaunchBuilder::new();
    if let Some(command) = default_web_command(app_dir, package_json, tool) {
        println!("-----> Default process: web: {command}");
        launch.process(
            ProcessBuilder::new(process_type!("web"), ["bash", "-c", command.as_str()])
                .default(true)
                .build(),
        );
    }
    launch.build()
}

/// The package manager's `start` when a start script exists, else `node server.js` /
/// `node index.js`.
pub fn default_web_command(
    app_dir: &Path,
    package_json: &PackageJson,
    tool: Tool,
) -> Option<String> {
    if package_json.script("start").is_some() {
        return Some(tool.start_command());
    }
    ["server.js", "index.js"]
        .into_iter()
        .find(|f| app_dir.join(f).is_file())
        .map(|f| format!("node {f}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_process() {
        let dir = tempfile::tempdir().unwrap();
        let pj = |t: &str| PackageJson::parse(t, Path::new("package.json")).unwrap();
        assert_eq!(default_web_command(dir.path(), &pj("{}"), Tool::Npm), None);
        std::fs::write(dir.path().join("index.js"), "").unwrap();
        assert_eq!(
            default_web_command(dir.path(), &pj("{}"), Tool::Npm).as_deref(),
            Some("node index.js")
        );
        std::fs::write(dir.path().join("server.js"), "").unwrap();
        assert_eq!(
            default_web_command(dir.path(), &pj("{}"), Tool::Npm).as_deref(),
            Some("node server.js")
        );
        let with_start = pj(r#"{"scripts":{"start":"node x.js"}}"#);
        assert_eq!(
            default_web_command(dir.path(), &with_start, Tool::Pnpm).as_deref(),
            Some("pnpm start")
        );
    }
}
