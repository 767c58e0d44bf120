//! `chunkpipe sim`: crash-simulation campaigns from seeds.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chunkpipe_sim::{CampaignReport, Fault, Profile, SimFailure, SimOptions, run_seed};
use indicatif::{ProgressBar, ProgressStyle};

/// Options of `chunkpipe sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run seeds A..B (B excluded).
    #[arg(long, value_parser = parse_range)]
    seeds: Option<Range<u64>>,
    /// Fault profile.
    #[arg(long, default_value = "all", value_parser = parse_profile)]
    faults: Profile,
    /// Scheduler steps per seed, at least 1.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u32).range(1..))]
    steps: u32,
    /// Worker threads, 1 to 256.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: u16,
    /// Durability mode of every seed (default: drawn per seed, both modes).
    #[arg(long, value_enum)]
    journal: Option<JournalArg>,
}

/// `--journal`: the durability mode.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum JournalArg {
    /// `Journal::Atomic`.
    Atomic,
    /// `Journal::Off`.
    Off,
}

fn parse_profile(text: &str) -> Result<Profile, String> {
    text.parse()
}

fn parse_range(text: &str) -> Result<Range<u64>, String> {
    let (a, b) = text.split_once("..").ok_or("expected A..B")?;
    let (a, b) = (
        a.parse::<u64>().map_err(|e| e.to_string())?,
        b.parse::<u64>().map_err(|e| e.to_string())?,
    );
    if a >= b {
        return Err("the range is empty".into());
    }
    Ok(a..b)
}

/// Runs the campaign and prints its summary; on a failure prints the seed, the replay command
/// and the trace, and returns an error.
pub fn run(args: &SimArgs) -> Result<(), String> {
    let seeds = match (args.seed, &args.seeds) {
        (Some(seed), _) => {
            let end = seed.checked_add(1).ok_or("--seed: at most 2^64 - 2")?;
            seed..end
        }
        (None, Some(range)) => range.clone(),
        (None, None) => 0..1000,
    };
    let journal = args.journal.map(|j| match j {
        JournalArg::Atomic => chunkpipe_core::Journal::Atomic,
        JournalArg::Off => chunkpipe_core::Journal::Off,
    });
    let options = SimOptions {
        profile: args.faults,
        steps: args.steps,
        store_bug: None,
        journal,
    };
    let started = Instant::now();
    let bar = ProgressBar::new(seeds.end - seeds.start);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {per_sec} {msg}")
            .map_err(|e| e.to_string())?,
    );
    let (report, failure) = run_parallel(seeds.clone(), &options, usize::from(args.jobs), &bar);
    bar.finish_and_clear();
    let wall = started.elapsed();
    print_summary(&report, args, wall);
    if let Some(failure) = failure {
        print_failure(&failure, args);
        return Err(format!("seed {} failed", failure.seed));
    }
    let gaps = report.coverage_gaps(args.faults);
    if !gaps.is_empty() && seeds.end - seeds.start >= 100 {
        return Err(format!(
            "coverage: never fired in {} seeds: {}",
            report.seeds,
            gaps.join(", ")
        ));
    }
    println!("all {} seeds passed", report.seeds);
    Ok(())
}

/// Runs the seeds on `jobs` threads (seed i on thread i % jobs), stopping early at a failure;
/// the failure reported is the lowest failing seed seen.
fn run_parallel(
    seeds: Range<u64>,
    options: &SimOptions,
    jobs: usize,
    bar: &ProgressBar,
) -> (CampaignReport, Option<SimFailure>) {
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<SimFailure>> = Mutex::new(None);
    let mut total = CampaignReport::default();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs as u64)
            .map(|job| {
                let (stop, failure, seeds) = (&stop, &failure, seeds.clone());
                s.spawn(move || {
                    let mut report = CampaignReport::default();
                    for seed in seeds.filter(|seed| seed % jobs as u64 == job) {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match run_seed(seed, options) {
                            Ok(seed_report) => report.add(&seed_report),
                            Err(f) => {
                                stop.store(true, Ordering::Relaxed);
                                let mut slot = failure
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                                if slot.as_ref().is_none_or(|old| f.seed < old.seed) {
                                    *slot = Some(f);
                                }
                            }
                        }
                        bar.inc(1);
                    }
                    report
                })
            })
            .collect();
        for worker in workers {
            total.merge(&worker.join().expect("sim worker panicked"));
        }
    });
    (
        total,
        failure
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

fn print_summary(report: &CampaignReport, args: &SimArgs, wall: std::time::Duration) {
    let per_min = report.seeds as f64 / wall.as_secs_f64() * 60.0;
    println!(
        "chunkpipe sim: {} seeds, faults {:?}, {} steps each, {} job(s)",
        report.seeds, args.faults, args.steps, args.jobs
    );
    println!(
        "  steps {}, crashes {} ({} during recovery), recoveries {} ({} retried after an I/O error), oracle checks {}, background steps that woke someone {}",
        report.steps,
        report.crashes,
        report.recovery_crashes,
        report.recoveries,
        report.recovery_errors,
        report.checks,
        report.background_steps
    );
    let fired: Vec<String> = Fault::ALL
        .iter()
        .map(|f| format!("{} {}", f.name(), report.fired[f.index()]))
        .collect();
    println!("  faults fired: {}", fired.join(", "));
    println!(
        "  Journal::Off tears (allowed, reported): {} torn chunks, {} partly recovered transactions",
        report.torn_chunks, report.torn_transactions
    );
    println!(
        "  media damage reported: {} at reads, {} at opens; newest batches lost where the journal \
         holds no trace of them (no log can tell those from a torn tail): {}",
        report.damage_at_read, report.damage_at_open, report.newest_record_losses
    );
    println!(
        "  wall {:.2} s ({per_min:.0} seeds/min), simulated {:.1} s ({:.0}x wall time)",
        wall.as_secs_f64(),
        report.simulated.as_secs_f64(),
        report.simulated.as_secs_f64() / wall.as_secs_f64().max(1e-9)
    );
}

fn print_failure(failure: &SimFailure, args: &SimArgs) {
    println!("\nFAILED seed {}: {}", failure.seed, failure.message);
    let journal = args.journal.map_or(String::new(), |j| {
        format!(" --journal {}", format!("{j:?}").to_lowercase())
    });
    println!(
        "replay: cargo run --release -p chunkpipe-cli -- sim --seed {} --faults {} --steps {}{journal}",
        failure.seed,
        args.faults.name(),
        args.steps
    );
    println!("last steps:");
    for line in &failure.trace {
        println!("  {line}");
    }
}
