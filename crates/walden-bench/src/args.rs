//! Command-line flags and the plan they resolve to (quick or full sizes).

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `walden-bench` (and of `walden bench`, which embeds them).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BenchArgs {
    /// Run every workload briefly (tiny sizes, a fraction of a second per measurement) to
    /// prove the benchmark works; the figures mean nothing.
    #[arg(long)]
    pub quick: bool,

    /// Directory to benchmark in (a fresh subdirectory is made and removed). Default: a
    /// temporary directory under the current directory, so the disk is the one you run
    /// from (not /tmp, which may be tmpfs).
    #[arg(long)]
    pub dir: Option<PathBuf>,

    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Write the report as a markdown table to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,

    /// Seconds per timed measurement (default 4; quick 0.2).
    #[arg(long)]
    pub seconds: Option<f64>,

    /// Repetitions of each measurement; the report quotes medians (default 3; quick 1).
    #[arg(long)]
    pub reps: Option<u32>,

    /// Size of the log W4 recovers, e.g. 1GiB, 512MiB, 4000000 (default 1GiB; quick 4MiB).
    #[arg(long, value_parser = parse_bytes)]
    pub recovery_bytes: Option<u64>,

    /// Concurrent writers for W2, comma separated (default 1,4,16,64,256; quick 1,4).
    #[arg(long, value_delimiter = ',')]
    pub writers: Option<Vec<usize>>,

    /// Record sizes of W1 in bytes, comma separated (default 128,4096).
    #[arg(long, value_delimiter = ',')]
    pub w1_sizes: Option<Vec<usize>>,

    /// Record sizes of W3 in bytes, comma separated (default 128,1024,65536).
    #[arg(long, value_delimiter = ',')]
    pub w3_sizes: Option<Vec<usize>>,

    /// Record size of W2 in bytes (default 128).
    #[arg(long, default_value_t = 128)]
    pub w2_record_bytes: usize,

    /// Bytes each system writes in one W3 measurement, capped by --seconds x 2 (default
    /// 1GiB; quick 2MiB).
    #[arg(long, value_parser = parse_bytes)]
    pub ingest_bytes: Option<u64>,

    /// Records per second the W5 writer appends (durable each).
    #[arg(long, default_value_t = 2000)]
    pub tail_rate: u32,

    /// W6: concurrent store writers (threads), comma separated (default 1,4,16,64; quick 1,4).
    #[arg(long, value_delimiter = ',')]
    pub store_writers: Option<Vec<usize>>,

    /// W6: committed transactions in the stores whose recovery is timed, comma separated
    /// (default 10000,50000,200000; quick 300,1500).
    #[arg(long, value_delimiter = ',')]
    pub store_txns: Option<Vec<u64>>,

    /// W7: concurrent clients, comma separated (default 1,16,64,256; quick 1,16).
    #[arg(long, value_delimiter = ',')]
    pub clients: Option<Vec<usize>>,

    /// W6 and W7: bytes per value written (default 100).
    #[arg(long)]
    pub value_bytes: Option<usize>,

    /// The Redis peer script of W7 (default: scripts/redis-peer.sh of this repository).
    #[arg(long)]
    pub redis_script: Option<PathBuf>,

    /// Workloads to run, comma separated (w1,...,w7; default all).
    #[arg(long, value_delimiter = ',')]
    pub workloads: Option<Vec<String>>,

    /// Peers to run, comma separated (sqlite,okaywal,rocksdb,postgresql,redis; default all; `none`
    /// for walden and the floor only). A peer left out is reported as missing, with this
    /// flag as the reason.
    #[arg(long, value_delimiter = ',')]
    pub peers: Option<Vec<String>>,

    /// The PostgreSQL peer script (default: scripts/pg-peer.sh of this repository).
    #[arg(long)]
    pub pg_script: Option<PathBuf>,

    /// Binary that understands `recover-only DIR` (the W4 child whose peak memory is
    /// measured). Default: this program if it is walden-bench, else a walden-bench binary
    /// beside it.
    #[arg(long, hide = true)]
    pub recover_helper: Option<PathBuf>,

    /// Keep the benchmark directory instead of removing it.
    #[arg(long)]
    pub keep: bool,
}

/// The workloads, in report order.
pub const WORKLOADS: [&str; 7] = ["W1", "W2", "W3", "W4", "W5", "W6", "W7"];

/// Peers a user would pick instead of walden-log (the floor is always run): every one has a
/// row in W1 to W5.
pub const PEERS: [&str; 4] = ["sqlite", "okaywal", "rocksdb", "postgresql"];

/// Peers a user would pick instead of the walden server (W7).
pub const SERVER_PEERS: [&str; 2] = ["redis", "postgresql"];

/// Every name `--peers` accepts.
const ALL_PEERS: [&str; 5] = ["sqlite", "okaywal", "rocksdb", "postgresql", "redis"];

/// Resolved sizes and durations.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub quick: bool,
    pub measure: Duration,
    pub reps: u32,
    pub w1_sizes: Vec<usize>,
    pub writers: Vec<usize>,
    pub w2_record_bytes: usize,
    pub w3_sizes: Vec<usize>,
    pub ingest_bytes: u64,
    pub recovery_bytes: u64,
    pub recovery_record_bytes: usize,
    pub tail_rate: u32,
    pub tail_records: u64,
    /// W5's writer stops here even if it fell behind the rate (slow fsyncs).
    pub tail_limit: Duration,
    pub segment_bytes: u64,
    pub workloads: Vec<String>,
    pub peers: Vec<String>,
    /// W6 writer threads.
    pub store_writers: Vec<usize>,
    /// W6 transactions per store whose recovery is timed.
    pub store_txns: Vec<u64>,
    /// W7 concurrent clients.
    pub clients: Vec<usize>,
    /// W6 and W7 value size.
    pub value_bytes: usize,
}

