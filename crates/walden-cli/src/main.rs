//! The `walden` command line: operator tools over a walden log directory.
//!
//! `main` only parses, dispatches and turns the outcome into an exit status; the commands
//! live in [`log_cmd`]. Every failure ends as one line `walden: <message>` on stderr and a
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
    about = "Tools for walden write-ahead logs",
    after_help = exit::EXIT_STATUS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
        Command::Log(cmd) => log_cmd::run(cmd),
    };
    match outcome {
        Ok(status) => status.into(),
        Err(e) => exit::report_error(&e),
    }
}
