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
    /// Most versions kept per key for history (default 8, at least 1).
    pub history_versions: usize,
}

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
