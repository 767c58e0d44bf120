//! `Journal::Atomic`: every batch is appended to a journal as one checksummed record and made
//! durable with one journal sync before it is written in place; a crash leaves each batch
//! entirely applied or entirely absent.
//!
//! - **Commit** (`JournalLog::append`): one vectored append of header + payload, one `sync` of
//!   the journal. The batch is then durable and its epoch is published; the flusher writes it in
//!   place at its next step (no data sync per batch).
//! - **Checkpoint** (`JournalLog::checkpoint`): sync the data file, then write a new superblock
//!   with the next generation and the checkpoint epoch, and sync it. Records of the old
//!   generation are never replayed again. Runs when the next record does not fit, when the pipe
//!   is idle for `flush_interval`, and on close.
//! - **Recovery** (`recover::recover`): replay, in epoch order, every valid record
//!   of the current generation after the checkpoint; stop at the first torn or invalid one; sync
//!   the data file; checkpoint. Replaying again after a crash during recovery gives the same
//!   result.
//!
//! The format is in [`format`].

pub mod format;
pub(crate) mod recover;

pub use recover::ScanReport;
#[cfg(feature = "alloc")]
pub use recover::{JournalReport, inspect_journal};

use format::{RECORD_AREA_START, RecordHead, SUPERBLOCK_BYTES, Superblock};

use crate::staging::SealedBatch;
use crate::{ChunkStore, Epoch, Error, StoreError};

/// The flusher's view of the journal: where the next record goes.
#[derive(Debug)]
pub(crate) struct JournalLog {
    superblock: Superblock,
    append_at: u64,
}

impl JournalLog {
    /// Formats a fresh journal store of `journal_len` bytes: writes it all once (so appends
    /// never allocate), then the first superblock, then syncs.
    pub(crate) fn format<S: ChunkStore>(
        journal: &S,
        journal_len: u64,
        chunk_size: u32,
        zeros: &mut [u8],
    ) -> Result<Superblock, StoreError> {
        journal.grow(journal_len)?;
        zeros.fill(0);
        let mut at = 0;
        while at < journal_len {
            let n = (journal_len - at).min(zeros.len() as u64) as usize;
            journal.write_at(at, &[&zeros[..n]])?;
            at += n as u64;
        }
        let superblock = Superblock {
            seq: 1,
            generation: 1,
            checkpoint: Epoch::NONE,
            chunk_size,
            journal_len,
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

    /// A journal whose last checkpoint is `superblock` and whose record area is empty.
    pub(crate) fn after_checkpoint(superblock: Superblock) -> Self {
        JournalLog {
            superblock,
            append_at: RECORD_AREA_START,
        }
    }

    /// Whether a record of `chunks` chunks fits behind the current records.
    pub(crate) fn fits(&self, chunks: u64, chunk_size: u64) -> bool {
        self.append_at + format::record_bytes(chunks, chunk_size) <= self.superblock.journal_len
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
        let mut digest = format::crc_digest();
        for i in 0..live {
            digest.update(batch.bytes(i));
        }
        let payload_crc = digest.finalize();
        let head = RecordHead {
            generation: self.superblock.generation,
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
        Ok(())
    }

    /// Makes everything up to `durable` live in the data file alone: syncs the data file, then
    /// starts a new generation whose checkpoint is `durable`. The caller has written every
    /// published batch in place.
    pub(crate) fn checkpoint<S: ChunkStore>(
        &mut self,
        data: &S,
        journal: &S,
        durable: Epoch,
    ) -> Result<(), StoreError> {
        data.sync()?;
        let next = Superblock {
            seq: self.superblock.seq + 1,
            generation: self.superblock.generation + 1,
            checkpoint: durable,
            ..self.superblock
        };
        write_superblock(journal, &next)?;
        journal.sync()?;
        *self = JournalLog::after_checkpoint(next);
        Ok(())
    }
}

/// Writes the header block and the batch's payload at `offset`, in vectored calls of at most
/// 64 buffers.
fn write_record<S: ChunkStore>(
    journal: &S,
    offset: u64,
    header: &[u8],
    batch: &SealedBatch<'_>,
) -> Result<(), StoreError> {
    const BUFS: usize = 64;
    let mut bufs: [&[u8]; BUFS] = [&[]; BUFS];
    bufs[0] = header;
    let (mut used, mut at, mut call_start) = (1, 0, offset);
    let live = batch.live_len();
    while at < live || used > 0 {
        while used < BUFS && at < live {
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
