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
    quiet_on_closed_stdout();
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

/// Output into a pipe that was closed (`chunkpipe inspect FILE | head -1`) ends the process
/// quietly, as other command-line tools do, instead of failing the print with a panic.
#[cfg(unix)]
#[allow(unsafe_code)]
fn quiet_on_closed_stdout() {
    // SAFETY: restores SIGPIPE's default disposition before any thread exists; it installs no
    // handler of ours, so nothing of this program runs in signal context.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn quiet_on_closed_stdout() {}
