//! `chunkpipe inspect` and `chunkpipe recover`, run as a user runs them: on an intact pipe, on
//! damaged files (every problem named with its file and offset, a failing exit), and without
//! ever changing what they look at.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chunkpipe_core::journal::format::{self, Superblock};
use chunkpipe_core::{Config, Epoch};

const CHUNK: usize = 4096;

fn chunkpipe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chunkpipe"))
        .args(args)
        .output()
        .expect("the chunkpipe binary runs")
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// The files of a pipe whose chunks 0..8 hold 1..=8, with records 9..=12 (chunks 8..12)
/// after its last checkpoint: copied from a running pipe (what a power loss would leave, the
/// in-place copies as they happened to be), next to it under `image/`. Returns the copy's path
/// and the running pipe.
fn pipe(dir: &Path) -> (PathBuf, chunkpipe_linux::FilePipe) {
    std::fs::create_dir(dir.join("live")).unwrap();
    std::fs::create_dir(dir.join("image")).unwrap();
    let live = dir.join("live/data");
    let config = Config::new()
        .with_initial_chunks(16)
        .with_staging_chunks(8)
        .with_journal_bytes(1 << 20)
        .with_flush_interval(std::time::Duration::from_secs(3600));
    let pipe = chunkpipe_linux::open(&live, config).unwrap();
    for i in 0..8u64 {
        pipe.write_durable(i, &[i as u8 + 1; CHUNK]).unwrap();
    }
    pipe.close().unwrap();
    let pipe = chunkpipe_linux::open(&live, config).unwrap();
    for i in 8..12u64 {
        pipe.write_durable(i, &[i as u8 + 1; CHUNK]).unwrap();
    }
    let image = dir.join("image/data");
    for (from, to) in [
        (live.clone(), image.clone()),
        (
            chunkpipe_posix::journal_path(&live),
            chunkpipe_posix::journal_path(&image),
        ),
        (
            chunkpipe_posix::meta_path(&live),
            chunkpipe_posix::meta_path(&image),
        ),
    ] {
        std::fs::copy(from, to).unwrap();
    }
    (image, pipe)
}

fn files(path: &Path) -> Vec<Vec<u8>> {
    let journal = chunkpipe_posix::journal_path(path);
    [
        path.to_path_buf(),
        journal,
        chunkpipe_posix::meta_path(path),
    ]
    .iter()
    .map(|p| std::fs::read(p).unwrap())
    .collect()
}

fn flip(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], offset).unwrap();
}

/// The offset of the record of `epoch` in the journal.
fn record_at(journal: &Path, epoch: u64) -> u64 {
    let image = std::fs::read(journal).unwrap();
    let copy = |n: usize| Superblock::decode(&image[n * 512..(n + 1) * 512]);
    let sb = Superblock::resolve([copy(0), copy(1)]).unwrap().unwrap().0;
    (format::RECORD_AREA_START..sb.journal_bytes)
        .step_by(512)
        .find(|&at| {
            format::decode_record_head(&image[at as usize..])
                .is_some_and(|h| h.id == sb.id && h.epoch == Epoch::new(epoch))
        })
        .expect("the record is there")
}

#[test]
fn an_intact_pipe_inspects_clean_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (path, live) = pipe(dir.path());
    let before = files(&path);
    let out = chunkpipe(&["inspect", path.to_str().unwrap(), "--verify"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("records after the checkpoint: 4"), "{said}");
    assert!(said.contains("problems: none"), "{said}");
    assert_eq!(files(&path), before, "inspect changed the files");
    // A pipe in use can be looked at too (read-only, without its lock), with a warning.
    let out = chunkpipe(&["inspect", dir.path().join("live/data").to_str().unwrap()]);
    assert!(
        text(&out).contains("is open in a running pipe"),
        "{}",
        text(&out)
    );
    live.close().unwrap();
}

#[test]
fn damage_is_named_by_file_and_offset_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _live) = pipe(dir.path());
    let journal = chunkpipe_posix::journal_path(&path);
    let at = record_at(&journal, 10);
    flip(&journal, at + 600);
    flip(&path, 2 * CHUNK as u64 + 7);
    let before = files(&path);
    let out = chunkpipe(&["inspect", path.to_str().unwrap(), "--verify"]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    let journal_line = format!("{} at byte {at}:", journal.display());
    assert!(said.contains(&journal_line), "{said}");
    let data_line = format!("{} at byte {} (chunk 2)", path.display(), 2 * CHUNK);
    assert!(said.contains(&data_line), "{said}");
    assert!(said.contains("would drop epochs 10..=12"), "{said}");
    assert_eq!(files(&path), before, "inspect changed the files");
}

#[test]
fn missing_or_short_files_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _live) = pipe(dir.path());
    let journal = chunkpipe_posix::journal_path(&path);
    std::fs::File::options()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len(600)
        .unwrap();
    let out = chunkpipe(&["inspect", path.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    std::fs::remove_file(&journal).unwrap();
    let out = chunkpipe(&["inspect", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("missing"), "{}", text(&out));
    let out = chunkpipe(&["inspect", dir.path().join("nothing").to_str().unwrap()]);
    assert!(!out.status.success());
}

#[test]
fn recover_refuses_damage_unless_asked_and_then_reports_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _live) = pipe(dir.path());
    let journal = chunkpipe_posix::journal_path(&path);
    let at = record_at(&journal, 10);
    flip(&journal, at + 600);
    let out = chunkpipe(&["recover", path.to_str().unwrap()]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains(&format!("at byte {at}")), "{said}");
    let out = chunkpipe(&["recover", path.to_str().unwrap(), "--point-in-time"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("epochs 10..=12"), "{said}");
    let out = chunkpipe(&["inspect", path.to_str().unwrap(), "--verify"]);
    assert!(
        out.status.success(),
        "after the lossy recovery the pipe is whole: {}",
        text(&out)
    );
}
