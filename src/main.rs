//! `slug`: argument parsing and exit codes. Each subcommand is in `slugc::cli`, the work in
//! the library.

use clap::{Parser, Subcommand};
use slugc::cli;
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
    Build(cli::build::BuildArgs),
    /// Print the buildpack group and build plan that a build would use
    Detect(cli::detect::DetectArgs),
    /// Explain, without building, how the app would start and what stands in the way
    Doctor(cli::detect::DoctorArgs),
    /// Show a slug's manifest, each layer's size and its largest paths
    Inspect(cli::inspect::InspectArgs),
    /// Manage the build cache
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Run a slug's process types like dynos (formation, ports, prefixed output)
    Run(cli::run::RunArgs),
    /// Run one command in a slug's dyno environment (a one-off dyno)
    Exec(cli::run::ExecArgs),
    /// Build an app, start its web process, wait for HTTP, stop it
    Test(cli::run::TestArgs),
    /// Write an OCI image of a slug over a base image
    Image(cli::image::ImageArgs),
    /// Write Kubernetes manifests for a slug
    Manifests(cli::kubernetes::ManifestsArgs),
    /// The built-in buildpacks
    #[command(subcommand)]
    Buildpacks(BuildpacksCommand),
    /// Compress a complete launch layer ahead of the export (run by the built-in buildpacks)
    #[command(hide = true)]
    PrecompressLayer(cli::precompress::PrecompressArgs),
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Delete an app's build cache
    Clear(cli::cache::CacheClearArgs),
    /// Bound the machine-wide content cache: remove the least recently used parts
    Gc(cli::cache::CacheGcArgs),
}

#[derive(Debug, Subcommand)]
enum BuildpacksCommand {
    /// Write the built-in buildpacks as CNB dirs for `pack build --buildpack`
    Package(cli::buildpacks::PackageArgs),
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
        Command::Build(args) => report(cli::build::build(args)),
        Command::Detect(args) => report(cli::detect::detect(args)),
        Command::Doctor(args) => report(cli::detect::doctor(args)),
        Command::Inspect(args) => report(cli::inspect::inspect(args)),
        Command::Cache(CacheCommand::Clear(args)) => report(cli::cache::clear(args)),
        Command::Cache(CacheCommand::Gc(args)) => report(cli::cache::gc(args)),
        Command::Run(args) => report(cli::run::run(args)),
        Command::Exec(args) => report(cli::run::exec(args)),
        Command::Test(args) => report(cli::run::test(args)),
        Command::Image(args) => report(cli::image::image(args)),
        Command::Manifests(args) => report(cli::kubernetes::manifests(args)),
        Command::Buildpacks(BuildpacksCommand::Package(args)) => {
            report(cli::buildpacks::package(args))
        }
        Command::PrecompressLayer(args) => report(cli::precompress::precompress_layer(args)),
    };
    process::exit(code);
}

/// One clear line saying what failed and where, then the chain of causes; never a backtrace.
fn report<E: std::error::Error + ExitCode>(result: Result<i32, E>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            // URL credentials never reach the terminal, whichever error carries one.
            let redact = |text: &dyn std::fmt::Display| slugc_fs::redact::redact(&text.to_string());
            slugc::say!("error: {}", redact(&e));
            let mut source = e.source();
            while let Some(cause) = source {
                slugc::say!("  caused by: {}", redact(&cause));
                source = cause.source();
            }
            e.exit_code()
        }
    }
}
