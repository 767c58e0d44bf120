//! Planted pipeline bugs the simulator must catch within 1,000 seeds, in every durability mode
//! the bug is in. Built only with `--cfg chunkpipe_planted="…"` (see `.ci/run`); a normal build
//! has no trace of the bugs.
//!
//! - `publish_before_sync`, `release_after_failure`: acknowledging what is not durable (both
//!   modes).
//! - `apply_before_journal`, `unchecked_payload`: breaking a batch's atomicity (Atomic only):
//!   caught only because the oracle fails a partly visible batch.
//! - `reuse_unfreed_half`, `checkpoint_before_apply`: checkpoints that do not cover what they
//!   claim (Atomic only): appends overwrite records no checkpoint covered, or a checkpoint's
//!   data sync runs before the batches it covers are written in place.
//! - `damage_as_torn_tail`: recovery takes a damaged record followed by later ones for a torn
//!   tail and quietly drops acknowledged batches (Atomic only): caught by the media faults.
#![cfg(any(
    chunkpipe_planted = "publish_before_sync",
    chunkpipe_planted = "release_after_failure",
    chunkpipe_planted = "apply_before_journal",
    chunkpipe_planted = "unchecked_payload",
    chunkpipe_planted = "reuse_unfreed_half",
    chunkpipe_planted = "checkpoint_before_apply",
    chunkpipe_planted = "damage_as_torn_tail"
))]

use chunkpipe_core::Journal;
use chunkpipe_sim::{SimOptions, run_campaign};

fn caught(journal: Journal) {
    let options = SimOptions {
        journal: Some(journal),
        ..SimOptions::default()
    };
    let failure = run_campaign(0..1000, &options, |_| {})
        .expect_err("the planted pipeline bug went unnoticed for 1,000 seeds");
    println!(
        "{journal:?}: caught at seed {}: {}",
        failure.seed, failure.message
    );
}

#[test]
fn the_planted_bug_is_caught_with_the_journal() {
    caught(Journal::Atomic);
}

#[cfg(any(
    chunkpipe_planted = "publish_before_sync",
    chunkpipe_planted = "release_after_failure"
))]
#[test]
fn the_planted_bug_is_caught_in_place() {
    caught(Journal::Off);
}
