//! The report: every figure with its durability, the ratios computed within the run, the
//! targets of the issue, the machine; rendered as JSON (serde) or as markdown.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// What a figure promises about the records it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Each commit waits for its own fdatasync.
    FsyncPerCommit,
    /// Each commit is durable on return; concurrent commits share one fdatasync.
    GroupCommit,
    /// No fsync per record: W3's one sync at the end, SQLite NORMAL's syncs at checkpoints.
    None,
    /// Not a write figure (recovery, reads).
    NotApplicable,
}

impl Durability {
    /// The label used in tables.
    pub fn label(self) -> &'static str {
        match self {
            Durability::FsyncPerCommit => "fsync per commit",
            Durability::GroupCommit => "group commit",
            Durability::None => "none",
            Durability::NotApplicable => "-",
        }
    }
}

/// Whether a row holds figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Measured in this run.
    Measured,
    /// The peer could not run here (not compiled in, not installed, failed): see `reason`.
    Missing,
    /// The peer has no equivalent of this workload: see `reason`.
    NotApplicable,
}

/// The figures of one row, medians over the repetitions. Absent figures are `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Operations (records) per second.
    pub ops_per_sec: Option<f64>,
    /// Megabytes (10^6) of record payload per second.
    pub mb_per_sec: Option<f64>,
    /// Gigabytes (10^9) per second (recovery and reads).
    pub gb_per_sec: Option<f64>,
    /// Latency percentiles in microseconds.
    pub p50_us: Option<f64>,
    /// 99th percentile latency, microseconds.
    pub p99_us: Option<f64>,
    /// 99.9th percentile latency, microseconds.
    pub p999_us: Option<f64>,
    /// Records made durable per fsync of the log (group commit batching).
    pub records_per_fsync: Option<f64>,
    /// Peak resident memory of the process doing the work, MiB.
    pub peak_rss_mib: Option<f64>,
    /// What the work added to the process's resident memory: the peak minus the peak
    /// before the work began (the program's own baseline), MiB (W4).
    #[serde(default)]
    pub rss_added_mib: Option<f64>,
    /// Records (or bytes, for reads) the figure covers, summed over the repetitions.
    pub count: Option<f64>,
    /// `fdatasync` calls of the log during the measurement (W6).
    #[serde(default)]
    pub fsyncs: Option<f64>,
    /// Time to open (recover) a store, milliseconds (W6).
    #[serde(default)]
    pub recovery_ms: Option<f64>,
    /// Log records recovery read (W6, `StoreRecoveryReport::log_records_read`).
    #[serde(default)]
    pub log_records_read: Option<f64>,
}

/// One measured (or missing) thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// "W1" ... "W7".
    pub workload: String,
    /// The case within the workload: "128 B", "64 writers", "warm", ...
    pub case: String,
    /// "walden", "floor: ...", "sqlite FULL", "sqlite NORMAL", "okaywal", "rocksdb",
    /// "postgresql".
    pub system: String,
    /// The peer family ("walden", "floor", "sqlite", "okaywal", "rocksdb", "postgresql").
    pub family: String,
    /// The durability of every figure in the row.
    pub durability: Durability,
    /// Measured, missing, or not applicable.
    pub status: Status,
    /// Why a row is missing or not applicable; notes on a measured row.
    pub reason: Option<String>,
    /// Medians over `reps` repetitions.
    pub metrics: Metrics,
    /// Repetitions measured.
    pub reps: u32,
}

/// Walden divided by another system, in the same case of the same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    /// Workload.
    pub workload: String,
    /// Case.
    pub case: String,
    /// The system walden is divided by.
    pub against: String,
    /// The figure compared ("ops_per_sec", "mb_per_sec", "gb_per_sec").
    pub metric: String,
    /// Walden's figure.
    pub walden: f64,
    /// The other system's figure.
    pub other: f64,
    /// walden / other (higher is better for walden).
    pub ratio: f64,
}

/// A target from the issue, checked against this run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// What the issue asks.
    pub target: String,
    /// What this run measured, in words.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` not evaluated (quick mode or no data).
    pub met: Option<bool>,
}

