//! Error values: what a store reports ([`StoreError`]) and what the pipe reports ([`Error`]).
//!
//! Both are `Copy`. A poisoned pipe hands the same error to every waiter, from any thread, so the
//! error has to be a plain value that no thread can free while another reads it.

use core::fmt;
use core::num::NonZeroU16;

/// A raw operating-system error code (`errno`), kept as a number: unknown codes exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(NonZeroU16);

impl Errno {
    /// Wraps a raw code; `None` for 0 or a code that does not fit 16 bits.
    pub fn new(raw: i32) -> Option<Self> {
        u16::try_from(raw).ok().and_then(NonZeroU16::new).map(Errno)
    }

    /// The raw code.
    pub fn raw(self) -> i32 {
        i32::from(self.0.get())
    }
}

/// What kind of failure a [`StoreError`] is; backends map their OS errors onto these.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreErrorKind {
    /// An I/O error (`EIO` and anything without a more precise kind).
    Io,
    /// No space left on the device or over quota.
    NoSpace,
    /// An access past the end of the store.
    OutOfBounds,
    /// The store or file system does not support the operation.
    Unsupported,
    /// Another process holds the store's lock.
    Locked,
    /// The store is not what the configuration describes (length, format).
    Mismatch,
    /// chunkpipe detected a broken invariant of its own; the pipe poisoned itself rather than
    /// risk reporting data durable that is not.
    Internal,
    /// Anything else.
    Other,
}

/// The store operation that failed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Opening or creating the store.
    Open,
    /// Taking the store's exclusive lock.
    Lock,
    /// Querying the length.
    Len,
    /// Reading.
    Read,
    /// Writing.
    Write,
    /// Extending.
    Grow,
    /// The durability barrier.
    Sync,
    /// The writeback hint.
    Writeback,
}

/// A failed [`ChunkStore`](crate::ChunkStore) operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StoreError {
    /// What kind of failure it is.
    pub kind: StoreErrorKind,
    /// Which operation failed.
    pub op: Op,
    /// The OS error code, when there is one.
    pub errno: Option<Errno>,
    /// Which of a pipe's files it concerns, where the store knows (a file backend's stores do).
    pub file: Option<StoreRole>,
}

impl StoreError {
    /// An error of `kind` from `op` with no OS code.
    pub const fn new(kind: StoreErrorKind, op: Op) -> Self {
        StoreError {
            kind,
            op,
            errno: None,
            file: None,
        }
    }

    /// The same error carrying an OS error code.
    pub const fn with_errno(mut self, errno: Errno) -> Self {
        self.errno = Some(errno);
        self
    }

    /// The same error naming the file it concerns (unless it names one already).
    pub const fn in_file(mut self, file: StoreRole) -> Self {
        if self.file.is_none() {
            self.file = Some(file);
        }
        self
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = self.file {
            write!(f, "{} file: ", file.name())?;
        }
        write!(f, "{:?} failed: {:?}", self.op, self.kind)?;
        if let Some(errno) = self.errno {
            write_errno(f, errno)?;
        }
        Ok(())
    }
}

/// ` (errno N: the OS's message)`, or without the message where there is no `std` to ask.
fn write_errno(f: &mut fmt::Formatter<'_>, errno: Errno) -> fmt::Result {
    #[cfg(feature = "std")]
    {
        let message = std::format!("{}", std::io::Error::from_raw_os_error(errno.raw()));
        // std appends " (os error N)"; the number is printed first here.
        let message = message.split(" (os error").next().unwrap_or(&message);
        write!(f, " (errno {}: {message})", errno.raw())
    }
    #[cfg(not(feature = "std"))]
    {
        write!(f, " (errno {})", errno.raw())
    }
}

impl core::error::Error for StoreError {}

