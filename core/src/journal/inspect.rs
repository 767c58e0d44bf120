//! Inspecting a journal and its data store without changing either: what recovery would find
//! and do, and every problem, with the file and offset where it is.

use alloc::vec;
use alloc::vec::Vec;

use super::format::{self, Superblock, SuperblockCopy};
use super::recover::{self, Found};
use super::scan::{self, Bounds, Place, ScanBuffers};
use super::table::{ChecksumTable, chunk_crc};
use crate::{ChunkStore, Damage, Epoch, Error, StoreRole};

/// What [`inspect_journal`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JournalReport {
    /// The current superblock (`None` when neither copy is valid).
    pub superblock: Option<Superblock>,
    /// Valid records after the checkpoint: what a reopen replays.
    pub records: u64,
    /// Epoch of the last of them (the checkpoint epoch when there are none).
    pub last_epoch: Epoch,
    /// The records end in a torn append (a crash cut it short; it was never acknowledged).
    pub torn_tail: bool,
    /// When the records stop at damage: the epochs a [`Recovery::PointInTime`](crate::Recovery)
    /// reopen would drop, first and last (a strict reopen refuses).
    pub dropped: Option<(Epoch, Epoch)>,
    /// Chunks of the data store checked against their checksums (with `verify`).
    pub chunks_checked: u64,
    /// Every problem found, in the order found. Empty for an intact pipe.
    pub problems: Vec<Damage>,
}

/// Reads a journal and its data store without changing them, and reports what recovery would
/// find: the superblock copies, the stores' lengths against it, the checksum table against its
/// digest, the records after the checkpoint (headers; with `verify`, every chunk's checksum
/// too) and whether they end in a torn tail or in damage. With `verify` and a checksum table,
/// also checks every chunk of the data store against the checksum it should have after the
/// records are replayed.
///
/// # Errors
/// [`Error::Mismatch`] for a journal of another format version or chunk size; a store error
/// (an unreadable sector is one). Damage is not an error here: it is in
/// [`JournalReport::problems`].
pub fn inspect_journal<S: ChunkStore>(
    journal: &S,
    data: &S,
    chunk_size: u32,
    verify: bool,
) -> Result<JournalReport, Error> {
    let mut report = JournalReport::default();
    let Some(superblock) = superblock(journal, &mut report)? else {
        return Ok(report);
    };
    if superblock.chunk_size != chunk_size {
        return Err(Error::Mismatch(
            "the journal was made with another chunk_size",
        ));
    }
    report.superblock = Some(superblock);
    report.last_epoch = superblock.checkpoint;
    let chunk_bytes = u64::from(chunk_size.max(1));
    let data_len = data.len()?;
    let mut chunk = vec![0u8; chunk_bytes as usize];
    if let Err(Error::Corrupt(damage)) =
        recover::check_lengths(&superblock, data_len, journal.len()?, chunk_bytes)
    {
        report.problems.push(damage);
        return Ok(report);
    }
    let data_chunks = data_len / chunk_bytes;
    let table = match superblock.table {
        Some(_) => match ChecksumTable::load(journal, &superblock, data_chunks, &mut chunk) {
            Ok(table) => Some(table),
            Err(Error::Corrupt(damage)) => {
                report.problems.push(damage);
                None
            }
            Err(e) => return Err(e),
        },
        None => None,
    };
    let mut replayed = Vec::new();
    scan_records(
        journal,
        &superblock,
        data_chunks,
        verify,
        &mut report,
        &mut replayed,
    )?;
    if let (true, Some(table)) = (verify, &table) {
        replayed.sort_unstable();
        replayed.dedup();
        check_data(data, table, &replayed, &mut chunk, &mut report)?;
    }
    Ok(report)
}

