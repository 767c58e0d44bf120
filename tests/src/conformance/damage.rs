//! Damage never passes silently: every way a pipe's files can be damaged (as opposed to what a
//! crash leaves) is refused with `Corrupt` naming the file and offset, or opens with every
//! acknowledged write intact — never opens with fewer.
//!
//! Most cases start from the same scenario: 32 acknowledged writes, each its own batch, that
//! only the journal holds (the data store lost its in-place copies), then a crash.

use chunkpipe_core::journal::format::{self, SUPERBLOCK_BYTES, SuperblockCopy};
use chunkpipe_core::{Config, Create, Damage, Error, Journal, Recovery, StoreRole};

use super::journal::{assert_damage, crash, no_idle_checkpoint, records};
use super::{CHUNK, chunk_with, chunks_with, value_of};
use crate::{FileHarness, Harness};

const WRITES: u64 = 32;

/// The scenario: chunk `i` of a new pipe holds `i + 1` for `i` in `0..32`, each written and
/// acknowledged as its own batch, known to the journal alone; then the machine stops.
fn thirty_two_acknowledged_writes<H: Harness>(h: &H) {
    assert_eq!(h.mode(), Journal::Atomic, "a journal case");
    let pipe = h.open(no_idle_checkpoint(2 * WRITES)).unwrap();
    pipe.pipe().store().lose_unsynced_writes();
    for chunk in 0..WRITES {
        pipe.write_durable(chunk, &chunk_with(chunk + 1)).unwrap();
    }
    crash(pipe);
    assert_eq!(records(&h.journal_image()).len() as u64, WRITES);
}

/// Opens with `config` and counts the chunks that hold their acknowledged value.
fn acknowledged_found<H: Harness>(h: &H, config: Config) -> Result<u64, Error> {
    let pipe = h.open(config)?;
    let bytes = pipe.read(0, WRITES)?;
    let found = (bytes.chunks(CHUNK).map(value_of).zip(1..))
        .filter(|&(value, want)| value == want)
        .count() as u64;
    pipe.close()?;
    Ok(found)
}

/// Control: nothing damaged, every acknowledged write is replayed.
pub fn damage_control_every_acknowledged_write_is_replayed<H: Harness>(h: &H) {
    thirty_two_acknowledged_writes(h);
    assert_eq!(acknowledged_found(h, no_idle_checkpoint(0)), Ok(WRITES));
}

/// Both superblock copies fail their checksum (two bytes flipped in each): `Corrupt` in the
/// journal, never a fresh journal with the durable epoch back at 0.
pub fn both_superblock_copies_damaged_is_corrupt<H: Harness>(h: &H) {
    thirty_two_acknowledged_writes(h);
    let image = h.journal_image();
    for copy in 0..2u64 {
        let at = (copy * SUPERBLOCK_BYTES) as usize + 20;
        h.patch_journal(at as u64, &[image[at] ^ 0x5A, image[at + 1] ^ 0xA5]);
    }
    assert_damage(
        h.open(no_idle_checkpoint(0)),
        Damage::new(StoreRole::Journal, 0, ""),
    );
}

/// A journal zeroed from end to end: `Corrupt`, never a new journal.
pub fn a_zeroed_journal_is_corrupt<H: Harness>(h: &H) {
    thirty_two_acknowledged_writes(h);
    let len = h.journal_image().len();
    h.patch_journal(0, &vec![0; len]);
    assert_damage(
        h.open(no_idle_checkpoint(0)),
        Damage::new(StoreRole::Journal, 0, ""),
    );
}

/// One superblock copy damaged (its magic), the other intact: the pipe opens from the intact
/// one with every acknowledged write, says it repaired the other, and has rewritten it.
pub fn one_damaged_superblock_copy_is_enough_to_open<H: Harness>(h: &H) {
    for damaged in 0..2u64 {
        thirty_two_acknowledged_writes(h);
        h.patch_journal(damaged * SUPERBLOCK_BYTES, b"XXXX");
        let pipe = h.open(no_idle_checkpoint(0)).unwrap();
        let report = pipe.recovery().unwrap();
        assert!(report.superblock_repaired, "copy {damaged}: {report:?}");
        let bytes = pipe.read(0, WRITES).unwrap();
        let values: Vec<u64> = bytes.chunks(CHUNK).map(value_of).collect();
        assert_eq!(values, (1..=WRITES).collect::<Vec<_>>(), "copy {damaged}");
        // Recovery's checkpoint rewrote the damaged copy; the next one rewrites the other.
        pipe.write_durable(0, &chunk_with(1)).unwrap();
        pipe.close().unwrap();
        let image = h.journal_image();
        for copy in 0..2 {
            let at = (copy * SUPERBLOCK_BYTES) as usize;
            let decoded = format::Superblock::decode(&image[at..at + SUPERBLOCK_BYTES as usize]);
            assert!(
                matches!(decoded, SuperblockCopy::Valid(_)),
                "copy {copy}: {decoded:?}"
            );
        }
        assert!(
            !h.open(no_idle_checkpoint(0))
                .unwrap()
                .pipe()
                .recovery()
                .unwrap()
                .superblock_repaired
        );
    }
}

