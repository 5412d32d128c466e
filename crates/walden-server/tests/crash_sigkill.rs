//! Crash under load: client threads write single keys and three-key transactions while the
//! server is SIGKILLed at random moments, several rounds on one data directory. After each
//! restart every acknowledged write is there with its value and LSN, no unacknowledged
//! transaction is half applied, and nothing appears that no client wrote.
//! `WALDEN_CRASH_SEED=N` replays the random kill times.
#![allow(clippy::unwrap_used)]

mod support;
use rand::rngs::StdRng;
use support::crash::{crash_rounds, Crash};
use support::*;

const ROUNDS: u32 = 4;

/// A SIGKILL, nothing more.
struct Kill;

impl Crash for Kill {
    fn crash(&mut self, server: Server, _rng: &mut StdRng) {
        server.kill();
    }
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_write() {
    let dir = tempdir();
    crash_rounds(
        "crash_sigkill",
        &dir.path().join("data"),
        ROUNDS,
        150..900,
        &mut Kill,
    );
}
