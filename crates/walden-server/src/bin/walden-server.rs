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
    Serve(Box<ServeArgs>),
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

/// The allocator of every walden binary: why, in the `walden` binary's main.rs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
