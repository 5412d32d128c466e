//! Test scaffolding shared by the walden crates' tests, so that one copy of each piece is
//! maintained and every crate's tests mean the same thing by it.
//!
//! This crate is a dev-dependency only: no library or binary of the workspace depends on
//! it, and it is never published. It knows walden-log's storage boundary and nothing of
//! the store or the server; the pieces that need those stay in the tests of their crates.
//!
//! One module per concept:
//! - [`seeds`]: seeds and environment knobs. Derived seeds ([`seeds::mix`],
//!   [`seeds::rng_for`]), numbers read from the environment ([`seeds::env_u64`]), and the
//!   print-then-replay convention of every randomized test ([`seeds::seed_or_random`]).
//! - [`simfs`]: helpers around walden-log's `SimStorage` that tests of several layers
//!   need: damage patterns by name, copying a crashed file system to recover it again.
//! - [`forwarding`]: a `Storage` that forwards every call to an inner one, with hooks to
//!   override file calls, to count calls or inject faults.
//! - [`sweep`]: the crash-sweep driver: run a workload on `SimStorage`, crash at every
//!   storage call with every damage pattern, over many seeds, and report.
//! - [`loopmount`]: a loop-mounted ext4 image (or a tmpfs) that is unmounted on drop, with
//!   `xfs_io -x -c shutdown` as a power cut, and the loud refusal when the machine cannot
//!   run such a test.
//! - [`exec`]: a minimal executor for tests that wait on the log's futures.

pub mod exec;
pub mod forwarding;
pub mod loopmount;
pub mod seeds;
pub mod simfs;
pub mod sweep;