/// Four bytes of record 17's header damaged, records 18 to 32 intact behind it: record 17 was
/// acknowledged before it went bad, so this is damage (`Corrupt` at its offset), not a torn
/// tail. `Recovery::PointInTime` opens with 1..=16 and reports 17..=32 dropped.
pub fn a_damaged_record_header_before_valid_records_is_corrupt<H: Harness>(h: &H) {
    damaged_record_17(h, |at, _| at + 8);
}

/// The same with four bytes of record 17's payload damaged.
pub fn a_damaged_record_payload_before_valid_records_is_corrupt<H: Harness>(h: &H) {
    damaged_record_17(h, |at, len| at + len - 4);
}

fn damaged_record_17<H: Harness>(h: &H, where_: impl Fn(usize, usize) -> usize) {
    thirty_two_acknowledged_writes(h);
    let journal = records(&h.journal_image());
    let (at, len, epoch) = journal[16];
    let offset = where_(at, len);
    let image = h.journal_image();
    let flipped: Vec<u8> = image[offset..offset + 4].iter().map(|b| b ^ 0xFF).collect();
    h.patch_journal(offset as u64, &flipped);

    assert_damage(
        h.open(no_idle_checkpoint(0)),
        Damage::new(StoreRole::Journal, at as u64, ""),
    );
    let lossy = no_idle_checkpoint(0).with_recovery(Recovery::PointInTime);
    let pipe = h.open(lossy).unwrap();
    let report = pipe.recovery().unwrap();
    let dropped = report.dropped.expect("the dropped epochs are reported");
    assert_eq!((dropped.first, dropped.last), (epoch, journal[31].2));
    assert_eq!(dropped.damage.offset, at as u64);
    assert_eq!(report.replayed, 16);
    let bytes = pipe.read(0, 16).unwrap();
    let values: Vec<u64> = bytes.chunks(CHUNK).map(value_of).collect();
    assert_eq!(values, (1..=16).collect::<Vec<_>>());
    pipe.close().unwrap();
}

/// A journal cut below its superblocks, cut inside its record area, or deleted: `Corrupt`,
/// never a new journal.
pub fn a_cut_or_deleted_journal_is_corrupt<H: FileHarness>(h: &H) {
    for len in [700, 1024 + 512] {
        thirty_two_acknowledged_writes(h);
        h.set_journal_len(len);
        let opened = h.open(no_idle_checkpoint(0));
        assert!(
            matches!(
                opened,
                Err(Error::Corrupt(Damage {
                    file: StoreRole::Journal,
                    ..
                }))
            ),
            "{len}"
        );
        h.set_journal_len(0);
        let opened = h.open(no_idle_checkpoint(0));
        assert!(
            matches!(
                opened,
                Err(Error::Corrupt(Damage {
                    file: StoreRole::Journal,
                    ..
                }))
            ),
            "0"
        );
        h.remove(StoreRole::Data);
        h.remove(StoreRole::Journal);
        h.remove(StoreRole::Meta);
    }
    thirty_two_acknowledged_writes(h);
    h.remove(StoreRole::Journal);
    assert_damage(
        h.open(no_idle_checkpoint(0)),
        Damage::new(StoreRole::Journal, 0, ""),
    );
}

/// The data file cut to 2 of its 64 chunks: `Corrupt` in the data file, never regrown with
/// zeros (in both modes).
pub fn a_cut_data_file_is_corrupt<H: FileHarness>(h: &H) {
    let pipe = h.open(no_idle_checkpoint(64)).unwrap();
    for chunk in 0..WRITES {
        pipe.write_durable(chunk, &chunk_with(chunk + 1)).unwrap();
    }
    pipe.close().unwrap();
    h.set_data_len(2 * CHUNK as u64);
    let opened = h.open(no_idle_checkpoint(64));
    assert!(matches!(
        opened,
        Err(Error::Corrupt(Damage {
            file: StoreRole::Data,
            ..
        }))
    ));
    h.remove(StoreRole::Data);
    assert_damage(
        h.open(no_idle_checkpoint(64)),
        Damage::new(StoreRole::Data, 0, ""),
    );
}

