//! Reading records back: the scan that recovery (replay) and inspection (report) share.

use super::format::{self, Superblock};
use super::{CheckpointTarget, JournalLog};
use crate::{ChunkStore, Epoch, StoreError};

/// What a scan of the record area found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Valid records, in order, from the checkpoint on.
    pub records: u64,
    /// Epoch of the last valid record (the checkpoint epoch when there is none).
    pub last_epoch: Epoch,
    /// Whether the scan stopped at a record of the expected lap and epoch that was torn or
    /// damaged (as opposed to the end of the records: blank space, an older lap or epoch).
    pub torn_tail: bool,
}

/// Buffers a scan reads into: a header block and one chunk.
pub(crate) struct ScanBuffers<'b> {
    pub(crate) header: &'b mut [u8],
    pub(crate) chunk: &'b mut [u8],
    /// Whether to read and check every payload (recovery always does; inspection on request).
    pub(crate) check_payload: bool,
}

/// Where a scan stopped: the lap it was reading (appends after recovery start the next one).
pub(crate) struct ScanEnd {
    lap: u64,
}

/// Scans the records after `superblock`'s checkpoint, in epoch order, following the laps from
/// one half to the other, and calls `apply(offset_of_payload, header_block, chunks)` for each
/// valid one. Stops at the first record that is torn, damaged, out of order, larger than
/// `max_chunks` or naming a chunk at or past `data_chunks`, or where neither the current half
/// nor the start of the other continues the sequence.
pub(crate) fn scan<S: ChunkStore>(
    journal: &S,
    superblock: &Superblock,
    (max_chunks, data_chunks): (u64, u64),
    buffers: &mut ScanBuffers<'_>,
    mut apply: impl FnMut(u64, &[u8], u32, &mut [u8]) -> Result<(), StoreError>,
) -> Result<(ScanReport, ScanEnd), StoreError> {
    let mut report = ScanReport {
        last_epoch: superblock.checkpoint,
        ..ScanReport::default()
    };
    let (mut at, mut lap) = (superblock.records_at, superblock.lap);
    // Whether `at` is the start of a lap reached by moving to the other half.
    let mut just_moved = false;
    loop {
        let expected = Epoch::new(report.last_epoch.get() + 1);
        let place = Place { at, lap, expected };
        match read_record(
            journal,
            superblock,
            place,
            (max_chunks, data_chunks),
            buffers,
        )? {
            Verdict::Valid { chunks, header_len } => {
                apply(
                    at + header_len,
                    &buffers.header[..header_len as usize],
                    chunks,
                    buffers.chunk,
                )?;
                at += format::record_bytes(u64::from(chunks), buffers.chunk.len() as u64);
                report.records += 1;
                report.last_epoch = expected;
                just_moved = false;
            }
            Verdict::End if !just_moved => {
                // This lap's records end here; the sequence may go on in the other half.
                lap += 1;
                at = format::half_range(superblock.journal_len, (lap % 2) as usize).0;
                just_moved = true;
            }
            Verdict::End => return Ok((report, ScanEnd { lap: lap - 1 })),
            Verdict::Torn => {
                report.torn_tail = true;
                return Ok((report, ScanEnd { lap }));
            }
        }
    }
}

/// Where the scan expects the next record.
#[derive(Clone, Copy)]
struct Place {
    at: u64,
    lap: u64,
    expected: Epoch,
}

enum Verdict {
    Valid {
        chunks: u32,
        header_len: u64,
    },
    /// Blank space, another lap or epoch, no room: the records of this lap end here.
    End,
    /// A record of the expected lap and epoch that fails its checks.
    Torn,
}

fn read_record<S: ChunkStore>(
    journal: &S,
    superblock: &Superblock,
    Place { at, lap, expected }: Place,
    (max_chunks, data_chunks): (u64, u64),
    buffers: &mut ScanBuffers<'_>,
) -> Result<Verdict, StoreError> {
    let chunk_size = buffers.chunk.len() as u64;
    let (half_start, half_end) = format::half_range(superblock.journal_len, (lap % 2) as usize);
    if at < half_start || at + format::RECORD_ALIGN > half_end {
        return Ok(Verdict::End);
    }
    journal.read_at(
        at,
        &mut [&mut buffers.header[..format::RECORD_ALIGN as usize]],
    )?;
    let Some(head) = format::decode_record_head(buffers.header) else {
        return Ok(Verdict::End);
    };
    if head.lap != lap || head.epoch != expected {
        return Ok(Verdict::End);
    }
    let chunks = u64::from(head.chunks);
    let header_len = format::header_block_bytes(chunks);
    let fits = chunks > 0
        && chunks <= max_chunks
        && header_len <= buffers.header.len() as u64
        && at + format::record_bytes(chunks, chunk_size) <= half_end;
    if !fits {
        return Ok(Verdict::Torn);
    }
    let rest = &mut buffers.header[format::RECORD_ALIGN as usize..header_len as usize];
    if !rest.is_empty() {
        journal.read_at(at + format::RECORD_ALIGN, &mut [rest])?;
    }
    let indexes_ok = (0..head.chunks as usize)
        .all(|i| format::record_index(buffers.header, i).is_some_and(|index| index < data_chunks));
    if !format::header_crc_ok(buffers.header, head.chunks) || !indexes_ok {
        return Ok(Verdict::Torn);
    }
    // Planted bug, for the simulator's tests only: replay payloads without checking them.
    let check_payload = buffers.check_payload && !cfg!(chunkpipe_planted = "unchecked_payload");
    if check_payload {
        let mut digest = super::checksum::Crc32c::new();
        for i in 0..chunks {
            journal.read_at(at + header_len + i * chunk_size, &mut [&mut *buffers.chunk])?;
            digest.update(buffers.chunk);
        }
        if digest.finalize() != head.payload_crc {
            return Ok(Verdict::Torn);
        }
    }
    Ok(Verdict::Valid {
        chunks: head.chunks,
        header_len,
    })
}

