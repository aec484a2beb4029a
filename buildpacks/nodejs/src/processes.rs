//! The app's default `web` process: the rules of `slugc_start::node` (the `start` script as
//! Heroku's Node.js buildpack runs it, then framework defaults, `main`, `server.js`,
//! `index.js`), read after the build script ran, so that the files it builds are seen.

use crate::package_manager::Tool;
use libcnb::data::launch::Launch;
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
/// which and from where).
pub fn launch(web: Option<&slugc_start::Inferred>) -> Launch {
    match web {
        Some(web) => {
            println!("-----> Default process: {web}");
            web.launch()
        }
        None => Launch::default(),
    }
}
