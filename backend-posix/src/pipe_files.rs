//! [`PipeFiles`]: the files of a pipe, opened — or created, in the order that tells a
//! half-created pipe from an existing, damaged one.

use std::path::Path;
use std::sync::Arc;

use chunkpipe_core::{
    ChunkStore, Config, Create, Damage, Error, Journal, Meta, Pipe, StoreErrorKind, StoreRole,
    ThreadedPipe,
};

use crate::file::Access;
use crate::meta::{MetaFile, read_meta};
use crate::{FileStore, Platform, journal_path};

/// The files of the pipe at a path, open and locked, ready to start.
///
/// **Which pipes exist.** A pipe exists once `<path>.meta` does. [`PipeFiles::open`] reads it
/// first:
///
/// | `.meta` | [`Create::IfMissing`] (default) | [`Create::New`] | [`Create::Never`] |
/// |---|---|---|---|
/// | present | open the pipe | [`Error::AlreadyExists`] | open the pipe |
/// | missing | create the pipe | create the pipe | [`Error::NotFound`] |
///
/// Opening an existing pipe never creates a file: a missing data file or journal, a journal
/// that is empty or blank, or a data file shorter than `.meta` records is [`Error::Corrupt`]
/// naming that file. Creating one makes the data file (a plain file already there is adopted,
/// its bytes kept) and the journal, and [`start`](Self::start) formats and syncs the journal
/// before it writes `.meta` — the last step. A crash before that leaves a half-created pipe,
/// which the next open creates again (its journal held nothing acknowledged); a journal that
/// has been opened as a pipe's but has no `.meta` beside it is damage, not a half-created pipe.
pub struct PipeFiles<P> {
    data: FileStore<P>,
    journal: Option<FileStore<P>>,
    /// The config, with `create` resolved to what the core must do: `New` or `Never`.
    config: Config,
    meta: Arc<MetaFile>,
    /// The pipe is being created: `.meta` is written once the journal is ready.
    creating: bool,
}

impl<P: Platform> PipeFiles<P> {
    /// Opens the files of the pipe at `path` (the data file) for `config`, creating the files of
    /// a new pipe as `config.create` allows (see the type docs).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], [`Error::NotFound`]; [`Error::Mismatch`] when the pipe was
    /// created with another chunk size or journal mode; [`Error::Corrupt`] for a missing data
    /// file or journal, or a data file shorter than recorded; [`Error::Locked`]; an invalid
    /// config; an OS error.
    pub fn open(path: &Path, config: &Config) -> Result<Self, Error> {
        config.validate()?;
        match (read_meta(path)?, config.create) {
            (Some(_), Create::New) => Err(Error::AlreadyExists),
            (None, Create::Never) => Err(Error::NotFound),
            (Some(meta), _) => Self::open_existing(path, meta, config),
            (None, _) => Self::open_new(path, config),
        }
    }

    fn open_existing(path: &Path, meta: Meta, config: &Config) -> Result<Self, Error> {
        meta.check(config)?;
        let weak = config.weak_syncs;
        let data = FileStore::open_as(path, Access::Existing, weak, Some(StoreRole::Data))
            .map_err(|e| missing(e, StoreRole::Data))?;
        meta.check_len(data.len()?)?;
        let journal = match config.journal {
            Journal::Off => None,
            _ => Some(
                FileStore::open_as(&journal_path(path), Access::Existing, weak, journal_role())
                    .map_err(|e| missing(e, StoreRole::Journal))?,
            ),
        };
        Self::assemble(
            path,
            (data, journal),
            meta,
            config.with_create(Create::Never),
        )
    }

    fn open_new(path: &Path, config: &Config) -> Result<Self, Error> {
        let weak = config.weak_syncs;
        let data = FileStore::open_as(path, Access::CreateOrOpen, weak, Some(StoreRole::Data))?;
        let journal = match config.journal {
            Journal::Off => None,
            _ => Some(FileStore::open_as(
                &journal_path(path),
                Access::CreateOrOpen,
                weak,
                journal_role(),
            )?),
        };
        let meta = Meta::for_config(config, 0);
        Self::assemble(path, (data, journal), meta, config.with_create(Create::New))
    }

