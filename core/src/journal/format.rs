//! The journal's on-disk format (version 1). All integers are little-endian.
//!
//! # Layout of `<path>.journal`
//!
//! | offset | size | what |
//! |---|---|---|
//! | 0 | 512 | superblock copy 0 |
//! | 512 | 512 | superblock copy 1 |
//! | 1024 | h | record half 0 |
//! | 1024 + h | h | record half 1 |
//!
//! `h` is half of the space after the superblocks, rounded down to 512 bytes ([`half_range`]).
//! The whole file is written once (zeros) when it is created, so appends never allocate.
//!
//! Records are appended back to back in one half, each padded to 512 bytes and never crossing
//! the half's end. When the next record does not fit, appends move to the start of the other
//! half — which must hold no record a checkpoint has not covered — and the *lap* goes up by one.
//! A record carries the lap it was written in, so records left over from earlier laps never
//! pass for current ones. While appends fill one half, the other is checkpointed.
//!
//! # Superblock (56 bytes used of 512)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `CPJS` |
//! | 4 | 2 | format version (1) |
//! | 6 | 2 | reserved (0) |
//! | 8 | 8 | sequence number: the copy with the higher valid one is current |
//! | 16 | 8 | lap of the first record after the checkpoint |
//! | 24 | 8 | checkpoint epoch: every batch up to it is durable in the data file |
//! | 32 | 4 | chunk size |
//! | 36 | 8 | journal length in bytes |
//! | 44 | 8 | offset where the first record after the checkpoint is (or will be) |
//! | 52 | 4 | CRC-32C of bytes 0..52 |
//!
//! Writes alternate between the copies, so a torn superblock write leaves the other intact.
//!
//! # Record
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `CPJR` |
//! | 4 | 2 | format version (1) |
//! | 6 | 2 | reserved (0) |
//! | 8 | 8 | lap |
//! | 16 | 8 | epoch (the first record after a checkpoint has checkpoint epoch + 1, then +1 each) |
//! | 24 | 4 | chunk count n |
//! | 28 | 4 | CRC-32C of the payload |
//! | 32 | 8 n | chunk indexes, in payload order |
//! | 32 + 8 n | 4 | CRC-32C of everything before it in the header |
//! | … | | zero padding to a multiple of 512 (the header block) |
//! | header block | n × chunk size | payload: the chunks, in index order |
//!
//! # Reading it back
//! Start at the superblock's record offset, expecting its lap and checkpoint epoch + 1. A
//! record counts only if its magic, version, lap and epoch are the expected ones and both CRCs
//! match. Where the records of a half end (blank space, another lap or epoch, or no room for
//! the next record), continue at the start of the other half with the next lap. Stop at the
//! first record of the expected lap and epoch that fails a check (torn or damaged: nothing
//! after it is replayed) or where the other half does not continue the sequence.

use super::checksum::Crc32c;
use crate::{Epoch, Error};

/// Journal format version.
pub const JOURNAL_VERSION: u16 = 1;
/// Bytes per superblock copy.
pub const SUPERBLOCK_BYTES: u64 = 512;
/// Where the record area starts.
pub const RECORD_AREA_START: u64 = 2 * SUPERBLOCK_BYTES;
/// Records (and their header blocks) are padded to this.
pub const RECORD_ALIGN: u64 = 512;

const SUPERBLOCK_MAGIC: [u8; 4] = *b"CPJS";
const RECORD_MAGIC: [u8; 4] = *b"CPJR";
const RECORD_FIXED_BYTES: usize = 32;
/// Where the superblock's CRC is, and the bytes it uses.
pub const SUPERBLOCK_CRC_AT: usize = 52;
const SUPERBLOCK_USED: usize = SUPERBLOCK_CRC_AT + 4;

/// CRC-32C of `parts`, in order.
pub fn crc32c(parts: &[&[u8]]) -> u32 {
    let mut crc = Crc32c::new();
    for part in parts {
        crc.update(part);
    }
    crc.finalize()
}

/// The start and end offsets of record half `half` (0 or 1) of a journal of `journal_len`
/// bytes.
pub fn half_range(journal_len: u64, half: usize) -> (u64, u64) {
    let size = journal_len.saturating_sub(RECORD_AREA_START) / 2 / RECORD_ALIGN * RECORD_ALIGN;
    let start = RECORD_AREA_START + size * (half as u64 & 1);
    (start, start + size)
}