/// `.meta` deleted beside a pipe that was opened: `Corrupt`, never a new pipe over its files.
pub fn deleted_metadata_of_an_opened_pipe_is_corrupt<H: FileHarness>(h: &H) {
    let pipe = h.open(no_idle_checkpoint(8)).unwrap();
    pipe.write_durable(1, &chunk_with(1)).unwrap();
    pipe.close().unwrap();
    h.remove(StoreRole::Meta);
    let opened = h.open(no_idle_checkpoint(8));
    if h.mode() == Journal::Atomic {
        assert!(matches!(
            opened,
            Err(Error::Corrupt(Damage {
                file: StoreRole::Meta,
                ..
            }))
        ));
    } else {
        // `Journal::Off` keeps nothing but the data file: a plain file, adopted as it is.
        let pipe = opened.unwrap();
        assert_eq!(value_of(&pipe.read(1, 1).unwrap()), 1);
        pipe.close().unwrap();
    }
}

/// A pipe whose creation a crash cut short (files there, no `.meta`) is created again.
pub fn a_half_created_pipe_is_created_again<H: FileHarness>(h: &H) {
    let pipe = h.open(no_idle_checkpoint(8)).unwrap();
    drop(pipe);
    h.remove(StoreRole::Meta);
    if h.mode() == Journal::Atomic {
        // As a crash inside creation leaves it: the journal partly written, no superblock.
        h.set_journal_len(0);
        h.set_journal_len(3000);
        h.patch_journal(2000, &[7; 100]);
    }
    let pipe = h.open(no_idle_checkpoint(8)).unwrap();
    pipe.write_durable(2, &chunk_with(2)).unwrap();
    pipe.close().unwrap();
    let pipe = h.open(no_idle_checkpoint(0)).unwrap();
    assert_eq!(value_of(&pipe.read(2, 1).unwrap()), 2);
    pipe.close().unwrap();
}

/// `Create::New` refuses an existing pipe, `Create::Never` a missing one.
pub fn create_modes_refuse_what_they_must<H: FileHarness>(h: &H) {
    let never = no_idle_checkpoint(4).with_create(Create::Never);
    assert!(matches!(h.open(never), Err(Error::NotFound)));
    let new = no_idle_checkpoint(4).with_create(Create::New);
    h.open(new).unwrap().close().unwrap();
    assert!(matches!(h.open(new), Err(Error::AlreadyExists)));
    h.open(never).unwrap().close().unwrap();
}

/// A record of more than 256 chunks goes out in more than one vectored call; after a crash it
/// is replayed whole, every chunk at its own place.
pub fn a_record_of_more_than_256_chunks_is_replayed_after_a_crash<H: Harness>(h: &H) {
    assert_eq!(h.mode(), Journal::Atomic, "a journal case");
    const BIG: u64 = 300;
    let config = |chunks| {
        super::config(chunks, BIG as u32).with_flush_interval(std::time::Duration::from_secs(3600))
    };
    let pipe = h.open(config(BIG + 5)).unwrap();
    pipe.pipe().store().lose_unsynced_writes();
    let bytes: Vec<u8> = (0..BIG).flat_map(|i| chunk_with(1000 + i)).collect();
    pipe.write_durable(3, &bytes).unwrap();
    crash(pipe);
    let pipe = h.open(config(0)).unwrap();
    let read = pipe.read(3, BIG).unwrap();
    let values: Vec<u64> = read.chunks(CHUNK).map(value_of).collect();
    assert_eq!(values, (1000..1000 + BIG).collect::<Vec<_>>());
    assert_eq!(pipe.recovery().unwrap().replayed, 1);
    pipe.close().unwrap();
}

/// A chunk of the data store damaged after it was checkpointed (a flipped byte) is `Corrupt` at
/// the read, naming the data file and the chunk's offset — never wrong bytes. Other chunks
/// read as before, and writing the chunk again mends it.
pub fn a_damaged_chunk_is_corrupt_when_read<H: Harness>(h: &H) {
    assert_eq!(h.mode(), Journal::Atomic, "a journal case");
    let pipe = h.open(no_idle_checkpoint(8)).unwrap();
    pipe.write_durable(0, &chunks_with(5, 8)).unwrap();
    let checksums = pipe.pipe().config().chunk_checksums;
    pipe.close().unwrap();
    let pipe = h.open(no_idle_checkpoint(0)).unwrap();
    let at = 3 * CHUNK as u64 + 100;
    h.patch_data(at, &[h.data_image()[at as usize] ^ 1]);
    let read = pipe.read(2, 3);
    if !checksums {
        // Without a checksum table (no allocator) the data store's bytes are not checked.
        assert!(read.is_ok());
        pipe.close().unwrap();
        return;
    }
    let damage = Damage::new(StoreRole::Data, 3 * CHUNK as u64, "");
    assert_damage(read, damage);
    assert_eq!(value_of(&pipe.read(4, 1).unwrap()), 5);
    pipe.write_durable(3, &chunk_with(6)).unwrap();
    assert_eq!(value_of(&pipe.read(3, 1).unwrap()), 6);
    pipe.close().unwrap();
}
