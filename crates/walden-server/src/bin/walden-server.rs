//! `walden-server`: the server and its admin commands as a standalone binary (the `walden`
//! binary offers the same subcommands). `walden-server serve --help` lists every flag.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use walden_server::{CheckpointArgs, ServeArgs, StatusArgs};

/// The walden memory server.
#[derive(Debug, Parser)]
#[command(name = "walden-server", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (until SIGTERM or Ctrl-C).
    Serve(ServeArgs),
    /// Show a running server's status.
    Status(StatusArgs),
    /// Make a running server take a checkpoint now.
    Checkpoint(CheckpointArgs),
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Serve(a) => a.run(),
        Command::Status(a) => a.run(),
        Command::Checkpoint(a) => a.run(),
    };
    match outcome {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
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