    /// The files of a pipe: the data file's `.meta` (armed unless the pipe is being created)
    /// shares its syncs, and the data file's barrier may stand in for a sync only where the
    /// journal, whose sync follows it at a checkpoint, is on the same device.
    fn assemble(
        path: &Path,
        (data, journal): (FileStore<P>, Option<FileStore<P>>),
        meta: Meta,
        config: Config,
    ) -> Result<Self, Error> {
        let creating = config.create == Create::New;
        if let Some(journal) = &journal {
            if journal.device()? == data.device()? {
                data.set_shares_device();
            }
        }
        let meta = Arc::new(MetaFile::new(
            path,
            meta,
            !creating,
            data.shared_durability(),
        ));
        Ok(PipeFiles {
            data: data.with_meta(Arc::clone(&meta)),
            journal,
            config,
            meta,
            creating,
        })
    }

    /// Starts the pipe over the files: creates a new pipe's storage (then writes its `.meta`)
    /// or recovers an existing one, and starts its threads.
    ///
    /// # Errors
    /// What [`Pipe::from_parts`] reports — with `Create::Never`, a journal that holds no pipe is
    /// [`Error::Corrupt`]; with `Create::New`, a journal that held an opened pipe but has no
    /// `.meta` beside it too —, an OS error writing `.meta`, a thread that cannot be spawned.
    pub fn start(self) -> Result<ThreadedPipe<FileStore<P>>, Error> {
        self.start_with(|data, journal| (data, journal))
    }

    /// Reopens the journal for direct writes that bypass the page cache where the platform has
    /// them ([`FileStore::open_direct`]).
    ///
    /// # Errors
    /// As [`FileStore::open_direct`].
    pub fn with_direct_journal(mut self, path: &Path) -> Result<Self, Error> {
        if let Some(journal) = self.journal.take() {
            // Its lock goes with it, so the reopen can take it.
            drop(journal);
            let weak = self.config.weak_syncs;
            let journal = FileStore::open_direct_as(&journal_path(path), weak, journal_role())?;
            if journal.device()? == self.data.device()? {
                self.data.set_shares_device();
            }
            self.journal = Some(journal);
        }
        Ok(self)
    }

    /// [`start`](Self::start), over the stores `wrap` makes of the files (a test harness wraps
    /// them to inject faults).
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn start_with<S: ChunkStore + Send + Sync + 'static>(
        self,
        wrap: impl FnOnce(FileStore<P>, Option<FileStore<P>>) -> (S, Option<S>),
    ) -> Result<ThreadedPipe<S>, Error> {
        let (creating, config, meta) = (self.creating, self.config, self.meta);
        let (data, journal) = wrap(self.data, self.journal);
        let pipe = match journal {
            Some(journal) => Pipe::with_journal(data, journal, config),
            None => Pipe::new(data, config),
        };
        let pipe = pipe.map_err(|e| match (e, creating) {
            (Error::NotFound, false) => Error::Corrupt(Damage::new(
                StoreRole::Journal,
                0,
                "the journal of an existing pipe is empty",
            )),
            (Error::AlreadyExists, true) => Error::Corrupt(Damage::new(
                StoreRole::Meta,
                0,
                "the metadata is missing, but the journal holds a pipe that was opened",
            )),
            (e, _) => e,
        })?;
        if creating {
            meta.create::<P>(pipe.len_chunks())?;
        }
        ThreadedPipe::from_pipe(pipe)
    }

    /// The data file.
    pub fn data(&self) -> &FileStore<P> {
        &self.data
    }

    /// The journal (`Journal::Atomic`).
    pub fn journal(&self) -> Option<&FileStore<P>> {
        self.journal.as_ref()
    }

    /// Whether [`start`](Self::start) creates the pipe (no `.meta` was found).
    pub fn creating(&self) -> bool {
        self.creating
    }

    /// The config the core is started with (`create` resolved to `New` or `Never`).
    pub fn config(&self) -> &Config {
        &self.config
    }
}

fn journal_role() -> Option<StoreRole> {
    Some(StoreRole::Journal)
}

/// A file of an existing pipe that cannot be opened because it is not there is damage.
fn missing(e: Error, file: StoreRole) -> Error {
    let enoent = rustix::io::Errno::NOENT.raw_os_error();
    match e {
        Error::Store(s)
            if s.kind == StoreErrorKind::Io && s.errno.map(|e| e.raw()) == Some(enoent) =>
        {
            Error::Corrupt(Damage::new(
                file,
                0,
                "the file of an existing pipe is missing",
            ))
        }
        e => e,
    }
}

impl<P> std::fmt::Debug for PipeFiles<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeFiles")
            .field("data", &self.data)
            .field("journal", &self.journal)
            .field("creating", &self.creating)
            .finish_non_exhaustive()
    }
}
