//! slugc: a reproducible buildpack compiler. The modules follow the pipeline (DESIGN.md):
//! `app` → `platform::detect` → `platform::build` → `export` (parts) → `slug_format`.

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
pub mod pipeline;
pub mod platform;
pub mod procfile;
pub mod run;
pub mod size;
