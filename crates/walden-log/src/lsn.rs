//! Log sequence numbers.

use std::fmt;

/// A log sequence number: the position of one record in the log. LSNs are dense and start
/// at 1: the n-th record ever appended has LSN n, and each record of a batch gets its own.
/// `Lsn(0)` means "no record" (for example the durable LSN of an empty log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// "No record": smaller than every real LSN.
    pub const ZERO: Lsn = Lsn(0);

    /// The raw value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The next LSN.
    pub const fn next(self) -> Lsn {
        Lsn(self.0 + 1)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for Lsn {
    fn from(v: u64) -> Self {
        Lsn(v)
    }
}
