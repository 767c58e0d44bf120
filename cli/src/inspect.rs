//! `chunkpipe inspect`: what a data file and its journal hold, without changing them.

use std::path::{Path, PathBuf};

use chunkpipe_core::journal::inspect_journal;
use chunkpipe_core::{ChunkStore, Journal, Meta};
use chunkpipe_linux::FileStore;

/// Options of `chunkpipe inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The data file (its `.meta` and `.journal` are found beside it).
    path: PathBuf,
    /// Also check every journal record's payload checksum; fail if one is damaged.
    #[arg(long)]
    verify: bool,
}

/// Prints the report; an error for a missing or foreign file, or (with `--verify`) a damaged
/// journal record.
pub fn run(args: &InspectArgs) -> Result<(), String> {
    let path = &args.path;
    if !path.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    let meta_path = chunkpipe_posix::meta_path(path);
    let meta = std::fs::read(&meta_path).map_err(|e| format!("{}: {e}", meta_path.display()))?;
    let meta = Meta::decode(&meta).map_err(|e| format!("{}: {e}", meta_path.display()))?;
    let journal = match meta.journal {
        Journal::Off => "off",
        _ => "atomic",
    };
    println!(
        "meta: format 1, chunk_size {}, journal {journal}",
        meta.chunk_size
    );
    // Opening takes the same exclusive lock a running pipe holds: inspect a closed store.
    let data = FileStore::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = data.len().map_err(|e| e.to_string())?;
    let chunk = u64::from(meta.chunk_size);
    let fit = if len % chunk == 0 {
        "fits the metadata"
    } else {
        "NOT a whole number of chunks"
    };
    println!(
        "data: {}: {len} bytes, {} chunks of {chunk} ({fit})",
        path.display(),
        len / chunk
    );
    if meta.journal == Journal::Off {
        return Ok(());
    }
    inspect_journal_file(
        &chunkpipe_posix::journal_path(path),
        meta.chunk_size,
        len / chunk,
        args.verify,
    )
}

fn inspect_journal_file(
    path: &Path,
    chunk_size: u32,
    data_chunks: u64,
    verify: bool,
) -> Result<(), String> {
    if !path.is_file() {
        println!(
            "journal: {} is missing (created on the next open)",
            path.display()
        );
        return Ok(());
    }
    let journal = FileStore::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(report) =
        inspect_journal(&journal, chunk_size, data_chunks, verify).map_err(|e| e.to_string())?
    else {
        println!("journal: {}: not formatted yet", path.display());
        return Ok(());
    };
    let sb = report.superblock;
    println!(
        "journal: {}: {} bytes, superblock seq {}, checkpoint at epoch {}, records from byte {} \
         (lap {}, half {})",
        path.display(),
        sb.journal_len,
        sb.seq,
        sb.checkpoint.get(),
        sb.records_at,
        sb.lap,
        sb.lap % 2
    );
    let scan = report.scan;
    let range = if scan.records == 0 {
        "none".to_string()
    } else {
        format!(
            "epochs {}..={}",
            sb.checkpoint.get() + 1,
            scan.last_epoch.get()
        )
    };
    println!(
        "records after the checkpoint: {} ({range}; a reopen replays them)",
        scan.records
    );
    let checked = if verify {
        "headers and payload checksums"
    } else {
        "headers and header checksums"
    };
    if scan.torn_tail {
        println!(
            "tail: a torn or damaged record after epoch {}: recovery stops there (a crash tears only \
             the last record, which was never acknowledged; anything after it means damage)",
            scan.last_epoch.get()
        );
    } else {
        println!("tail: clean");
    }
    println!("checked: {checked}");
    if verify && scan.torn_tail {
        return Err("the journal ends in a torn or damaged record".into());
    }
    Ok(())
}
