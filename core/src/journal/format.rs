//! The journal's on-disk format (version 2). All integers are little-endian.
//!
//! # Layout of `<path>.journal`
//!
//! | offset | size | what |
//! |---|---|---|
//! | 0 | 512 | superblock copy 0 |
//! | 512 | 512 | superblock copy 1 |
//! | 1024 | h | record half 0 |
//! | 1024 + h | h | record half 1 |
//! | `journal_bytes` | 2 × 4096 × pages | chunk checksum table: two slots, page by page |
//!
//! `h` is half of the space between the superblocks and `journal_bytes`, rounded down to 512
//! bytes ([`half_range`]). Everything up to `journal_bytes` is written once (zeros) when the
//! journal is created, so appends never allocate. The table (when the pipe keeps chunk
//! checksums) grows with the data store.
//!
//! Records are appended back to back in one half, each padded to 512 bytes and never crossing
//! the half's end. When the next record does not fit, appends move to the start of the other
//! half — which must hold no record a checkpoint has not covered — and the *lap* goes up by one.
//! A record carries the lap it was written in, so records left over from earlier laps never
//! pass for current ones. While appends fill one half, the other is checkpointed.
//!
//! # Superblock (84 bytes used of 512)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `CPJS` |
//! | 4 | 2 | format version (2) |
//! | 6 | 2 | flags: bit 0 = the journal keeps a chunk checksum table |
//! | 8 | 8 | journal id: drawn when the journal is created, repeated in every record |
//! | 16 | 8 | sequence number: the valid copy with the higher one is current |
//! | 24 | 8 | lap of the first record after the checkpoint |
//! | 32 | 8 | checkpoint epoch: every batch up to it is durable in the data store |
//! | 40 | 4 | chunk size |
//! | 44 | 4 | largest record, in chunks: the staging capacity of the pipe that appends after this checkpoint |
//! | 48 | 8 | `journal_bytes`: where the record area ends and the table starts |
//! | 56 | 8 | offset where the first record after the checkpoint is (or will be) |
//! | 64 | 8 | data chunks: the data store holds at least this many (it never shrinks) |
//! | 72 | 8 | digest of the table slot this copy goes with ([`TableDigest`]) |
//! | 80 | 4 | CRC-32C of bytes 0..80 |
//!
//! Superblock number `seq` is written to copy `seq % 2`, and goes with table slot `seq % 2`.
//! Writes alternate between the copies, so a torn superblock write leaves the other intact;
//! one valid copy is enough to open (the next checkpoint rewrites the other).
//!
//! # Record
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `CPJR` |
//! | 4 | 2 | format version (2) |
//! | 6 | 2 | reserved (0) |
//! | 8 | 8 | journal id (as in the superblock) |
//! | 16 | 8 | lap |
//! | 24 | 8 | epoch (the first record after a checkpoint has checkpoint epoch + 1, then +1 each) |
//! | 32 | 4 | chunk count n |
//! | 36 | 4 | reserved (0) |
//! | 40 | 12 n | per chunk, in payload order: index (8), CRC-32C of its bytes (4) |
//! | 40 + 12 n | 4 | CRC-32C of everything before it in the header |
//! | … | | zero padding to a multiple of 512 (the header block) |
//! | header block | n × chunk size | payload: the chunks, in index order |
//!
//! # Chunk checksum table
//!
//! One 4-byte entry per data chunk, `CRC-32C(chunk) XOR CRC-32C(chunk of zeros)` (so a chunk
//! of zeros — every chunk of a new or grown store — has entry 0, and fresh table space needs no
//! writing), 1024 entries to a 4096-byte page. Page `p` of slot `s` is at
//! `journal_bytes + (2p + s) × 4096`. The table is copy-on-write across checkpoints: a
//! checkpoint writes the pages that changed into the slot of its superblock's `seq`, syncs, and
//! only then writes that superblock, whose digest covers exactly the entries of that slot. A
//! crash in a checkpoint tears only the slot the previous superblock does not use.
//!
//! Between checkpoints the table lives in memory: applying a batch in place updates its
//! entries there (the record carries each chunk's CRC), and recovery rebuilds the same from the
//! slot plus the records it replays. Every chunk read from the data store is checked against
//! its entry. This makes every chunk of the data store reachable by checksum from the
//! superblock, TigerBeetle-style: a flipped bit, a write the disk acknowledged but dropped, or
//! a write that landed on another chunk is found where it is read, and damage to the table
//! itself (or a table page whose write was dropped) by the digest when the pipe opens.
//!
//! # Reading it back: torn tail versus damage
//!
//! Start at the superblock's record offset, expecting its lap and checkpoint epoch + 1. A
//! record counts only if its magic, version, journal id, lap and epoch are the expected ones
//! (the id keeps records of another journal — say a journal image stored as chunk data, or
//! left in reused space — from ever passing for this one's), its header
//! CRC matches, every chunk matches its CRC, and every index lies inside the data store. Where
//! the records of a half end (blank space, another lap or epoch), continue at the start of the
//! other half with the next lap. Recovery stops at the first place where neither continues the
//! sequence: the *stop*.
//!
//! The stop is either the end of what was appended or a **torn tail** — an append that a crash
//! cut short — or **damage**. Why they can be told apart: the pipe appends record `e + 1` only
//! after the sync of record `e` returned (one batch, one record, one sync, in epoch order), and
//! a waiter on `e` is told its batch is durable only then. So a crash can leave at most one
//! record that never completed, and it is always the **last** one: nothing valid can follow it.
//! Conversely, a valid record of a later epoch (or a later lap) anywhere a continuation of the
//! log could be — after the stop in its half, up to the largest record a batch can make, or at
//! the start of the other half — proves that the record at the stop was synced and
//! acknowledged before it went bad: that is damage ([`Error::Corrupt`],
//! naming the stop's offset), not a torn tail. The same holds for a stale superblock (a lost or
//! damaged write of the newest copy): the records of laps it does not know are the evidence.
//!
//! What the log alone cannot tell: damage to the **newest** record, with nothing written after
//! it, looks exactly like a torn tail (every single-copy log — a database WAL included — has
//! this window). It closes as soon as one more batch is appended or a checkpoint covers it.
//!
//! [`Recovery`](crate::Recovery) decides what happens on damage: an error (the default), or
//! replay up to it and report the epochs dropped.

