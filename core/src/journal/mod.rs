//! `Journal::Atomic`: every batch is appended to a journal as one checksummed record and made
//! durable with one journal sync before it is written in place; a crash leaves each batch
//! entirely applied or entirely absent.
//!
//! - **Commit** (`JournalLog::append`, called by the flush step): one vectored append of
//!   header + payload, one `sync` of the journal. The batch is then durable and its epoch is
//!   published. It is written in place afterwards, off the commit path (no data sync per
//!   batch): by `Pipe::checkpoint_step` where someone runs it, else by the next flush step.
//! - **Two halves.** Records fill one half of the journal while the other is checkpointed. When
//!   the next record does not fit, appends move to the other half (a new lap) and the half just
//!   left becomes the next checkpoint's job: `JournalLog::switch_half` returns that target.
//! - **Checkpoint** (`checkpoint`): sync the data file, then write the superblock naming the
//!   checkpoint epoch and where the records after it start, and sync it. It runs off the commit
//!   path in [`Pipe::checkpoint_step`](crate::Pipe::checkpoint_step) (a second thread under
//!   `std`), so commits continue while the data file syncs. The flush step itself checkpoints
//!   only on close, when idle without a checkpointer, or when appends need a half that no
//!   checkpoint has freed yet (the checkpointer fell behind, or there is none).
//! - **Recovery** (`recover::recover`): replay, in epoch order, every valid record after the
//!   checkpoint, following the laps from one half to the other; stop at the first torn or
//!   invalid one; sync the data file; checkpoint with appends starting a new lap. Replaying
//!   again after a crash during recovery gives the same result.
//!
//! The format is in [`format`].

mod checksum;
pub mod format;
pub(crate) mod recover;

pub use recover::ScanReport;
#[cfg(feature = "alloc")]
pub use recover::{JournalReport, inspect_journal};

use format::{RECORD_AREA_START, RecordHead, SUPERBLOCK_BYTES, Superblock};

use crate::staging::SealedBatch;
use crate::{ChunkStore, Epoch, Error, StoreError};

/// The lap a fresh journal starts with (even: laps alternate halves by parity, lap `l` lives in
/// half `l % 2`).
const FIRST_LAP: u64 = 2;

/// A checkpoint to take: every batch up to `epoch` is in the data file, and the records after
/// it start at `records_at` in lap `lap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CheckpointTarget {
    pub(crate) epoch: Epoch,
    pub(crate) records_at: u64,
    pub(crate) lap: u64,
}

/// The flusher's view of the journal: where the next record goes.
#[derive(Debug)]
pub(crate) struct JournalLog {
    journal_len: u64,
    append_at: u64,
    lap: u64,
    /// The newest record appended.
    last_epoch: Epoch,
    /// The newest record in the other half: appends may enter it once a checkpoint covers it.
    other_half_last: Epoch,
}

impl JournalLog {
    /// Formats a fresh journal store of `journal_len` bytes: writes it all once (so appends
    /// never allocate), then the first superblock, then syncs.
    ///
    /// The zeros go out as one buffer (`zeros`, a chunk of scratch) repeated up to
    /// [`RECORD_CALL_BUFS`] times per vectored call: one call per chunk made creating a pipe
    /// with the default 64 MiB journal take 16,384 direct writes, 1.2–1.6 s on the development
    /// machine (64–96 ms this way).
    pub(crate) fn format<S: ChunkStore>(
        journal: &S,
        journal_len: u64,
        chunk_size: u32,
        zeros: &mut [u8],
    ) -> Result<Superblock, StoreError> {
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
            seq: 1,
            lap: FIRST_LAP,
            checkpoint: Epoch::NONE,
            chunk_size,
            journal_len,
            records_at: RECORD_AREA_START,
        };
        write_superblock(journal, &superblock)?;
        journal.sync()?;
        Ok(superblock)
    }

    /// Reads the current superblock: the valid copy with the higher sequence number.
    ///
    /// # Errors
    /// [`Error::Mismatch`] for a foreign file or format, or one made with another chunk size;
    /// `Ok(None)` for an unformatted (all-zero or empty) journal.
    pub(crate) fn read_superblock<S: ChunkStore>(
        journal: &S,
        chunk_size: u32,
    ) -> Result<Option<Superblock>, Error> {
        let len = journal.len()?;
        if len < RECORD_AREA_START {
            return Ok(None);
        }
        let mut copies = [[0u8; SUPERBLOCK_BYTES as usize]; 2];
        let [first, second] = &mut copies;
        journal.read_at(0, &mut [first, second])?;
        let current = [
            Superblock::decode(&copies[0])?,
            Superblock::decode(&copies[1])?,
        ]
        .into_iter()
        .flatten()
        .max_by_key(|sb| sb.seq);
        if let Some(sb) = current {
            if sb.chunk_size != chunk_size {
                return Err(Error::Mismatch(
                    "the journal was made with another chunk_size",
                ));
            }
            if sb.journal_len != len {
                return Err(Error::Mismatch(
                    "the journal's length differs from its superblock",
                ));
            }
        }
        Ok(current)
    }

    /// Appends continuing where `superblock` (just written by recovery) says the records after
    /// its checkpoint start; no record in either half is newer than its checkpoint.
    pub(crate) fn starting_at(superblock: &Superblock) -> Self {
        JournalLog {
            journal_len: superblock.journal_len,
            append_at: superblock.records_at,
            lap: superblock.lap,
            last_epoch: superblock.checkpoint,
            other_half_last: Epoch::NONE,
        }
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
        }
    }

    /// Appends `batch` (prepared: live entries in chunk order) as the record of `epoch` and
    /// syncs the journal. The batch is durable once this returns `Ok`.
    pub(crate) fn append<S: ChunkStore>(
        &mut self,
        journal: &S,
        epoch: Epoch,
        batch: &SealedBatch<'_>,
        header: &mut [u8],
    ) -> Result<(), StoreError> {
        let live = batch.live_len();
        let mut digest = checksum::Crc32c::new();
        for i in 0..live {
            digest.update(batch.bytes(i));
        }
        let payload_crc = digest.finalize();
        let head = RecordHead {
            lap: self.lap,
            epoch,
            chunks: live as u32,
            payload_crc,
        };
        let header_len =
            format::encode_record_header(&head, (0..live).map(|i| batch.chunk(i)), header);
        let chunk_size = batch.bytes(0).len() as u64;
        write_record(journal, self.append_at, &header[..header_len], batch)?;
        journal.sync()?;
        self.append_at += format::record_bytes(live as u64, chunk_size);
        self.last_epoch = epoch;
        Ok(())
    }
}

/// Takes the checkpoint `target`: syncs the data file (every batch up to `target.epoch` was
/// written in place before this was called), then writes the superblock after `current` and
/// syncs the journal. Returns the new superblock.
///
/// The data file's sync may be a [`barrier`](ChunkStore::barrier): the superblock only counts
/// once the journal sync after it returns, and that sync makes the data durable too.
pub(crate) fn checkpoint<S: ChunkStore>(
    data: &S,
    journal: &S,
    current: &Superblock,
    target: CheckpointTarget,
) -> Result<Superblock, StoreError> {
    data.barrier()?;
    let next = Superblock {
        seq: current.seq + 1,
        lap: target.lap,
        checkpoint: target.epoch,
        records_at: target.records_at,
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

fn write_superblock<S: ChunkStore>(journal: &S, superblock: &Superblock) -> Result<(), StoreError> {
    let mut block = [0u8; SUPERBLOCK_BYTES as usize];
    superblock.encode(&mut block);
    journal.write_at(superblock.offset(), &[&block])
}