/// The current superblock, noting a damaged copy (or both) as a problem.
fn superblock<S: ChunkStore>(
    journal: &S,
    report: &mut JournalReport,
) -> Result<Option<Superblock>, Error> {
    let copies = recover::superblock_copies(journal)?;
    for (i, copy) in copies.iter().enumerate() {
        if let SuperblockCopy::Damaged(what) = copy {
            let offset = i as u64 * format::SUPERBLOCK_BYTES;
            report
                .problems
                .push(Damage::new(StoreRole::Journal, offset, what));
        }
    }
    match recover::resolve(journal, copies)? {
        Found::Pipe(superblock, _) => Ok(Some(superblock)),
        Found::Damaged(Error::Corrupt(damage)) => {
            report.problems.push(damage);
            Ok(None)
        }
        Found::Damaged(e) => Err(e),
        Found::Empty | Found::Blank => {
            let what = "the journal is blank: no superblock";
            report
                .problems
                .push(Damage::new(StoreRole::Journal, 0, what));
            Ok(None)
        }
    }
}

/// Scans the records after the checkpoint (noting in `replayed` the chunks they name, which a
/// reopen rewrites) and classifies where they stop.
fn scan_records<S: ChunkStore>(
    journal: &S,
    superblock: &Superblock,
    data_chunks: u64,
    verify: bool,
    report: &mut JournalReport,
    replayed: &mut Vec<u64>,
) -> Result<(), Error> {
    let chunk_bytes = u64::from(superblock.chunk_size);
    let max_chunks = u64::from(superblock.max_record_chunks).clamp(1, 1 << 24);
    let mut header = vec![0u8; format::header_block_bytes(max_chunks) as usize];
    let mut chunk = vec![0u8; chunk_bytes as usize];
    let mut buffers = ScanBuffers {
        header: &mut header,
        chunk: &mut chunk,
        check_payload: verify,
    };
    let bounds = Bounds {
        id: superblock.id,
        journal_bytes: superblock.journal_bytes,
        max_chunks,
        data_chunks,
    };
    let mut note = |record: scan::Record<'_>, _: &mut [u8]| {
        let entries =
            (0..record.chunks as usize).filter_map(|i| format::record_entry(record.header, i));
        replayed.extend(entries.map(|(index, _)| index));
        Ok(())
    };
    let end = match scan::scan(
        journal,
        Place::after_checkpoint(superblock),
        bounds,
        &mut buffers,
        &mut note,
    ) {
        Ok(end) => end,
        Err(Error::Corrupt(damage)) => {
            report.problems.push(damage);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    report.records = end.records;
    report.last_epoch = end.last_epoch;
    match scan::later_record(journal, end.stop, bounds, &mut buffers)? {
        None => report.torn_tail = end.stop.bad.is_some(),
        Some(later) => {
            let what =
                "a record fails its checks, but later records follow it: it was acknowledged";
            report
                .problems
                .push(Damage::new(StoreRole::Journal, end.stop.place.at, what));
            let last = scan::scan(journal, later, bounds, &mut buffers, |_, _| Ok(()))
                .map(|after| after.last_epoch.max(later.expected))
                .unwrap_or(later.expected);
            report.dropped = Some((end.stop.place.expected, last));
        }
    }
    Ok(())
}

/// Checks every chunk of the data store against `table`, but those in `replayed` (sorted),
/// which a reopen rewrites from the journal.
fn check_data<S: ChunkStore>(
    data: &S,
    table: &ChecksumTable,
    replayed: &[u64],
    chunk: &mut [u8],
    report: &mut JournalReport,
) -> Result<(), Error> {
    let chunk_bytes = chunk.len() as u64;
    for index in 0..table.len() {
        if replayed.binary_search(&index).is_ok() {
            continue;
        }
        data.read_at(index * chunk_bytes, &mut [&mut *chunk])?;
        if !table.matches(index, chunk_crc(chunk)) {
            let what = "the chunk does not match its checksum";
            report
                .problems
                .push(Damage::new(StoreRole::Data, index * chunk_bytes, what));
        }
        report.chunks_checked += 1;
    }
    Ok(())
}
