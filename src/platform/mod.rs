//! The CNB platform (Buildpack API 0.10, with 0.9 and 0.11 accepted) and the classic Heroku
//! buildpack API, run in one loop: `descriptor` (what a buildpack dir is), `order`
//! (meta-buildpacks expanded into groups), `target` (the host as a CNB target), `detect`
//! (order groups, build plan), `run_buildpacks` (running each buildpack), `layers`
//! (restore/save, ignored layers),
//! `env` (environment between buildpacks and at launch), `home` (the build's `HOME`),
//! `launch` (processes), `classic`,
//! `process` (each buildpack's process tree, ended with the build).

pub mod classic;
pub mod descriptor;
pub mod detect;
pub mod env;
pub mod home;
pub mod launch;
pub mod layers;
pub mod order;
pub mod output;
pub mod process;
pub mod run_buildpacks;
pub mod target;

/// A buildpack id as a directory name: `/` replaced by `_` (spec: layers dir per buildpack).
pub fn escape_id(id: &str) -> String {
    id.replace('/', "_")
}
