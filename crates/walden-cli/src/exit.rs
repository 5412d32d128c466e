//! Exit statuses and the one-line error report.
//!
//! Scripts branch on the status of `walden log verify`, so the numbers are part of the
//! interface: 1 and 2 mean "the log is damaged" and never "you typed it wrong". That is why
//! usage errors get 3 and not clap's usual 2, which would read as a torn tail.

use std::io::{self, Write};
use std::process::ExitCode;

/// The exit statuses, as every command's `--help` lists them.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success (verify: the log is clean)
  1  corruption: data that was durable is damaged; default recovery refuses to open
  2  torn tail (verify only): default recovery would cut unacknowledged records at the end
  3  error: bad arguments, missing directory, not a log, I/O failure";

/// What a command that ran to the end reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything is fine.
    Success = 0,
    /// Durable data is damaged.
    Corruption = 1,
    /// Only the unacknowledged tail is damaged.
    TornTail = 2,
}

/// The status for an error that stopped a command.
const ERROR: u8 = 3;

impl Status {
    /// The outcome of a server command that reports a plain code: 0 is success; any other
    /// code becomes an error (status 3), never a damage status.
    pub fn from_code(code: i32) -> anyhow::Result<Self> {
        match code {
            0 => Ok(Status::Success),
            other => Err(anyhow::anyhow!("command failed with status {other}")),
        }
    }
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> Self {
        ExitCode::from(s as u8)
    }
}

/// Prints `walden: <message>` and picks the status. A closed stdout (`walden ... | head`)
/// is how the reader says "enough", so it ends quietly with success.
pub fn report_error(e: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(e) {
        return ExitCode::SUCCESS;
    }
    print_one_line(&format!("{e:#}"));
    let corruption = e.chain().any(|c| {
        c.downcast_ref::<walden_log::Error>()
            .is_some_and(walden_log::Error::is_corruption)
    });
    if corruption {
        Status::Corruption.into()
    } else {
        ExitCode::from(ERROR)
    }
}

/// Handles a clap parse failure: help and version are printed as clap renders them; a usage
/// error is squeezed to one line (clap's own rendering spans several).
pub fn clap_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Ignoring a write error here: the only reader of help is a person or a pipe.
            let _ = e.print();
            ExitCode::SUCCESS
        }
        // clap would print the whole help to stderr; keep the one-line promise.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            print_one_line("a subcommand is required (see --help)");
            ExitCode::from(ERROR)
        }
        _ => {
            let rendered = e.render().to_string();
            let parts: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with("Usage:")
                        && !l.starts_with("For more information")
                })
                .collect();
            let message = parts.join("; ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            print_one_line(&format!("{message} (see --help)"));
            ExitCode::from(ERROR)
        }
    }
}

fn print_one_line(message: &str) {
    let line: String = message
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    // Nothing useful can be done if stderr itself is gone.
    let _ = writeln!(io::stderr().lock(), "walden: {line}");
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
