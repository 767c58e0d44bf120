//! The metadata record kept beside a store (`<path>.meta` for files): format version, chunk size
//! and durability mode, written durably when the store is created and checked on every open, so
//! that reopening with a different configuration is a clear error instead of misread data. The
//! format is documented on [`Meta`].

use core::fmt::Write as _;

use crate::{Config, Error, Journal};

/// The format version this build writes and reads.
pub const META_VERSION: u32 = 1;

/// Longest metadata record this version writes.
pub const META_MAX_BYTES: usize = 64;

/// A metadata record: what a store was created with.
///
/// # Format (version 1)
/// Plain ASCII lines (at most [`META_MAX_BYTES`]), so other tools can read it:
///
/// ```text
/// chunkpipe-meta 1
/// chunk_size 4096
/// journal atomic
/// ```
///
/// `journal` is `atomic` or `off`. A record of another version, or one that does not parse, is
/// [`Error::Mismatch`](crate::Error::Mismatch) on open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Bytes per chunk.
    pub chunk_size: u32,
    /// The durability mode.
    pub journal: Journal,
}

impl Meta {
    /// The record describing `config`.
    pub fn for_config(config: &Config) -> Self {
        Meta {
            chunk_size: config.chunk_size,
            journal: config.journal,
        }
    }

    /// Encodes the record into `out`; returns the bytes used.
    pub fn encode(&self, out: &mut [u8; META_MAX_BYTES]) -> usize {
        let mut text = heapless_text::Text::<META_MAX_BYTES>::default();
        let journal = match self.journal {
            Journal::Off => "off",
            Journal::Atomic => "atomic",
        };
        // 64 bytes hold the longest record ("chunk_size 1073741824").
        let _ = write!(
            text,
            "chunkpipe-meta {META_VERSION}\nchunk_size {}\njournal {journal}\n",
            self.chunk_size
        );
        out[..text.len].copy_from_slice(&text.buf[..text.len]);
        text.len
    }

    /// Decodes a record.
    ///
    /// # Errors
    /// [`Error::Mismatch`] for another format, version or a damaged record.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let damaged = Error::Mismatch("the metadata file is not a chunkpipe metadata record");
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
        Ok(Meta {
            chunk_size,
            journal,
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
        let meta = Meta::for_config(&config);
        let mut buf = [0; META_MAX_BYTES];
        let len = meta.encode(&mut buf);
        assert_eq!(Meta::decode(&buf[..len]), Ok(meta));
        assert_eq!(meta.check(&config), Ok(()));
        assert!(matches!(
            meta.check(&config.with_chunk_size(512)),
            Err(Error::Mismatch(_))
        ));
    }

    #[test]
    fn rejects_other_versions_and_damage() {
        for bad in [
            &b"chunkpipe-meta 2\nchunk_size 4096\njournal off\n"[..],
            b"",
            b"\xff",
            b"chunkpipe-meta 1\nchunk_size x\njournal off\n",
            b"chunkpipe-meta 1\nchunk_size 4096\njournal maybe\n",
        ] {
            assert!(
                matches!(Meta::decode(bad), Err(Error::Mismatch(_))),
                "{bad:?}"
            );
        }
    }
}
