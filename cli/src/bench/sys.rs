//! What the bench reads off the machine — CPU time, peak RSS, device flushes and bytes written,
//! load, and the CPU time a hypervisor took from it — through `procfs`.

use std::path::Path;

use procfs::process::{ClearRefs, Process};

/// CPU time (user + system) this process has used, in microseconds.
pub fn cpu_time_us() -> u64 {
    let Ok(stat) = Process::myself().and_then(|me| me.stat()) else {
        return 0;
    };
    (stat.utime + stat.stime) * 1_000_000 / procfs::ticks_per_second().max(1)
}

/// Peak resident set size of this process in MiB (`VmHWM`).
pub fn peak_rss_mib() -> f64 {
    let peak_kib = Process::myself()
        .and_then(|me| me.status())
        .ok()
        .and_then(|status| status.vmhwm);
    peak_kib.map_or(0.0, |kib| kib as f64 / 1024.0)
}

/// Resets the peak RSS the kernel keeps for this process (`VmHWM`), so the next
/// [`peak_rss_mib`] covers what runs from here. Best effort: other kernels keep the old peak.
pub fn reset_peak_rss() {
    let _ = Process::myself().and_then(|me| me.clear_refs(ClearRefs::PeakRSS));
}

/// CPU time of all of this process's threads, in nanoseconds (each thread's `schedstat`, exact
/// where the process's `stat` counts clock ticks).
pub fn cpu_time_ns() -> u64 {
    let Ok(tasks) = Process::myself().and_then(|me| me.tasks()) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| task.schedstat().ok())
        .map(|stat| stat.sum_exec_runtime)
        .sum()
}

/// CPU time the hypervisor ran something else while this machine wanted its CPUs ("steal"),
/// summed over all CPUs, in clock ticks since boot; `None` where unreadable. On a shared
/// virtual machine it explains rows that ran slow: a busy host takes CPU time and, with it,
/// usually disk time.
pub fn steal_ticks() -> Option<u64> {
    use procfs::CurrentSI;
    procfs::KernelStats::current().ok()?.total.steal
}

/// [`steal_ticks`] over `elapsed` as a share of the time of all `cpus` CPUs, in per cent.
pub fn steal_percent(ticks: u64, elapsed: std::time::Duration, cpus: usize) -> f64 {
    let stolen = ticks as f64 / procfs::ticks_per_second().max(1) as f64;
    let window = elapsed.as_secs_f64() * cpus.max(1) as f64;
    if window > 0.0 {
        100.0 * stolen / window
    } else {
        0.0
    }
}

/// CPUs the machine has online, each of which [`steal_ticks`] sums (this process may be
/// allowed fewer); 1 where unreadable.
pub fn online_cpus() -> usize {
    use procfs::CurrentSI;
    procfs::KernelStats::current().map_or(1, |stats| stats.cpu_time.len().max(1))
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    use procfs::Current;
    procfs::LoadAverage::current().map_or(0.0, |load| f64::from(load.one))
}

/// The counters of the block device holding `dir`, from the kernel's disk statistics.
pub struct DeviceCounters {
    device: Option<(i32, i32)>,
}

/// What the device had done when [`DeviceCounters::read`] looked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceSample {
    /// Flush requests completed (kernels before 5.5 do not count them).
    pub flushes: Option<u64>,
    /// Bytes written.
    pub bytes_written: u64,
}

impl DeviceCounters {
    /// Finds the device under `dir`; counts nothing where that fails (tmpfs, no statistics).
    pub fn for_dir(dir: &Path) -> Self {
        use std::os::unix::fs::MetadataExt;
        let device = std::fs::metadata(dir).ok().map(|m| {
            let dev = m.dev();
            (
                i32::try_from(rustix::fs::major(dev)).unwrap_or(-1),
                i32::try_from(rustix::fs::minor(dev)).unwrap_or(-1),
            )
        });
        DeviceCounters { device }
    }

    /// The device's counters now.
    pub fn read(&self) -> Option<DeviceSample> {
        let (major, minor) = self.device?;
        let disk = procfs::diskstats()
            .ok()?
            .into_iter()
            .find(|d| d.major == major && d.minor == minor)?;
        Some(DeviceSample {
            flushes: disk.flushes,
            // Sectors of 512 bytes, whatever the device's own sector size.
            bytes_written: disk.sectors_written * 512,
        })
    }
}

/// Whether `dir` is on tmpfs (syncs cost nothing there, so write figures mean nothing).
pub fn is_tmpfs(dir: &Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    #[allow(
        clippy::unnecessary_cast,
        reason = "f_type's integer type differs between platforms"
    )]
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type as i64 == TMPFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn steal_is_a_share_of_every_cpus_time() {
        // Half a second of ticks stolen, over 2 s of 2 CPUs = 4 CPU-seconds.
        let half_second = procfs::ticks_per_second() / 2;
        assert_eq!(steal_percent(half_second, Duration::from_secs(2), 2), 12.5);
        assert_eq!(steal_percent(0, Duration::from_secs(2), 2), 0.0);
        // An empty window has no share to give (no division by zero).
        assert_eq!(steal_percent(10, Duration::ZERO, 0), 0.0);
        let tenth = procfs::ticks_per_second() / 10;
        assert_eq!(steal_percent(tenth, Duration::from_secs(1), 0), 10.0);
    }

    #[test]
    fn this_machine_is_read() {
        assert!(cpu_time_us() > 0 || cpu_time_ns() > 0, "this process ran");
        assert!(peak_rss_mib() > 0.0);
        // Every Linux kernel since 2.6.11 has the steal column (0 on bare metal).
        if std::path::Path::new("/proc/stat").exists() {
            let first = steal_ticks().expect("a steal column in /proc/stat");
            assert!(steal_ticks().expect("still there") >= first);
            // The process may be confined to fewer CPUs than the machine has, never more.
            let allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
            assert!(online_cpus() >= allowed);
        }
    }
}
