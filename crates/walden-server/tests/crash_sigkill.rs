//! Crash under load: client threads write single keys and three-key transactions while the
//! server is SIGKILLed at random moments, several rounds on one data directory. After each
//! restart every acknowledged write is there with its value and LSN, no unacknowledged
//! transaction is half applied, and nothing appears that no client wrote.
//! `WALDEN_CRASH_SEED=N` replays the random kill times.
#![allow(clippy::unwrap_used)]

mod support;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use support::workload::{verify, Load};
use support::*;

const ROUNDS: u32 = 4;
const CLIENTS: usize = 8;
const ARGS: &[&str] = &[
    "--max-scan-items",
    "1000000",
    "--max-body-bytes",
    "268435456",
];

#[test]
fn sigkill_under_load_loses_no_acknowledged_write() {
    let seed = std::env::var("WALDEN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("crash_sigkill: seed {seed} (replay with WALDEN_CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut all = Vec::new();
    for round in 0..ROUNDS {
        let s = Server::start(&data, ARGS);
        if round > 0 {
            let (acked, attempted) = verify(&s.base, &all);
            eprintln!("round {round}: {acked} of {attempted} writes acknowledged, all present");
        }
        let load = Load::start(&s.base, round, CLIENTS);
        std::thread::sleep(Duration::from_millis(rng.gen_range(150..900)));
        s.kill();
        all.extend(load.finish());
    }
    let s = Server::start(&data, ARGS);
    let (acked, attempted) = verify(&s.base, &all);
    eprintln!("final: {acked} of {attempted} writes acknowledged, all present");
    assert!(
        acked > 50,
        "the load acknowledged too little to prove anything: {acked}"
    );
    assert!(s.terminate().success());
}
