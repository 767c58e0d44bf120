//! The oracle must be able to fail: deliberately broken stores are caught within 1,000 seeds,
//! and runs are deterministic.

use chunkpipe_sim::{Profile, SimOptions, StoreBug, run_campaign, run_seed};

fn first_failing_seed(options: &SimOptions) -> Option<(u64, String)> {
    run_campaign(0..1000, options, |_| {})
        .err()
        .map(|f| (f.seed, f.message))
}

/// A store whose `sync` reports success without persisting: a crash then loses data the pipe
/// promised durable.
#[test]
fn a_lying_sync_is_caught() {
    let options = SimOptions {
        profile: Profile::Crash,
        store_bug: Some(StoreBug::LyingSync),
        ..SimOptions::default()
    };
    let (seed, message) =
        first_failing_seed(&options).expect("a lying sync went unnoticed for 1,000 seeds");
    assert!(
        message.contains("older than promised"),
        "seed {seed}: {message}"
    );
}

/// A store that drops writes silently: `Journal::Atomic` reports the chunks as damaged (its
/// checksums do not match), which no media fault the simulator injected explains; `Journal::Off`
/// reads (once staging is released) and recoveries find older data.
#[test]
fn a_silently_dropped_write_is_caught() {
    let options = SimOptions {
        profile: Profile::None,
        store_bug: Some(StoreBug::DroppedWrite),
        ..SimOptions::default()
    };
    let (seed, message) =
        first_failing_seed(&options).expect("dropped writes went unnoticed for 1,000 seeds");
    assert!(
        message.contains("expected")
            || message.contains("older than promised")
            || message.contains("damage reported where no media fault struck"),
        "seed {seed}: {message}"
    );
}

/// The same seed gives the same run, step for step; different seeds give different runs.
#[test]
fn runs_are_deterministic() {
    let options = SimOptions::default();
    for seed in [0, 1, 77, 4096] {
        let (a, b) = (
            run_seed(seed, &options).unwrap(),
            run_seed(seed, &options).unwrap(),
        );
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(
            (a.crashes, a.fired, a.checks),
            (b.crashes, b.fired, b.checks)
        );
    }
    assert_ne!(
        run_seed(1, &options).unwrap().trace_hash,
        run_seed(2, &options).unwrap().trace_hash
    );
}

/// A small fault-free campaign and a small all-faults campaign pass, and the all-faults one
/// fires every kind of fault at least once.
#[test]
fn a_correct_pipe_passes_and_every_fault_fires() {
    let quiet = SimOptions {
        profile: Profile::None,
        ..SimOptions::default()
    };
    run_campaign(0..50, &quiet, |_| {}).unwrap();
    let report = run_campaign(0..300, &SimOptions::default(), |_| {}).unwrap();
    assert_eq!(report.coverage_gaps(Profile::All), Vec::<&str>::new());
    assert!(report.recoveries > report.seeds, "several crashes per seed");
}
