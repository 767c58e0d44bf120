//! Opening a journal: create it, or recover it — replay every valid record after the
//! checkpoint into the data store, tell a torn tail from damage, and checkpoint.

use super::format::{self, RECORD_AREA_START, SUPERBLOCK_BYTES, Superblock, SuperblockCopy};
use super::scan::{self, Bounds, Place, Record, ScanBuffers};
use super::table::ChecksumTable;
use super::{CheckpointTarget, JournalLog};
use crate::{ChunkStore, Config, Create, Damage, Epoch, Error, Recovery, StoreRole};

/// What opening a `Journal::Atomic` pipe found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The journal was created by this open (there was nothing to recover).
    pub created: bool,
    /// Records replayed into the data store: the batches after the last checkpoint.
    pub replayed: u64,
    /// The newest epoch after recovery: the durable epoch the pipe opens with.
    pub last_epoch: Epoch,
    /// Recovery dropped a torn tail: a record a crash cut short, never acknowledged.
    pub torn_tail: bool,
    /// One superblock copy was damaged (or blank); recovery rewrote it from the other.
    pub superblock_repaired: bool,
    /// With [`Recovery::PointInTime`]: the damage recovery stopped at and the epochs it
    /// dropped there.
    pub dropped: Option<Dropped>,
}

/// What a [`Recovery::PointInTime`] recovery dropped at damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// Where the damage is.
    pub damage: Damage,
    /// The first epoch dropped: the one whose record is damaged.
    pub first: Epoch,
    /// The last epoch dropped: the newest record found after the damage. Every epoch from
    /// `first` to it was acknowledged as durable once; none is replayed, though chunks of the
    /// later ones may already be in the data store (written in place before the crash), and
    /// reads return them. Epochs continue after it.
    pub last: Epoch,
}

/// A journal ready for appends (from its superblock), with what recovery found.
pub(crate) struct Opened {
    pub(crate) superblock: Superblock,
    pub(crate) report: RecoveryReport,
    pub(crate) table: Option<ChecksumTable>,
}

/// Opens the journal of a pipe over `data` as `config.create` allows: formats a new one
/// (after growing `data` to `config.initial_chunks`), or recovers an existing one.
///
/// # Errors
/// [`Error::AlreadyExists`], [`Error::NotFound`] as [`Create`] says; [`Error::Mismatch`] for a
/// journal of another chunk size, format version or checksum setting; [`Error::Corrupt`] for
/// damage ([`Recovery::Strict`]); a store error.
pub(crate) fn open<S: ChunkStore>(
    data: &S,
    journal: &S,
    config: &Config,
    buffers: &mut ScanBuffers<'_>,
) -> Result<Opened, Error> {
    let found = read_superblock(journal)?;
    let (superblock, repaired) = match (found, config.create) {
        (Found::Pipe(sb, _), Create::New) if sb.seq > 1 => return Err(Error::AlreadyExists),
        (Found::Pipe(sb, repaired), Create::IfMissing | Create::Never) => (sb, repaired),
        (Found::Empty, Create::Never) => return Err(Error::NotFound),
        (Found::Blank, Create::Never) => return Err(blank_journal()),
        (Found::Damaged(e), Create::IfMissing | Create::Never) => return Err(e),
        (Found::Blank, Create::IfMissing) if !all_zero(journal, buffers.chunk)? => {
            return Err(blank_journal());
        }
        // Nothing there, blank, never opened or damaged while being made: (re)create.
        _ => return create(data, journal, config, buffers),
    };
    check_fits(&superblock, config)?;
    recover(data, journal, superblock, config, buffers, Adopt(false)).map(|mut opened| {
        opened.report.superblock_repaired = repaired;
        opened
    })
}

fn blank_journal() -> Error {
    Error::Corrupt(Damage::new(
        StoreRole::Journal,
        0,
        "the journal of an existing pipe has no superblock",
    ))
}

/// What the superblock area of a journal holds.
pub(crate) enum Found {
    /// A current superblock; `true` when the other copy needs rewriting.
    Pipe(Superblock, bool),
    /// An empty store.
    Empty,
    /// Both copies blank in a store that is not empty.
    Blank,
    /// No usable copy (damaged, or another format version).
    Damaged(Error),
}

fn read_superblock<S: ChunkStore>(journal: &S) -> Result<Found, Error> {
    let copies = superblock_copies(journal)?;
    resolve(journal, copies)
}

