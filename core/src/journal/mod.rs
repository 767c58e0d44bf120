//! `Journal::Atomic`: every batch is appended to a journal as one checksummed record and made
//! durable with one journal sync before it is written in place; a crash leaves each batch
//! entirely applied or entirely absent.
//!
//! - **Commit** (`JournalLog::append`, called by the flush step): one vectored append of
//!   header + payload, one `sync` of the journal. The batch is then durable and its epoch is
//!   published. It is written in place afterwards, off the commit path (no data sync per
//!   batch): by [`Pipe::background_step`](crate::Pipe::background_step), or by a commit that
//!   needs its staging or batch plan back.
//! - **Two halves.** Records fill one half of the journal while the other is checkpointed. When
//!   the next record does not fit, appends move to the other half (a new lap) and the half just
//!   left becomes the next checkpoint's job: `JournalLog::switch_half` returns that target.
//! - **Checkpoint** (`checkpoint`): sync the data file, then write the superblock naming the
//!   checkpoint epoch and where the records after it start, and sync it. It runs off the commit
//!   path in [`Pipe::background_step`](crate::Pipe::background_step) (the background thread
//!   under `std`), so commits continue while the data file syncs. A commit checkpoints itself
//!   only when appends need a half that no checkpoint has freed yet (the background fell
//!   behind).
//! - **Chunk checksums** (`table`): each record carries the CRC of each of its chunks; once a
//!   batch is written in place those become the chunks' entries in a checksum table kept in
//!   memory, and every chunk read from the data store is checked against its entry. A
//!   checkpoint writes the table's changed pages into the slot its superblock names.
//! - **Recovery** (`recover::open`): create the journal, or replay, in epoch order, every valid
//!   record after the checkpoint, following the laps from one half to the other; stop at the
//!   first place the sequence does not continue; tell a torn tail from damage (`scan`); sync
//!   the data file; checkpoint with appends starting a new lap. Replaying again after a crash
//!   during recovery gives the same result.
//!
//! The format, and why a torn tail and damage can be told apart, are in [`format`].

mod checksum;
pub mod format;
#[cfg(feature = "alloc")]
mod inspect;
pub(crate) mod recover;
pub(crate) mod scan;
pub(crate) mod table;

#[cfg(feature = "alloc")]
pub use inspect::{JournalReport, inspect_journal};
pub use recover::{Dropped, RecoveryReport};

use format::{RecordHead, SUPERBLOCK_BYTES, Superblock};
use table::SlotWritten;

use crate::staging::SealedBatch;
use crate::{ChunkStore, Config, Epoch, StoreError};

/// The lap a fresh journal starts with (even: laps alternate halves by parity, lap `l` lives in
/// half `l % 2`).
const FIRST_LAP: u64 = 2;

/// A checkpoint to take: every batch up to `epoch` is in the data file, and the records after
/// it start at `records_at` in lap `lap` and hold at most `max_record_chunks` chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CheckpointTarget {
    pub(crate) epoch: Epoch,
    pub(crate) records_at: u64,
    pub(crate) lap: u64,
    pub(crate) max_record_chunks: u32,
}

/// The commit's view of the journal: where the next record goes.
#[derive(Debug)]
pub(crate) struct JournalLog {
    /// The journal's id, which every record carries.
    id: u64,
    /// Where the record area ends.
    journal_len: u64,
    append_at: u64,
    lap: u64,
    /// The newest record appended.
    last_epoch: Epoch,
    /// The newest record in the other half: appends may enter it once a checkpoint covers it.
    other_half_last: Epoch,
    /// The largest record appended (the staging capacity), which checkpoints record.
    max_record_chunks: u32,
}