use super::checksum::Crc32c;
use crate::{Damage, Epoch, Error, StoreRole};

/// Journal format version.
pub const JOURNAL_VERSION: u16 = 2;
/// Bytes per superblock copy.
pub const SUPERBLOCK_BYTES: u64 = 512;
/// Where the record area starts.
pub const RECORD_AREA_START: u64 = 2 * SUPERBLOCK_BYTES;
/// Records (and their header blocks) are padded to this.
pub const RECORD_ALIGN: u64 = 512;
/// Bytes per page of the chunk checksum table.
pub const TABLE_PAGE_BYTES: u64 = 4096;
/// Table entries per page.
pub const TABLE_PAGE_ENTRIES: u64 = TABLE_PAGE_BYTES / 4;

const SUPERBLOCK_MAGIC: [u8; 4] = *b"CPJS";
const RECORD_MAGIC: [u8; 4] = *b"CPJR";
const RECORD_FIXED_BYTES: usize = 40;
/// Bytes per chunk entry in a record header: index and CRC.
const RECORD_ENTRY_BYTES: usize = 12;
/// Where the superblock's CRC is, and the bytes it uses.
pub const SUPERBLOCK_CRC_AT: usize = 80;
const SUPERBLOCK_USED: usize = SUPERBLOCK_CRC_AT + 4;
const FLAG_TABLE: u16 = 1;

/// CRC-32C of `parts`, in order.
pub fn crc32c(parts: &[&[u8]]) -> u32 {
    let mut crc = Crc32c::new();
    for part in parts {
        crc.update(part);
    }
    crc.finalize()
}