/// Whether each half of a journal of `journal_len` bytes holds a record of `record_bytes`.
pub fn holds_record(journal_len: u64, record_bytes: u64) -> bool {
    let (start, end) = half_range(journal_len, 0);
    end - start >= record_bytes
}

/// Which half the record offset `at` lies in.
pub fn half_of(journal_len: u64, at: u64) -> usize {
    usize::from(at >= half_range(journal_len, 1).0)
}

/// The current state of a journal, as its superblock records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Which write this is; the higher valid copy wins.
    pub seq: u64,
    /// Lap of the first record after the checkpoint.
    pub lap: u64,
    /// Every batch up to this epoch is durable in the data file.
    pub checkpoint: Epoch,
    /// Chunk size the journal was created with.
    pub chunk_size: u32,
    /// Journal length in bytes.
    pub journal_len: u64,
    /// Offset of the first record after the checkpoint.
    pub records_at: u64,
}

impl Superblock {
    /// Encodes into one superblock copy.
    pub fn encode(&self, out: &mut [u8; SUPERBLOCK_BYTES as usize]) {
        out.fill(0);
        out[0..4].copy_from_slice(&SUPERBLOCK_MAGIC);
        out[4..6].copy_from_slice(&JOURNAL_VERSION.to_le_bytes());
        out[8..16].copy_from_slice(&self.seq.to_le_bytes());
        out[16..24].copy_from_slice(&self.lap.to_le_bytes());
        out[24..32].copy_from_slice(&self.checkpoint.get().to_le_bytes());
        out[32..36].copy_from_slice(&self.chunk_size.to_le_bytes());
        out[36..44].copy_from_slice(&self.journal_len.to_le_bytes());
        out[44..52].copy_from_slice(&self.records_at.to_le_bytes());
        let crc = crc32c(&[&out[..SUPERBLOCK_CRC_AT]]);
        out[SUPERBLOCK_CRC_AT..SUPERBLOCK_USED].copy_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(
            Superblock::decode(out),
            Ok(Some(*self)),
            "superblock encode/decode pair"
        );
    }

    /// Decodes one copy: `Ok(None)` when it is blank or torn (CRC mismatch), an error when it is
    /// a valid superblock of another format version, or not a chunkpipe journal at all.
    pub fn decode(bytes: &[u8]) -> Result<Option<Superblock>, Error> {
        if bytes.len() < SUPERBLOCK_USED || bytes[..SUPERBLOCK_USED].iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if bytes[0..4] != SUPERBLOCK_MAGIC {
            return Err(Error::Mismatch(
                "the journal file is not a chunkpipe journal",
            ));
        }
        if crc32c(&[&bytes[..SUPERBLOCK_CRC_AT]]) != u32_at(bytes, SUPERBLOCK_CRC_AT) {
            return Ok(None);
        }
        if u16::from_le_bytes([bytes[4], bytes[5]]) != JOURNAL_VERSION {
            return Err(Error::Mismatch("the journal has an unknown format version"));
        }
        Ok(Some(Superblock {
            seq: u64_at(bytes, 8),
            lap: u64_at(bytes, 16),
            checkpoint: Epoch::new(u64_at(bytes, 24)),
            chunk_size: u32_at(bytes, 32),
            journal_len: u64_at(bytes, 36),
            records_at: u64_at(bytes, 44),
        }))
    }

    /// Byte offset of the copy this superblock is written to (alternating by sequence).
    pub fn offset(&self) -> u64 {
        (self.seq % 2) * SUPERBLOCK_BYTES
    }
}

/// The fixed part of a record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHead {
    /// Lap the record was written in.
    pub lap: u64,
    /// The batch's epoch.
    pub epoch: Epoch,
    /// Chunks in the payload.
    pub chunks: u32,
    /// CRC-32C of the payload.
    pub payload_crc: u32,
}

