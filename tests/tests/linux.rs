//! The conformance suite on real files (Linux backend, in a temp dir), in both durability modes.
#![cfg(target_os = "linux")]

use chunkpipe_core::Journal;
use chunkpipe_linux::Linux;
use chunkpipe_tests::PosixFiles;

mod atomic {
    use super::*;
    chunkpipe_tests::conformance!(PosixFiles::<Linux>::new(Journal::Atomic), files);
    chunkpipe_tests::conformance!(PosixFiles::<Linux>::new(Journal::Atomic), journal);
}

mod off {
    use super::*;
    chunkpipe_tests::conformance!(PosixFiles::<Linux>::new(Journal::Off), files);
}
