//! The conformance suite on real files (macOS backend, in a temp dir), in both durability modes,
//! with full syncs and with checkpoint barriers. Runs with `cargo test` on a Mac; CI here
//! type-checks and lints it for both Apple targets.
#![cfg(target_os = "macos")]

use chunkpipe_core::Journal;
use chunkpipe_macos::{MacOs, MacOsBarrier};
use chunkpipe_tests::PosixFiles;

mod atomic {
    use super::*;
    chunkpipe_tests::conformance!(PosixFiles::<MacOs>::new(Journal::Atomic), files);
    chunkpipe_tests::conformance!(PosixFiles::<MacOs>::new(Journal::Atomic), journal);
    chunkpipe_tests::conformance!(PosixFiles::<MacOs>::new(Journal::Atomic), journal_files);
}

mod atomic_with_barriers {
    use super::*;
    chunkpipe_tests::conformance!(PosixFiles::<MacOsBarrier>::new(Journal::Atomic), files);
    chunkpipe_tests::conformance!(PosixFiles::<MacOsBarrier>::new(Journal::Atomic), journal);
    chunkpipe_tests::conformance!(
        PosixFiles::<MacOsBarrier>::new(Journal::Atomic),
        journal_files
    );
}

mod off {
    use super::*;
    chunkpipe_tests::conformance!(PosixFiles::<MacOs>::new(Journal::Off), files);
}