/// The machine the run was on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs available to the process.
    pub cores: usize,
    /// CPU model name.
    pub cpu: String,
    /// Total memory, MiB.
    pub memory_mib: u64,
    /// Kernel release (uname -r).
    pub kernel: String,
    /// File system type of the bench directory (as `stat -f -c %T` names it).
    pub filesystem: String,
    /// The bench directory.
    pub dir: String,
    /// Load average (1, 5, 15 min) when the run started.
    pub load_at_start: String,
    /// Load average when the run ended.
    pub load_at_end: String,
}

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// "quick" or "full".
    pub mode: String,
    /// The command line as run.
    pub command: String,
    /// Start time, UTC, ISO 8601.
    pub date_utc: String,
    /// Wall time of the whole run, seconds.
    pub elapsed_secs: f64,
    /// The machine.
    pub machine: Machine,
    /// Seconds per measurement and repetitions.
    pub seconds_per_measurement: f64,
    /// Repetitions of each measurement (figures are medians).
    pub reps: u32,
    /// Every row, workload by workload.
    pub rows: Vec<Row>,
    /// Walden against the floor and each peer.
    pub ratios: Vec<Ratio>,
    /// The targets against this run.
    pub targets: Vec<Target>,
    /// Remarks (warnings about the disk, skipped workloads, ...).
    pub notes: Vec<String>,
}

impl Report {
    /// The rows of one workload.
    pub fn rows_of<'a>(&'a self, workload: &'a str) -> impl Iterator<Item = &'a Row> + 'a {
        self.rows.iter().filter(move |r| r.workload == workload)
    }

    /// The measured row for (workload, case, system), if any.
    pub fn find(&self, workload: &str, case: &str, system: &str) -> Option<&Row> {
        self.rows.iter().find(|r| {
            r.workload == workload
                && r.case == case
                && r.system == system
                && r.status == Status::Measured
        })
    }

    /// The report as markdown: machine, one table per workload, ratios, targets.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(
            s,
            "Run {} ({} mode), {:.0} s.",
            self.date_utc, self.mode, self.elapsed_secs
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Machine: {} cores ({}), {} MiB RAM, kernel {}, bench directory on {} ({}). \
             Load average at start {}, at end {}.",
            m.cores,
            m.cpu,
            m.memory_mib,
            m.kernel,
            m.filesystem,
            m.dir,
            m.load_at_start,
            m.load_at_end
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "Each figure is the median of {} repetition(s) of {:.1} s (W3: up to a byte budget; \
             W4: one open). MB = 10^6 bytes, GB = 10^9 bytes. \"walden ÷\" is walden's figure \
             divided by the row's, same case, same run.",
            self.reps, self.seconds_per_measurement
        );
        for w in crate::args::WORKLOADS {
            let rows: Vec<&Row> = self.rows_of(w).collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(s);
            let _ = writeln!(s, "### {}", workload_title(w));
            let _ = writeln!(s);
            let cols = columns(w);
            let _ = write!(s, "| case | system | durability |");
            for (title, _) in &cols {
                let _ = write!(s, " {title} |");
            }
            let _ = writeln!(s, " walden ÷ |");
            let _ = write!(s, "|---|---|---|");
            for _ in &cols {
                let _ = write!(s, "---:|");
            }
            let _ = writeln!(s, "---:|");
            for r in rows {
                let _ = write!(
                    s,
                    "| {} | {} | {} |",
                    r.case,
                    r.system,
                    r.durability.label()
                );
                if r.status == Status::Measured {
                    for (_, get) in &cols {
                        let _ = write!(s, " {} |", fmt_num(get(&r.metrics)));
                    }
                    let ratio = self.ratios.iter().find(|x| {
                        x.workload == r.workload && x.case == r.case && x.against == r.system
                    });
                    match ratio {
                        Some(x) => {
                            let _ = writeln!(s, " {:.2}× |", x.ratio);
                        }
                        None => {
                            let _ = writeln!(s, " |");
                        }
                    }
                } else {
                    let what = match r.status {
                        Status::Missing => "missing",
                        _ => "n/a",
                    };
                    let reason = r.reason.as_deref().unwrap_or("");
                    let _ = write!(s, " {what}: {reason} |");
                    for _ in 1..cols.len() {
                        let _ = write!(s, " |");
                    }
                    let _ = writeln!(s, " |");
                }
            }
            // Notes on measured rows, each said once per system.
            let mut said: Vec<(&str, &str)> = Vec::new();
            for r in self.rows_of(w).filter(|r| r.status == Status::Measured) {
                if let Some(reason) = r.reason.as_deref() {
                    if !said.contains(&(r.system.as_str(), reason)) {
                        said.push((r.system.as_str(), reason));
                    }
                }
            }
            if !said.is_empty() {
                let _ = writeln!(s);
            }
            for (system, reason) in said {
                let _ = writeln!(s, "- *{system}*: {reason}");
            }
        }
        if !self.targets.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "### Targets (issues 3, 4 and 5)");
            let _ = writeln!(s);
            let _ = writeln!(s, "| target | this run | met |");
            let _ = writeln!(s, "|---|---|---|");
            for t in &self.targets {
                let met = match t.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "not evaluated",
                };
                let _ = writeln!(s, "| {} | {} | {} |", t.target, t.measured, met);
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s);
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }
}

