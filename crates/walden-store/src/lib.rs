//! # walden-store: transactional memory on walden-log
//!
//! An in-memory, ordered key-value store whose every change is logged in a
//! [`walden_log::Wal`] before it is applied, so that a restarted (or backup) process rebuilds
//! exactly the state that was acknowledged: the shared memory of agents (task assignments,
//! shared context, conversation history).
//!
//! - **Data model**: namespaces of ordered byte keys with byte values; tombstones on delete;
//!   each key keeps its last N versions with their commit LSN and time.
//! - **Transactions**: snapshot isolation with first-committer-wins; preconditions (absent,
//!   version equals) let agents fence each other; large transactions spill to the log before
//!   they commit. See docs/STORE.md for the anomalies that remain (write skew).
//! - **Durability**: a commit returns once its commit record is durable; concurrent commits
//!   share `fdatasync` calls. Nobody sees a commit before it is durable.
//! - **Recovery**: analysis, redo, discard, from the newest checkpoint.
//! - **Checkpoints**: taken while writers write, atomically, by size, time or on demand; they
//!   bound recovery time and let the log's head be released.
//! - **Change feed**: committed transactions in commit order from any retained LSN.
//!
//! ```
//! use walden_store::{Precondition, Store, StoreOptions};
//! # fn main() -> walden_store::Result<()> {
//! # let tmp = tempfile::tempdir().map_err(|e| walden_store::Error::InvalidArgument(e.to_string()))?;
//! let store = Store::open(StoreOptions::new(tmp.path()))?;
//! store.put_if(b"tasks", b"task-17", b"agent-a", Precondition::Absent)?; // agent-a claims it
//! let lost = store.put_if(b"tasks", b"task-17", b"agent-b", Precondition::Absent);
//! assert!(lost.is_err());                                                // agent-b cannot
//! assert_eq!(&*store.get(b"tasks", b"task-17").unwrap().value, b"agent-a");
//! # Ok(()) }
//! ```

mod chain;
mod checkpoint;
mod codec;
mod deferred;
mod error;
mod feed;
mod gather;
mod keys;
mod limits;
mod recovery;
mod state;
mod store;
mod txn;

pub use chain::Version;
pub use codec::{Bytes, Write};
pub use deferred::PendingCommit;
pub use error::{Error, Result};
pub use feed::{ChangeFeed, CommittedTxn};
pub use limits::{Limits, HISTORY_VERSIONS_MAX};
pub use recovery::{StoreRecoveryProgress, StoreRecoveryReport};
pub use store::{CheckpointInfo, CommitInfo, Store, StoreOptions, StoreStatus};
pub use txn::{Precondition, Scan, Transaction, Versioned};
