//! The bench's results: one summary per implementation and row, printed as a table, as JSON
//! (`--json`), or drawn (`--plot`: W1 throughput against threads).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::Measured;
use super::targets::Implementation;
use super::workloads::{self, Workload};

/// One implementation's median run of one row, with its ratios to the peers.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The row's label.
    pub row: String,
    /// `w1` … `w5`.
    pub workload: &'static str,
    /// Threads.
    pub threads: usize,
    /// Implementation name.
    pub implementation: &'static str,
    /// Throughput unit (`ops/s` or `MB/s`).
    pub unit: &'static str,
    /// Median throughput, and the slowest and fastest run.
    pub throughput: f64,
    pub throughput_min: f64,
    pub throughput_max: f64,
    /// Latency quantiles in µs (W5: reads only).
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// The slowest operation, in µs.
    pub max_us: f64,
    /// Process CPU per operation.
    pub cpu_us_per_op: f64,
    /// Operations per sync, where known.
    pub ops_per_sync: Option<f64>,
    /// Operations per device flush (Linux diskstats), where readable.
    pub ops_per_device_flush: Option<f64>,
    /// Bytes written per byte published, where counted.
    pub write_amplification: Option<f64>,
    /// MB/s the device under `--dir` wrote during the median run (writing rows, Linux): what
    /// bounds a bulk workload, whoever's bytes they are.
    pub device_write_mb_per_s: Option<f64>,
    /// Peak RSS during the row.
    pub peak_rss_mib: f64,
    /// Share of the machine's CPU time the hypervisor took during the median run, in per cent
    /// (`/proc/stat` steal): a row run while the host was busy is slow for reasons outside it.
    pub host_steal_percent: Option<f64>,
    /// Throughput over the naive peer's: the median over runs of the ratio within one run
    /// (rows of one run are seconds apart, so each ratio compares rows that met the same host).
    pub ratio_to_naive: Option<f64>,
    /// Throughput over each optional peer's that ran (feature `frozen-core`: the best flush
    /// duration's; feature `okaywal`: both forms), paired by run likewise.
    pub ratios_to_peers: Vec<PeerRatio>,
}

/// Throughput over one peer's.
#[derive(Clone, Debug, Serialize)]
pub struct PeerRatio {
    /// The peer: `frozen-core`, `okaywal` or `okaywal-applied`.
    pub peer: &'static str,
    /// The paired ratio.
    pub ratio: f64,
}

/// Each optional peer's throughput per run (the best frozen-core flush duration's in each run).
fn peer_runs(
    by_impl: &[(Implementation, Vec<Measured>)],
    per_run: impl Fn(&[Measured]) -> Vec<f64>,
) -> Vec<(&'static str, Vec<f64>)> {
    let best_frozen = (by_impl.iter())
        .filter(|(i, _)| i.is_frozen_core())
        .map(|(_, runs)| per_run(runs))
        .reduce(|best, next| best.iter().zip(&next).map(|(a, b)| a.max(*b)).collect());
    let okaywal = by_impl
        .iter()
        .filter(|(i, _)| matches!(i, Implementation::OkayWal { .. }))
        .map(|(i, runs)| (i.name(), per_run(runs)));
    best_frozen
        .map(|runs| ("frozen-core", runs))
        .into_iter()
        .chain(okaywal)
        .collect()
}

