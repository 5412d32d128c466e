//! Errors. Corruption is kept apart from I/O failures, and every variant carries the context
//! (file, offset, LSN) an operator needs to act on it.

use crate::Lsn;
use std::io;
use std::path::PathBuf;

/// A walden-log result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in the log something was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The segment file.
    pub path: PathBuf,
    /// Byte offset inside that file.
    pub offset: u64,
    /// The LSN expected at that offset.
    pub lsn: Lsn,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at byte offset {} (LSN {})",
            self.path.display(),
            self.offset,
            self.lsn
        )
    }
}

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed. Nothing was acknowledged by the call that returned this.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What the engine was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file system is full (ENOSPC or EDQUOT). Nothing was acknowledged; free space and
    /// reopen (if the log was poisoned) or retry.
    #[error("no space left writing {}: {source}", path.display())]
    NoSpace {
        /// The file being written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Data that may have been acknowledged is damaged; the log refuses to guess. Choose a
    /// tolerant [`crate::RecoveryMode`] explicitly to open it anyway.
    #[error("corruption in {location}: {reason}")]
    Corruption {
        /// Where.
        location: Box<Location>,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write or sync failed; the open log refuses all work until it is reopened
    /// (reopening runs recovery from what is really on disk). Never retried: after a failed
    /// fsync Linux may already have dropped the unwritten pages.
    #[error("log is poisoned by an earlier failure: {cause}")]
    Poisoned {
        /// The failure that poisoned the log.
        cause: String,
    },
    /// A record or batch exceeds the configured or format limit; nothing was written.
    #[error("{what} of {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// "record" or "batch".
        what: &'static str,
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// An argument is out of range (an LSN outside the log, an empty batch, a bad option).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The LSN asked for was released by `truncate_before` (or skipped as corrupt).
    #[error("LSN {lsn} is no longer in the log (the log starts at {first})")]
    Truncated {
        /// The LSN asked for.
        lsn: Lsn,
        /// The log's first LSN now.
        first: Lsn,
    },
    /// Another writer holds the log directory.
    #[error("log directory {} is locked by another writer", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory does not hold a walden log (for read-only tools).
    #[error("{} is not a walden log: {reason}", dir.display())]
    NotALog {
        /// The directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// The log was closed.
    #[error("log is closed")]
    Closed,
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if is_no_space(&source) {
            Error::NoSpace { path, source }
        } else {
            Error::Io { op, path, source }
        }
    }

    pub(crate) fn corruption(
        path: impl Into<PathBuf>,
        offset: u64,
        lsn: u64,
        reason: impl Into<String>,
    ) -> Self {
        Error::Corruption {
            location: Box::new(Location {
                path: path.into(),
                offset,
                lsn: Lsn(lsn),
            }),
            reason: reason.into(),
        }
    }

    /// True for [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

/// ENOSPC (28) or EDQUOT (122).
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28) | Some(122)) || e.kind() == io::ErrorKind::StorageFull
}
