//! The `chunkpipe` binary run with input a user gets wrong: every case is a clear error and a
//! failing exit, never a panic, and never a run that does nothing and succeeds.
#![cfg(target_os = "linux")]

use std::process::{Command, Output, Stdio};

fn chunkpipe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chunkpipe"))
        .args(args)
        .output()
        .expect("the chunkpipe binary runs")
}

/// `args` fail with an error that mentions `expected` (and no panic).
fn refused(args: &[&str], expected: &str) {
    let output = chunkpipe(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} succeeded: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
}

#[test]
fn bench_numbers_that_would_run_nothing_or_forever_are_refused() {
    for secs in ["-1", "0", "NaN", "inf", "1e30", "x"] {
        refused(&["bench", &format!("--secs={secs}")], "--secs");
    }
    refused(&["bench", "--runs", "0"], "--runs");
    refused(&["bench", "--workloads", "w9"], "w9");
    refused(&["bench", "--w2-file-mib", "0"], "--w2-file-mib");
    refused(&["bench", "--w3-file-mib", "0"], "--w3-file-mib");
    refused(&["bench", "--impls", "nobody"], "nobody");
}

#[test]
fn a_bench_dir_that_is_not_there_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    refused(&["bench", "--quick", "--dir", missing], missing);
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let file = file.to_str().unwrap();
    refused(&["bench", "--quick", "--dir", file], "not a directory");
}

#[test]
fn sim_numbers_that_would_run_nothing_or_overflow_are_refused() {
    refused(&["sim", "--seed", "18446744073709551615"], "--seed");
    refused(&["sim", "--seeds", "5..5"], "empty");
    refused(&["sim", "--seeds", "9..3"], "empty");
    refused(&["sim", "--jobs", "0"], "--jobs");
    refused(&["sim", "--steps", "0"], "--steps");
}

/// A run that fails after it made its files in `--dir` removes them (here the pipe's metadata
/// was planted damaged, so opening it fails).
#[test]
fn a_failed_bench_run_removes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("small-chunkpipe-atomic.dat.meta"),
        b"damaged",
    )
    .unwrap();
    let args = [
        "bench",
        "--hot",
        "--workloads",
        "w1",
        "--impls",
        "chunkpipe/atomic",
        "--secs",
        "0.1",
        "--runs",
        "1",
        "--dir",
    ];
    let output = chunkpipe(&[&args[..], &[dir.path().to_str().unwrap()]].concat());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(
        stderr.contains("small-chunkpipe-atomic.dat"),
        "names the file: {stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn inspect_of_nothing_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing");
    refused(&["inspect", path.to_str().unwrap()], "nothing.meta");
}

/// Output into a closed pipe (`chunkpipe inspect FILE | head -1`) ends the process quietly.
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let config = chunkpipe_core::Config::new()
        .with_initial_chunks(16)
        .with_journal_bytes(1 << 20)
        .with_staging_chunks(16);
    chunkpipe_linux::open(&path, config)
        .unwrap()
        .close()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chunkpipe"))
        .args(["inspect", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let quiet = output.status.success() || output.status.signal() == Some(libc::SIGPIPE);
    assert!(quiet, "{:?}: {stderr}", output.status);
}
