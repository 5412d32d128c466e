//! Store errors: the log's errors, plus what a transaction can run into.

use std::path::PathBuf;

/// A walden-store result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The log failed (I/O, corruption, poisoning...). Nothing was acknowledged.
    #[error(transparent)]
    Log(#[from] walden_log::Error),
    /// Another transaction committed a write to a key this transaction also wrote, after
    /// this transaction's snapshot (first committer wins). Retry the transaction.
    #[error(
        "write conflict on namespace {ns:?} key {key:?}: another transaction committed it first"
    )]
    Conflict {
        /// Namespace of the contested key (lossy UTF-8).
        ns: String,
        /// The contested key (lossy UTF-8).
        key: String,
    },
    /// A precondition (key absent, version equals) did not hold at commit.
    #[error("precondition failed on namespace {ns:?} key {key:?}: expected {expected}, current version is {current}")]
    PreconditionFailed {
        /// Namespace (lossy UTF-8).
        ns: String,
        /// Key (lossy UTF-8).
        key: String,
        /// What was required.
        expected: String,
        /// The key's current version (0: never written).
        current: u64,
    },
    /// A key, value, namespace or transaction exceeds its configured limit; nothing was
    /// written.
    #[error("{what} of {bytes} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Which limit.
        what: &'static str,
        /// The size given.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// An argument is invalid (empty namespace, range with start after end...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A checkpoint file is damaged and no older valid one remains.
    #[error("checkpoint {} is damaged: {reason}", path.display())]
    CorruptCheckpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint file is in a format version this build cannot read (written by a newer
    /// build): refused, not skipped, so that a downgrade does not fall back to an older
    /// checkpoint or move a good one aside.
    #[error("checkpoint {} uses format version {version}, which this build cannot read", path.display())]
    UnsupportedCheckpoint {
        /// The file.
        path: PathBuf,
        /// Its format version.
        version: u32,
    },
    /// A log record does not decode as a store record: the log is not a walden-store log,
    /// or a bug wrote it.
    #[error("log record at LSN {lsn} is not a valid store record: {reason}")]
    BadRecord {
        /// Where.
        lsn: u64,
        /// Why.
        reason: String,
    },
    /// The store failed earlier (its log is poisoned); reopen it to recover.
    #[error("store is poisoned by an earlier failure: {0}")]
    Poisoned(String),
}

pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
