//! Growing a file on macOS: `fcntl(F_PREALLOCATE)` asking for exactly the new bytes.
//!
//! In `F_PEOFPOSMODE` the kernel allocates `fst_length` bytes *beyond the file's physical end*:
//! the length is the number of new bytes wanted, not the file's new size (passing the new size —
//! as a wrapper that fills `fst_length = offset + len` does — asks a 100 GiB file growing by
//! 1 GiB for 101 GiB, and fails with `ENOSPC` on a disk that has the 1 GiB). Contiguous space is
//! asked for first, any space after; `F_ALLOCATEALL` makes each request all or nothing.

/// `F_ALLOCATECONTIG` (`<sys/fcntl.h>`): the space must be contiguous.
pub const F_ALLOCATECONTIG: u32 = 0x02;
/// `F_ALLOCATEALL`: allocate all of it or none.
pub const F_ALLOCATEALL: u32 = 0x04;
/// `F_PEOFPOSMODE`: `fst_offset` counts from the physical end of the file.
pub const F_PEOFPOSMODE: i32 = 3;

/// The fields of one `fstore_t` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// `fst_flags`.
    pub flags: u32,
    /// `fst_posmode`.
    pub posmode: i32,
    /// `fst_offset`.
    pub offset: i64,
    /// `fst_length`: the bytes to allocate.
    pub length: i64,
}

/// The requests that grow a file from `old_len` to `new_len` bytes, in the order to try them:
/// contiguous space, then any space, each all or nothing. `None` when the growth does not fit an
/// `off_t`.
pub fn requests(old_len: u64, new_len: u64) -> Option<[Request; 2]> {
    let length = i64::try_from(new_len.checked_sub(old_len)?).ok()?;
    let request = |flags| Request {
        flags,
        posmode: F_PEOFPOSMODE,
        offset: 0,
        length,
    };
    Some([
        request(F_ALLOCATECONTIG | F_ALLOCATEALL),
        request(F_ALLOCATEALL),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Growing a large file by a little asks for the little, not for the new size.
    #[test]
    fn a_growth_asks_for_exactly_the_new_bytes() {
        const GIB: u64 = 1 << 30;
        let [contiguous, any] = requests(100 * GIB, 101 * GIB).expect("fits an off_t");
        assert_eq!(contiguous.length, GIB as i64);
        assert_eq!((contiguous.posmode, contiguous.offset), (F_PEOFPOSMODE, 0));
        assert_eq!(contiguous.flags, F_ALLOCATECONTIG | F_ALLOCATEALL);
        assert_eq!((any.flags, any.length), (F_ALLOCATEALL, GIB as i64));
        let [small, _] = requests(4096, 4096 + 512).expect("fits");
        assert_eq!(small.length, 512);
        assert_eq!(requests(10, 5), None, "a shrink is not a growth");
        assert_eq!(requests(0, u64::MAX), None, "past off_t");
    }
}
