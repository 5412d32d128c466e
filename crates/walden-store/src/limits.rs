//! Size limits, in one place. Each is checked before anything is written.

/// Limits on what one operation or transaction may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest namespace name (default 256 B).
    pub namespace_bytes_max: usize,
    /// Largest key (default 4 KiB).
    pub key_bytes_max: usize,
    /// Largest value (default 4 MiB).
    pub value_bytes_max: usize,
    /// Most bytes of writes one transaction may hold (default 64 MiB).
    pub txn_bytes_max: usize,
    /// Most versions kept per key for history (default 8, at least 1, at most
    /// [`HISTORY_VERSIONS_MAX`]).
    pub history_versions: usize,
}

/// The largest `Limits::history_versions`: a checkpoint stores a key's version count in 16
/// bits (docs/FORMAT.md). A larger limit is refused when the store opens; before that
/// check, a key with more kept versions wrapped the count and the checkpoint read back as
/// damaged after the log before it had been released (found in review).
pub const HISTORY_VERSIONS_MAX: usize = u16::MAX as usize;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            namespace_bytes_max: 256,
            key_bytes_max: 4 << 10,
            value_bytes_max: 4 << 20,
            txn_bytes_max: 64 << 20,
            history_versions: 8,
        }
    }
}
