//! The storage device trait the pipe writes through.

use crate::StoreError;

/// What a store can do, so the core can shape its I/O to fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The most buffers one `read_at`/`write_at` call should carry (`IOV_MAX` on POSIX). Calls
    /// with more still work; the core uses this to size its vectored calls.
    pub max_bufs: usize,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities { max_bufs: 1024 }
    }
}

/// One file-like device, byte-addressed. The pipe does all chunk arithmetic; a store only moves
/// bytes.
///
/// Methods take `&self`: readers, writers and the steps call the store from different threads
/// at once (though never two writes to overlapping ranges at once).
///
/// # What a crash leaves behind
/// Bytes written by `write_at` and a length set by `grow` are durable only once a later `sync`
/// has returned `Ok`. A crash before that may keep any subset of them, at any granularity the
/// device has (sectors), in any order. After a failed `sync` nothing written since the last
/// successful `sync` may be assumed durable, even if a later `sync` succeeds.
#[expect(
    clippy::len_without_is_empty,
    reason = "a store's length is a device size, not a collection"
)]
pub trait ChunkStore {
    /// What the store can do; the default suits most stores.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// The current length in bytes.
    ///
    /// # Errors
    /// A [`StoreError`] from the device.
    fn len(&self) -> Result<u64, StoreError>;

    /// Fills every buffer in `bufs`, in order, from consecutive bytes starting at `offset`.
    /// Whole or error: a short read is retried inside, never returned.
    ///
    /// # Errors
    /// `OutOfBounds` when the range passes the end, or a device error.
    fn read_at(&self, offset: u64, bufs: &mut [&mut [u8]]) -> Result<(), StoreError>;

    /// Writes every buffer in `bufs`, in order, to consecutive bytes starting at `offset`.
    /// Whole or error. Not durable until a later `sync` returns `Ok`.
    ///
    /// # Errors
    /// `OutOfBounds` when the range passes the end (stores never extend on write), or a device
    /// error. After an error the range holds unspecified bytes.
    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), StoreError>;

    /// Extends the store to `new_len` bytes (allocating space first where the device can), so that
    /// the new range reads as zeros. The new length is durable when this returns `Ok`.
    /// A `new_len` not larger than the current length does nothing.
    ///
    /// # Errors
    /// `NoSpace`, or a device error; the length is then unchanged.
    fn grow(&self, new_len: u64) -> Result<(), StoreError>;

    /// The durability barrier: every write that returned before this call is durable once it
    /// returns `Ok`.
    ///
    /// # Errors
    /// A device error. The writes it should have covered are then lost for good (they may have
    /// been dropped from the cache); the caller must not report them durable.
    fn sync(&self) -> Result<(), StoreError>;

    /// An ordering barrier, for the one place the journal allows one: the data file's sync at a
    /// checkpoint, which is always followed by a `sync` of the journal beside it. Every write
    /// that returned before this call must be durable no later than anything written after it,
    /// and durable once a later `sync` of a store **on the same device** returns. The default
    /// is a full [`sync`](ChunkStore::sync); a store may do less only where the device flush of
    /// that later sync covers this store too (macOS `F_BARRIERFSYNC`, opt-in).
    ///
    /// # Errors
    /// As [`sync`](ChunkStore::sync).
    fn barrier(&self) -> Result<(), StoreError> {
        self.sync()
    }

    /// A hint to start writing `len` bytes at `offset` back to the device. Never a durability
    /// guarantee; the default does nothing.
    ///
    /// # Errors
    /// A device error; callers may ignore it.
    fn start_writeback(&self, offset: u64, len: u64) -> Result<(), StoreError> {
        let _ = (offset, len);
        Ok(())
    }

    /// How many of this store's syncs so far were weaker than the `sync` contract above — made
    /// because the store was allowed to ([`WeakSyncs`](crate::WeakSyncs)) where its full sync
    /// is refused — including those of files that belong with it (a file backend's metadata and
    /// directory entries). The default: none.
    fn weak_syncs(&self) -> u64 {
        0
    }

    /// The pipe over this store was closed and will not touch it again: a store may let go of
    /// what it holds for its user (a file backend unlocks its file, so that the pipe can be
    /// opened again while this handle lives on). The default does nothing.
    fn release(&self) {}
}

macro_rules! forward_chunk_store {
    ($($ty:ty),*) => {$(
        impl<S: ChunkStore + ?Sized> ChunkStore for $ty {
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            fn len(&self) -> Result<u64, StoreError> {
                (**self).len()
            }
            fn read_at(&self, offset: u64, bufs: &mut [&mut [u8]]) -> Result<(), StoreError> {
                (**self).read_at(offset, bufs)
            }
            fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), StoreError> {
                (**self).write_at(offset, bufs)
            }
            fn grow(&self, new_len: u64) -> Result<(), StoreError> {
                (**self).grow(new_len)
            }
            fn sync(&self) -> Result<(), StoreError> {
                (**self).sync()
            }
            fn barrier(&self) -> Result<(), StoreError> {
                (**self).barrier()
            }
            fn start_writeback(&self, offset: u64, len: u64) -> Result<(), StoreError> {
                (**self).start_writeback(offset, len)
            }
            fn weak_syncs(&self) -> u64 {
                (**self).weak_syncs()
            }
            fn release(&self) {
                (**self).release()
            }
        }
    )*};
}

forward_chunk_store!(&S);
#[cfg(feature = "alloc")]
forward_chunk_store!(alloc::boxed::Box<S>, alloc::sync::Arc<S>);
