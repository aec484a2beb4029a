//! The default `web` process when the app has no Procfile (a Procfile overrides it): the
//! framework rules of `slugc_start::python`, with the servers the virtualenv installed.

use crate::log;
use libcnb::data::launch::Launch;
use std::path::Path;

/// The launch config with the default `web` process, when a rule gives one; the log says
/// which rule and why the others did not apply.
pub fn launch(app_dir: &Path, venv_bin: Option<&Path>) -> Launch {
    let Some(bin) = venv_bin else {
        return Launch::default();
    };
    let has = |program: &str| bin.join(program).is_file();
    let outcome = slugc_start::python::web(app_dir, &has);
    for warning in &outcome.warnings {
        log::warning(warning.to_string());
    }
    match &outcome.web {
        Some(web) => {
            log::header(format!("Default process: {web}"));
            web.launch()
        }
        None => {
            for note in &outcome.notes {
                log::info(format!("No default web process: {note}"));
            }
            Launch::default()
        }
    }
}
