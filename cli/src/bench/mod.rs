//! `chunkpipe bench`: the benchmark workloads on a real file, chunkpipe and its peers
//! interleaved row by row so that the ratios hold on a noisy machine: each ratio pairs rows of
//! the same run, seconds apart, and every row reports the CPU time a hypervisor took (`steal%`)
//! and what the device wrote (`dev MB/s`: a bulk row's bound).

#[cfg(feature = "frozen-core")]
mod frozen;
#[cfg(feature = "okaywal")]
mod okaywal;
mod report;
mod sys;
mod targets;
mod workloads;

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use sys::DeviceCounters;
use targets::Implementation;
use workloads::{Pattern, RowResult, W2_CHUNKS_PER_WRITE, Workload};

/// Options of `chunkpipe bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// About 1 s per row, one run, 256 MiB W2 and W3 files: the whole table in under a minute.
    #[arg(long)]
    quick: bool,
    /// Directory for the data files (default: a new temp dir). Its device decides the numbers.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds measured per row, more than 0 and at most 3600 (default 5, or 1 with --quick).
    #[arg(long, value_parser = parse_secs)]
    secs: Option<f64>,
    /// Runs of every row, at least 1; the table shows the median run (default 3, or 1 with
    /// --quick).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    runs: Option<u16>,
    /// Workloads to run.
    #[arg(long, value_delimiter = ',', value_parser = ["w1", "w2", "w3", "w4", "w5"],
        default_values_t = ["w1", "w2", "w3", "w4", "w5"].map(String::from))]
    workloads: Vec<String>,
    /// Implementations to run, by their names in the table (e.g. `naive,chunkpipe/atomic`);
    /// default: all built in.
    #[arg(long, value_delimiter = ',')]
    impls: Vec<String>,
    /// Size of each implementation's W2 file in MiB, at least 1; W2 writes wrap around it
    /// (default 1024, or 256 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    w2_file_mib: Option<u64>,
    /// Size of the W3 file in MiB, at least 1 (default 1024, or 256 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    w3_file_mib: Option<u64>,
    /// Print the results as JSON on stdout (progress and notes go to stderr).
    #[arg(long)]
    json: bool,
    /// Draw W1 throughput against thread count for every implementation into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// W1 threads cycle over 64 chunks each and W4 draws from a 4 MiB file, instead of sweeping
    /// a 256 MiB file (the pattern the targets are set for).
    #[arg(long)]
    hot: bool,
}

const CHUNK_SIZE: usize = 4096;
const W1_THREADS: [usize; 3] = [1, 4, 16];
const W3_THREADS: [usize; 2] = [1, 2];
const W4_THREADS: [usize; 2] = [1, 4];
const W5_THREADS: usize = 4;

/// One row of the table: a workload at a thread count.
#[derive(Clone, Copy)]
struct RowSpec {
    workload: Workload,
    threads: usize,
}

/// `--secs`: a finite number of seconds in (0, 3600].
fn parse_secs(text: &str) -> Result<f64, String> {
    let secs: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if secs.is_finite() && secs > 0.0 && secs <= 3600.0 {
        Ok(secs)
    } else {
        Err("expected seconds in (0, 3600]".into())
    }
}

/// Runs the bench and prints the table. A failed run in `--dir` removes the files it made there.
pub fn run(args: &BenchArgs) -> Result<(), String> {
    let selected = select_implementations(&args.impls)?;
    let temp;
    let dir = match &args.dir {
        Some(dir) => {
            let is_dir = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            if !is_dir.is_dir() {
                return Err(format!("{}: not a directory", dir.display()));
            }
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("chunkpipe-bench")
                .tempdir()
                .map_err(|e| format!("{}: {e}", std::env::temp_dir().display()))?;
            temp.path().to_path_buf()
        }
    };
    let result = run_in(args, &dir, &selected);
    if result.is_err() && args.dir.is_some() {
        remove_bench_files(&dir);
    }
    result
}

