//! Reading records back: the scan that recovery (replay) and inspection (report) share, and the
//! search that tells a torn tail from damage (the argument is in [`format`](super::format)).

use super::format::{self, RECORD_ALIGN, Superblock};
use super::table::chunk_crc;
use crate::{ChunkStore, Damage, Epoch, Error, StoreRole};

/// Buffers a scan reads into: a header block (of the largest record) and one chunk.
pub(crate) struct ScanBuffers<'b> {
    pub(crate) header: &'b mut [u8],
    pub(crate) chunk: &'b mut [u8],
    /// Whether to read and check every chunk of every record (recovery always does;
    /// inspection on request).
    pub(crate) check_payload: bool,
}

/// What a scan must know about the pipe: the journal it reads, the largest record a batch can
/// make, and the data store's length now (a record naming a chunk past it is damage).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub(crate) id: u64,
    pub(crate) journal_bytes: u64,
    pub(crate) max_chunks: u64,
    pub(crate) data_chunks: u64,
}

/// Where the next record is expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) at: u64,
    pub(crate) lap: u64,
    pub(crate) expected: Epoch,
}

impl Place {
    /// Where a superblock says the records after its checkpoint start.
    pub(crate) fn after_checkpoint(superblock: &Superblock) -> Self {
        Place {
            at: superblock.records_at,
            lap: superblock.lap,
            expected: superblock.checkpoint.next(),
        }
    }

    /// The start of the other half, one lap on.
    fn other_half(self, journal_bytes: u64) -> Self {
        let lap = self.lap + 1;
        Place {
            at: format::half_range(journal_bytes, (lap % 2) as usize).0,
            lap,
            ..self
        }
    }
}

/// A valid record, as the scan hands it to its caller.
pub(crate) struct Record<'h> {
    /// Offset of its payload.
    pub(crate) payload_at: u64,
    /// Its header block (entries: [`format::record_entry`]).
    pub(crate) header: &'h [u8],
    pub(crate) chunks: u32,
}

/// Where a scan stopped and what it found there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stop {
    /// Where the next record was expected, in the half where the records ended.
    pub(crate) place: Place,
    /// `Some(what)` when a record of the expected lap and epoch is there but fails a check
    /// (with its length when its header is valid); `None` when no such record is there.
    pub(crate) bad: Option<(&'static str, Option<u64>)>,
}

/// What a scan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScanEnd {
    /// Valid records, in order.
    pub(crate) records: u64,
    /// Epoch of the last valid record (the one before the first expected when none).
    pub(crate) last_epoch: Epoch,
    pub(crate) stop: Stop,
}

