//! [`FileStore`]: a [`ChunkStore`] over one locked file.

use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chunkpipe_core::{
    Capabilities, ChunkStore, Error, Op, StoreError, StoreErrorKind, StoreRole, WeakSyncs,
};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::direct::DirectFd;
use crate::durability::{Durability, retry_errno, retry_interrupted};
use crate::file::Access;
use crate::io::{IOV_MAX, read_exact_at, write_all_at};
use crate::meta::MetaFile;
use crate::{Platform, file, store_error};

/// A data file as a [`ChunkStore`], holding an exclusive `flock` for as long as it is open.
/// `P` supplies what the platform does its own way (sync, preallocation, writeback hint).
pub struct FileStore<P> {
    fd: OwnedFd,
    /// The file's length. Only `grow` changes it, and the pipe runs one grow at a time.
    len: AtomicU64,
    /// Full or weak syncs, decided at open (shared with the `.meta` of a pipe's data file).
    durability: Arc<Durability>,
    /// The journal whose sync follows this file's barrier is on the same device, so the
    /// platform's cheaper barrier may stand in for a sync ([`PipeFiles`](crate::PipeFiles)
    /// checks `st_dev`).
    shares_device: AtomicBool,
    /// With [`open_direct`](Self::open_direct), where the platform has it: the descriptor that
    /// aligned writes take.
    direct: Option<DirectFd>,
    /// The data file of a pipe: its `.meta`, which records each new length (`PipeFiles`).
    meta: Option<Arc<MetaFile>>,
    /// Opened read-only while a running pipe held the file.
    in_use: bool,
    /// Which of a pipe's files this is: every error names it.
    role: Option<StoreRole>,
    _platform: PhantomData<fn() -> P>,
}

impl<P: Platform> FileStore<P> {
    /// Opens or creates the file at `path`, locks it, and checks that the file system takes the
    /// platform's full sync (a new file's directory entry is then synced).
    ///
    /// # Errors
    /// [`Error::Locked`] when another open `FileStore` (in any process) holds the file; a sync
    /// the file system refuses, of kind [`Unsupported`](StoreErrorKind::Unsupported); an OS
    /// error as [`Error::Store`].
    pub fn open(path: &Path) -> Result<Self, Error> {
        Self::open_as(path, Access::CreateOrOpen, WeakSyncs::Refuse, None)
    }

    /// Opens the file at `path`, which must exist (`ENOENT` otherwise: never created), and
    /// locks it.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_existing(path: &Path) -> Result<Self, Error> {
        Self::open_as(path, Access::Existing, WeakSyncs::Refuse, None)
    }

    /// Opens the file at `path` read-only, for looking at it: works on a read-only mount and
    /// without write permission, takes a shared lock where no running pipe holds the file
    /// ([`in_use`](Self::in_use) says when one does), and never writes (every write, grow and
    /// sync fails).
    ///
    /// # Errors
    /// An OS error as [`Error::Store`] (`ENOENT` when it does not exist).
    pub fn open_read_only(path: &Path) -> Result<Self, Error> {
        Self::open_as(path, Access::ReadOnly, WeakSyncs::Refuse, None)
    }

    /// Opens `path` as `access` says; a writable file's syncs are decided now, before anything
    /// is written ([`Durability`]), and a new file's directory entry is synced. Every error of the
    /// store names `role`, where given.
    pub(crate) fn open_as(
        path: &Path,
        access: Access,
        weak: WeakSyncs,
        role: Option<StoreRole>,
    ) -> Result<Self, Error> {
        let name = |e: StoreError| match role {
            Some(role) => e.in_file(role),
            None => e,
        };
        let opened = file::open_locked::<P>(path, access).map_err(name)?;
        let durability = match access {
            Access::ReadOnly => Durability::full(),
            _ => Durability::probe::<P>(opened.fd.as_fd(), weak).map_err(name)?,
        };
        if opened.created {
            durability.sync_parent_dir::<P>(path).map_err(name)?;
        }
        Ok(FileStore {
            fd: opened.fd,
            len: AtomicU64::new(opened.len),
            durability: Arc::new(durability),
            shares_device: AtomicBool::new(false),
            direct: None,
            meta: None,
            in_use: opened.in_use,
            role,
            _platform: PhantomData,
        })
    }

    /// `e`, naming this store's file where it is one of a pipe's.
    fn named(&self, e: StoreError) -> StoreError {
        match self.role {
            Some(role) => e.in_file(role),
            None => e,
        }
    }

    /// Opens like [`open`](Self::open), plus a second descriptor for direct writes where the
    /// platform has one ([`Platform::open_direct`]): writes whose buffers and offset are
    /// aligned for it bypass the page cache, the rest stay buffered. For a file written once
    /// and read rarely — a journal, whose appends come straight from page-aligned staging —
    /// on a disk where that pays ([`open`](crate::open) opens the journal buffered).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_direct(path: &Path) -> Result<Self, Error> {
        Self::open_direct_as(path, WeakSyncs::Refuse, None)
    }

    pub(crate) fn open_direct_as(
        path: &Path,
        weak: WeakSyncs,
        role: Option<StoreRole>,
    ) -> Result<Self, Error> {
        let mut store = Self::open_as(path, Access::CreateOrOpen, weak, role)?;
        store.direct = P::open_direct(path).map(|(fd, align)| DirectFd::new(fd, align));
        Ok(store)
    }

    /// How this file is synced (full or weak), and the weak syncs so far.
    pub fn durability(&self) -> &Durability {
        &self.durability
    }

    /// The journal whose sync completes this file's barrier is on the same device: the
    /// platform's barrier may stand in for a full sync (see [`Platform::barrier`]).
    pub(crate) fn set_shares_device(&self) {
        self.shares_device.store(true, Ordering::Relaxed);
    }

    /// The device the file is on (`st_dev`, whose type differs between platforms).
    pub(crate) fn device(&self) -> Result<i128, StoreError> {
        let stat =
            retry_errno(|| rustix::fs::fstat(&self.fd)).map_err(|e| store_error(Op::Len, e))?;
        Ok(i128::from(stat.st_dev))
    }

    /// Makes this the data file whose `.meta` records each new length.
    pub(crate) fn with_meta(mut self, meta: Arc<MetaFile>) -> Self {
        self.meta = Some(meta);
        self
    }

    /// The durability its `.meta` and directory syncs share.
    pub(crate) fn shared_durability(&self) -> Arc<Durability> {
        Arc::clone(&self.durability)
    }

    /// Whether a running pipe held the file when it was opened read-only: what is read may be
    /// changing.
    pub fn in_use(&self) -> bool {
        self.in_use
    }

    /// The file descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// How many writes so far bypassed the page cache and succeeded (see
    /// [`open_direct`](Self::open_direct)).
    pub fn direct_writes(&self) -> u64 {
        self.direct.as_ref().map_or(0, DirectFd::writes)
    }

    fn check_bounds(&self, offset: u64, len: usize, op: Op) -> Result<(), StoreError> {
        let end = offset.checked_add(len as u64);
        match end {
            Some(end) if end <= self.len.load(Ordering::Acquire) => Ok(()),
            _ => Err(StoreError::new(StoreErrorKind::OutOfBounds, op)),
        }
    }

    /// Writes zeros over `from..to`, for file systems that cannot preallocate.
    fn zero_fill(&self, from: u64, to: u64) -> Result<(), StoreError> {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let mut at = from;
        while at < to {
            let n = (to - at).min(ZEROS.len() as u64) as usize;
            write_all_at(self.fd(), at, &[&ZEROS[..n]])
                .map_err(|e| StoreError { op: Op::Grow, ..e })?;
            at += n as u64;
        }
        Ok(())
    }
}

