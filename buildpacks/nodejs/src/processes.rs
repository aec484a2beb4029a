//! The app's default `web` process: the rules of `slugc_start::node` (the `start` script as
//! Heroku's Node.js buildpack runs it, then framework defaults, `main`, `server.js`,
//! `index.js`), read after the build script ran, so that the files it builds are seen.

use crate::package_manager::Tool;
use libcnb::data::launch::{Label, Launch, LaunchBuilder, ProcessBuilder};
use libcnb::data::process_type;
use std::path::Path;

/// The launch config with the default `web` process, when there is one (the log says which
/// and from where; the source is also a launch label, which the engine records in the
/// release: `slugc_start::SOURCE_LABEL_PREFIX`).
pub fn launch(app_dir: &Path, tool: Tool) -> Launch {
    let mut launch = LaunchBuilder::new();
    let package_json = match slugc_start::node::PackageJson::read(app_dir) {
        // Detection needs a package.json; without one the file rules still apply.
        Ok(p) => p.unwrap_or_else(slugc_start::node::PackageJson::empty),
        Err(warning) => {
            println!(" !     Warning: {warning}");
            return launch.build();
        }
    };
    if let Some(web) = slugc_start::node::default_web(app_dir, &package_json, &tool.start_command())
    {
        println!("-----> Default process: {web}");
        launch
            .process(
                ProcessBuilder::new(process_type!("web"), ["bash", "-c", web.command.as_str()])
                    .default(true)
                    .build(),
            )
            .label(Label {
                key: format!("{}web", slugc_start::SOURCE_LABEL_PREFIX),
                value: web.source,
            });
    }
    launch.build()
}

/// The default `web` command alone (for the checks that follow its binaries), read as
/// [`launch`] reads it.
pub fn default_web_command(app_dir: &Path, tool: Tool) -> Option<String> {
    let package_json = slugc_start::node::PackageJson::read(app_dir)
        .ok()?
        .unwrap_or_else(slugc_start::node::PackageJson::empty);
    slugc_start::node::default_web(app_dir, &package_json, &tool.start_command())
        .map(|web| web.command)
}