/// The two superblock copies as they are (blank where the store is too short to hold them).
pub(crate) fn superblock_copies<S: ChunkStore>(journal: &S) -> Result<[SuperblockCopy; 2], Error> {
    let len = journal.len()?;
    let mut copies = [[0u8; SUPERBLOCK_BYTES as usize]; 2];
    let readable = len.min(RECORD_AREA_START) as usize;
    let [first, second] = &mut copies;
    let (a, b) = (readable.min(512), readable.saturating_sub(512));
    journal.read_at(0, &mut [&mut first[..a], &mut second[..b]])?;
    let decode = |i: usize, n: usize| match n {
        n if n < SUPERBLOCK_BYTES as usize && copies[i][..n].iter().any(|&b| b != 0) => {
            SuperblockCopy::Damaged("superblock copy cut short")
        }
        _ => Superblock::decode(&copies[i]),
    };
    Ok([decode(0, a), decode(1, b)])
}

/// What the copies amount to.
pub(crate) fn resolve<S: ChunkStore>(
    journal: &S,
    copies: [SuperblockCopy; 2],
) -> Result<Found, Error> {
    if journal.len()? == 0 {
        return Ok(Found::Empty);
    }
    Ok(match Superblock::resolve(copies) {
        Ok(Some((sb, repaired))) => Found::Pipe(sb, repaired),
        Ok(None) => Found::Blank,
        Err(e) => Found::Damaged(e),
    })
}

