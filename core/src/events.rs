//! What an operator must see, as `log` events (feature `log`; without it these do nothing):
//! what recovery found, a pipe poisoned, a background step that took long.

use crate::{RecoveryReport, StoreError};

/// A background step that took at least this long is reported: it may have held back commits
/// that needed its applies or its checkpoint.
#[cfg(feature = "std")]
pub(crate) const SLOW_BACKGROUND_STEP: core::time::Duration =
    core::time::Duration::from_millis(100);

/// Recovery replayed records, dropped a torn tail, repaired a superblock or — point in time —
/// dropped epochs at damage.
pub(crate) fn recovered(report: &RecoveryReport) {
    #[cfg(feature = "log")]
    {
        if let Some(dropped) = report.dropped {
            log::error!(
                "chunkpipe: recovery dropped epochs {}..={} at damage: {}",
                dropped.first.get(),
                dropped.last.get(),
                dropped.damage
            );
        }
        if report.replayed > 0 || report.torn_tail || report.superblock_repaired {
            log::info!(
                "chunkpipe: recovered up to epoch {}: {} records replayed{}{}",
                report.last_epoch.get(),
                report.replayed,
                if report.torn_tail {
                    ", a torn tail dropped"
                } else {
                    ""
                },
                if report.superblock_repaired {
                    ", a superblock copy rewritten"
                } else {
                    ""
                },
            );
        }
    }
    #[cfg(not(feature = "log"))]
    let _ = report;
}

/// The pipe was poisoned by `failure`: every batch from the failed one on fails.
pub(crate) fn poisoned(failure: StoreError) {
    #[cfg(feature = "log")]
    log::error!("chunkpipe: pipe poisoned, reopen it: {failure}");
    #[cfg(not(feature = "log"))]
    let _ = failure;
}

/// A background step took `took` (at least [`SLOW_BACKGROUND_STEP`]).
#[cfg(feature = "std")]
pub(crate) fn slow_background_step(took: core::time::Duration) {
    #[cfg(feature = "log")]
    log::warn!(
        "chunkpipe: a background step (in-place writes, checkpoint) took {} ms",
        took.as_millis()
    );
    #[cfg(not(feature = "log"))]
    let _ = took;
}
