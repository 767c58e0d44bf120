//! `chunkpipe inspect`: what a pipe's files hold and every problem in them, read-only; and
//! `chunkpipe recover`: open a pipe, run its recovery, and print what it did.

use std::path::{Path, PathBuf};

use chunkpipe_core::journal::{JournalReport, inspect_journal};
use chunkpipe_core::{ChunkStore, Config, Create, Damage, Journal, Meta, Recovery, StoreRole};
use chunkpipe_linux::FileStore;
use chunkpipe_posix::{journal_path, meta_path, read_meta};

/// Options of `chunkpipe inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The data file (its `.meta` and `.journal` are found beside it).
    path: PathBuf,
    /// Also check every journal record's chunks and every chunk of the data file against their
    /// checksums.
    #[arg(long)]
    verify: bool,
}

/// Options of `chunkpipe recover`.
#[derive(clap::Args, Debug)]
pub struct RecoverArgs {
    /// The data file of the pipe.
    path: PathBuf,
    /// Open even if the journal is damaged: replay up to the damage and drop (and report)
    /// every epoch from there on. Without it, damage is an error and nothing changes.
    #[arg(long)]
    point_in_time: bool,
}

/// Prints what the files hold. Opens every file read-only (no lock that a running pipe holds
/// is needed; works on a read-only mount); fails when anything is damaged, missing or short,
/// naming the file and offset of each problem.
pub fn run(args: &InspectArgs) -> Result<(), String> {
    let path = &args.path;
    let meta = match read_meta(path) {
        Ok(Some(meta)) => meta,
        Ok(None) => {
            return Err(format!(
                "{}: missing: no pipe at {} (or one whose creation a crash cut short)",
                meta_path(path).display(),
                path.display()
            ));
        }
        Err(e) => return Err(format!("{}: {e}", meta_path(path).display())),
    };
    let journal = match meta.journal {
        Journal::Off => "off",
        _ => "atomic",
    };
    println!(
        "meta: {}: format 2, chunk_size {}, journal {journal}, {} chunks recorded",
        meta_path(path).display(),
        meta.chunk_size,
        meta.len_chunks
    );
    let data = open(path)?;
    let mut problems = Vec::new();
    let len = data.len().map_err(|e| e.to_string())?;
    println!(
        "data: {}: {len} bytes, {} chunks of {}",
        path.display(),
        len / u64::from(meta.chunk_size),
        meta.chunk_size
    );
    if let Err(chunkpipe_core::Error::Corrupt(damage)) = meta.check_len(len) {
        problems.push(damage);
    }
    if meta.journal == Journal::Atomic && problems.is_empty() {
        let journal = open(&journal_path(path))?;
        let report = inspect_journal(&journal, &data, meta.chunk_size, args.verify)
            .map_err(|e| format!("{}: {e}", journal_path(path).display()))?;
        print_journal(path, &report, args.verify);
        problems.extend(report.problems.iter().copied());
    }
    report_problems(path, &meta, &problems)
}

/// Opens one of the pipe's files read-only; a missing one is a problem of its own.
fn open(path: &Path) -> Result<FileStore, String> {
    let store = FileStore::open_read_only(path).map_err(|e| {
        let enoent = Some(rustix::io::Errno::NOENT.raw_os_error());
        match e {
            chunkpipe_core::Error::Store(s) if s.errno.map(|e| e.raw()) == enoent => {
                format!(
                    "{}: missing: the file of an existing pipe is gone",
                    path.display()
                )
            }
            e => format!("{}: {e}", path.display()),
        }
    })?;
    if store.in_use() {
        println!(
            "note: {} is open in a running pipe: what follows may be changing",
            path.display()
        );
    }
    Ok(store)
}