/// The start and end offsets of record half `half` (0 or 1) of a journal whose record area
/// ends at `journal_bytes`.
pub fn half_range(journal_bytes: u64, half: usize) -> (u64, u64) {
    let size = journal_bytes.saturating_sub(RECORD_AREA_START) / 2 / RECORD_ALIGN * RECORD_ALIGN;
    let start = RECORD_AREA_START + size * (half as u64 & 1);
    (start, start + size)
}

/// Whether each half of a journal of `journal_bytes` holds a record of `record_bytes`.
pub fn holds_record(journal_bytes: u64, record_bytes: u64) -> bool {
    let (start, end) = half_range(journal_bytes, 0);
    end - start >= record_bytes
}

/// Which half the record offset `at` lies in.
pub fn half_of(journal_bytes: u64, at: u64) -> usize {
    usize::from(at >= half_range(journal_bytes, 1).0)
}

/// Pages of one table slot for `data_chunks` chunks.
pub fn table_pages(data_chunks: u64) -> u64 {
    data_chunks.div_ceil(TABLE_PAGE_ENTRIES)
}

/// Offset of page `page` of table slot `slot` (0 or 1).
pub fn table_page_offset(journal_bytes: u64, page: u64, slot: usize) -> u64 {
    journal_bytes + (2 * page + (slot as u64 & 1)) * TABLE_PAGE_BYTES
}

/// Length of a journal store with a table for `data_chunks` chunks (`None`: no table, or an
/// overflow, which no real store reaches).
pub fn journal_len(journal_bytes: u64, data_chunks: Option<u64>) -> Option<u64> {
    match data_chunks {
        None => Some(journal_bytes),
        Some(chunks) => table_pages(chunks)
            .checked_mul(2 * TABLE_PAGE_BYTES)
            .and_then(|t| t.checked_add(journal_bytes)),
    }
}

/// The order-independent digest of a table slot: the wrapping sum of one mixed term per
/// non-zero entry (zero entries add nothing, so growing the table keeps it). Updated in O(1)
/// per changed entry; recomputed from the slot when the pipe opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableDigest(pub u64);

impl TableDigest {
    /// The term of entry `entry` of chunk `index`.
    pub fn term(index: u64, entry: u32) -> u64 {
        if entry == 0 {
            return 0;
        }
        // murmur3's 64-bit finalizer: a bijection with full avalanche.
        let mut k = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(entry);
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    }

    /// Entry `index` changes from `old` to `new`.
    pub fn replace(&mut self, index: u64, old: u32, new: u32) {
        self.0 = self
            .0
            .wrapping_sub(Self::term(index, old))
            .wrapping_add(Self::term(index, new));
    }
}

/// The current state of a journal, as its superblock records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// The journal's id, drawn when it was created; every record carries it.
    pub id: u64,
    /// Which write this is; the higher valid copy wins.
    pub seq: u64,
    /// Lap of the first record after the checkpoint.
    pub lap: u64,
    /// Every batch up to this epoch is durable in the data store.
    pub checkpoint: Epoch,
    /// Chunk size the journal was created with.
    pub chunk_size: u32,
    /// No record after the checkpoint holds more chunks: the staging capacity of the pipe that
    /// appends them (a reopen needs at least as much staging to replay them).
    pub max_record_chunks: u32,
    /// Where the record area ends (and the checksum table starts).
    pub journal_bytes: u64,
    /// Offset of the first record after the checkpoint.
    pub records_at: u64,
    /// The data store holds at least this many chunks.
    pub data_chunks: u64,
    /// `Some(digest of slot seq % 2)` when the journal keeps a chunk checksum table.
    pub table: Option<TableDigest>,
}

/// What one superblock copy holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuperblockCopy {
    /// A valid superblock of this format version.
    Valid(Superblock),
    /// All zeros: never written.
    Blank,
    /// A superblock of another format version (its magic and version say so).
    OtherVersion(u16),
    /// Neither: a bad magic, checksum or placement.
    Damaged(&'static str),
}

