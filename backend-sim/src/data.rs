//! Self-describing chunk contents: every 512-byte unit names the write, chunk and unit it
//! belongs to, so the oracle can tell exactly which write each unit of a recovered or read chunk
//! came from — and that no unit holds bytes nobody wrote.

/// Bytes per unit: the smallest sector size, so a torn sector never splits a unit.
pub const UNIT: usize = 512;

/// Write id of the initial zeros.
pub const ZEROS: u64 = 0;

/// Fills `out` (one chunk) with the contents write `write_id` gives chunk `chunk`.
pub fn encode_chunk(write_id: u64, chunk: u64, out: &mut [u8]) {
    for (unit, bytes) in out.chunks_exact_mut(UNIT).enumerate() {
        bytes[..8].copy_from_slice(&write_id.to_le_bytes());
        bytes[8..16].copy_from_slice(&chunk.to_le_bytes());
        bytes[16..20].copy_from_slice(&(unit as u32).to_le_bytes());
        bytes[20..].fill(fill_byte(write_id, unit));
    }
}

fn fill_byte(write_id: u64, unit: usize) -> u8 {
    (write_id.wrapping_mul(31).wrapping_add(unit as u64) % 251) as u8 | 1
}

/// The write that produced `bytes` (unit number `unit` of chunk `chunk`): `Some(ZEROS)` for the
/// initial zeros, `None` for bytes that no write of this chunk and unit produced.
pub fn decode_unit(bytes: &[u8], chunk: u64, unit: usize) -> Option<u64> {
    if bytes.iter().all(|&b| b == 0) {
        return Some(ZEROS);
    }
    let write_id = u64::from_le_bytes(bytes[..8].try_into().ok()?);
    let same_place =
        bytes[8..16] == chunk.to_le_bytes() && bytes[16..20] == (unit as u32).to_le_bytes();
    let fill = fill_byte(write_id, unit);
    (write_id != ZEROS && same_place && bytes[20..].iter().all(|&b| b == fill)).then_some(write_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_decode_to_their_write_and_reject_foreign_bytes() {
        let mut chunk = vec![0u8; 4 * UNIT];
        assert_eq!(decode_unit(&chunk[..UNIT], 3, 0), Some(ZEROS));
        encode_chunk(42, 3, &mut chunk);
        for unit in 0..4 {
            assert_eq!(
                decode_unit(&chunk[unit * UNIT..][..UNIT], 3, unit),
                Some(42)
            );
        }
        assert_eq!(
            decode_unit(&chunk[..UNIT], 4, 0),
            None,
            "another chunk's bytes"
        );
        assert_eq!(
            decode_unit(&chunk[UNIT..2 * UNIT], 3, 0),
            None,
            "another unit's bytes"
        );
        chunk[100] ^= 1;
        assert_eq!(decode_unit(&chunk[..UNIT], 3, 0), None, "damaged bytes");
    }
}
