//! The journal's decoders on arbitrary bytes: a superblock (and the choice between two copies),
//! a record header, its CRC check and its entries. Each must return a value (valid, blank,
//! damaged, another version) — never panic or read out of bounds.
#![no_main]

use chunkpipe_core::journal::format::{self, Superblock};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let first = Superblock::decode(bytes);
    let second = Superblock::decode(bytes.get(512..).unwrap_or_default());
    let _ = Superblock::resolve([first, second]);
    if let Some(head) = format::decode_record_head(bytes) {
        let _ = format::header_crc_ok(bytes, head.chunks);
        for i in 0..(head.chunks as usize).min(4096) {
            let _ = format::record_entry(bytes, i);
        }
        let _ = format::record_bytes(u64::from(head.chunks), 4096);
        let _ = format::header_block_bytes(u64::from(head.chunks));
    }
    if let Some(&len) = bytes.first() {
        let journal_len = u64::from(len) << 10;
        let (start, end) = format::half_range(journal_len, usize::from(len & 1));
        assert!(start <= end && end <= journal_len.max(format::RECORD_AREA_START));
        let _ = format::half_of(journal_len, start);
    }
});