/// Whether every byte of `store` is zero (read through `scratch`).
fn all_zero<S: ChunkStore>(store: &S, scratch: &mut [u8]) -> Result<bool, Error> {
    let len = store.len()?;
    let mut at = 0;
    while at < len {
        let n = (len - at).min(scratch.len() as u64) as usize;
        store.read_at(at, &mut [&mut scratch[..n]])?;
        if scratch[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Checks that a journal fits the config it is opened with.
fn check_fits(superblock: &Superblock, config: &Config) -> Result<(), Error> {
    if superblock.chunk_size != config.chunk_size {
        return Err(Error::Mismatch(
            "the journal was made with another chunk_size",
        ));
    }
    if superblock.table.is_some() != config.chunk_checksums {
        return Err(Error::Mismatch(
            "the journal was made with another chunk_checksums setting",
        ));
    }

    let full_staging = format::record_bytes(u64::from(config.staging_chunks), config.chunk_bytes());
    if !format::holds_record(superblock.journal_bytes, full_staging) {
        return Err(Error::InvalidInput(
            "the journal is too small for this config's staging_chunks",
        ));
    }
    Ok(())
}

/// Creates the pipe's storage: grows `data` to `config.initial_chunks`, formats the journal,
/// and opens it (a recovery with nothing to replay).
fn create<S: ChunkStore>(
    data: &S,
    journal: &S,
    config: &Config,
    buffers: &mut ScanBuffers<'_>,
) -> Result<Opened, Error> {
    let chunk_bytes = config.chunk_bytes();
    let adopted = data.len()? > 0;
    data.grow(config.initial_chunks * chunk_bytes)?;
    let data_chunks = data.len()? / chunk_bytes;
    let superblock = JournalLog::format(journal, config, data_chunks, buffers.chunk)?;
    let adopt = Adopt(adopted);
    let mut opened = recover(data, journal, superblock, config, buffers, adopt)?;
    opened.report.created = true;
    Ok(opened)
}

/// Whether a pipe is being created over a data store that already holds bytes (a plain file
/// adopted as it is): its checksum table must then be read off the data, not assumed zero.
#[derive(Clone, Copy)]
struct Adopt(bool);

/// Sets the table entry of every chunk of `data` from its bytes.
fn adopt_all<S: ChunkStore>(
    data: &S,
    chunk: &mut [u8],
    table: &mut ChecksumTable,
) -> Result<(), Error> {
    let chunk_bytes = chunk.len() as u64;
    for index in 0..table.len() {
        data.read_at(index * chunk_bytes, &mut [&mut *chunk])?;
        table.set(index, super::table::chunk_crc(chunk));
    }
    Ok(())
}

/// Recovery: checks the stores' lengths and the checksum table, replays every valid record
/// after the checkpoint into `data`, in epoch order, decides whether the stop is a torn tail
/// or damage, and checkpoints with appends starting a new lap in the other half (so nothing
/// is replayed twice across later crashes, and no leftover of the scanned laps passes for a new
/// record). A crash anywhere in here leaves the journal as it was: recovery runs again the
/// same.
fn recover<S: ChunkStore>(
    data: &S,
    journal: &S,
    superblock: Superblock,
    config: &Config,
    buffers: &mut ScanBuffers<'_>,
    adopt: Adopt,
) -> Result<Opened, Error> {
    // The superblock just read may sit in the cache without being durable (its sync failed in
    // an earlier process, which dropped the page while readers still see it). Everything below
    // builds on it — the next checkpoint overwrites the table slot of the one before it — so
    // it must be durable first: write it again, and sync.
    super::write_superblock(journal, &superblock)?;
    journal.sync()?;
    let chunk_bytes = config.chunk_bytes();
    let data_len = data.len()?;
    if data_len % chunk_bytes != 0 {
        return Err(Error::InvalidInput(
            "store length is not a multiple of chunk_size",
        ));
    }
    let data_chunks = data_len / chunk_bytes;
    check_lengths(&superblock, data_len, journal.len()?, chunk_bytes)?;
    let mut table = match superblock.table {
        Some(_) => Some(ChecksumTable::load(
            journal,
            &superblock,
            data_chunks,
            buffers.chunk,
        )?),
        None => None,
    };
    if let (Adopt(true), Some(table)) = (adopt, table.as_mut()) {
        adopt_all(data, buffers.chunk, table)?;
    }
    let bounds = Bounds {
        id: superblock.id,
        journal_bytes: superblock.journal_bytes,
        max_chunks: u64::from(superblock.max_record_chunks.max(1)),
        data_chunks,
    };
    let stores = (data, journal);
    let (report, lap) =
        replay_records(stores, &superblock, bounds, config, buffers, table.as_mut())?;
    if let Some(table) = &table {
        let needed = format::journal_len(superblock.journal_bytes, Some(table.len()));
        journal.grow(needed.unwrap_or(u64::MAX))?;
    }
    // Always checkpoint, even with nothing replayed: records of a new lap must never overwrite
    // a half that records replayed from the cache (not durable, as above) still fill; and it
    // rewrites the other superblock copy.
    let target = CheckpointTarget {
        epoch: report.last_epoch,
        records_at: format::half_range(superblock.journal_bytes, ((lap + 1) % 2) as usize).0,
        lap: lap + 1,
        max_record_chunks: config.staging_chunks,
    };
    let superblock = super::checkpoint(data, journal, &superblock, target, |slot| {
        let journal_bytes = superblock.journal_bytes;
        (table.as_mut())
            .map(|table| super::table::write_slot(table, journal, journal_bytes, slot))
            .transpose()
    })?;
    Ok(Opened {
        superblock,
        report,
        table,
    })
}

/// Replays the records after `superblock`'s checkpoint and decides what their stop is: a
/// torn tail, or damage — an error, or with [`Recovery::PointInTime`] the records from there
/// on dropped. Returns the report and the last lap the records reached.
fn replay_records<S: ChunkStore>(
    (data, journal): (&S, &S),
    superblock: &Superblock,
    bounds: Bounds,
    config: &Config,
    buffers: &mut ScanBuffers<'_>,
    mut table: Option<&mut ChecksumTable>,
) -> Result<(RecoveryReport, u64), Error> {
    let end = scan::scan(
        journal,
        Place::after_checkpoint(superblock),
        bounds,
        buffers,
        |record, chunk| replay(data, journal, &record, chunk, table.as_deref_mut()),
    )?;
    let mut report = RecoveryReport {
        replayed: end.records,
        last_epoch: end.last_epoch,
        ..RecoveryReport::default()
    };
    let later = scan::later_record(journal, end.stop, bounds, buffers)?;
    // Planted bug, for the simulator's tests only: damage passes for a torn tail.
    let later = later.filter(|_| !cfg!(chunkpipe_planted = "damage_as_torn_tail"));
    let Some(later) = later else {
        report.torn_tail = end.stop.bad.is_some();
        return Ok((report, end.stop.place.lap));
    };
    let damage = Damage::new(
        StoreRole::Journal,
        end.stop.place.at,
        "a record fails its checks, but later records follow it: it was acknowledged",
    );
    if config.recovery == Recovery::Strict {
        return Err(Error::Corrupt(damage));
    }
    if let (Some((_, Some(_))), Some(table)) = (end.stop.bad, table.as_deref_mut()) {
        // The damaged record's header is sound: the chunks it names may be in place too.
        let len = read_header(journal, end.stop.place.at, buffers)?;
        adopt_in_place(data, &buffers.header[..len], buffers.chunk, table)?;
    }
    let dropped = drop_from(data, journal, later, bounds, buffers, table)?;
    report.dropped = Some(Dropped {
        damage,
        first: end.stop.place.expected,
        last: dropped.expected,
    });
    report.last_epoch = dropped.expected;
    Ok((report, end.stop.place.lap.max(dropped.lap)))
}

/// Reads the header block of the record at `at` (one whose header passed its checks) into
/// `buffers.header`; returns its length.
fn read_header<S: ChunkStore>(
    journal: &S,
    at: u64,
    buffers: &mut ScanBuffers<'_>,
) -> Result<usize, Error> {
    let first = &mut buffers.header[..format::RECORD_ALIGN as usize];
    journal.read_at(at, &mut [first])?;
    let chunks = format::decode_record_head(buffers.header).map_or(0, |head| head.chunks);
    let len = (format::header_block_bytes(u64::from(chunks)) as usize).min(buffers.header.len());
    journal.read_at(at, &mut [&mut buffers.header[..len]])?;
    Ok(len)
}

/// The chunks a dropped record names hold whatever the data store has for them now: their
/// table entries follow it, so reading them gives those bytes rather than an error.
fn adopt_in_place<S: ChunkStore>(
    data: &S,
    header: &[u8],
    chunk: &mut [u8],
    table: &mut ChecksumTable,
) -> Result<(), Error> {
    let chunk_bytes = chunk.len() as u64;
    let chunks = format::decode_record_head(header).map_or(0, |head| head.chunks);
    for i in 0..chunks as usize {
        let Some((index, _)) = format::record_entry(header, i) else {
            break;
        };
        if index < table.len() {
            data.read_at(index * chunk_bytes, &mut [&mut *chunk])?;
            table.set(index, super::table::chunk_crc(chunk));
        }
    }
    Ok(())
}

/// Checks that the data store and the journal are as long as the superblock records.
pub(crate) fn check_lengths(
    superblock: &Superblock,
    data_len: u64,
    journal_len: u64,
    chunk_bytes: u64,
) -> Result<(), Error> {
    if data_len / chunk_bytes < superblock.data_chunks {
        return Err(Error::Corrupt(Damage::new(
            StoreRole::Data,
            data_len,
            "the data store is shorter than the pipe recorded",
        )));
    }
    let table_chunks = superblock.table.map(|_| superblock.data_chunks);
    let needed = format::journal_len(superblock.journal_bytes, table_chunks);
    if needed.is_none_or(|needed| journal_len < needed) {
        return Err(Error::Corrupt(Damage::new(
            StoreRole::Journal,
            journal_len,
            "the journal is shorter than its superblock records",
        )));
    }
    Ok(())
}

/// Writes the chunks of a valid record where they live, and their checksums into the table.
fn replay<S: ChunkStore>(
    data: &S,
    journal: &S,
    record: &Record<'_>,
    chunk: &mut [u8],
    mut table: Option<&mut ChecksumTable>,
) -> Result<(), Error> {
    let chunk_bytes = chunk.len() as u64;
    for i in 0..u64::from(record.chunks) {
        // The scan checked every entry of a valid record: present, and its index in range.
        let (index, crc) = format::record_entry(record.header, i as usize).unwrap_or_default();
        journal.read_at(record.payload_at + i * chunk_bytes, &mut [&mut *chunk])?;
        data.write_at(index * chunk_bytes, &[chunk])?;
        if let Some(table) = table.as_deref_mut() {
            table.set(index, crc);
        }
    }
    Ok(())
}

/// [`Recovery::PointInTime`]: follows the records after the damage from `later` without
/// replaying them, and returns where they end (the last epoch dropped, its lap). Chunks they
/// name may already be in the data store, written in place before the crash: the table takes
/// what the data store holds for them ([`adopt_in_place`]).
fn drop_from<S: ChunkStore>(
    data: &S,
    journal: &S,
    later: Place,
    bounds: Bounds,
    buffers: &mut ScanBuffers<'_>,
    mut table: Option<&mut ChecksumTable>,
) -> Result<Place, Error> {
    let mut from = later;
    let mut last = later.expected;
    loop {
        let end = scan::scan(journal, from, bounds, buffers, |record, chunk| match table
            .as_deref_mut()
        {
            Some(table) => adopt_in_place(data, record.header, chunk, table),
            None => Ok(()),
        })?;
        last = last.max(end.last_epoch);
        // Damage again further on: skip to the next records that follow it.
        match scan::later_record(journal, end.stop, bounds, buffers)? {
            Some(next) if next.expected > last => from = next,
            _ => {
                return Ok(Place {
                    expected: last,
                    ..end.stop.place
                });
            }
        }
    }
}
