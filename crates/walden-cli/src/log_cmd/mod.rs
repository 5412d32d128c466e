//! `walden log ...`: read-only tools over a log directory, modeled on `pg_waldump` and
//! `etcd-dump-logs`. None of them takes the writer's lock or changes a byte, so they are safe
//! to run beside a live writer.

mod dump;
mod health;
mod inspect;
mod preview;
mod totals;
mod verify;

use crate::exit::Status;
use anyhow::{bail, Result};
use clap::Subcommand;
use std::path::Path;

/// The `walden log` subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Print every record with its LSN and frame metadata, one line each.
    #[command(after_help = dump::DUMP_HELP)]
    Dump(dump::DumpArgs),
    /// Check every checksum and link; say whether recovery would cut or refuse, and where.
    #[command(after_help = verify::VERIFY_HELP)]
    Verify(verify::VerifyArgs),
    /// Show the segments of a log, its durable end and its health.
    #[command(after_help = inspect::INSPECT_HELP)]
    Inspect(inspect::InspectArgs),
}

/// Runs one `walden log` subcommand.
pub fn run(cmd: LogCommand) -> Result<Status> {
    match cmd {
        LogCommand::Dump(args) => dump::run(&args),
        LogCommand::Verify(args) => verify::run(&args),
        LogCommand::Inspect(args) => inspect::run(&args),
    }
}

/// Fails with a plain message for a path that cannot be a log directory, before the library
/// turns it into an I/O error about listing a directory.
fn check_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("not a directory: {}", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("no such directory: {}", dir.display())
        }
        Err(e) => bail!("cannot access {}: {e}", dir.display()),
    }
}

/// The file name of a segment path, for tables where the directory is already shown.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
