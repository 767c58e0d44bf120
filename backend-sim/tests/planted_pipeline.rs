//! Planted pipeline bugs the simulator must catch within 1,000 seeds. Built only with
//! `--cfg chunkpipe_planted="…"` (see `.ci/run`); a normal build has no trace of the bugs.
#![cfg(any(
    chunkpipe_planted = "publish_before_sync",
    chunkpipe_planted = "release_after_failure"
))]

use chunkpipe_sim::{SimOptions, run_campaign};

#[test]
fn the_planted_pipeline_bug_is_caught() {
    let failure = run_campaign(0..1000, &SimOptions::default(), |_| {})
        .expect_err("the planted pipeline bug went unnoticed for 1,000 seeds");
    println!("caught at seed {}: {}", failure.seed, failure.message);
}