/// Bytes of the header block of a record of `chunks` chunks (padded).
pub fn header_block_bytes(chunks: u64) -> u64 {
    let raw = RECORD_FIXED_BYTES as u64 + 8 * chunks + 4;
    raw.div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

/// Bytes of a whole record of `chunks` chunks of `chunk_size` bytes (padded).
pub fn record_bytes(chunks: u64, chunk_size: u64) -> u64 {
    (header_block_bytes(chunks) + chunks * chunk_size).div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

/// Encodes a record header block for `head` and `indexes` into `out` (at least
/// `header_block_bytes(indexes.len())` long); returns its length.
pub fn encode_record_header(
    head: &RecordHead,
    indexes: impl Iterator<Item = u64>,
    out: &mut [u8],
) -> usize {
    let len = header_block_bytes(u64::from(head.chunks)) as usize;
    let out = &mut out[..len];
    out.fill(0);
    out[0..4].copy_from_slice(&RECORD_MAGIC);
    out[4..6].copy_from_slice(&JOURNAL_VERSION.to_le_bytes());
    out[8..16].copy_from_slice(&head.lap.to_le_bytes());
    out[16..24].copy_from_slice(&head.epoch.get().to_le_bytes());
    out[24..28].copy_from_slice(&head.chunks.to_le_bytes());
    out[28..32].copy_from_slice(&head.payload_crc.to_le_bytes());
    let mut at = RECORD_FIXED_BYTES;
    for index in indexes.take(head.chunks as usize) {
        out[at..at + 8].copy_from_slice(&index.to_le_bytes());
        at += 8;
    }
    debug_assert_eq!(
        at,
        RECORD_FIXED_BYTES + 8 * head.chunks as usize,
        "one index per chunk"
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
        lap: u64_at(bytes, 8),
        epoch: Epoch::new(u64_at(bytes, 16)),
        chunks: u32_at(bytes, 24),
        payload_crc: u32_at(bytes, 28),
    })
}

/// Checks the header CRC of a header block holding `chunks` indexes.
pub fn header_crc_ok(block: &[u8], chunks: u32) -> bool {
    let at = (chunks as usize)
        .checked_mul(8)
        .and_then(|n| n.checked_add(RECORD_FIXED_BYTES));
    match at {
        Some(at) if block.len() >= at.saturating_add(4) => {
            crc32c(&[&block[..at]]) == u32_at(block, at)
        }
        _ => false,
    }
}

/// Chunk index number `i` of a header block; `None` past the block's end.
pub fn record_index(block: &[u8], i: usize) -> Option<u64> {
    let at = i.checked_mul(8)?.checked_add(RECORD_FIXED_BYTES)?;
    block.get(at..at.checked_add(8)?).map(|raw| u64_at(raw, 0))
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

    #[test]
    fn superblock_round_trips_and_detects_damage() {
        let sb = Superblock {
            seq: 3,
            lap: 7,
            checkpoint: Epoch::new(99),
            chunk_size: 4096,
            journal_len: 1 << 20,
            records_at: 5120,
        };
        let mut buf = [0u8; SUPERBLOCK_BYTES as usize];
        sb.encode(&mut buf);
        assert_eq!(Superblock::decode(&buf), Ok(Some(sb)));
        assert_eq!(sb.offset(), SUPERBLOCK_BYTES);
        let mut torn = buf;
        torn[20] ^= 1;
        assert_eq!(
            Superblock::decode(&torn),
            Ok(None),
            "a torn copy is ignored"
        );
        assert_eq!(
            Superblock::decode(&[0u8; 512]),
            Ok(None),
            "a blank copy is ignored"
        );
        let mut foreign = buf;
        foreign[0] = b'X';
        assert!(matches!(
            Superblock::decode(&foreign),
            Err(Error::Mismatch(_))
        ));
    }

    #[test]
    fn record_header_round_trips_and_its_crc_covers_the_indexes() {
        let head = RecordHead {
            lap: 2,
            epoch: Epoch::new(5),
            chunks: 3,
            payload_crc: 0xdead_beef,
        };
        let mut block = [0u8; 1024];
        let len = encode_record_header(&head, [10u64, 11, 40].into_iter(), &mut block);
        assert_eq!(len, 512);
        assert_eq!(decode_record_head(&block), Some(head));
        assert!(header_crc_ok(&block, 3));
        assert_eq!(
            (0..3)
                .map(|i| record_index(&block, i))
                .collect::<std::vec::Vec<_>>(),
            [Some(10), Some(11), Some(40)]
        );
        assert_eq!(
            record_index(&block[..40], 1),
            None,
            "past the end: no index"
        );
        block[40] ^= 1;
        assert!(
            !header_crc_ok(&block, 3),
            "a damaged index fails the header CRC"
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
    fn sizes_are_padded() {
        assert_eq!(header_block_bytes(1), 512);
        assert_eq!(header_block_bytes(59), 512);
        assert_eq!(header_block_bytes(60), 1024);
        assert_eq!(record_bytes(2, 4096), 512 + 8192);
        assert_eq!(record_bytes(1, 100), 1024);
    }
}
