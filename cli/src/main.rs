//! `chunkpipe`: the project's command line.
//!
//! - `chunkpipe bench`: the workloads of the benchmark contract against the naive peer, on a real
//!   file, interleaved, with ratios.
//! - `chunkpipe sim`: deterministic crash-simulation campaigns from seeds.
//! - `chunkpipe inspect`: what a data file, its metadata and its journal hold.
#![deny(missing_docs)]

mod bench;
mod inspect;
mod sim;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chunkpipe",
    version,
    about = "chunkpipe: a durable, group-committing write pipeline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure chunkpipe against its peers on a real file.
    Bench(bench::BenchArgs),
    /// Run deterministic crash simulations from seeds.
    Sim(sim::SimArgs),
    /// Show what a data file, its metadata and its journal hold.
    Inspect(inspect::InspectArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::Sim(args) => sim::run(&args),
        Command::Inspect(args) => inspect::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chunkpipe: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
