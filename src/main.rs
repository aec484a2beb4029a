//! `slug`: argument parsing and exit codes. The work is in the library.

use clap::{Parser, Subcommand};
use slugc::exit::{self, ExitCode};
use std::process;

#[derive(Debug, Parser)]
#[command(
    name = "slug",
    version,
    about = "Build reproducible, content-addressed slugs from app source trees"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a slug from an app dir (detect, compile, export)
    Build(slugc::build::BuildArgs),
    /// Print the buildpack group and build plan that a build would use
    Detect(slugc::build::DetectArgs),
    /// Show a slug's manifest, each layer's size and its largest paths
    Inspect(slugc::inspect::InspectArgs),
    /// Manage the build cache
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Run a slug's process types like dynos (formation, ports, prefixed output)
    Run(slugc::run::RunArgs),
    /// Run one command in a slug's dyno environment (a one-off dyno)
    Exec(slugc::run::ExecArgs),
    /// Build an app, start its web process, wait for HTTP, stop it
    Test(slugc::run::TestArgs),
    /// Write an OCI image of a slug over a base image
    Image(slugc::image::ImageArgs),
    /// Write Kubernetes manifests for a slug
    Manifests(slugc::manifests::ManifestsArgs),
    /// The built-in buildpacks
    #[command(subcommand)]
    Buildpacks(BuildpacksCommand),
    /// Compress a complete launch layer ahead of the export (run by the built-in buildpacks)
    #[command(hide = true)]
    PrecompressLayer(slugc::export::PrecompressArgs),
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Delete an app's build cache
    Clear(slugc::build::CacheClearArgs),
    /// Bound the machine-wide content cache: remove the least recently used parts
    Gc(slugc::build::CacheGcArgs),
}

#[derive(Debug, Subcommand)]
enum BuildpacksCommand {
    /// Write the built-in buildpacks as CNB dirs for `pack build --buildpack`
    Package(slugc::package::PackageArgs),
}

fn main() {
    // Started as a materialised built-in buildpack's bin/detect or bin/build.
    if slugc::buildpacks::started_as_buildpack() {
        slugc::buildpacks::run_builtin();
    }

    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            process::exit(code);
        }
    };
    let code = match cli.command {
        Command::Build(args) => report(slugc::build::build_command(args)),
        Command::Detect(args) => report(slugc::build::detect_command(args)),
        Command::Inspect(args) => report(slugc::inspect::inspect(args)),
        Command::Cache(CacheCommand::Clear(args)) => report(slugc::build::cache_clear(args)),
        Command::Cache(CacheCommand::Gc(args)) => report(slugc::build::cache_gc(args)),
        Command::Run(args) => report(slugc::run::run(args)),
        Command::Exec(args) => report(slugc::run::exec(args)),
        Command::Test(args) => report(slugc::run::test(args)),
        Command::Image(args) => report(slugc::image::image(args)),
        Command::Manifests(args) => report(slugc::manifests::manifests(args)),
        Command::Buildpacks(BuildpacksCommand::Package(args)) => {
            report(slugc::package::package(args))
        }
        Command::PrecompressLayer(args) => report(slugc::export::precompress_layer(args)),
    };
    process::exit(code);
}

/// One clear line saying what failed and where, then the chain of causes; never a backtrace.
fn report<E: std::error::Error + ExitCode>(result: Result<i32, E>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            e.exit_code()
        }
    }
}