/// Everything a pipe operation can fail with.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The arguments or the configuration are not valid; the text says which rule was broken.
    InvalidInput(&'static str),
    /// A chunk range reaches past the end of the pipe (or its end overflows `u64`).
    OutOfRange {
        /// First chunk of the request.
        index: u64,
        /// Chunks requested.
        count: u64,
        /// Chunks the pipe holds.
        len_chunks: u64,
    },
    /// The operation would have to wait (staging full, a flush step already running); retry later.
    WouldBlock,
    /// A write, transaction or batch needs more staging slots than the pipe has; it is never
    /// split, since that would break its atomicity.
    TooLarge {
        /// Chunks requested.
        chunks: u64,
        /// Staging capacity in chunks.
        capacity: u64,
    },
    /// Another pipe holds the store's exclusive lock: in another process, or in this one (a
    /// pipe keeps its files locked until it is closed or dropped).
    Locked,
    /// An earlier write or sync failed; the pipe refuses new work until the storage is reopened.
    /// Carries the failure that poisoned it.
    Poisoned(StoreError),
    /// A store operation failed (and did not poison the pipe, e.g. a grow that found no space).
    Store(StoreError),
    /// The pipe is closed.
    Closed,
    /// The store was created with a different configuration or format; the text says what.
    Mismatch(&'static str),
    /// The storage is damaged: something on it is neither what chunkpipe wrote nor what a crash
    /// can leave behind. Never repaired silently; see [`Damage`].
    Corrupt(Damage),
    /// Opening with [`Create::New`](crate::Create::New) found a pipe already there.
    AlreadyExists,
    /// Opening with [`Create::Never`](crate::Create::Never) found no pipe.
    NotFound,
}

/// Which of a pipe's stores (files) something concerns.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreRole {
    /// The data store (`<path>`): chunk `i` at byte `i × chunk_size`.
    Data,
    /// The journal store (`<path>.journal`): superblocks, records, the chunk checksum table.
    Journal,
    /// The metadata record (`<path>.meta`).
    Meta,
}

impl StoreRole {
    /// A short name for messages (`"data"`, `"journal"`, `"meta"`).
    pub fn name(self) -> &'static str {
        match self {
            StoreRole::Data => "data",
            StoreRole::Journal => "journal",
            StoreRole::Meta => "meta",
        }
    }
}

/// Where storage is damaged and what was found there: the value of [`Error::Corrupt`].
///
/// Damage is anything on disk that neither chunkpipe wrote nor a crash can leave behind. A crash
/// leaves only the tail of appends no sync covered (never acknowledged, possibly torn); a bad
/// checksum in front of valid later records, both superblock copies unreadable, a chunk that
/// does not match its checksum or a file shorter than the pipe recorded are damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Damage {
    /// The store it is in.
    pub file: StoreRole,
    /// The byte offset in that store where it starts.
    pub offset: u64,
    /// What is wrong there.
    pub what: &'static str,
}

impl Damage {
    /// Damage in `file` at `offset`.
    pub const fn new(file: StoreRole, offset: u64, what: &'static str) -> Self {
        Damage { file, offset, what }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} file damaged at byte {}: {}",
            self.file.name(),
            self.offset,
            self.what
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(why) => write!(f, "invalid input: {why}"),
            Error::OutOfRange {
                index,
                count,
                len_chunks,
            } => write!(
                f,
                "chunks {index}..{index}+{count} are out of range (the pipe holds {len_chunks}: \
                 grow it, or create it with Config::with_initial_chunks)"
            ),
            Error::WouldBlock => f.write_str("operation would block"),
            Error::TooLarge { chunks, capacity } => {
                write!(
                    f,
                    "{chunks} chunks exceed the staging capacity of {capacity}"
                )
            }
            Error::Locked => f.write_str(
                "the store is locked: another pipe holds it (in another process, or one not yet \
                 closed in this one)",
            ),
            Error::Poisoned(e) => write!(
                f,
                "the pipe is poisoned by an earlier failure and must be reopened: {e}"
            ),
            Error::Store(e) => write!(f, "store error: {e}"),
            Error::Closed => f.write_str("the pipe is closed"),
            Error::Mismatch(what) => write!(f, "store does not match the configuration: {what}"),
            Error::Corrupt(damage) => write!(f, "corrupt storage: {damage}"),
            Error::AlreadyExists => f.write_str("a pipe already exists there"),
            Error::NotFound => f.write_str("no pipe exists there"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Poisoned(e) | Error::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        if e.kind == StoreErrorKind::Locked {
            Error::Locked
        } else {
            Error::Store(e)
        }
    }
}

