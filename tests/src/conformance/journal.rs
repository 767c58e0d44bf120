//! `Journal::Atomic` cases: recovery after a crash, and journals that are torn, damaged or of
//! another configuration.
//!
//! A crash is emulated with [`FaultyStore`](crate::FaultyStore): the data store first drops
//! its writes (the in-place copies a crash would take from the page cache), then every
//! operation fails (nothing more reaches storage) and the pipe is dropped. What a reopen finds
//! then came through the journal alone.

use std::time::Duration;

use chunkpipe_core::journal::format::{
    self, JOURNAL_VERSION, SUPERBLOCK_BYTES, Superblock, SuperblockCopy,
};
use chunkpipe_core::{Config, Damage, Epoch, Error, Journal, Recovery, StoreRole};

use super::{CHUNK, chunk_with, config, value_of};
use crate::{Harness, TestPipe};

/// The suite's config with no idle checkpoint during a test (a checkpoint syncs the data file,
/// which a store losing its writes refuses).
pub(crate) fn no_idle_checkpoint(chunks: u64) -> Config {
    config(chunks, 8).with_flush_interval(Duration::from_secs(3600))
}

/// Opens a pipe whose chunks 0..4 hold 1..=4 durably in the data file (written, then a clean
/// close checkpointed them), and arms its data store to lose every write from now on.
fn open_with_a_checkpointed_base<H: Harness>(h: &H) -> TestPipe<H::Store> {
    assert_eq!(h.mode(), Journal::Atomic, "a journal case");
    let pipe = h.open(no_idle_checkpoint(4)).unwrap();
    for chunk in 0..4 {
        pipe.write(chunk, &chunk_with(chunk + 1)).unwrap();
    }
    pipe.close().unwrap();
    let pipe = h.open(no_idle_checkpoint(0)).unwrap();
    pipe.pipe().store().lose_unsynced_writes();
    pipe
}

/// Crashes `pipe`: every store operation fails from here, then the pipe is dropped.
pub(crate) fn crash<S: chunkpipe_core::ChunkStore + Send + Sync + 'static>(pipe: TestPipe<S>) {
    pipe.pipe().store().crash();
    drop(pipe);
}

fn values<H: Harness>(h: &H) -> (Vec<u64>, TestPipe<H::Store>) {
    let pipe = h.open(no_idle_checkpoint(0)).unwrap();
    let bytes = pipe.read(0, 4).unwrap();
    (bytes.chunks(CHUNK).map(value_of).collect(), pipe)
}

/// The current superblock of a journal image.
pub(crate) fn current_superblock(image: &[u8]) -> Superblock {
    let copy = |n: u64| {
        let at = (n * SUPERBLOCK_BYTES) as usize;
        Superblock::decode(&image[at..at + SUPERBLOCK_BYTES as usize])
    };
    Superblock::resolve([copy(0), copy(1)])
        .expect("a valid superblock copy")
        .expect("a formatted journal")
        .0
}

/// Where each record after the checkpoint sits in a journal image: (offset, length, epoch),
/// found by following the laps from half to half as the format documents (headers only).
pub(crate) fn records(image: &[u8]) -> Vec<(usize, usize, Epoch)> {
    let superblock = current_superblock(image);
    let journal_bytes = superblock.journal_bytes;
    let (mut at, mut lap) = (superblock.records_at, superblock.lap);
    let mut expected = Epoch::new(superblock.checkpoint.get() + 1);
    let (mut found, mut moved) = (Vec::new(), false);
    loop {
        let (_, half_end) = format::half_range(journal_bytes, (lap % 2) as usize);
        let head = (at + 512 <= half_end)
            .then(|| format::decode_record_head(&image[at as usize..]))
            .flatten()
            .filter(|head| head.id == superblock.id && head.lap == lap && head.epoch == expected);
        match head {
            Some(head) => {
                let len = format::record_bytes(u64::from(head.chunks), CHUNK as u64);
                found.push((at as usize, len as usize, head.epoch));
                (at, expected, moved) = (at + len, Epoch::new(expected.get() + 1), false);
            }
            None if !moved => {
                lap += 1;
                at = format::half_range(journal_bytes, (lap % 2) as usize).0;
                moved = true;
            }
            None => return found,
        }
    }
}

/// Writes that were acknowledged through the journal but never reached the data file (its
/// writes were lost, then the machine stopped) are replayed on reopen: single writes, a
/// multi-chunk write and a transaction, all whole; epochs continue past the last one.
pub fn reopen_after_a_crash_replays_writes_the_data_file_lost<H: Harness>(h: &H) {
    let pipe = open_with_a_checkpointed_base(h);
    pipe.write_durable(0, &chunk_with(10)).unwrap();
    pipe.write_durable(1, &super::chunks_with(11, 2)).unwrap();
    let mut tx = pipe.transaction(2).unwrap();
    tx.write(3, &chunk_with(13)).unwrap();
    tx.write(0, &chunk_with(14)).unwrap();
    let last = tx.commit().unwrap();
    pipe.wait(last).unwrap();
    crash(pipe);

    let (found, pipe) = values(h);
    assert_eq!(
        found,
        [14, 11, 11, 13],
        "every acknowledged batch is replayed"
    );
    let report = pipe
        .pipe()
        .recovery()
        .expect("an Atomic pipe reports its recovery");
    assert_eq!(
        report.replayed, 3,
        "three batches were journaled after the checkpoint"
    );
    assert!(!report.torn_tail);
    assert!(pipe.pipe().durable_epoch() >= last, "epochs never go back");
    let next = pipe.write_durable(2, &chunk_with(20)).unwrap();
    assert!(next > last, "epochs continue after a reopen");
    pipe.close().unwrap();
}