/// Summarizes one row: each implementation's median run (by throughput), and its ratios to the
/// peers paired by run.
pub fn summarize(
    workload: Workload,
    threads: usize,
    by_impl: &[(Implementation, Vec<Measured>)],
) -> Vec<Summary> {
    let (unit, per_op) = workload.throughput_unit();
    let per_run = |runs: &[Measured]| -> Vec<f64> {
        runs.iter()
            .map(|m| m.result.ops_per_sec() * per_op)
            .collect()
    };
    let naive_runs = (by_impl.iter())
        .find(|(i, _)| *i == Implementation::Naive)
        .map(|(_, runs)| per_run(runs));
    let peers = peer_runs(by_impl, per_run);
    let mut rows = Vec::new();
    for (implementation, runs) in by_impl {
        let own_runs = per_run(runs);
        let mut sorted: Vec<&Measured> = runs.iter().collect();
        sorted.sort_by(|a, b| a.result.ops_per_sec().total_cmp(&b.result.ops_per_sec()));
        let median = sorted[sorted.len() / 2];
        let r = &median.result;
        let throughput = r.ops_per_sec() * per_op;
        let us = |q: f64| r.latency_ns.value_at_quantile(q) as f64 / 1000.0;
        let naive_per_sync = (*implementation == Implementation::Naive)
            .then(|| naive_ops_per_sync(workload))
            .flatten();
        rows.push(Summary {
            row: workload.label(threads),
            workload: workload.key(),
            threads,
            implementation: implementation.name(),
            unit,
            throughput,
            throughput_min: sorted[0].result.ops_per_sec() * per_op,
            throughput_max: sorted[sorted.len() - 1].result.ops_per_sec() * per_op,
            p50_us: us(0.5),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: r.latency_ns.max() as f64 / 1000.0,
            cpu_us_per_op: r.cpu_us as f64 / r.ops.max(1) as f64,
            ops_per_sync: median.ops_per_sync.or(naive_per_sync),
            ops_per_device_flush: (r.device_flushes)
                .filter(|&f| f > 0 && workload.writes())
                .map(|f| r.ops as f64 / f as f64),
            write_amplification: median.write_amplification,
            device_write_mb_per_s: (r.device_bytes_written)
                .filter(|_| workload.writes())
                .map(|bytes| bytes as f64 / 1e6 / r.elapsed.as_secs_f64()),
            peak_rss_mib: median.peak_rss_mib,
            host_steal_percent: r.steal_percent,
            ratio_to_naive: naive_runs.as_deref().map(|n| paired_ratio(&own_runs, n)),
            ratios_to_peers: (peers.iter())
                .filter(|(peer, _)| *peer != implementation.name())
                .map(|(peer, runs)| PeerRatio {
                    peer,
                    ratio: paired_ratio(&own_runs, runs),
                })
                .collect(),
        });
    }
    rows
}

/// One line on the median runs that had at least `threshold` per cent steal, if any: how many,
/// and the worst (the `steal%` column has them all).
pub fn busy_host_note(rows: &[Summary], threshold: f64) -> Option<String> {
    let steal = |s: &Summary| s.host_steal_percent.unwrap_or_default();
    let busy: Vec<&Summary> = rows.iter().filter(|s| steal(s) >= threshold).collect();
    let worst = busy.iter().max_by(|a, b| steal(a).total_cmp(&steal(b)))?;
    Some(format!(
        "busy host: the hypervisor took {threshold:.0} % of the CPU time or more in {} of {} \
         median runs (worst: {:.0} %, {} — {}); their figures may not hold on a quiet host",
        busy.len(),
        rows.len(),
        steal(worst),
        worst.row,
        worst.implementation,
    ))
}