impl Plan {
    pub fn from_args(a: &BenchArgs) -> anyhow::Result<Plan> {
        let q = a.quick;
        let seconds = a.seconds.unwrap_or(if q { 0.2 } else { 4.0 });
        if !(seconds > 0.0 && seconds < 3600.0) {
            bail!("--seconds must be within (0, 3600), not {seconds}");
        }
        let reps = a.reps.unwrap_or(if q { 1 } else { 3 });
        if reps == 0 {
            bail!("--reps must be at least 1");
        }
        let writers = a.writers.clone().unwrap_or(if q {
            vec![1, 4]
        } else {
            vec![1, 4, 16, 64, 256]
        });
        if writers.iter().any(|&w| w == 0 || w > 4096) {
            bail!("--writers must be within 1..=4096");
        }
        let workloads = normalize(a.workloads.as_deref(), &WORKLOADS, "workload")?;
        let peers = normalize(a.peers.as_deref(), &ALL_PEERS, "peer")?;
        let store_writers =
            a.store_writers
                .clone()
                .unwrap_or(if q { vec![1, 4] } else { vec![1, 4, 16, 64] });
        let clients =
            a.clients
                .clone()
                .unwrap_or(if q { vec![1, 16] } else { vec![1, 16, 64, 256] });
        if store_writers
            .iter()
            .chain(&clients)
            .any(|&w| w == 0 || w > 4096)
        {
            bail!("--store-writers and --clients must be within 1..=4096");
        }
        let mut store_txns = a.store_txns.clone().unwrap_or(if q {
            vec![300, 1500]
        } else {
            vec![10_000, 50_000, 200_000]
        });
        store_txns.sort_unstable();
        if store_txns.is_empty() || store_txns.iter().any(|n| !(10..=100_000_000).contains(n)) {
            bail!("--store-txns must be within 10..=100000000");
        }
        let value_bytes = a.value_bytes.unwrap_or(100);
        if value_bytes == 0 || value_bytes > 1 << 20 {
            bail!("--value-bytes must be within 1..=1 MiB");
        }
        let tail_rate = a.tail_rate.max(1);
        let tail_seconds = if q { 0.5 } else { 10.0 };
        Ok(Plan {
            quick: q,
            measure: Duration::from_secs_f64(seconds),
            reps,
            w1_sizes: sizes(a.w1_sizes.as_deref(), &[128, 4096])?,
            writers,
            w2_record_bytes: a.w2_record_bytes.max(1),
            w3_sizes: sizes(a.w3_sizes.as_deref(), &[128, 1024, 64 << 10])?,
            ingest_bytes: a.ingest_bytes.unwrap_or(if q { 2 << 20 } else { 1 << 30 }),
            recovery_bytes: a
                .recovery_bytes
                .unwrap_or(if q { 4 << 20 } else { 1 << 30 }),
            recovery_record_bytes: 1024,
            tail_rate,
            tail_records: (f64::from(tail_rate) * tail_seconds).ceil() as u64,
            tail_limit: Duration::from_secs_f64(tail_seconds * 1.5),
            // Quick mode keeps segments small so zero-filling them costs nothing.
            segment_bytes: if q { 1 << 20 } else { 64 << 20 },
            workloads,
            peers,
            store_writers,
            store_txns,
            clients,
            value_bytes,
        })
    }

    pub fn runs(&self, workload: &str) -> bool {
        self.workloads.iter().any(|w| w == workload)
    }

    pub fn wants(&self, peer: &str) -> bool {
        self.peers.iter().any(|p| p == peer)
    }
}

fn sizes(given: Option<&[usize]>, default: &[usize]) -> anyhow::Result<Vec<usize>> {
    let v = given.unwrap_or(default).to_vec();
    if v.is_empty() || v.iter().any(|&s| s == 0 || s > 16 << 20) {
        bail!("record sizes must be within 1..=16 MiB");
    }
    Ok(v)
}

fn normalize(given: Option<&[String]>, all: &[&str], what: &str) -> anyhow::Result<Vec<String>> {
    let Some(given) = given else {
        return Ok(all.iter().map(|s| s.to_string()).collect());
    };
    let mut out = Vec::new();
    if given.len() == 1 && given[0].trim().eq_ignore_ascii_case("none") {
        return Ok(out);
    }
    for g in given {
        let found = all
            .iter()
            .find(|a| a.eq_ignore_ascii_case(g.trim()))
            .with_context(|| format!("unknown {what} {g:?}; known: {}", all.join(", ")))?;
        out.push(found.to_string());
    }
    Ok(out)
}

/// Parses a byte count: a plain number or one with a suffix (KiB, MiB, GiB, KB, MB, GB, k, M, G).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("not a byte count: {s:?}"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        other => return Err(format!("unknown unit {other:?} in {s:?}")),
    };
    Ok((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse() {
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("4000"), Ok(4000));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        assert!(parse_bytes("x").is_err());
    }
}