impl JournalLog {
    /// Formats a fresh journal store for `config` over a data store of `data_chunks` chunks:
    /// writes all of it once (zeros, so appends never allocate and no table entry is stale),
    /// then the first superblock, then syncs. Returns that superblock.
    ///
    /// The zeros go out as one buffer (`zeros`, a chunk of scratch) repeated up to
    /// [`RECORD_CALL_BUFS`] times per vectored call: one call per chunk made creating a pipe
    /// with the default 64 MiB journal take 16,384 direct writes, 1.2–1.6 s on the development
    /// machine (64–96 ms this way).
    pub(crate) fn format<S: ChunkStore>(
        journal: &S,
        config: &Config,
        data_chunks: u64,
        zeros: &mut [u8],
    ) -> Result<Superblock, StoreError> {
        let table_chunks = config.chunk_checksums.then_some(data_chunks);
        let journal_len = format::journal_len(config.journal_bytes, table_chunks).ok_or(
            StoreError::new(crate::StoreErrorKind::NoSpace, crate::Op::Grow),
        )?;
        journal.grow(journal_len)?;
        zeros.fill(0);
        let zeros = &*zeros;
        let zeros_len = zeros.len() as u64;
        let mut at = 0;
        while at < journal_len {
            let left = journal_len - at;
            let whole = (left / zeros_len).min(RECORD_CALL_BUFS as u64);
            if whole > 0 {
                journal.write_at(at, &[zeros; RECORD_CALL_BUFS][..whole as usize])?;
                at += whole * zeros_len;
            } else {
                // A tail shorter than the scratch chunk.
                journal.write_at(at, &[&zeros[..left as usize]])?;
                at += left;
            }
        }
        let superblock = Superblock {
            id: config
                .journal_id
                .map_or_else(fresh_id, core::num::NonZeroU64::get),
            seq: 1,
            lap: FIRST_LAP,
            checkpoint: Epoch::NONE,
            chunk_size: config.chunk_size,
            max_record_chunks: config.staging_chunks,
            journal_bytes: config.journal_bytes,
            records_at: format::RECORD_AREA_START,
            data_chunks,
            table: config.chunk_checksums.then(format::TableDigest::default),
        };
        write_superblock(journal, &superblock)?;
        journal.sync()?;
        Ok(superblock)
    }

    /// Appends continuing where `superblock` (just written by recovery) says the records after
    /// its checkpoint start; no record in either half is newer than its checkpoint.
    pub(crate) fn starting_at(superblock: &Superblock) -> Self {
        JournalLog {
            id: superblock.id,
            journal_len: superblock.journal_bytes,
            append_at: superblock.records_at,
            lap: superblock.lap,
            last_epoch: superblock.checkpoint,
            other_half_last: Epoch::NONE,
            max_record_chunks: superblock.max_record_chunks,
        }
    }

    /// Where the record area ends (and the checksum table starts).
    pub(crate) fn journal_bytes(&self) -> u64 {
        self.journal_len
    }

    /// Whether a record of `chunks` chunks fits in the current half behind its records.
    pub(crate) fn fits(&self, chunks: u64, chunk_size: u64) -> bool {
        let (_, end) = format::half_range(self.journal_len, (self.lap % 2) as usize);
        self.append_at + format::record_bytes(chunks, chunk_size) <= end
    }

    /// The checkpoint that covers every record appended so far: the next record goes where
    /// appends are now.
    pub(crate) fn covering_all(&self) -> CheckpointTarget {
        CheckpointTarget {
            epoch: self.last_epoch,
            records_at: self.append_at,
            lap: self.lap,
            max_record_chunks: self.max_record_chunks,
        }
    }

    /// The newest record in the other half, which a checkpoint must cover before
    /// [`switch_half`](Self::switch_half).
    pub(crate) fn other_half_last(&self) -> Epoch {
        self.other_half_last
    }

    /// Moves appends to the start of the other half, in the next lap. Returns the checkpoint
    /// that frees the half just left.
    pub(crate) fn switch_half(&mut self) -> CheckpointTarget {
        self.lap += 1;
        self.other_half_last = self.last_epoch;
        self.append_at = format::half_range(self.journal_len, (self.lap % 2) as usize).0;
        self.covering_all()
    }

    /// The checkpoint that moves appends to the start of the other half, covering every record
    /// so far (after recovery, or when appends need a half no checkpoint has freed).
    pub(crate) fn fresh_lap(&self) -> CheckpointTarget {
        CheckpointTarget {
            epoch: self.last_epoch,
            records_at: format::half_range(self.journal_len, ((self.lap + 1) % 2) as usize).0,
            lap: self.lap + 1,
            max_record_chunks: self.max_record_chunks,
        }
    }