impl Superblock {
    /// Encodes into one superblock copy.
    pub fn encode(&self, out: &mut [u8; SUPERBLOCK_BYTES as usize]) {
        out.fill(0);
        out[0..4].copy_from_slice(&SUPERBLOCK_MAGIC);
        out[4..6].copy_from_slice(&JOURNAL_VERSION.to_le_bytes());
        let flags = if self.table.is_some() { FLAG_TABLE } else { 0 };
        out[6..8].copy_from_slice(&flags.to_le_bytes());
        out[8..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..24].copy_from_slice(&self.seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.lap.to_le_bytes());
        out[32..40].copy_from_slice(&self.checkpoint.get().to_le_bytes());
        out[40..44].copy_from_slice(&self.chunk_size.to_le_bytes());
        out[44..48].copy_from_slice(&self.max_record_chunks.to_le_bytes());
        out[48..56].copy_from_slice(&self.journal_bytes.to_le_bytes());
        out[56..64].copy_from_slice(&self.records_at.to_le_bytes());
        out[64..72].copy_from_slice(&self.data_chunks.to_le_bytes());
        let digest = self.table.unwrap_or_default().0;
        out[72..80].copy_from_slice(&digest.to_le_bytes());
        let crc = crc32c(&[&out[..SUPERBLOCK_CRC_AT]]);
        out[SUPERBLOCK_CRC_AT..SUPERBLOCK_USED].copy_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(
            Superblock::decode(out),
            SuperblockCopy::Valid(*self),
            "superblock encode/decode pair"
        );
    }

    /// Decodes one copy (its placement is checked by [`Superblock::resolve`]).
    pub fn decode(bytes: &[u8]) -> SuperblockCopy {
        if bytes.len() < SUPERBLOCK_USED {
            return SuperblockCopy::Damaged("superblock copy cut short");
        }
        if bytes[..SUPERBLOCK_USED].iter().all(|&b| b == 0) {
            return SuperblockCopy::Blank;
        }
        if bytes[0..4] != SUPERBLOCK_MAGIC {
            return SuperblockCopy::Damaged("superblock copy has a bad magic");
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != JOURNAL_VERSION {
            return SuperblockCopy::OtherVersion(version);
        }
        if crc32c(&[&bytes[..SUPERBLOCK_CRC_AT]]) != u32_at(bytes, SUPERBLOCK_CRC_AT) {
            return SuperblockCopy::Damaged("superblock copy fails its checksum");
        }
        let flags = u16::from_le_bytes([bytes[6], bytes[7]]);
        SuperblockCopy::Valid(Superblock {
            id: u64_at(bytes, 8),
            seq: u64_at(bytes, 16),
            lap: u64_at(bytes, 24),
            checkpoint: Epoch::new(u64_at(bytes, 32)),
            chunk_size: u32_at(bytes, 40),
            max_record_chunks: u32_at(bytes, 44),
            journal_bytes: u64_at(bytes, 48),
            records_at: u64_at(bytes, 56),
            data_chunks: u64_at(bytes, 64),
            table: (flags & FLAG_TABLE != 0).then(|| TableDigest(u64_at(bytes, 72))),
        })
    }

    /// The current superblock from the two copies (as read from offsets 0 and 512): the valid
    /// copy with the higher sequence number, and whether the other copy needs rewriting.
    /// `Ok(None)` when both copies are blank.
    ///
    /// # Errors
    /// [`Error::Mismatch`] when no copy is valid but one is of another format version;
    /// [`Error::Corrupt`] when neither copy is valid and they are not both blank.
    pub fn resolve(copies: [SuperblockCopy; 2]) -> Result<Option<(Superblock, bool)>, Error> {
        let placed = |i: usize| match copies[i] {
            SuperblockCopy::Valid(sb) if sb.seq % 2 != i as u64 => {
                SuperblockCopy::Damaged("superblock copy sits in the other copy's place")
            }
            copy => copy,
        };
        let copies = [placed(0), placed(1)];
        let valid = |i: usize| match copies[i] {
            SuperblockCopy::Valid(sb) => Some(sb),
            _ => None,
        };
        if let Some(current) = [valid(0), valid(1)]
            .into_iter()
            .flatten()
            .max_by_key(|sb| sb.seq)
        {
            let other_damaged = valid(0).is_none() || valid(1).is_none();
            return Ok(Some((current, other_damaged)));
        }
        match copies {
            [SuperblockCopy::Blank, SuperblockCopy::Blank] => Ok(None),
            [SuperblockCopy::OtherVersion(_), _] | [_, SuperblockCopy::OtherVersion(_)] => {
                Err(Error::Mismatch("the journal has an unknown format version"))
            }
            _ => Err(Error::Corrupt(Damage::new(
                StoreRole::Journal,
                0,
                "no valid superblock copy: both are damaged, or one is and the other blank",
            ))),
        }
    }

    /// Byte offset of the copy this superblock is written to (alternating by sequence).
    pub fn offset(&self) -> u64 {
        (self.seq % 2) * SUPERBLOCK_BYTES
    }

    /// The table slot this superblock goes with.
    pub fn table_slot(&self) -> usize {
        (self.seq % 2) as usize
    }
}

/// The fixed part of a record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHead {
    /// The id of the journal it was written to.
    pub id: u64,
    /// Lap the record was written in.
    pub lap: u64,
    /// The batch's epoch.
    pub epoch: Epoch,
    /// Chunks in the payload.
    pub chunks: u32,
}

