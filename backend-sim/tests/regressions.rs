//! Seeds that once failed, kept as regression tests.

use chunkpipe_core::Journal;
use chunkpipe_sim::{SimOptions, run_seed};

/// Seed 79, `Journal::Atomic`: a recovery's checkpoint wrote the new superblock, but the journal
/// sync failed and dropped that page while it stayed readable in the cache. The retried open read
/// the cached superblock, replayed nothing and skipped the checkpoint, so the superblock never
/// became durable; after new records overwrote the old generation, a power loss brought back an
/// older checkpoint and lost epoch 8. Recovery now always ends with a checkpoint.
#[test]
fn seed_79_a_superblock_left_undurable_by_a_failed_sync_is_rewritten() {
    let options = SimOptions {
        journal: Some(Journal::Atomic),
        ..SimOptions::default()
    };
    if let Err(failure) = run_seed(79, &options) {
        panic!("seed 79: {}\n{}", failure.message, failure.trace.join("\n"));
    }
}
