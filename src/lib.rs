//! slugc: a reproducible buildpack compiler.
//!
//! [`pipeline`] is one build, source tree to slug, and calls the rest in order:
//! - snapshot: [`project`] reads `project.toml`; [`app`] copies the app into a work dir;
//!   [`config_vars`] reads `--env-file`s; [`buildpacks`] materialises the built-ins,
//!   [`platform::descriptor`] loads other buildpack dirs and [`platform::order`] expands
//!   meta-buildpacks;
//! - detect: [`platform::detect`] picks the group and its build plan;
//! - build: [`platform::run_buildpacks`] runs each buildpack of the group, with [`cache`]
//!   (the app's cached layers), [`platform::layers`], [`platform::env`] and
//!   [`platform::launch`]; [`procfile`] gives the process types, [`start_command`] those of
//!   the app's platform files (and explains them all for `slug doctor`);
//! - export: [`export`] makes the slug's parts and has `slug_format` write them;
//! - store: the release manifest beside the slug, in `slug_format::store`.
//!
//! Slugs are read only through `slug_format::reader`, by [`inspect`], [`run`] (the dynos:
//! `slug run`, `slug exec`, `slug test`), [`image`] (OCI images) and [`kubernetes`]
//! (Kubernetes YAML). [`cli`] holds each subcommand's arguments and printing; [`exit`] the
//! exit codes, [`dirs`] where things go by default, [`log`] the build log on stderr,
//! [`workdir`] the builds' private work dirs and the sweep of dead builds' ones.

pub mod app;
pub mod buildpacks;
pub mod cache;
pub mod cli;
pub mod config_vars;
pub mod dirs;
pub mod exit;
pub mod export;
pub mod image;
pub mod inspect;
pub mod kubernetes;
pub mod log;
pub mod pipeline;
pub mod platform;
pub mod procfile;
pub mod project;
pub mod run;
pub mod size;
pub mod start_command;
pub mod workdir;