impl<P: Platform> ChunkStore for FileStore<P> {
    fn capabilities(&self) -> Capabilities {
        Capabilities { max_bufs: IOV_MAX }
    }

    fn len(&self) -> Result<u64, StoreError> {
        Ok(self.len.load(Ordering::Acquire))
    }

    fn read_at(&self, offset: u64, bufs: &mut [&mut [u8]]) -> Result<(), StoreError> {
        self.check_bounds(offset, bufs.iter().map(|b| b.len()).sum(), Op::Read)
            .and_then(|()| read_exact_at(self.fd(), offset, bufs))
            .map_err(|e| self.named(e))
    }

    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), StoreError> {
        self.check_bounds(offset, bufs.iter().map(|b| b.len()).sum(), Op::Write)
            .and_then(
                |()| match self.direct.as_ref().and_then(|d| d.try_write(offset, bufs)) {
                    Some(written) => written,
                    None => write_all_at(self.fd(), offset, bufs),
                },
            )
            .map_err(|e| self.named(e))
    }

    /// Preallocates (or zero-fills where the file system cannot), sets the length with
    /// `ftruncate`, and syncs so the new length is durable before it is used; the data file of
    /// a pipe then records the new length in its `.meta`.
    fn grow(&self, new_len: u64) -> Result<(), StoreError> {
        self.grow_to(new_len).map_err(|e| self.named(e))
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.durability
            .sync::<P>(self.fd())
            .map_err(|e| self.named(e))
    }

    fn barrier(&self) -> Result<(), StoreError> {
        let shares_device = self.shares_device.load(Ordering::Relaxed);
        (self.durability)
            .barrier::<P>(self.fd(), shares_device)
            .map_err(|e| self.named(e))
    }

    fn start_writeback(&self, offset: u64, len: u64) -> Result<(), StoreError> {
        retry_interrupted(|| P::start_writeback(self.fd(), offset, len)).map_err(|e| self.named(e))
    }

    fn weak_syncs(&self) -> u64 {
        self.durability.weak_syncs()
    }

    /// Unlocks the file (`flock(LOCK_UN)`): the pipe over it is closed and its runner has
    /// ended. The descriptor stays open for this handle's reads.
    fn release(&self) {
        let _ = retry_errno(|| rustix::fs::flock(&self.fd, rustix::fs::FlockOperation::Unlock));
    }
}

impl<P: Platform> FileStore<P> {
    /// [`ChunkStore::grow`], before its errors name the file.
    fn grow_to(&self, new_len: u64) -> Result<(), StoreError> {
        let old_len = self.len.load(Ordering::Acquire);
        if new_len <= old_len {
            return Ok(());
        }
        if !retry_interrupted(|| P::preallocate(self.fd(), old_len, new_len))? {
            self.zero_fill(old_len, new_len)?;
        }
        retry_errno(|| rustix::fs::ftruncate(&self.fd, new_len))
            .map_err(|e| store_error(Op::Grow, e))?;
        self.sync()?;
        self.len.store(new_len, Ordering::Release);
        match &self.meta {
            Some(meta) => meta.grown::<P>(new_len),
            None => Ok(()),
        }
    }
}

impl<P> std::fmt::Debug for FileStore<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("fd", &self.fd)
            .field("len", &self.len.load(Ordering::Relaxed))
            .field("durability", &self.durability)
            .field("direct", &self.direct)
            .finish()
    }
}
