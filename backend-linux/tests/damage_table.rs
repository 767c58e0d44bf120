//! Damage to a pipe's files, end to end, as a user meets it: a process makes 32 acknowledged
//! writes through `chunkpipe_linux::open` and exits without closing; the data file's in-place
//! copies are lost (as a power loss would lose them: only the journal holds the writes); then
//! the files are damaged one way or another and the pipe is reopened. Every row must end in an
//! error naming the damaged file — or open with all 32 writes. Never open with fewer.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;

use chunkpipe_core::journal::format::{self, SUPERBLOCK_BYTES, Superblock};
use chunkpipe_core::{Epoch, Recovery, StoreRole};
use chunkpipe_linux::{Config, Error};

const CHUNK: usize = 4096;
const WRITES: u64 = 32;
const CHILD: &str = "CHUNKPIPE_DAMAGE_TABLE_CHILD";

fn config() -> Config {
    Config::new()
        .with_initial_chunks(64)
        .with_staging_chunks(64)
        .with_journal_bytes(4 << 20)
        .with_flush_interval(std::time::Duration::from_secs(3600))
}

fn chunk(value: u64) -> Vec<u8> {
    let mut bytes = vec![value as u8; CHUNK];
    bytes[..8].copy_from_slice(&value.to_le_bytes());
    bytes
}

/// The child process's part, run by [`scenario`] (ignored otherwise): 32 acknowledged writes,
/// then exit without closing (no checkpoint).
#[test]
#[ignore = "the child process of the other tests"]
fn child_writes_and_exits_without_closing() {
    let path = std::env::var(CHILD).expect("run as the child of a damage test");
    let pipe = chunkpipe_linux::open(Path::new(&path), config()).unwrap();
    for i in 0..WRITES {
        pipe.write_durable(i, &chunk(i + 1)).unwrap();
    }
    std::process::exit(0);
}

/// A pipe at a fresh path holding the 32 writes in its journal alone.
fn scenario(dir: &Path) -> PathBuf {
    let path = dir.join("data");
    chunkpipe_linux::open(&path, config())
        .unwrap()
        .close()
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writes_and_exits_without_closing",
            "--ignored",
        ])
        .env(CHILD, &path)
        .status()
        .unwrap();
    assert!(status.success());
    // The power loss: the in-place copies never reached the disk.
    std::fs::write(&path, before).unwrap();
    path
}

fn journal(path: &Path) -> PathBuf {
    chunkpipe_posix::journal_path(path)
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

fn flip(path: &Path, offset: u64, len: usize) {
    let image = std::fs::read(path).unwrap();
    let at = offset as usize;
    let flipped: Vec<u8> = image[at..at + len].iter().map(|b| b ^ 0xA5).collect();
    patch(path, offset, &flipped);
}

/// The offset of the record of `epoch` (headers only, as the format documents).
fn record_at(path: &Path, epoch: u64) -> (u64, u64) {
    let image = std::fs::read(journal(path)).unwrap();
    let copy = |n: usize| Superblock::decode(&image[n * 512..(n + 1) * 512]);
    let sb = Superblock::resolve([copy(0), copy(1)]).unwrap().unwrap().0;
    let mut at = format::RECORD_AREA_START;
    while at < sb.journal_bytes {
        if let Some(head) = format::decode_record_head(&image[at as usize..]) {
            if head.id == sb.id && head.epoch == Epoch::new(epoch) && head.lap == sb.lap {
                return (
                    at,
                    format::record_bytes(u64::from(head.chunks), CHUNK as u64),
                );
            }
        }
        at += 512;
    }
    panic!("no record of epoch {epoch}");
}

/// Reopens and says what happened: an error, or how many acknowledged writes are there.
fn reopen(path: &Path, config: Config) -> Result<u64, Error> {
    let pipe = chunkpipe_linux::open(path, config)?;
    let bytes = pipe.read(0, WRITES)?;
    let found = (bytes.chunks(CHUNK).zip(1..))
        .filter(|(c, want)| u64::from_le_bytes(c[..8].try_into().unwrap()) == *want)
        .count() as u64;
    pipe.close()?;
    Ok(found)
}

fn row(what: &str, damage: impl FnOnce(&Path), expect_damage_in: Option<StoreRole>) {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path());
    damage(&path);
    let outcome = reopen(&path, config());
    println!("| {what} | {outcome:?} |");
    match (outcome, expect_damage_in) {
        (Ok(found), None) => assert_eq!(found, WRITES, "{what}: opened with fewer"),
        (Err(Error::Corrupt(damage)), Some(file)) => assert_eq!(damage.file, file, "{what}"),
        (other, _) => panic!("{what}: {other:?}"),
    }
}

#[test]
fn every_row_of_the_damage_table_is_refused_or_whole() {
    row("nothing (control)", |_| {}, None);
    row(
        "both superblock copies: two bytes flipped",
        |p| {
            flip(&journal(p), 20, 2);
            flip(&journal(p), SUPERBLOCK_BYTES + 20, 2);
        },
        Some(StoreRole::Journal),
    );
    row(
        "the journal zeroed",
        |p| {
            let len = std::fs::metadata(journal(p)).unwrap().len();
            patch(&journal(p), 0, &vec![0; len as usize]);
        },
        Some(StoreRole::Journal),
    );
    row(
        "the journal cut below 1 KiB",
        |p| {
            std::fs::File::options()
                .write(true)
                .open(journal(p))
                .unwrap()
                .set_len(700)
                .unwrap()
        },
        Some(StoreRole::Journal),
    );
    row(
        "the journal deleted",
        |p| std::fs::remove_file(journal(p)).unwrap(),
        Some(StoreRole::Journal),
    );
    for copy in 0..2 {
        row(
            &format!("superblock copy {copy}: magic damaged, the other intact"),
            |p| patch(&journal(p), copy * SUPERBLOCK_BYTES, b"XXXX"),
            None,
        );
    }
    row(
        "4 bytes of record 17's header (18..=32 intact)",
        |p| flip(&journal(p), record_at(p, 17).0 + 8, 4),
        Some(StoreRole::Journal),
    );
    row(
        "4 bytes of record 17's payload (18..=32 intact)",
        |p| {
            let (at, len) = record_at(p, 17);
            flip(&journal(p), at + len - 4, 4);
        },
        Some(StoreRole::Journal),
    );
    row(
        "the data file cut to 2 of its 64 chunks",
        |p| {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(2 * CHUNK as u64)
                .unwrap()
        },
        Some(StoreRole::Data),
    );
}

/// Where damage is refused, `Recovery::PointInTime` opens anyway and says exactly which epochs
/// it dropped: records 17 to 32, after 1 to 16 were replayed.
#[test]
fn point_in_time_recovery_reports_the_epochs_it_drops() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path());
    let (at, _) = record_at(&path, 17);
    flip(&journal(&path), at + 8, 4);
    let lossy = config().with_recovery(Recovery::PointInTime);
    let pipe = chunkpipe_linux::open(&path, lossy).unwrap();
    let report = pipe.recovery().unwrap();
    let dropped = report.dropped.unwrap();
    assert_eq!(
        (dropped.first, dropped.last),
        (Epoch::new(17), Epoch::new(32))
    );
    assert_eq!(
        (dropped.damage.file, dropped.damage.offset),
        (StoreRole::Journal, at)
    );
    assert_eq!(report.replayed, 16);
    let next = pipe.write_durable(40, &chunk(40)).unwrap();
    assert!(
        next > Epoch::new(32),
        "epochs continue after the dropped ones"
    );
    pipe.close().unwrap();
}
