//! The one mapping from OS error codes to [`StoreError`].

use chunkpipe_core::{Errno, Op, StoreError, StoreErrorKind};
use rustix::io::Errno as OsErrno;

/// Maps an OS error from `op` to a [`StoreError`], keeping the raw code.
///
/// `ENOSPC`/`EDQUOT` → `NoSpace`; `EWOULDBLOCK` from locking → `Locked`;
/// `ENOTSUP`/`EOPNOTSUPP` → `Unsupported`; anything else → `Io`.
pub fn store_error(op: Op, errno: OsErrno) -> StoreError {
    let kind = match errno {
        OsErrno::NOSPC | OsErrno::DQUOT => StoreErrorKind::NoSpace,
        OsErrno::WOULDBLOCK if op == Op::Lock => StoreErrorKind::Locked,
        // Equal on Linux, distinct on macOS.
        e if e == OsErrno::NOTSUP || e == OsErrno::OPNOTSUPP => StoreErrorKind::Unsupported,
        _ => StoreErrorKind::Io,
    };
    let error = StoreError::new(kind, op);
    match Errno::new(errno.raw_os_error()) {
        Some(code) => error.with_errno(code),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_table() {
        assert_eq!(
            store_error(Op::Grow, OsErrno::NOSPC).kind,
            StoreErrorKind::NoSpace
        );
        assert_eq!(
            store_error(Op::Lock, OsErrno::WOULDBLOCK).kind,
            StoreErrorKind::Locked
        );
        assert_eq!(
            store_error(Op::Read, OsErrno::WOULDBLOCK).kind,
            StoreErrorKind::Io
        );
        assert_eq!(
            store_error(Op::Grow, OsErrno::OPNOTSUPP).kind,
            StoreErrorKind::Unsupported
        );
        let eio = store_error(Op::Sync, OsErrno::IO);
        assert_eq!((eio.kind, eio.op), (StoreErrorKind::Io, Op::Sync));
        assert_eq!(eio.errno.map(Errno::raw), Some(OsErrno::IO.raw_os_error()));
    }
}