type Getter = fn(&Metrics) -> Option<f64>;

fn columns(workload: &str) -> Vec<(&'static str, Getter)> {
    match workload {
        "W1" => vec![
            ("ops/s", |m| m.ops_per_sec),
            ("p50 µs", |m| m.p50_us),
            ("p99 µs", |m| m.p99_us),
            ("p99.9 µs", |m| m.p999_us),
        ],
        "W2" => vec![
            ("ops/s", |m| m.ops_per_sec),
            ("records/fsync", |m| m.records_per_fsync),
            ("p50 µs", |m| m.p50_us),
            ("p99 µs", |m| m.p99_us),
        ],
        "W3" => vec![("MB/s", |m| m.mb_per_sec), ("records/s", |m| m.ops_per_sec)],
        "W4" => vec![
            ("GB/s", |m| m.gb_per_sec),
            ("peak RSS MiB", |m| m.peak_rss_mib),
            ("RSS added MiB", |m| m.rss_added_mib),
        ],
        "W6" => vec![
            ("commits/s", |m| m.ops_per_sec),
            ("log MB/s", |m| m.mb_per_sec),
            ("fsyncs", |m| m.fsyncs),
            ("commits/fsync", |m| m.records_per_fsync),
            ("p50 µs", |m| m.p50_us),
            ("p99 µs", |m| m.p99_us),
            ("recovery ms", |m| m.recovery_ms),
            ("log records read", |m| m.log_records_read),
        ],
        "W7" => vec![
            ("acked writes/s", |m| m.ops_per_sec),
            ("p50 µs", |m| m.p50_us),
            ("p99 µs", |m| m.p99_us),
            ("p99.9 µs", |m| m.p999_us),
        ],
        _ => vec![
            ("lag p50 µs", |m| m.p50_us),
            ("lag p99 µs", |m| m.p99_us),
            ("records/s", |m| m.ops_per_sec),
        ],
    }
}

fn workload_title(w: &str) -> &'static str {
    match w {
        "W1" => "W1 durable single writer",
        "W2" => "W2 group commit (concurrent durable writers)",
        "W3" => "W3 buffered ingest (one sync at the end)",
        "W4" => "W4 recovery (open and verify the whole log)",
        "W6" => "W6 store: transaction commits and recovery (walden-store)",
        "W7" => "W7 server: durable single-key writes over loopback (walden serve)",
        _ => "W5 tailing (durable writer at a fixed rate, tailing reader)",
    }
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if !x.is_finite() => "-".into(),
        Some(x) if x.abs() >= 1000.0 => {
            // Thousands separators for readability.
            let n = x.round() as i64;
            let digits = n.unsigned_abs().to_string();
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            if n < 0 {
                format!("-{out}")
            } else {
                out
            }
        }
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_for_tables() {
        assert_eq!(fmt_num(Some(1_234_567.4)), "1,234,567");
        assert_eq!(fmt_num(Some(123.4)), "123");
        assert_eq!(fmt_num(Some(12.34)), "12.3");
        assert_eq!(fmt_num(Some(1.234)), "1.23");
        assert_eq!(fmt_num(None), "-");
    }
}