/// The median over runs of `own[k] / peer[k]` (run `k` of both; the upper median of an even
/// count, like the median run).
fn paired_ratio(own: &[f64], peer: &[f64]) -> f64 {
    let mut ratios: Vec<f64> = own.iter().zip(peer).map(|(a, b)| a / b).collect();
    ratios.sort_by(f64::total_cmp);
    ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Operations per `sync_data` of the naive peer: one per durable operation, except W2 (one
/// sync covers a group of writes) and W5 (reads and unsynced writes between syncs).
fn naive_ops_per_sync(workload: Workload) -> Option<f64> {
    match workload {
        Workload::W2 => Some(workloads::W2_WRITES_PER_SYNC as f64),
        Workload::W3 { .. } | Workload::W5 => None,
        _ => Some(1.0),
    }
}

/// The rows of one workload-and-threads row as a table.
pub fn table(rows: &[Summary]) -> String {
    let mut out = String::new();
    let Some(first) = rows.first() else {
        return out;
    };
    let _ = writeln!(out, "\n{}", first.row);
    let _ = writeln!(
        out,
        "  {:<17} {:>11} {:>17} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>6} {:>8} {:>7} {:>6} {:>7}",
        "impl",
        first.unit,
        "min..max",
        "p50 µs",
        "p99 µs",
        "p999 µs",
        "max µs",
        "CPU µs/op",
        "ops/sync",
        "ops/flush",
        "wr amp",
        "dev MB/s",
        "RSS MiB",
        "steal%",
        "ratio"
    );
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    for r in rows {
        let vs_peers: String = (r.ratios_to_peers.iter())
            .map(|p| format!("  {:.2}x vs {}", p.ratio, p.peer))
            .collect();
        let _ = writeln!(
            out,
            "  {:<17} {:>11.0} {:>17} {:>8.1} {:>8.1} {:>8.1} {:>8.0} {:>9.2} {:>9} {:>9} {:>6} {:>8} {:>7.0} {:>6} {:>7}{}",
            r.implementation,
            r.throughput,
            format!("{:.0}..{:.0}", r.throughput_min, r.throughput_max),
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.max_us,
            r.cpu_us_per_op,
            opt(r.ops_per_sync, 1),
            opt(r.ops_per_device_flush, 1),
            opt(r.write_amplification, 2),
            opt(r.device_write_mb_per_s, 0),
            r.peak_rss_mib,
            opt(r.host_steal_percent, 1),
            r.ratio_to_naive.map_or("-".into(), |x| format!("{x:.2}x")),
            vs_peers,
        );
    }
    out
}

/// Draws W1 throughput against threads, one line per implementation, into an SVG file.
pub fn plot_w1(rows: &[Summary], path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let w1: Vec<&Summary> = rows.iter().filter(|r| r.workload == "w1").collect();
    if w1.is_empty() {
        return Err("--plot needs the w1 workload".into());
    }
    let max_threads = w1.iter().map(|r| r.threads).max().unwrap_or(1) as f64;
    let max_ops = w1.iter().map(|r| r.throughput).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption("W1 durable 1-chunk writes", ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_threads + 1.0, 0.0..max_ops)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("threads")
        .y_desc("durable writes/s")
        .draw()
        .map_err(|e| e.to_string())?;
    let mut names: Vec<&str> = w1.iter().map(|r| r.implementation).collect();
    names.dedup();
    for (i, name) in names.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = (w1.iter())
            .filter(|r| r.implementation == *name)
            .map(|r| (r.threads as f64, r.throughput))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, color.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::{Summary, busy_host_note, paired_ratio};

    fn run_with_steal(implementation: &'static str, steal: Option<f64>) -> Summary {
        Summary {
            row: "W2".into(),
            workload: "w2",
            threads: 1,
            implementation,
            unit: "MB/s",
            throughput: 1.0,
            throughput_min: 1.0,
            throughput_max: 1.0,
            p50_us: 1.0,
            p99_us: 1.0,
            p999_us: 1.0,
            max_us: 1.0,
            cpu_us_per_op: 1.0,
            ops_per_sync: None,
            ops_per_device_flush: None,
            write_amplification: None,
            device_write_mb_per_s: None,
            peak_rss_mib: 1.0,
            host_steal_percent: steal,
            ratio_to_naive: None,
            ratios_to_peers: Vec::new(),
        }
    }

    #[test]
    fn a_busy_host_is_called_out_once_with_the_worst_run() {
        let quiet = [
            run_with_steal("naive", Some(2.0)),
            run_with_steal("x", None),
        ];
        assert_eq!(busy_host_note(&quiet, 10.0), None);
        let busy = [
            run_with_steal("naive", Some(12.0)),
            run_with_steal("chunkpipe/atomic", Some(31.0)),
            run_with_steal("chunkpipe/off", Some(3.0)),
        ];
        let note = busy_host_note(&busy, 10.0).expect("two busy runs");
        assert!(note.contains("in 2 of 3 median runs"), "{note}");
        assert!(
            note.contains("worst: 31 %, W2 — chunkpipe/atomic"),
            "{note}"
        );
    }

    #[test]
    fn ratios_pair_runs_before_taking_the_median() {
        // The host was slow in run 1 for both. Per run: 1.5x, 2x, 1.2x, so the paired ratio
        // is 1.5x; the ratio of the two median runs (120 / 100) would say 1.2x.
        let own = [300.0, 100.0, 120.0];
        let peer = [200.0, 50.0, 100.0];
        assert_eq!(paired_ratio(&own, &peer), 1.5);
        assert_eq!(paired_ratio(&[3.0, 1.0], &[1.0, 1.0]), 3.0);
        assert!(paired_ratio(&[], &[]).is_nan());
    }
}