fn print_journal(path: &Path, report: &JournalReport, verify: bool) {
    let Some(sb) = report.superblock else {
        return;
    };
    println!(
        "journal: {}: {} bytes of records, superblock seq {}, checkpoint at epoch {}, records \
         from byte {} (lap {}), records of up to {} chunks, chunk checksums {}",
        journal_path(path).display(),
        sb.journal_bytes,
        sb.seq,
        sb.checkpoint.get(),
        sb.records_at,
        sb.lap,
        sb.max_record_chunks,
        if sb.table.is_some() { "kept" } else { "off" },
    );
    let range = match report.records {
        0 => "none".to_string(),
        _ => format!(
            "epochs {}..={}",
            sb.checkpoint.get() + 1,
            report.last_epoch.get()
        ),
    };
    println!(
        "records after the checkpoint: {} ({range}; a reopen replays them)",
        report.records
    );
    let tail = if report.torn_tail {
        "torn: a crash cut the last append short (never acknowledged; a reopen drops it)"
    } else {
        "clean"
    };
    println!("tail: {tail}");
    if let Some((first, last)) = report.dropped {
        println!(
            "a reopen refuses the damage below; `chunkpipe recover --point-in-time` would drop \
             epochs {}..={}",
            first.get(),
            last.get()
        );
    }
    if verify {
        println!(
            "checked: every record's chunks; {} chunks of the data file against their checksums",
            report.chunks_checked
        );
    } else {
        println!("checked: headers and header checksums (--verify checks every chunk too)");
    }
}

/// The path of the file a problem is in.
fn file_of(path: &Path, file: StoreRole) -> PathBuf {
    match file {
        StoreRole::Data => path.to_path_buf(),
        StoreRole::Journal => journal_path(path),
        _ => meta_path(path),
    }
}

fn report_problems(path: &Path, meta: &Meta, problems: &[Damage]) -> Result<(), String> {
    if problems.is_empty() {
        println!("problems: none");
        return Ok(());
    }
    println!("problems: {}", problems.len());
    const SHOWN: usize = 20;
    for damage in problems.iter().take(SHOWN) {
        let chunk = match damage.file {
            StoreRole::Data => format!(" (chunk {})", damage.offset / u64::from(meta.chunk_size)),
            _ => String::new(),
        };
        println!(
            "  {} at byte {}{chunk}: {}",
            file_of(path, damage.file).display(),
            damage.offset,
            damage.what
        );
    }
    if problems.len() > SHOWN {
        println!("  … and {} more", problems.len() - SHOWN);
    }
    Err(format!(
        "{}: damaged ({} problems)",
        path.display(),
        problems.len()
    ))
}

/// Opens the pipe at the path (as its `.meta` describes it), which runs recovery, prints what
/// recovery did, and closes it.
pub fn recover(args: &RecoverArgs) -> Result<(), String> {
    let path = &args.path;
    let meta = read_meta(path)
        .map_err(|e| format!("{}: {e}", meta_path(path).display()))?
        .ok_or_else(|| format!("{}: missing: no pipe there", meta_path(path).display()))?;
    let staging = match meta.journal {
        Journal::Off => Config::new().staging_chunks,
        _ => {
            let journal = open(&journal_path(path))?;
            let data = open(path)?;
            let report = inspect_journal(&journal, &data, meta.chunk_size, false)
                .map_err(|e| format!("{}: {e}", journal_path(path).display()))?;
            report
                .superblock
                .map_or(1, |sb| sb.max_record_chunks.max(1))
        }
    };
    let recovery = match args.point_in_time {
        true => Recovery::PointInTime,
        false => Recovery::Strict,
    };
    let config = Config::new()
        .with_chunk_size(meta.chunk_size)
        .with_journal(meta.journal)
        .with_staging_chunks(staging)
        .with_create(Create::Never)
        .with_recovery(recovery);
    let pipe = chunkpipe_linux::open(path, config).map_err(|e| match e {
        chunkpipe_core::Error::Corrupt(damage) => format!(
            "{} at byte {}: {}\n(nothing was changed; `--point-in-time` opens anyway and drops \
             what follows the damage)",
            file_of(path, damage.file).display(),
            damage.offset,
            damage.what
        ),
        e => format!("{}: {e}", path.display()),
    })?;
    match pipe.recovery() {
        None => println!("recovery: none (journal off): the data file is all there is"),
        Some(report) => {
            println!(
                "recovery: replayed {} records; durable epoch {}; torn tail {}; superblock copy \
                 repaired {}",
                report.replayed,
                report.last_epoch.get(),
                if report.torn_tail { "dropped" } else { "none" },
                if report.superblock_repaired {
                    "yes"
                } else {
                    "no"
                },
            );
            if let Some(dropped) = report.dropped {
                println!(
                    "dropped at damage in {} at byte {} ({}): epochs {}..={}",
                    file_of(path, dropped.damage.file).display(),
                    dropped.damage.offset,
                    dropped.damage.what,
                    dropped.first.get(),
                    dropped.last.get()
                );
            }
        }
    }
    pipe.close().map_err(|e| format!("{}: {e}", path.display()))
}
