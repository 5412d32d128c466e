//! Seeds and environment knobs: every randomized test prints the seed it ran with, and the
//! same seed, passed back through an environment variable, replays it.
//!
//! - [`mix`] and [`rng_for`] derive seeds and generators from one seed, so one printed
//!   number fixes every random choice of a run.
//! - [`env_u64`] reads a numeric knob and refuses a typo loudly.
//! - [`seed_or_random`] is the seed of a real-time test (kill or power-cut times): taken
//!   from a variable when set, random otherwise, and printed with the replay command.

use rand::rngs::SmallRng;
use rand::SeedableRng;

/// The variable that replays one seed of a crash test (the sweeps, the server's crash
/// rounds).
pub const CRASH_SEED_VAR: &str = "WALDEN_CRASH_SEED";

/// Combines two numbers into a well-spread seed (splitmix64 finaliser).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seeded generator for one derived purpose: the same `(seed, salt)` always gives the
/// same stream, and different salts give unrelated streams.
pub fn rng_for(seed: u64, salt: u64) -> SmallRng {
    SmallRng::seed_from_u64(mix(seed, salt))
}

/// The value of environment variable `name` as a number, if set. Panics (naming it) if it
/// is set but not a number, so a typo does not silently run the default.
pub fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim();
    match value.parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={value:?} is not a number"),
    }
}

/// The seed of a test whose randomness meets real time (when to kill, when to cut the
/// power): the number in `var` when it is set and parses, else a random one. Prints
/// `<label>: seed <n> (replay with <var>=<n>)` to stderr, so a failing run names its replay.
pub fn seed_or_random(var: &str, label: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("{label}: seed {seed} (replay with {var}={seed})");
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Printed seeds replay only while the derivation stays the same: pin it.
    #[test]
    fn mix_is_pinned() {
        assert_eq!(mix(1000, 17), 5_600_924_673_034_860_450);
        assert_eq!(mix(0, 0), 0);
        assert_ne!(mix(1, 2), mix(2, 1));
    }
}