/// Recovery: replays every valid record after the checkpoint into `data`, in epoch order, then
/// syncs the data file and checkpoints with appends starting a new lap in the other half (so
/// nothing is replayed twice across later crashes, and no leftover of the scanned laps passes
/// for a new record). Returns the journal ready for appends, its superblock and what was
/// found. A crash anywhere in here leaves the journal as it was: recovery runs again the same.
pub(crate) fn recover<S: ChunkStore>(
    data: &S,
    journal: &S,
    superblock: Superblock,
    max_chunks: u64,
    buffers: &mut ScanBuffers<'_>,
) -> Result<(JournalLog, Superblock, ScanReport), StoreError> {
    let chunk_size = buffers.chunk.len() as u64;
    let data_chunks = data.len()? / chunk_size;
    let (report, end) = scan(
        journal,
        &superblock,
        (max_chunks, data_chunks),
        buffers,
        |payload_at, header, chunks, chunk| {
            for i in 0..u64::from(chunks) {
                journal.read_at(payload_at + i * chunk_size, &mut [&mut *chunk])?;
                // The scan checked every index of a valid record: present and in range.
                let index = format::record_index(header, i as usize).unwrap_or(u64::MAX);
                let at = index.checked_mul(chunk_size).ok_or(StoreError::new(
                    crate::StoreErrorKind::OutOfBounds,
                    crate::Op::Write,
                ))?;
                data.write_at(at, &[chunk])?;
            }
            Ok(())
        },
    )?;
    // Always checkpoint, even with nothing replayed: the superblock just read may sit in the
    // cache without being durable (its sync failed in an earlier process, which dropped the
    // page), and records of a new lap must never overwrite a half while the durable superblock
    // still points into it. Writing it again and syncing settles that.
    let next_lap = end.lap + 1;
    let target = CheckpointTarget {
        epoch: report.last_epoch,
        records_at: format::half_range(superblock.journal_len, (next_lap % 2) as usize).0,
        lap: next_lap,
    };
    let superblock = super::checkpoint(data, journal, &superblock, target)?;
    Ok((JournalLog::starting_at(&superblock), superblock, report))
}

/// What [`inspect_journal`] found.
#[cfg(feature = "alloc")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalReport {
    /// The current superblock.
    pub superblock: Superblock,
    /// The records after its checkpoint.
    pub scan: ScanReport,
}

/// Reads a journal without changing it: its superblock and the records after the checkpoint
/// (headers and header checksums; with `verify`, every payload checksum too). `None` for an
/// unformatted journal. `data_chunks` is the data file's length in chunks (records naming a
/// chunk past it are invalid).
///
/// # Errors
/// [`crate::Error::Mismatch`] for a foreign file or format, a store error.
#[cfg(feature = "alloc")]
pub fn inspect_journal<S: ChunkStore>(
    journal: &S,
    chunk_size: u32,
    data_chunks: u64,
    verify: bool,
) -> Result<Option<JournalReport>, crate::Error> {
    let Some(superblock) = JournalLog::read_superblock(journal, chunk_size)? else {
        return Ok(None);
    };
    let max_chunks = (superblock.journal_len / u64::from(chunk_size).max(1)).max(1);
    let mut header = alloc::vec![0u8; format::header_block_bytes(max_chunks.min(1 << 24)) as usize];
    let mut chunk = alloc::vec![0u8; chunk_size as usize];
    let mut buffers = ScanBuffers {
        header: &mut header,
        chunk: &mut chunk,
        check_payload: verify,
    };
    let (scan, _) = scan(
        journal,
        &superblock,
        (max_chunks, data_chunks),
        &mut buffers,
        |_, _, _, _| Ok(()),
    )?;
    Ok(Some(JournalReport { superblock, scan }))
}
