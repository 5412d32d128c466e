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

/// The allocator of every walden binary: why, in the `walden` binary's main.rs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