#[cfg(feature = "std")]
impl From<Error> for std::io::Error {
    /// Keeps the kind of the OS error underneath, where there is one, and the pipe's error as
    /// the message and `get_ref`: a poisoned pipe still says it must be reopened.
    fn from(e: Error) -> Self {
        use std::io::ErrorKind;
        let os_kind = match e {
            Error::Poisoned(s) | Error::Store(s) => s
                .errno
                .map(|errno| std::io::Error::from_raw_os_error(errno.raw()).kind()),
            _ => None,
        };
        let kind = os_kind.unwrap_or(match e {
            Error::InvalidInput(_) | Error::OutOfRange { .. } | Error::TooLarge { .. } => {
                ErrorKind::InvalidInput
            }
            Error::Mismatch(_) | Error::Corrupt(_) => ErrorKind::InvalidData,
            Error::AlreadyExists => ErrorKind::AlreadyExists,
            Error::NotFound => ErrorKind::NotFound,
            Error::WouldBlock | Error::Locked => ErrorKind::WouldBlock,
            Error::Store(s) | Error::Poisoned(s) if s.kind == StoreErrorKind::NoSpace => {
                ErrorKind::StorageFull
            }
            Error::Closed => ErrorKind::BrokenPipe,
            _ => ErrorKind::Other,
        });
        std::io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_rejects_zero_and_oversized_codes() {
        assert_eq!(Errno::new(0), None);
        assert_eq!(Errno::new(-5), None);
        assert_eq!(Errno::new(70_000), None);
        assert_eq!(Errno::new(5).map(Errno::raw), Some(5));
    }

    #[test]
    fn store_lock_error_converts_to_locked() {
        let e = StoreError::new(StoreErrorKind::Locked, Op::Lock);
        assert_eq!(Error::from(e), Error::Locked);
        let io = StoreError::new(StoreErrorKind::Io, Op::Write);
        assert_eq!(Error::from(io), Error::Store(io));
    }

    #[cfg(feature = "std")]
    #[test]
    fn an_io_error_keeps_the_kind_and_says_a_poisoned_pipe_must_be_reopened() {
        let no_space = Errno::new(28).unwrap();
        let e = StoreError::new(StoreErrorKind::NoSpace, Op::Sync).with_errno(no_space);
        let io: std::io::Error = Error::Poisoned(e).into();
        assert_eq!(io.kind(), std::io::ErrorKind::StorageFull);
        assert!(std::format!("{io}").contains("must be reopened"), "{io}");
        let inner = io.get_ref().and_then(|e| e.downcast_ref::<Error>());
        assert_eq!(inner, Some(&Error::Poisoned(e)));
        let io: std::io::Error = Error::WouldBlock.into();
        assert_eq!(io.kind(), std::io::ErrorKind::WouldBlock);
    }

    #[cfg(feature = "std")]
    #[test]
    fn a_store_error_names_its_file_and_the_os_message() {
        let e = StoreError::new(StoreErrorKind::NoSpace, Op::Grow)
            .with_errno(Errno::new(28).unwrap())
            .in_file(StoreRole::Journal);
        let shown = std::format!("{}", Error::Store(e));
        assert_eq!(
            shown,
            "store error: journal file: Grow failed: NoSpace (errno 28: No space left on device)"
        );
        assert_eq!(
            e.in_file(StoreRole::Data).file,
            Some(StoreRole::Journal),
            "the first stays"
        );
    }
}