/// Removes what a run makes in `dir`: its data files, their `.meta` and `.journal`, the okaywal
/// peer's logs, the probe and idle files.
fn remove_bench_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let ours = |name: &str| {
        ["small-", "w2-", "w3-", "probe.dat", "idle.dat"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !ours(&name.to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

fn run_in(args: &BenchArgs, dir: &Path, selected: &[Implementation]) -> Result<(), String> {
    let dir = dir.to_path_buf();
    let measure = Duration::from_secs_f64(args.secs.unwrap_or(if args.quick { 1.0 } else { 5.0 }));
    let runs = usize::from(args.runs.unwrap_or(if args.quick { 1 } else { 3 }));
    let warmup = Duration::from_millis(if args.quick { 150 } else { 500 });
    // With --json, stdout carries the JSON alone.
    let note = |line: String| {
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let pattern = if args.hot {
        Pattern::Hot
    } else {
        Pattern::Sweep
    };
    describe_setup(&note, &dir, (measure, runs), pattern)?;
    let specs = plan_rows(&args.workloads);
    let files = Files::prepare(&dir, &specs, selected, file_mib(args), pattern)?;
    let summaries = run_rows(
        &specs,
        selected,
        &files,
        runs,
        (warmup, measure),
        &DeviceCounters::for_dir(&dir),
    )?;
    if args.json {
        let json = serde_json::to_string_pretty(&summaries).map_err(|e| e.to_string())?;
        println!("{json}");
    } else {
        print_tables(&specs, &summaries);
    }
    if let Some(line) = report::busy_host_note(&summaries, BUSY_HOST_STEAL) {
        note(line);
    }
    note(format!(
        "idle pipe (Journal::Atomic, its background thread): {:.2} % of a core",
        idle_cpu_percent(&dir, measure)?
    ));
    if let Some(path) = &args.plot {
        report::plot_w1(&summaries, path)?;
        note(format!("W1 plot: {}", path.display()));
    }
    Ok(())
}

/// Notes what the run measures and how quiet the machine is.
fn describe_setup(
    note: &dyn Fn(String),
    dir: &Path,
    (measure, runs): (Duration, usize),
    pattern: Pattern,
) -> Result<(), String> {
    note(format!(
        "chunkpipe bench: {} s per row, {runs} run(s), files in {}",
        measure.as_secs_f64(),
        dir.display()
    ));
    if sys::is_tmpfs(dir) {
        note(format!(
            "warning: {} is on tmpfs, where fdatasync is free; pass --dir on a real disk",
            dir.display()
        ));
    }
    note(format!(
        "machine: load {:.2}, 4 KiB pwrite+fdatasync p50 {:.0} µs (quiet here: ~125 µs)",
        sys::load_average(),
        probe_sync_us(dir)?
    ));
    let mib = (pattern.small_file_chunks() * CHUNK_SIZE as u64) >> 20;
    note(match pattern {
        Pattern::Sweep => {
            format!("W1, W4 and W5 on a {mib} MiB file: each W1 thread sweeps its own slice")
        }
        Pattern::Hot => format!(
            "W1, W4 and W5 on a {mib} MiB file (--hot): each W1 thread cycles over its own 64 chunks"
        ),
    });
    Ok(())
}

/// Steal (per cent of the machine's CPU time) from which a median run is called out as run on a
/// busy host: on the development VM, W2 rows at 17 % steal and more ran 20–30 % slower than
/// rows at 2 % and less.
const BUSY_HOST_STEAL: f64 = 10.0;

/// The W2 and W3 file sizes in MiB: the workloads' 1 GiB, or a quarter of it with `--quick`
/// (writing, warming and closing 1 GiB files took a quarter of the quick run).
fn file_mib(args: &BenchArgs) -> (u64, u64) {
    let default = if args.quick { 256 } else { 1024 };
    (
        args.w2_file_mib.unwrap_or(default),
        args.w3_file_mib.unwrap_or(default),
    )
}

/// Prints one table per row spec.
fn print_tables(specs: &[RowSpec], summaries: &[report::Summary]) {
    for spec in specs {
        let label = spec.workload.label(spec.threads);
        let rows: Vec<_> = summaries
            .iter()
            .filter(|s| s.row == label)
            .cloned()
            .collect();
        print!("{}", report::table(&rows));
    }
}

/// The rows the selected workloads make, in table order.
fn plan_rows(workloads: &[String]) -> Vec<RowSpec> {
    let wants = |name: &str| workloads.iter().any(|w| w.eq_ignore_ascii_case(name));
    let mut specs = Vec::new();
    if wants("w1") {
        specs.extend(W1_THREADS.map(|threads| RowSpec {
            workload: Workload::W1,
            threads,
        }));
    }
    if wants("w2") {
        specs.push(RowSpec {
            workload: Workload::W2,
            threads: 1,
        });
    }
    if wants("w3") {
        for chunks in [1, 4] {
            specs.extend(W3_THREADS.map(|threads| RowSpec {
                workload: Workload::W3 { chunks },
                threads,
            }));
        }
    }
    if wants("w4") {
        specs.extend(W4_THREADS.map(|threads| RowSpec {
            workload: Workload::W4,
            threads,
        }));
    }
    if wants("w5") {
        specs.push(RowSpec {
            workload: Workload::W5,
            threads: W5_THREADS,
        });
    }
    specs
}

/// The implementations `names` select (all built in when empty).
fn select_implementations(names: &[String]) -> Result<Vec<Implementation>, String> {
    let all = Implementation::all();
    if names.is_empty() {
        return Ok(all);
    }
    if let Some(unknown) = names
        .iter()
        .find(|n| !all.iter().any(|i| i.name().eq_ignore_ascii_case(n)))
    {
        let known: Vec<_> = all.iter().map(|i| i.name()).collect();
        return Err(format!(
            "unknown implementation {unknown:?} (built in: {})",
            known.join(", ")
        ));
    }
    Ok(all
        .into_iter()
        .filter(|i| names.iter().any(|n| i.name().eq_ignore_ascii_case(n)))
        .collect())
}

/// Runs every row `runs` times, implementations interleaved (in an order that changes from run to
/// run), and returns the table.
fn run_rows(
    specs: &[RowSpec],
    selected: &[Implementation],
    files: &Files,
    runs: usize,
    windows: (Duration, Duration),
    device: &DeviceCounters,
) -> Result<Vec<report::Summary>, String> {
    let rows: usize = specs
        .iter()
        .map(|s| implementations(s.workload, selected).len())
        .sum();
    let bar = ProgressBar::new((rows * runs) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {msg}")
            .map_err(|e| e.to_string())?,
    );
    let mut summaries = Vec::new();
    for spec in specs {
        let mut by_impl: Vec<(Implementation, Vec<Measured>)> =
            implementations(spec.workload, selected)
                .iter()
                .map(|&i| (i, Vec::new()))
                .collect();
        if matches!(spec.workload, Workload::W3 { .. }) {
            files.warm_w3(&implementations(spec.workload, selected), spec.workload)?;
        }
        for run in 0..runs {
            // Each run starts one implementation later and every other run goes backwards, so
            // no implementation always runs first or after the same one (a row can leave the
            // disk busy for the row after it).
            let count = by_impl.len();
            for turn in 0..count {
                let step = if run % 2 == 0 { turn } else { count - 1 - turn };
                let (implementation, results) = &mut by_impl[(run + step) % count];
                bar.set_message(format!(
                    "{} — {}",
                    spec.workload.label(spec.threads),
                    implementation.name()
                ));
                results.push(measure_row(*implementation, *spec, files, windows, device)?);
                bar.inc(1);
            }
        }
        summaries.extend(report::summarize(spec.workload, spec.threads, &by_impl));
    }
    bar.finish_and_clear();
    Ok(summaries)
}

/// The implementations a workload compares: those selected that run it. (`Journal::Atomic`
/// reads check every chunk against its checksum, `Journal::Off` reads do not, so W3 measures
/// both.)
fn implementations(workload: Workload, selected: &[Implementation]) -> Vec<Implementation> {
    selected
        .iter()
        .copied()
        .filter(|i| i.runs(workload))
        .collect()
}

/// A row's result with the target's own counters.
struct Measured {
    result: RowResult,
    /// Peak RSS of the process during this run (reset before it).
    peak_rss_mib: f64,
    /// Operations per sync, where the target batches.
    ops_per_sync: Option<f64>,
    /// Bytes written to storage per byte written, where the target counts them.
    write_amplification: Option<f64>,
}

fn measure_row(
    implementation: Implementation,
    spec: RowSpec,
    files: &Files,
    windows: (Duration, Duration),
    device: &DeviceCounters,
) -> Result<Measured, String> {
    let (path, chunks) = files.for_row(implementation, spec.workload);
    sys::reset_peak_rss();
    let target = implementation.open(&path, CHUNK_SIZE as u32, chunks)?;
    let result = workloads::run(
        &*target,
        (spec.workload, files.pattern),
        spec.threads,
        windows,
        (CHUNK_SIZE, chunks),
        device,
    )?;
    let ops_per_sync = target
        .chunks_per_sync()
        .map(|chunks| chunks / spec.workload.chunks_per_op().max(1) as f64);
    Ok(Measured {
        result,
        peak_rss_mib: sys::peak_rss_mib(),
        ops_per_sync,
        write_amplification: target.write_amplification(),
    })
}

/// The data files, per implementation (each journal mode keeps its own `.meta` and journal):
/// one small file for W1, W4 and W5, one large file for W2 and one for W3.
struct Files {
    dir: PathBuf,
    pattern: Pattern,
    w2_chunks: u64,
    w3_chunks: u64,
}

impl Files {
    fn prepare(
        dir: &Path,
        specs: &[RowSpec],
        selected: &[Implementation],
        (w2_file_mib, w3_file_mib): (u64, u64),
        pattern: Pattern,
    ) -> Result<Self, String> {
        let chunks_per_mib = 1024 * 1024 / CHUNK_SIZE as u64;
        let files = Files {
            dir: dir.to_path_buf(),
            pattern,
            w2_chunks: (w2_file_mib * chunks_per_mib).max(W2_CHUNKS_PER_WRITE),
            w3_chunks: (w3_file_mib * chunks_per_mib).max(4),
        };
        let mut prepared = Vec::new();
        for spec in specs {
            for implementation in implementations(spec.workload, selected) {
                let (path, chunks) = files.for_row(implementation, spec.workload);
                if implementation.needs_data_file() && !prepared.contains(&path) {
                    write_file_once(&path, chunks)?;
                    prepared.push(path);
                }
            }
        }
        Ok(files)
    }

    fn for_row(&self, implementation: Implementation, workload: Workload) -> (PathBuf, u64) {
        let own = |kind: &str| format!("{kind}-{}.dat", implementation.name().replace('/', "-"));
        match workload {
            Workload::W1 | Workload::W4 | Workload::W5 => (
                self.dir.join(own("small")),
                self.pattern.small_file_chunks(),
            ),
            Workload::W2 => (self.dir.join(own("w2")), self.w2_chunks),
            Workload::W3 { .. } => (self.dir.join(own("w3")), self.w3_chunks),
        }
    }

    /// Reads the W3 files of `implementations` once so that their pages are in the cache right
    /// before read rows.
    fn warm_w3(
        &self,
        implementations: &[Implementation],
        workload: Workload,
    ) -> Result<(), String> {
        for &implementation in implementations {
            let (path, _) = self.for_row(implementation, workload);
            let mut file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            std::io::copy(&mut file, &mut std::io::sink())
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// Creates `path` with `chunks` chunks of non-zero data, written once and synced, so that timed
/// overwrites change no extents.
fn write_file_once(path: &Path, chunks: u64) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = File::create(path).map_err(failed)?;
    let block = vec![0xA5u8; 1 << 20];
    let mut left = chunks * CHUNK_SIZE as u64;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).map_err(failed)?;
        left -= n as u64;
    }
    file.sync_all().map_err(failed)
}

/// CPU the process spends over `window` while a pipe sits idle (after one write and its idle
/// checkpoint), in per cent of one core. Nothing else runs meanwhile.
fn idle_cpu_percent(dir: &Path, window: Duration) -> Result<f64, String> {
    let path = dir.join("idle.dat");
    let config = chunkpipe_core::Config::new()
        .with_chunk_size(CHUNK_SIZE as u32)
        .with_initial_chunks(16);
    let failed = |e: chunkpipe_core::Error| format!("{}: {e}", path.display());
    let pipe = chunkpipe_linux::open(&path, config).map_err(failed)?;
    pipe.write_durable(0, &[1; CHUNK_SIZE]).map_err(failed)?;
    std::thread::sleep(Duration::from_millis(200));
    let (cpu_before, began) = (sys::cpu_time_ns(), std::time::Instant::now());
    std::thread::sleep(window);
    let cpu = sys::cpu_time_ns().saturating_sub(cpu_before) as f64;
    let percent = cpu / began.elapsed().as_nanos() as f64 * 100.0;
    pipe.close().map_err(failed)?;
    Ok(percent)
}

/// Median microseconds of 200 × (4 KiB pwrite + fdatasync) in `dir`: is the machine quiet?
fn probe_sync_us(dir: &Path) -> Result<f64, String> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("probe.dat");
    write_file_once(&path, 1)?;
    let failed = |e: std::io::Error| format!("{}: {e}", path.display());
    let file = File::options().write(true).open(&path).map_err(failed)?;
    let mut samples: Vec<Duration> = (0..200)
        .map(|i| {
            let began = std::time::Instant::now();
            file.write_all_at(&[i as u8; CHUNK_SIZE], 0)
                .and_then(|()| file.sync_data())
                .map(|()| began.elapsed())
        })
        .collect::<Result<_, _>>()
        .map_err(failed)?;
    samples.sort_unstable();
    let _ = std::fs::remove_file(&path);
    Ok(samples[samples.len() / 2].as_secs_f64() * 1e6)
}
