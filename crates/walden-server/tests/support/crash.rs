//! The crash tests' rounds: start the server on one data directory, put client load on it,
//! crash it at a random moment (how is the test's: [`Crash`]), restart, and check that every
//! acknowledged write survived; several rounds, then a final check. The random moments
//! derive from one seed, printed, that `WALDEN_CRASH_SEED=N` replays.

use super::workload::{verify, Load};
use super::Server;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use walden_testkit::seeds::{seed_or_random, CRASH_SEED_VAR};

/// Client threads writing during each round.
pub const CLIENTS: usize = 8;

/// Server arguments large enough for the check to read every key in one scan, with the
/// RESP endpoint on (half the clients write through it).
pub const ARGS: &[&str] = &[
    "--max-scan-items",
    "1000000",
    "--max-body-bytes",
    "268435456",
    "--resp-listen",
    "127.0.0.1:0",
];

/// How a round ends the server under load.
pub trait Crash {
    /// Crashes the server, which is under load (at the latest, kills it).
    fn crash(&mut self, server: Server, rng: &mut StdRng);

    /// After the clients have stopped: readies the data directory for the restart.
    fn before_restart(&mut self) {}
}

/// Runs `rounds` crash rounds on `data` (each under load for a random time in `load_ms`
/// before `crash`), then restarts a last time: every acknowledged write is there in every
/// round, and the load acknowledged enough to prove something. `label` names the test in
/// the seed line.
pub fn crash_rounds(
    label: &str,
    data: &Path,
    rounds: u32,
    load_ms: Range<u64>,
    crash: &mut impl Crash,
) {
    let seed = seed_or_random(CRASH_SEED_VAR, label);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut all = Vec::new();
    for round in 0..rounds {
        let s = Server::start(data, ARGS);
        if round > 0 {
            let (acked, attempted) = verify(&s.base, &all);
            eprintln!("round {round}: {acked} of {attempted} writes acknowledged, all present");
        }
        let load = Load::start(&s.base, s.resp, round, CLIENTS);
        std::thread::sleep(Duration::from_millis(rng.gen_range(load_ms.clone())));
        crash.crash(s, &mut rng);
        all.extend(load.finish());
        crash.before_restart();
    }
    let s = Server::start(data, ARGS);
    let (acked, attempted) = verify(&s.base, &all);
    eprintln!("final: {acked} of {attempted} writes acknowledged, all present");
    assert!(
        acked > 50,
        "the load acknowledged too little to prove anything: {acked}"
    );
    let over_resp = all.iter().filter(|a| a.acked_lsn == Some(0)).count();
    eprintln!("{over_resp} of the acknowledged writes went over RESP");
    assert!(
        over_resp > 10,
        "too few acknowledgements over RESP to prove anything: {over_resp}"
    );
    assert!(s.terminate().success());
}
