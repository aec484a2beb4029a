//! `slug detect`: the buildpack group and build plan a build would use.

use super::AppArgs;
use crate::exit;
use crate::pipeline::{self, BuildError};

#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// Print the group and plan as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn detect(args: DetectArgs) -> Result<i32, BuildError> {
    let detected = pipeline::detect(&args.app.inputs()?)?;
    if args.json {
        let value = serde_json::json!({
            "group": detected.group.iter().map(|bp| serde_json::json!({
                "id": bp.id, "version": bp.version, "api": bp.api(), "name": bp.name,
            })).collect::<Vec<_>>(),
            "plan": detected.deps,
            "description": detected.description,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
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
    }
    Ok(exit::BUILT)
}
