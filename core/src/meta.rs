//! The metadata record kept beside a store (`<path>.meta` for files): format version, chunk size,
//! durability mode and the data store's length, written durably as the last step of creating a
//! pipe (so that its presence means the pipe exists), rewritten when the pipe grows, and checked
//! on every open — reopening with a different configuration is a clear error instead of misread
//! data, and a data store shorter than recorded is damage. The format is documented on [`Meta`].

use core::fmt::Write as _;

use crate::{Config, Damage, Error, Journal, StoreRole};

/// The format version this build writes and reads.
pub const META_VERSION: u32 = 2;

/// Longest metadata record this version writes.
pub const META_MAX_BYTES: usize = 128;

/// A metadata record: what a store was created with.
///
/// # Format (version 2)
/// Plain ASCII lines (at most [`META_MAX_BYTES`]), so other tools can read it:
///
/// ```text
/// chunkpipe-meta 2
/// chunk_size 4096
/// journal atomic
/// len_chunks 1024
/// ```
///
/// `journal` is `atomic` or `off`; `len_chunks` is a length the data store has reached (it
/// never shrinks, so a shorter one is damage). A record of another version is
/// [`Error::Mismatch`]; one that does not parse is [`Error::Corrupt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Bytes per chunk.
    pub chunk_size: u32,
    /// The durability mode.
    pub journal: Journal,
    /// The data store holds at least this many chunks.
    pub len_chunks: u64,
}

impl Meta {
    /// The record describing `config`, over a data store of `len_chunks` chunks.
    pub fn for_config(config: &Config, len_chunks: u64) -> Self {
        Meta {
            chunk_size: config.chunk_size,
            journal: config.journal,
            len_chunks,
        }
    }

    /// Encodes the record into `out`; returns the bytes used.
    pub fn encode(&self, out: &mut [u8; META_MAX_BYTES]) -> usize {
        let mut text = heapless_text::Text::<META_MAX_BYTES>::default();
        let journal = match self.journal {
            Journal::Off => "off",
            Journal::Atomic => "atomic",
        };
        // 128 bytes hold the longest record (a 10-digit chunk size, a 20-digit length).
        let _ = write!(
            text,
            "chunkpipe-meta {META_VERSION}\nchunk_size {}\njournal {journal}\nlen_chunks {}\n",
            self.chunk_size, self.len_chunks
        );
        out[..text.len].copy_from_slice(&text.buf[..text.len]);
        text.len
    }

    /// Decodes a record.
    ///
    /// # Errors
    /// [`Error::Mismatch`] for another format version; [`Error::Corrupt`] for a record that
    /// does not parse.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let damaged = Error::Corrupt(Damage::new(
            StoreRole::Meta,
            0,
            "the metadata record does not parse",
        ));
        let text = core::str::from_utf8(bytes).map_err(|_| damaged)?;
        let mut lines = text.lines();
        match lines.next().and_then(|l| l.strip_prefix("chunkpipe-meta ")) {
            Some(v) if v.parse() == Ok(META_VERSION) => {}
            Some(_) => {
                return Err(Error::Mismatch(
                    "the metadata has an unknown format version",
                ));
            }
            None => return Err(damaged),
        }
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name)?.strip_prefix(' '))
        };
        let chunk_size = field("chunk_size")
            .and_then(|v| v.parse().ok())
            .ok_or(damaged)?;
        let journal = match field("journal") {
            Some("off") => Journal::Off,
            Some("atomic") => Journal::Atomic,
            _ => return Err(damaged),
        };
        let len_chunks = field("len_chunks")
            .and_then(|v| v.parse().ok())
            .ok_or(damaged)?;
        Ok(Meta {
            chunk_size,
            journal,
            len_chunks,
        })
    }

    /// Checks that a store created with this record can be opened with `config`.
    ///
    /// # Errors
    /// [`Error::Mismatch`] naming what differs.
    pub fn check(&self, config: &Config) -> Result<(), Error> {
        if self.chunk_size != config.chunk_size {
            return Err(Error::Mismatch(
                "the store was created with another chunk_size",
            ));
        }
        if self.journal != config.journal {
            return Err(Error::Mismatch(
                "the store was created with another journal mode",
            ));
        }
        Ok(())
    }

    /// Checks that a data store of `len_bytes` bytes is as long as recorded.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when it is shorter.
    pub fn check_len(&self, len_bytes: u64) -> Result<(), Error> {
        let chunk = u64::from(self.chunk_size).max(1);
        if len_bytes / chunk < self.len_chunks {
            return Err(Error::Corrupt(Damage::new(
                StoreRole::Data,
                len_bytes,
                "the data store is shorter than its metadata records",
            )));
        }
        Ok(())
    }
}

/// A fixed-capacity `fmt::Write` buffer (no allocator).
mod heapless_text {
    pub(super) struct Text<const N: usize> {
        pub(super) buf: [u8; N],
        pub(super) len: usize,
    }

    impl<const N: usize> Default for Text<N> {
        fn default() -> Self {
            Text {
                buf: [0; N],
                len: 0,
            }
        }
    }

    impl<const N: usize> core::fmt::Write for Text<N> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self
                .len
                .checked_add(s.len())
                .filter(|&e| e <= N)
                .ok_or(core::fmt::Error)?;
            self.buf[self.len..end].copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks() {
        let config = Config::new().with_chunk_size(crate::MAX_CHUNK_SIZE);
        let meta = Meta::for_config(&config, u64::MAX);
        let mut buf = [0; META_MAX_BYTES];
        let len = meta.encode(&mut buf);
        assert_eq!(Meta::decode(&buf[..len]), Ok(meta));
        assert_eq!(meta.check(&config), Ok(()));
        assert!(matches!(
            meta.check(&config.with_chunk_size(512)),
            Err(Error::Mismatch(_))
        ));
        let short = Meta::for_config(&Config::new(), 4);
        assert_eq!(short.check_len(4 * 4096), Ok(()));
        assert!(matches!(
            short.check_len(3 * 4096 + 5),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn rejects_other_versions_and_damage() {
        let other = b"chunkpipe-meta 1\nchunk_size 4096\njournal off\n";
        assert!(matches!(Meta::decode(other), Err(Error::Mismatch(_))));
        for bad in [
            &b""[..],
            b"\xff",
            b"chunkpipe-meta 2\nchunk_size x\njournal off\nlen_chunks 1\n",
            b"chunkpipe-meta 2\nchunk_size 4096\njournal maybe\nlen_chunks 1\n",
            b"chunkpipe-meta 2\nchunk_size 4096\njournal off\n",
        ] {
            assert!(
                matches!(Meta::decode(bad), Err(Error::Corrupt(_))),
                "{bad:?}"
            );
        }
    }
}
