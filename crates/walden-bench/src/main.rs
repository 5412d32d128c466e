//! `walden-bench`: walden beside the physical floor and its peers. See the library docs.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use walden_bench::BenchArgs;

/// Measures walden-log and, in the same run on the same disk, the physical floor, SQLite,
/// okaywal, RocksDB (feature `rocksdb`) and PostgreSQL. Prints a markdown report.
#[derive(Debug, Parser)]
#[command(name = "walden-bench", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    args: BenchArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Internal (W4): open the log in DIR once, print time and peak memory as JSON.
    #[command(hide = true)]
    RecoverOnly {
        /// The log directory.
        dir: PathBuf,
        /// The segment size the log was built with.
        #[arg(long)]
        segment_bytes: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::RecoverOnly { dir, segment_bytes }) => {
            let r = walden_bench::recover_only(&dir, segment_bytes)?;
            println!("{}", serde_json::to_string(&r)?);
        }
        None => {
            let report = walden_bench::run(cli.args)?;
            print!("{}", report.to_markdown());
        }
    }
    Ok(())
}

/// mimalloc instead of the system allocator: a server request allocates a few dozen small
/// buffers (hyper, the store's keys and versions), and glibc's malloc and free took ~6% of
/// the server's CPU in W7; with mimalloc W7 at 64 clients answered 8% more durable writes
/// (A/B alternating, docs/BENCHMARKS.md). Built without transparent huge pages (the
/// workspace's `no_thp`: zeroing a 2 MiB page inside the store's commit stalled every
/// committer).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
