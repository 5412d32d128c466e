//! The `walden` command line: the shared memory server (`serve`), its client commands
//! (`status`, `checkpoint`), and operator tools over a walden log directory (`log`).
//!
//! `main` only parses, dispatches and turns the outcome into an exit status; the log tools
//! live in [`log_cmd`], the server and its clients in the walden-server crate. Every failure ends as one line `walden: <message>` on stderr and a
//! non-zero status (see [`exit`]), never a panic or a multi-line usage dump.

mod exit;
mod log_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The walden command line.
#[derive(Debug, Parser)]
#[command(
    name = "walden",
    version,
    about = "walden: a crash-safe shared memory server on a write-ahead log, and its tools",
    after_help = exit::EXIT_STATUS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server on a local data directory (default ./walden-data, loopback).
    Serve(walden_server::ServeArgs),
    /// Show a running server's LSNs, log size and uptime.
    Status(walden_server::StatusArgs),
    /// Ask a running server to take a checkpoint now.
    Checkpoint(walden_server::CheckpointArgs),
    /// Measure walden beside the physical floor and its peers, in one run (see
    /// docs/BENCHMARKS.md; `--quick` for a seconds-long smoke run).
    Bench(walden_bench::BenchArgs),
    /// Read-only tools for a log directory: dump records, verify, inspect segments.
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return exit::clap_error(&e),
    };
    let outcome = match cli.command {
        Command::Serve(args) => args.run().and_then(exit::Status::from_code),
        Command::Status(args) => args.run().and_then(exit::Status::from_code),
        Command::Checkpoint(args) => args.run().and_then(exit::Status::from_code),
        Command::Bench(args) => walden_bench::run(args).map(|report| {
            print!("{}", report.to_markdown());
            exit::Status::Success
        }),
        Command::Log(cmd) => log_cmd::run(cmd),
    };
    match outcome {
        Ok(status) => status.into(),
        Err(e) => exit::report_error(&e),
    }
}

/// mimalloc instead of the system allocator: a server request allocates a few dozen small
/// buffers (hyper, the store's keys and versions), and glibc's malloc and free took ~6% of
/// the server's CPU in W7; with mimalloc W7 at 64 clients answered 8% more durable writes
/// (A/B alternating, docs/BENCHMARKS.md). Built without transparent huge pages (the
/// workspace's `no_thp`: zeroing a 2 MiB page inside the store's commit stalled every
/// committer).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