enum Verdict {
    Valid {
        chunks: u32,
        header_len: u64,
    },
    /// No record of the expected lap and epoch here.
    End,
    /// A record of the expected lap and epoch that fails a check; its length if its header
    /// is valid.
    Bad(&'static str, Option<u64>),
}

/// Scans the records from `from`, in epoch order, following the laps from one half to the
/// other, and calls `apply` for each valid one. Stops at the first place where neither the
/// current half nor the start of the other continues the sequence.
///
/// # Errors
/// [`Error::Corrupt`] for a valid record naming a chunk past the data store's end (the data
/// store is shorter than when the record was written); a store error; what `apply` returns.
pub(crate) fn scan<S: ChunkStore>(
    journal: &S,
    from: Place,
    bounds: Bounds,
    buffers: &mut ScanBuffers<'_>,
    mut apply: impl FnMut(Record<'_>, &mut [u8]) -> Result<(), Error>,
) -> Result<ScanEnd, Error> {
    let chunk_size = buffers.chunk.len() as u64;
    let mut place = from;
    let mut records = 0;
    // Where the records of the half just left ended, once the scan moved to the other half.
    let mut ended: Option<Place> = None;
    loop {
        match read_record(journal, place, bounds, buffers)? {
            Verdict::Valid { chunks, header_len } => {
                let record = Record {
                    payload_at: place.at + header_len,
                    header: &buffers.header[..header_len as usize],
                    chunks,
                };
                apply(record, buffers.chunk)?;
                records += 1;
                place.at += format::record_bytes(u64::from(chunks), chunk_size);
                place.expected = place.expected.next();
                ended = None;
            }
            Verdict::End if ended.is_none() => {
                // This lap's records end here; the sequence may go on in the other half.
                ended = Some(place);
                place = place.other_half(bounds.journal_bytes);
            }
            verdict => {
                let stop = match verdict {
                    Verdict::Bad(what, len) => Stop {
                        place,
                        bad: Some((what, len)),
                    },
                    _ => Stop {
                        place: ended.unwrap_or(place),
                        bad: None,
                    },
                };
                let last_epoch = Epoch::new(place.expected.get() - 1);
                return Ok(ScanEnd {
                    records,
                    last_epoch,
                    stop,
                });
            }
        }
    }
}

fn read_record<S: ChunkStore>(
    journal: &S,
    Place { at, lap, expected }: Place,
    bounds: Bounds,
    buffers: &mut ScanBuffers<'_>,
) -> Result<Verdict, Error> {
    let chunk_size = buffers.chunk.len() as u64;
    let (half_start, half_end) = format::half_range(bounds.journal_bytes, (lap % 2) as usize);
    if at < half_start || at + RECORD_ALIGN > half_end {
        return Ok(Verdict::End);
    }
    journal.read_at(at, &mut [&mut buffers.header[..RECORD_ALIGN as usize]])?;
    let Some(head) = format::decode_record_head(buffers.header) else {
        return Ok(Verdict::End);
    };
    if head.id != bounds.id || head.lap != lap || head.epoch != expected {
        return Ok(Verdict::End);
    }
    let chunks = u64::from(head.chunks);
    let header_len = format::header_block_bytes(chunks);
    let fits = chunks > 0
        && chunks <= bounds.max_chunks
        && at + format::record_bytes(chunks, chunk_size) <= half_end;
    if !fits {
        return Ok(Verdict::Bad(
            "the record's chunk count is out of range",
            None,
        ));
    }
    if header_len > buffers.header.len() as u64 {
        return Err(Error::Mismatch(
            "the journal holds records larger than staging_chunks: reopen with the staging the \
             pipe had (`chunkpipe inspect` shows it)",
        ));
    }
    let rest = &mut buffers.header[RECORD_ALIGN as usize..header_len as usize];
    if !rest.is_empty() {
        journal.read_at(at + RECORD_ALIGN, &mut [rest])?;
    }
    if !format::header_crc_ok(buffers.header, head.chunks) {
        return Ok(Verdict::Bad("the record header fails its checksum", None));
    }
    let len = Some(format::record_bytes(chunks, chunk_size));
    let entry = |i: u64| format::record_entry(buffers.header, i as usize).unwrap_or_default();
    if let Some(i) = (0..chunks).find(|&i| entry(i).0 >= bounds.data_chunks) {
        return Err(Error::Corrupt(Damage::new(
            StoreRole::Data,
            bounds.data_chunks.saturating_mul(chunk_size),
            if entry(i).0 == u64::MAX {
                "a journal record names an impossible chunk"
            } else {
                "the data store is shorter than the journal's records say"
            },
        )));
    }
    // Planted bug, for the simulator's tests only: replay payloads without checking them.
    let check_payload = buffers.check_payload && !cfg!(chunkpipe_planted = "unchecked_payload");
    if check_payload {
        let payload_at = at + header_len;
        for i in 0..chunks {
            journal.read_at(payload_at + i * chunk_size, &mut [&mut *buffers.chunk])?;
            if chunk_crc(buffers.chunk) != entry(i).1 {
                return Ok(Verdict::Bad(
                    "a chunk of the record fails its checksum",
                    len,
                ));
            }
        }
    }
    Ok(Verdict::Valid {
        chunks: head.chunks,
        header_len,
    })
}

/// A valid record header that shows the log went on past `stop` — so the record at the stop
/// was synced and acknowledged before it went bad, and the stop is damage, not a torn tail.
/// Looks through the whole record area: a continuation may lie anywhere after the stop (any
/// number of damaged records may come between it and the next sound one), in the other half,
/// or — carried there by a misdirected write — even before it. That is one sequential read of
/// the journal, when it opens. Returns where it is.
///
/// Evidence is a header of this journal (id) that decodes and passes its checksum and is later
/// than the stop: in the stop's own lap, a later epoch than the one expected there (never the
/// damaged record's own header); in a later lap (the other half, a lap a stale superblock does
/// not know), that epoch or a later one. Nothing a crash leaves qualifies: laps only grow (every
/// recovery starts a new one), a lap's records have growing epochs, and no record is appended
/// before the one ahead of it is synced.
pub(crate) fn later_record<S: ChunkStore>(
    journal: &S,
    stop: Stop,
    bounds: Bounds,
    buffers: &mut ScanBuffers<'_>,
) -> Result<Option<Place>, Error> {
    let place = stop.place;
    let later = |lap: u64, epoch: Epoch| {
        (lap == place.lap && epoch > place.expected) || (lap > place.lap && epoch >= place.expected)
    };
    let (start, _) = format::half_range(bounds.journal_bytes, 0);
    let (_, end) = format::half_range(bounds.journal_bytes, 1);
    find_header(journal, (start, end), bounds, buffers, later)
}

/// The first 512-aligned offset in `from..end` holding a header of this journal that passes
/// its checksum and `wanted(lap, epoch)`.
fn find_header<S: ChunkStore>(
    journal: &S,
    (from, end): (u64, u64),
    bounds: Bounds,
    buffers: &mut ScanBuffers<'_>,
    wanted: impl Fn(u64, Epoch) -> bool,
) -> Result<Option<Place>, Error> {
    let span = (buffers.header.len() as u64 / RECORD_ALIGN).max(1) * RECORD_ALIGN;
    let mut at = from;
    while at + RECORD_ALIGN <= end {
        let len = span.min((end - at) / RECORD_ALIGN * RECORD_ALIGN);
        journal.read_at(at, &mut [&mut buffers.header[..len as usize]])?;
        for offset in (0..len).step_by(RECORD_ALIGN as usize) {
            let block = &buffers.header[offset as usize..len as usize];
            let Some(head) = format::decode_record_head(block) else {
                continue;
            };
            if head.id != bounds.id || !wanted(head.lap, head.epoch) {
                continue;
            }
            // The whole header block, which may run past what was read.
            let header_len = format::header_block_bytes(u64::from(head.chunks));
            let valid = if header_len <= block.len() as u64 {
                format::header_crc_ok(block, head.chunks)
            } else {
                header_passes(journal, at + offset, header_len, buffers.chunk, head.chunks)?
            };
            if valid && u64::from(head.chunks) <= bounds.max_chunks && head.chunks > 0 {
                return Ok(Some(Place {
                    at: at + offset,
                    lap: head.lap,
                    expected: head.epoch,
                }));
            }
        }
        at += len;
    }
    Ok(None)
}

/// Whether the header block of `header_len` bytes at `at` passes its checksum, reading it in
/// pieces through `scratch` (a header longer than what the search buffer holds).
fn header_passes<S: ChunkStore>(
    journal: &S,
    at: u64,
    header_len: u64,
    scratch: &mut [u8],
    chunks: u32,
) -> Result<bool, Error> {
    let crc_at = format::header_crc_at(chunks);
    if crc_at + 4 > header_len || scratch.is_empty() {
        return Ok(false);
    }
    let mut crc = super::checksum::Crc32c::new();
    let mut done = 0;
    while done < crc_at {
        let n = (crc_at - done).min(scratch.len() as u64) as usize;
        journal.read_at(at + done, &mut [&mut scratch[..n]])?;
        crc.update(&scratch[..n]);
        done += n as u64;
    }
    let mut stored = [0u8; 4];
    journal.read_at(at + crc_at, &mut [&mut stored])?;
    Ok(crc.finalize() == u32::from_le_bytes(stored))
}
