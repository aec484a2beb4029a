//! The app's default `web` process: the rules of `slugc_start::node` (the `start` script as
//! Heroku's Node.js buildpack runs it, then framework defaults, `main`, `server.js`,
//! `index.js`), read after the build script ran, so that the files it builds are seen.

use crate::package_manager::Tool;
use libcnb::data::launch::{Label, Launch, LaunchBuilder, ProcessBuilder};
use libcnb::data::process_type;
use std::path::Path;

/// The default `web` process by the rules, read from the app as it is after the build
/// script (a `package.json` the rules cannot read is a warning, and no default).
pub fn default_web(
    app_dir: &Path,
    tool: Tool,
) -> Result<Option<slugc_start::Inferred>, slugc_start::Warning> {
    // Detection needs a package.json; without one the file rules still apply.
    let package_json = slugc_start::node::PackageJson::read(app_dir)?
        .unwrap_or_else(slugc_start::node::PackageJson::empty);
    Ok(slugc_start::node::default_web(
        app_dir,
        &package_json,
        &tool.start_command(),
    ))
}

/// The launch config with `web` as the default process, when there is one (the log says
/// which and from where; the source is also a launch label, which the engine records in the
/// release: `slugc_start::SOURCE_LABEL_PREFIX`).
pub fn launch(web: Option<&slugc_start::Inferred>) -> Launch {
    let mut launch = LaunchBuilder::new();
    if let Some(web) = web {
        println!("-----> Default process: {web}");
        launch
            .process(
                ProcessBuilder::new(process_type!("web"), ["bash", "-c", web.command.as_str()])
                    .default(true)
                    .build(),
            )
            .label(Label {
                key: format!("{}web", slugc_start::SOURCE_LABEL_PREFIX),
                value: web.source.clone(),
            });
    }
    launch.build()
}
