//! A campaign: many seeds, their totals, and the coverage check.

use std::time::Duration;

use crate::faults::{Fault, Profile};
use crate::runner::{SeedReport, SimFailure, SimOptions, run_seed};

/// Totals over the seeds of a campaign.
#[derive(Clone, Debug, Default)]
pub struct CampaignReport {
    /// Seeds run.
    pub seeds: u64,
    /// Steps run.
    pub steps: u64,
    /// Crashes, including during recovery.
    pub crashes: u64,
    /// Crashes that struck recovery.
    pub recovery_crashes: u64,
    /// Recoveries that failed on an injected I/O error and were retried.
    pub recovery_errors: u64,
    /// Recoveries checked.
    pub recoveries: u64,
    /// `background_step` calls that had something to wake.
    pub background_steps: u64,
    /// Faults fired per kind.
    pub fired: [u64; Fault::COUNT],
    /// Oracle checks.
    pub checks: u64,
    /// Torn chunks recovered (allowed in `Journal::Off`, reported).
    pub torn_chunks: u64,
    /// Partly recovered transactions (allowed in `Journal::Off`, reported).
    pub torn_transactions: u64,
    /// Media damage the pipe reported at a read.
    pub damage_at_read: u64,
    /// Media damage the pipe reported at an open.
    pub damage_at_open: u64,
    /// Newest acknowledged batches lost to media damage the journal cannot show (see
    /// [`SeedReport::newest_record_losses`]).
    pub newest_record_losses: u64,
    /// Virtual time simulated.
    pub simulated: Duration,
}

impl CampaignReport {
    /// Adds one seed's report.
    pub fn add(&mut self, seed: &SeedReport) {
        self.seeds += 1;
        self.steps += seed.steps;
        self.crashes += seed.crashes;
        self.recovery_crashes += seed.recovery_crashes;
        self.recovery_errors += seed.recovery_errors;
        self.background_steps += seed.background_steps;
        self.recoveries += seed.recoveries;
        for (total, n) in self.fired.iter_mut().zip(seed.fired) {
            *total += n;
        }
        self.checks += seed.checks;
        self.torn_chunks += seed.tears.torn_chunks;
        self.torn_transactions += seed.tears.torn_transactions;
        self.damage_at_read += seed.damage_reported.at_read;
        self.damage_at_open += seed.damage_reported.at_open;
        self.newest_record_losses += seed.newest_record_losses;
        self.simulated += seed.simulated;
    }

    /// Adds another partial report (from another worker).
    pub fn merge(&mut self, other: &CampaignReport) {
        self.seeds += other.seeds;
        self.steps += other.steps;
        self.crashes += other.crashes;
        self.recovery_crashes += other.recovery_crashes;
        self.recovery_errors += other.recovery_errors;
        self.background_steps += other.background_steps;
        self.recoveries += other.recoveries;
        for (total, n) in self.fired.iter_mut().zip(other.fired) {
            *total += n;
        }
        self.checks += other.checks;
        self.torn_chunks += other.torn_chunks;
        self.torn_transactions += other.torn_transactions;
        self.damage_at_read += other.damage_at_read;
        self.damage_at_open += other.damage_at_open;
        self.newest_record_losses += other.newest_record_losses;
        self.simulated += other.simulated;
    }

    /// What the profile allows but never happened: each fault kind, (with crashes) a crash
    /// during recovery, and (with media faults) damage reported at a read and at an open. A
    /// campaign with gaps did not test what it claims to.
    pub fn coverage_gaps(&self, profile: Profile) -> Vec<&'static str> {
        let mut gaps: Vec<&'static str> = Fault::ALL
            .into_iter()
            .filter(|&f| profile.allows(f) && self.fired[f.index()] == 0)
            .map(Fault::name)
            .collect();
        if profile.allows(Fault::Crash) && self.recovery_crashes == 0 {
            gaps.push("crash during recovery");
        }
        if profile.allows(Fault::BitFlip) {
            if self.damage_at_read == 0 {
                gaps.push("damage reported at a read");
            }
            if self.damage_at_open == 0 && profile.allows(Fault::Crash) {
                gaps.push("damage reported at an open");
            }
        }
        gaps
    }
}

/// Runs `seeds` in order, stopping at the first failure; `progress` is called after each seed.
///
/// # Errors
/// The first seed's failure.
pub fn run_campaign(
    seeds: std::ops::Range<u64>,
    options: &SimOptions,
    mut progress: impl FnMut(&SeedReport),
) -> Result<CampaignReport, Box<SimFailure>> {
    let mut report = CampaignReport::default();
    for seed in seeds {
        let seed_report = run_seed(seed, options).map_err(Box::new)?;
        report.add(&seed_report);
        progress(&seed_report);
    }
    Ok(report)
}