/// Bytes of the header block of a record of `chunks` chunks (padded).
pub fn header_block_bytes(chunks: u64) -> u64 {
    let raw = RECORD_FIXED_BYTES as u64 + RECORD_ENTRY_BYTES as u64 * chunks + 4;
    raw.div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

/// Bytes of a whole record of `chunks` chunks of `chunk_size` bytes (padded).
pub fn record_bytes(chunks: u64, chunk_size: u64) -> u64 {
    (header_block_bytes(chunks) + chunks * chunk_size).div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

/// Encodes a record header block for `head` and its `(index, crc)` entries into `out` (at least
/// `header_block_bytes(head.chunks)` long); returns its length.
pub fn encode_record_header(
    head: &RecordHead,
    entries: impl Iterator<Item = (u64, u32)>,
    out: &mut [u8],
) -> usize {
    let len = header_block_bytes(u64::from(head.chunks)) as usize;
    let out = &mut out[..len];
    out.fill(0);
    out[0..4].copy_from_slice(&RECORD_MAGIC);
    out[4..6].copy_from_slice(&JOURNAL_VERSION.to_le_bytes());
    out[8..16].copy_from_slice(&head.id.to_le_bytes());
    out[16..24].copy_from_slice(&head.lap.to_le_bytes());
    out[24..32].copy_from_slice(&head.epoch.get().to_le_bytes());
    out[32..36].copy_from_slice(&head.chunks.to_le_bytes());
    let mut at = RECORD_FIXED_BYTES;
    for (index, crc) in entries.take(head.chunks as usize) {
        out[at..at + 8].copy_from_slice(&index.to_le_bytes());
        out[at + 8..at + 12].copy_from_slice(&crc.to_le_bytes());
        at += RECORD_ENTRY_BYTES;
    }
    debug_assert_eq!(
        at,
        RECORD_FIXED_BYTES + RECORD_ENTRY_BYTES * head.chunks as usize,
        "one entry per chunk"
    );
    let crc = crc32c(&[&out[..at]]);
    out[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(
        decode_record_head(out),
        Some(*head),
        "record header encode/decode pair"
    );
    len
}

/// Decodes the fixed part of a record header, checking magic and version only; `None` if they
/// do not match.
pub fn decode_record_head(bytes: &[u8]) -> Option<RecordHead> {
    if bytes.len() < RECORD_FIXED_BYTES || bytes[0..4] != RECORD_MAGIC {
        return None;
    }
    if u16::from_le_bytes([bytes[4], bytes[5]]) != JOURNAL_VERSION {
        return None;
    }
    Some(RecordHead {
        id: u64_at(bytes, 8),
        lap: u64_at(bytes, 16),
        epoch: Epoch::new(u64_at(bytes, 24)),
        chunks: u32_at(bytes, 32),
    })
}

/// Where the header CRC of a record of `chunks` chunks is, in its header block.
pub fn header_crc_at(chunks: u32) -> u64 {
    RECORD_FIXED_BYTES as u64 + RECORD_ENTRY_BYTES as u64 * u64::from(chunks)
}

/// Checks the header CRC of a header block holding `chunks` entries.
pub fn header_crc_ok(block: &[u8], chunks: u32) -> bool {
    let at = (chunks as usize)
        .checked_mul(RECORD_ENTRY_BYTES)
        .and_then(|n| n.checked_add(RECORD_FIXED_BYTES));
    match at {
        Some(at) if block.len() >= at.saturating_add(4) => {
            crc32c(&[&block[..at]]) == u32_at(block, at)
        }
        _ => false,
    }
}

/// Entry number `i` of a header block: the chunk's index and the CRC-32C of its bytes; `None`
/// past the block's end.
pub fn record_entry(block: &[u8], i: usize) -> Option<(u64, u32)> {
    let at = i
        .checked_mul(RECORD_ENTRY_BYTES)?
        .checked_add(RECORD_FIXED_BYTES)?;
    let raw = block.get(at..at.checked_add(RECORD_ENTRY_BYTES)?)?;
    Some((u64_at(raw, 0), u32_at(raw, 8)))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(raw)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn superblock(seq: u64) -> Superblock {
        Superblock {
            id: 0xfeed,
            seq,
            lap: 7,
            checkpoint: Epoch::new(99),
            chunk_size: 4096,
            max_record_chunks: 1024,
            journal_bytes: 1 << 20,
            records_at: 5120,
            data_chunks: 300,
            table: Some(TableDigest(0x1234_5678_9abc)),
        }
    }

    fn encoded(sb: &Superblock) -> [u8; SUPERBLOCK_BYTES as usize] {
        let mut buf = [0u8; SUPERBLOCK_BYTES as usize];
        sb.encode(&mut buf);
        buf
    }

    #[test]
    fn superblock_round_trips_and_detects_damage() {
        let sb = superblock(3);
        let buf = encoded(&sb);
        assert_eq!(Superblock::decode(&buf), SuperblockCopy::Valid(sb));
        assert_eq!(sb.offset(), SUPERBLOCK_BYTES);
        let mut flipped = buf;
        flipped[20] ^= 1;
        assert!(matches!(
            Superblock::decode(&flipped),
            SuperblockCopy::Damaged(_)
        ));
        assert_eq!(Superblock::decode(&[0u8; 512]), SuperblockCopy::Blank);
        let mut magic = buf;
        magic[0] = b'X';
        assert!(matches!(
            Superblock::decode(&magic),
            SuperblockCopy::Damaged(_)
        ));
        let mut version = buf;
        version[4] = 1;
        assert_eq!(
            Superblock::decode(&version),
            SuperblockCopy::OtherVersion(1)
        );
    }

    #[test]
    fn one_valid_copy_is_enough_and_the_newer_wins() {
        use SuperblockCopy::{Blank, Damaged, OtherVersion, Valid};
        let (old, new) = (superblock(4), superblock(5));
        assert_eq!(
            Superblock::resolve([Valid(old), Valid(new)]),
            Ok(Some((new, false)))
        );
        assert_eq!(
            Superblock::resolve([Valid(old), Damaged("x")]),
            Ok(Some((old, true)))
        );
        assert_eq!(
            Superblock::resolve([Blank, Valid(new)]),
            Ok(Some((new, true)))
        );
        assert_eq!(Superblock::resolve([Blank, Blank]), Ok(None));
        assert!(matches!(
            Superblock::resolve([Damaged("x"), Blank]),
            Err(Error::Corrupt(Damage {
                file: StoreRole::Journal,
                ..
            }))
        ));
        assert!(matches!(
            Superblock::resolve([OtherVersion(1), OtherVersion(1)]),
            Err(Error::Mismatch(_))
        ));
        // Seq 5 belongs in copy 1: found in copy 0, it is misplaced (a misdirected write).
        assert_eq!(
            Superblock::resolve([Valid(new), Valid(superblock(3))])
                .unwrap()
                .unwrap()
                .0
                .seq,
            3
        );
    }

    #[test]
    fn record_header_round_trips_and_its_crc_covers_the_entries() {
        let head = RecordHead {
            id: 0xfeed,
            lap: 2,
            epoch: Epoch::new(5),
            chunks: 3,
        };
        let mut block = [0u8; 1024];
        let entries = [(10u64, 0xaa), (11, 0xbb), (40, 0xcc)];
        let len = encode_record_header(&head, entries.into_iter(), &mut block);
        assert_eq!(len, 512);
        assert_eq!(decode_record_head(&block), Some(head));
        assert!(header_crc_ok(&block, 3));
        assert_eq!(
            (0..3)
                .map(|i| record_entry(&block, i))
                .collect::<std::vec::Vec<_>>(),
            [Some((10, 0xaa)), Some((11, 0xbb)), Some((40, 0xcc))]
        );
        assert_eq!(
            record_entry(&block[..40], 1),
            None,
            "past the end: no entry"
        );
        block[53] ^= 1;
        assert!(
            !header_crc_ok(&block, 3),
            "a damaged entry fails the header CRC"
        );
    }

    #[test]
    fn the_halves_split_the_record_area_in_aligned_equal_parts() {
        let len = RECORD_AREA_START + 10 * RECORD_ALIGN + 100;
        assert_eq!(half_range(len, 0), (1024, 1024 + 5 * 512));
        assert_eq!(half_range(len, 1), (1024 + 5 * 512, 1024 + 10 * 512));
        assert_eq!(half_of(len, 1024 + 5 * 512 - 1), 0);
        assert_eq!(half_of(len, 1024 + 5 * 512), 1);
        assert_eq!(half_range(100, 1), (1024, 1024), "no room: empty halves");
    }

    #[test]
    fn sizes_are_padded_and_the_table_follows_the_records() {
        assert_eq!(header_block_bytes(1), 512);
        assert_eq!(header_block_bytes(39), 512);
        assert_eq!(header_block_bytes(40), 1024);
        assert_eq!(header_block_bytes(256), 3584);
        assert_eq!(record_bytes(2, 4096), 512 + 8192);
        assert_eq!(record_bytes(1, 100), 1024);
        assert_eq!(table_pages(1024), 1);
        assert_eq!(table_pages(1025), 2);
        assert_eq!(table_page_offset(1 << 20, 1, 1), (1 << 20) + 3 * 4096);
        assert_eq!(journal_len(1 << 20, Some(1025)), Some((1 << 20) + 4 * 4096));
        assert_eq!(journal_len(1 << 20, None), Some(1 << 20));
    }

    #[test]
    fn the_digest_ignores_order_and_zero_entries() {
        let mut a = TableDigest::default();
        a.replace(3, 0, 7);
        a.replace(9, 0, 1);
        let mut b = TableDigest::default();
        b.replace(9, 0, 1);
        b.replace(3, 0, 5);
        b.replace(3, 5, 7);
        b.replace(1000, 0, 0);
        assert_eq!(a, b);
        assert_ne!(TableDigest::term(3, 7), TableDigest::term(4, 7));
        b.replace(3, 7, 0);
        b.replace(9, 1, 0);
        assert_eq!(b, TableDigest::default());
    }
}
