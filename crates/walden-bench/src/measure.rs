//! Measuring helpers: latency histograms, medians, record contents, page-cache eviction,
//! peak memory, and the machine description.

use crate::report::Machine;
use anyhow::Context;
use hdrhistogram::Histogram;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A latency histogram in nanoseconds, 1 ns to 100 s, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("constant, valid histogram bounds")
}

/// Records one latency (saturating at the histogram's bound).
pub(crate) fn record(h: &mut Histogram<u64>, took: Duration) {
    h.saturating_record((took.as_nanos() as u64).max(1));
}

/// The quantile `q` of `h` in microseconds (`None` if empty).
pub(crate) fn quantile_us(h: &Histogram<u64>, q: f64) -> Option<f64> {
    if h.is_empty() {
        None
    } else {
        Some(h.value_at_quantile(q) as f64 / 1000.0)
    }
}

/// Median of the present values (the mean of the middle two for an even count).
pub(crate) fn median(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let mut v: Vec<f64> = values
        .into_iter()
        .flatten()
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// A record of `len` bytes of pseudo-random content (incompressible, so no peer gains by
/// compressing it), different for each `seed`.
pub(crate) fn record_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Drops the page cache of `path` (clean pages only: sync first) with
/// `posix_fadvise(POSIX_FADV_DONTNEED)`.
pub(crate) fn evict(path: &Path) -> anyhow::Result<()> {
    let f = File::open(path).with_context(|| format!("open {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("fsync {}", path.display()))?;
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)
        .with_context(|| format!("posix_fadvise DONTNEED {}", path.display()))?;
    Ok(())
}

/// Evicts every regular file directly in `dir` (and the directory's subdirectories).
pub(crate) fn evict_dir(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        let entry = entry?;
        let ty = entry.file_type()?;
        if ty.is_file() {
            evict(&entry.path())?;
        } else if ty.is_dir() {
            evict_dir(&entry.path())?;
        }
    }
    Ok(())
}

/// A field of /proc/self/status in KiB (VmHWM, VmRSS).
pub(crate) fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Resets this process's peak RSS (VmHWM) to its current RSS (Linux 4.0+). Returns false
/// where the kernel does not allow it.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The machine: cores, CPU, memory, kernel, file system of `dir`, load.
pub(crate) fn machine(dir: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let memory_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024);
    let kernel = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu,
        memory_mib,
        kernel,
        filesystem: filesystem_type(dir),
        dir: dir.display().to_string(),
        load_at_start: loadavg(),
        load_at_end: String::new(),
    }
}

/// The 1, 5 and 15 minute load averages.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The file system type of `dir`: `stat -f -c %T` when available, else statfs's magic.
pub(crate) fn filesystem_type(dir: &Path) -> String {
    if let Ok(out) = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
    {
        let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !name.is_empty() {
            return name;
        }
    }
    match rustix::fs::statfs(dir) {
        Ok(s) => match s.f_type as u64 {
            0xEF53 => "ext2/ext3".into(),
            0x5846_5342 => "xfs".into(),
            0x9123_683E => "btrfs".into(),
            0x0102_1994 => "tmpfs".into(),
            0x794C_7630 => "overlayfs".into(),
            other => format!("unknown (magic {other:#x})"),
        },
        Err(e) => format!("unknown ({e})"),
    }
}

/// True when `dir` is on a memory file system (fsync there proves nothing).
pub(crate) fn is_memory_fs(fs: &str) -> bool {
    fs.contains("tmpfs") || fs.contains("ramfs")
}

/// Now, UTC, as ISO 8601 (no time-zone database needed).
pub(crate) fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// One timed run: a thread per element of `states`, each calling `op` on its state (with its
/// call count) until `duration` has passed, every call's latency recorded. Returns the calls
/// made, the time measured and the merged latency histogram.
pub(crate) fn timed_threads<S: Send>(
    states: Vec<S>,
    duration: Duration,
    op: &(dyn Fn(&mut S, u64) -> anyhow::Result<()> + Sync),
) -> anyhow::Result<(u64, Duration, Histogram<u64>)> {
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(states.len() + 1);
    let (results, elapsed) = std::thread::scope(|s| {
        let handles: Vec<_> = states
            .into_iter()
            .map(|mut state| {
                let (stop, barrier) = (&stop, &barrier);
                s.spawn(move || -> anyhow::Result<(u64, Histogram<u64>)> {
                    let mut h = histogram();
                    let mut n = 0u64;
                    barrier.wait();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        op(&mut state, n)?;
                        record(&mut h, t.elapsed());
                        n += 1;
                    }
                    Ok((n, h))
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("writer thread panicked")))
            })
            .collect();
        (results, start.elapsed())
    });
    let mut latency = histogram();
    let mut ops = 0;
    for r in results {
        let (n, h) = r?;
        ops += n;
        latency.add(&h).context("merge histograms")?;
    }
    Ok((ops, elapsed, latency))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median([Some(3.0), Some(1.0), Some(2.0)]), Some(2.0));
        assert_eq!(median([Some(4.0), None, Some(2.0)]), Some(3.0));
        assert_eq!(median([None]), None);
    }

    #[test]
    fn records_differ_by_seed() {
        assert_eq!(record_bytes(64, 1).len(), 64);
        assert_ne!(record_bytes(64, 1), record_bytes(64, 2));
    }

    #[test]
    fn date_is_iso() {
        let d = now_utc();
        assert_eq!(d.len(), 20);
        assert!(d.ends_with('Z'));
    }
}
