//! `chunkpipe`: the project's command line.
//!
//! - `chunkpipe bench`: the workloads of the benchmark contract against the naive peer, on a real
//!   file, interleaved, with ratios.
//! - `chunkpipe sim`: deterministic crash-simulation campaigns from seeds.
//! - `chunkpipe inspect`: what a pipe's files hold and every problem in them (read-only).
//! - `chunkpipe recover`: open a pipe, which runs its recovery, and print what it did.
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
    /// Show what a pipe's files hold and every problem in them, without changing them.
    Inspect(inspect::InspectArgs),
    /// Open a pipe (running its recovery), print what recovery did, and close it.
    Recover(inspect::RecoverArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::Sim(args) => sim::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Recover(args) => inspect::recover(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chunkpipe: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