    /// Appends `batch` (prepared: live entries in chunk order) as the record of `epoch` and
    /// syncs the journal. The batch is durable once this returns `Ok`. Each chunk's CRC goes
    /// into the record and stays with the batch ([`SealedBatch::set_crc`]) for the checksum
    /// table when the batch is written in place.
    pub(crate) fn append<S: ChunkStore>(
        &mut self,
        journal: &S,
        epoch: Epoch,
        batch: &mut SealedBatch<'_>,
        header: &mut [u8],
    ) -> Result<(), StoreError> {
        let live = batch.live_len();
        for i in 0..live {
            let crc = table::chunk_crc(batch.bytes(i));
            batch.set_crc(i, crc);
        }
        let head = RecordHead {
            id: self.id,
            lap: self.lap,
            epoch,
            chunks: live as u32,
        };
        let entries = (0..live).map(|i| (batch.chunk(i), batch.crc(i)));
        let header_len = format::encode_record_header(&head, entries, header);
        let chunk_size = batch.bytes(0).len() as u64;
        write_record(journal, self.append_at, &header[..header_len], batch)?;
        journal.sync()?;
        self.append_at += format::record_bytes(live as u64, chunk_size);
        self.last_epoch = epoch;
        Ok(())
    }
}

/// A fresh journal id: random under `std`; without it, distinct per process and store
/// (a counter mixed with the journal store's address), which is what the id must tell apart.
fn fresh_id() -> u64 {
    #[cfg(feature = "std")]
    {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(0xC4u8)
    }
    #[cfg(not(feature = "std"))]
    {
        static NEXT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(1);
        let n = NEXT.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        format::TableDigest::term(u64::from(n), 0x5EED)
    }
}

/// Takes the checkpoint `target`: writes the checksum table's changed pages into the slot the
/// next superblock goes with (`write_table`, given that slot; it also keeps the entries from
/// changing while it copies them), syncs the data store (every batch up to `target.epoch` was
/// written in place before this was called) and the journal, then writes the superblock after
/// `current` and syncs the journal again. Returns the new superblock.
///
/// The table pages go out before the data store's sync: an entry in them was set only after its
/// chunk's in-place write returned, so that sync covers the chunk. The data store's sync may be a
/// [`barrier`](ChunkStore::barrier): the superblock only counts once the journal sync after it
/// returns, and that sync makes the data durable too.
pub(crate) fn checkpoint<S: ChunkStore>(
    data: &S,
    journal: &S,
    current: &Superblock,
    target: CheckpointTarget,
    write_table: impl FnOnce(usize) -> Result<Option<SlotWritten>, StoreError>,
) -> Result<Superblock, StoreError> {
    debug_assert!(
        target.max_record_chunks > 0,
        "a checkpoint names its largest record"
    );
    let seq = current.seq + 1;
    let written = write_table((seq % 2) as usize)?;
    data.barrier()?;
    let data_chunks = match written {
        Some(slot) => {
            journal.sync()?;
            slot.chunks
        }
        None => data.len()? / u64::from(current.chunk_size).max(1),
    };
    let next = Superblock {
        seq,
        lap: target.lap,
        checkpoint: target.epoch,
        records_at: target.records_at,
        max_record_chunks: target.max_record_chunks,
        data_chunks,
        table: written.map(|slot| slot.digest),
        ..*current
    };
    write_superblock(journal, &next)?;
    journal.sync()?;
    Ok(next)
}

/// The most buffers in one vectored journal write: 4 KiB of stack, 1 MiB per call with 4 KiB
/// chunks — few enough calls for a direct write, which waits for the device in each.
const RECORD_CALL_BUFS: usize = 256;

/// Writes the header block and the batch's payload at `offset`, in vectored calls of at most
/// [`RECORD_CALL_BUFS`] buffers.
fn write_record<S: ChunkStore>(
    journal: &S,
    offset: u64,
    header: &[u8],
    batch: &SealedBatch<'_>,
) -> Result<(), StoreError> {
    let mut bufs: [&[u8]; RECORD_CALL_BUFS] = [&[]; RECORD_CALL_BUFS];
    bufs[0] = header;
    let (mut used, mut at, mut call_start) = (1, 0, offset);
    let live = batch.live_len();
    while at < live || used > 0 {
        while used < RECORD_CALL_BUFS && at < live {
            bufs[used] = batch.bytes(at);
            used += 1;
            at += 1;
        }
        journal.write_at(call_start, &bufs[..used])?;
        call_start += bufs[..used].iter().map(|b| b.len() as u64).sum::<u64>();
        used = 0;
    }
    Ok(())
}

pub(crate) fn write_superblock<S: ChunkStore>(
    journal: &S,
    superblock: &Superblock,
) -> Result<(), StoreError> {
    let mut block = [0u8; SUPERBLOCK_BYTES as usize];
    superblock.encode(&mut block);
    journal.write_at(superblock.offset(), &[&block])
}
