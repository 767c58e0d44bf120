//! What the bench reads off the machine: CPU time, peak RSS, device flushes and bytes written,
//! load, and the CPU time a hypervisor took from it.

use std::path::Path;

/// CPU time (user + system) this process has used, in microseconds.
pub fn cpu_time_us() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) * 1_000_000 / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> u64 {
    // Linux reports /proc times in USER_HZ, which is 100 on every supported architecture.
    100
}

/// Peak resident set size of this process in MiB (`VmHWM`).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Resets the peak RSS the kernel keeps for this process (`VmHWM`), so the next
/// [`peak_rss_mib`] covers what runs from here. Best effort: other kernels keep the old peak.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time of all of this process's threads, in nanoseconds (`/proc/self/task/*/schedstat`,
/// exact where `/proc/self/stat` counts 10 ms ticks).
pub fn cpu_time_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU time the hypervisor ran something else while this machine wanted its CPUs ("steal"),
/// summed over all CPUs, in USER_HZ ticks since boot (`/proc/stat`); `None` where unreadable.
/// On a shared virtual machine it explains rows that ran slow: a busy host takes CPU time and,
/// with it, usually disk time.
pub fn steal_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().find_map(|l| l.strip_prefix("cpu "))?;
    // user nice system idle iowait irq softirq steal
    cpu.split_whitespace().nth(7)?.parse().ok()
}

/// [`steal_ticks`] over `elapsed` as a share of the time of all `cpus` CPUs, in per cent.
pub fn steal_percent(ticks: u64, elapsed: std::time::Duration, cpus: usize) -> f64 {
    let stolen = ticks as f64 / clock_ticks_per_second() as f64;
    let window = elapsed.as_secs_f64() * cpus.max(1) as f64;
    if window > 0.0 {
        100.0 * stolen / window
    } else {
        0.0
    }
}

/// CPUs the machine has online: the `cpuN` lines of `/proc/stat`, whose sum is what
/// [`steal_ticks`] reads (this process may be allowed fewer); 1 where unreadable.
pub fn online_cpus() -> usize {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let per_cpu = |line: &&str| {
        line.strip_prefix("cpu")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    };
    stat.lines().filter(per_cpu).count().max(1)
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The counters of the block device holding `dir`, from `/proc/diskstats`.
pub struct DeviceCounters {
    device: Option<(u32, u32)>,
}

/// What the device had done when [`DeviceCounters::read`] looked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceSample {
    /// Flush requests completed (field 19 of the device's line; kernels before 5.5 lack it).
    pub flushes: Option<u64>,
    /// Bytes written (field 10, 512-byte sectors).
    pub bytes_written: u64,
}

impl DeviceCounters {
    /// Finds the device under `dir`; counts nothing where that fails (tmpfs, no diskstats).
    pub fn for_dir(dir: &Path) -> Self {
        use std::os::unix::fs::MetadataExt;
        let device = std::fs::metadata(dir)
            .ok()
            .map(|m| (major(m.dev()), minor(m.dev())));
        DeviceCounters { device }
    }

    /// The device's counters now.
    pub fn read(&self) -> Option<DeviceSample> {
        let device = self.device?;
        let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
        stats
            .lines()
            .find_map(|line| parse_diskstats_line(line, device))
    }
}

/// The counters in one `/proc/diskstats` line, if it is `device`'s.
fn parse_diskstats_line(line: &str, (major, minor): (u32, u32)) -> Option<DeviceSample> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let same = f.first()?.parse::<u32>().ok()? == major && f.get(1)?.parse::<u32>().ok()? == minor;
    if !same {
        return None;
    }
    let sectors_written: u64 = f.get(9)?.parse().ok()?;
    Some(DeviceSample {
        flushes: f.get(18).and_then(|v| v.parse().ok()),
        bytes_written: sectors_written * 512,
    })
}

/// The major number of a Linux `dev_t`.
fn major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)) as u32
}

/// The minor number of a Linux `dev_t`.
fn minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)) as u32
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
        // 50 ticks = 0.5 s stolen, over 2 s of 2 CPUs = 4 CPU-seconds.
        assert_eq!(steal_percent(50, Duration::from_secs(2), 2), 12.5);
        assert_eq!(steal_percent(0, Duration::from_secs(2), 2), 0.0);
        // An empty window has no share to give (no division by zero).
        assert_eq!(steal_percent(10, Duration::ZERO, 0), 0.0);
        assert_eq!(steal_percent(10, Duration::from_secs(1), 0), 10.0);
    }

    #[test]
    fn diskstats_lines_give_their_devices_flushes_and_bytes_written() {
        let vda = " 253       0 vda 9 1 2 3 40 5 800 7 8 9 10 11 12 13 14 21 16";
        let sample = parse_diskstats_line(vda, (253, 0));
        let expected = DeviceSample {
            flushes: Some(21),
            bytes_written: 800 * 512,
        };
        assert_eq!(sample, Some(expected));
        assert_eq!(parse_diskstats_line(vda, (253, 1)), None, "another device");
        let before_5_5 = "   8       0 sda 9 1 2 3 40 5 800 7 8 9 10 0 0 0 0";
        let sample = parse_diskstats_line(before_5_5, (8, 0)).expect("sda");
        assert_eq!((sample.flushes, sample.bytes_written), (None, 800 * 512));
    }

    #[test]
    fn steal_ticks_and_cpus_read_this_machine() {
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