/// A crash while the last record was being appended tears it: recovery replays the records
/// before it and drops that batch whole.
pub fn a_torn_last_record_is_not_replayed<H: Harness>(h: &H) {
    let pipe = open_with_a_checkpointed_base(h);
    pipe.write_durable(0, &chunk_with(10)).unwrap();
    let before = h.journal_image();
    pipe.write_durable(1, &super::chunks_with(11, 3)).unwrap();
    crash(pipe);
    let journal = records(&h.journal_image());
    assert_eq!(journal.len(), 2);
    let (at, len, _) = journal[1];
    // The crash kept the record's first half: its second half is what was there before.
    h.patch_journal((at + len / 2) as u64, &before[at + len / 2..at + len]);

    let (found, pipe) = values(h);
    assert_eq!(
        found,
        [10, 2, 3, 4],
        "the torn batch is absent, all three of its chunks"
    );
    let report = pipe.recovery().unwrap();
    assert_eq!((report.replayed, report.torn_tail), (1, true));
    assert_eq!(report.dropped, None, "a torn tail is not damage");
    pipe.close().unwrap();
}

/// A record whose checksum does not match, followed by a valid record of a later epoch, was
/// acknowledged before it went bad: opening is `Corrupt`, naming the journal and the record's
/// offset; with `Recovery::PointInTime` the pipe opens, replays up to it and reports exactly
/// the epochs it dropped, and epochs continue after them.
pub fn a_damaged_record_followed_by_a_valid_one_is_damage<H: Harness>(h: &H) {
    let pipe = open_with_a_checkpointed_base(h);
    for (chunk, value) in [(0, 10), (1, 11), (2, 12)] {
        pipe.write_durable(chunk, &chunk_with(value)).unwrap();
    }
    crash(pipe);
    let journal = records(&h.journal_image());
    assert_eq!(journal.len(), 3);
    let (at, len, epoch) = journal[1];
    let last_payload_byte = at + len - 1;
    let byte = h.journal_image()[last_payload_byte];
    h.patch_journal(last_payload_byte as u64, &[byte ^ 0xFF]);

    let damage = Damage::new(StoreRole::Journal, at as u64, "");
    assert_damage(h.open(no_idle_checkpoint(0)), damage);
    let lossy = no_idle_checkpoint(0).with_recovery(Recovery::PointInTime);
    let pipe = h.open(lossy).unwrap();
    let report = pipe.recovery().unwrap();
    let dropped = report.dropped.expect("the damage is reported");
    assert_eq!((dropped.first, dropped.last), (epoch, journal[2].2));
    assert_eq!(
        (dropped.damage.file, dropped.damage.offset),
        (StoreRole::Journal, at as u64)
    );
    assert_eq!(report.replayed, 1);
    let bytes = pipe.read(0, 1).unwrap();
    assert_eq!(value_of(&bytes), 10, "replayed up to the damage");
    let next = pipe.write_durable(3, &chunk_with(30)).unwrap();
    assert!(
        next > journal[2].2,
        "epochs continue after the dropped ones"
    );
    pipe.close().unwrap();
    h.open(no_idle_checkpoint(0)).unwrap().close().unwrap();
}

/// Asserts that `opened` failed with damage in `expected.file` at `expected.offset`.
pub(crate) fn assert_damage<T>(opened: Result<T, Error>, expected: Damage) {
    match opened {
        Err(Error::Corrupt(damage)) => assert_eq!(
            (damage.file, damage.offset),
            (expected.file, expected.offset),
            "{damage}"
        ),
        Err(e) => panic!(
            "expected damage in the {} file, got {e}",
            expected.file.name()
        ),
        Ok(_) => panic!(
            "expected damage in the {} file, but it opened",
            expected.file.name()
        ),
    }
}

/// A journal whose superblocks carry another format version is refused with `Mismatch`.
pub fn a_journal_of_another_format_version_is_refused<H: Harness>(h: &H) {
    h.open(config(2, 2)).unwrap().close().unwrap();
    let image = h.journal_image();
    for copy in 0..2 {
        let at = (copy * SUPERBLOCK_BYTES) as usize;
        let mut block = image[at..at + SUPERBLOCK_BYTES as usize].to_vec();
        if !matches!(Superblock::decode(&block), SuperblockCopy::Valid(_)) {
            continue;
        }
        block[4..6].copy_from_slice(&(JOURNAL_VERSION + 1).to_le_bytes());
        let crc_at = format::SUPERBLOCK_CRC_AT;
        let crc = format::crc32c(&[&block[..crc_at]]);
        block[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
        h.patch_journal(at as u64, &block);
    }
    assert!(matches!(h.open(config(0, 2)), Err(Error::Mismatch(_))));
}

/// Storage whose journal was made for another chunk size is refused with `Mismatch` (by the
/// metadata record where the backend keeps one, else by the journal's superblock).
pub fn a_journal_of_another_chunk_size_is_refused<H: Harness>(h: &H) {
    h.open(config(4, 2)).unwrap().close().unwrap();
    let twice = config(0, 2).with_chunk_size(2 * CHUNK as u32);
    assert!(matches!(h.open(twice), Err(Error::Mismatch(_))));
    h.open(config(0, 2)).unwrap().close().unwrap();
}
