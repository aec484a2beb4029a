//! `slug detect`: the buildpack group and build plan a build would use, and how the app
//! would start (each process with its source); `--explain` (or `slug doctor`) adds what a
//! rule found but is not used, why rules did not apply, and the warnings. Nothing is built.

use super::AppArgs;
use crate::exit;
use crate::pipeline::{self, BuildError};
use crate::start_command::{self, Explained};

#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// Print the group, plan, processes and warnings as JSON
    #[arg(long)]
    pub json: bool,
    /// Also show unused start commands, why rules did not apply, and the warnings
    #[arg(long)]
    pub explain: bool,
}

/// `slug doctor APP`: `slug detect --explain APP`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// Print the report as JSON (as `slug detect --json`)
    #[arg(long)]
    pub json: bool,
}

pub fn doctor(args: DoctorArgs) -> Result<i32, BuildError> {
    detect(DetectArgs {
        app: args.app,
        json: args.json,
        explain: true,
    })
}

pub fn detect(args: DetectArgs) -> Result<i32, BuildError> {
    let app_src = crate::app::check_app_dir(&args.app.app_dir)?;
    let detected = pipeline::detect(&args.app.inputs()?)?;
    let explained = start_command::explain(&app_src, &detected);
    if args.json {
        let value = serde_json::json!({
            "group": detected.group.iter().map(|bp| serde_json::json!({
                "id": bp.id, "version": bp.version, "api": bp.api(), "name": bp.name,
            })).collect::<Vec<_>>(),
            "plan": detected.deps,
            "description": detected.description,
            "processes": explained.processes,
            "unused": explained.unused,
            "notes": explained.notes,
            "warnings": explained.warnings,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return Ok(exit::BUILT);
    }
    println!("-----> {} app detected", detected.description);
    for bp in &detected.group {
        println!("       {} {} (api {})", bp.id, bp.version, bp.api());
    }
    for dep in &detected.deps {
        println!(
            "       plan: {} provided by {}",
            dep.name,
            dep.providers.join(", ")
        );
    }
    print_processes(&explained);
    if args.explain {
        print_explanation(&explained);
    }
    Ok(exit::BUILT)
}

fn print_processes(explained: &Explained) {
    if explained.processes.is_empty() {
        println!("-----> Processes: none (add a Procfile, e.g. `web: <command>`)");
        return;
    }
    println!("-----> Processes");
    for p in &explained.processes {
        println!("       {p}");
    }
}

fn print_explanation(explained: &Explained) {
    for p in &explained.unused {
        println!("       not used: {p}");
    }
    for note in &explained.notes {
        println!("       note: {note}");
    }
    if explained.warnings.is_empty() {
        println!("-----> Warnings: none");
    } else {
        println!("-----> Warnings");
        for w in &explained.warnings {
            println!("{w}");
        }
    }
}
