//! Power cut under load: the data directory lives on a loop-mounted ext4 image; while
//! client threads write, `xfs_io -x -c shutdown` makes the file system drop everything not
//! yet on the device (like pulling the plug); the server is SIGKILLed, the image unmounted,
//! detached, mounted again (journal replay) and the server restarted: every acknowledged
//! write is there, no unacknowledged transaction is half applied.
//! `WALDEN_CRASH_SEED=N` replays the random cut times.
//!
//! Needs root, loop devices, mkfs.ext4, losetup, mount and xfs_io (xfsprogs; .ci/run
//! installs it). Where any is missing the test FAILS with a banner saying why, unless
//! `WALDEN_SKIP_REAL_KERNEL=1` is set, which skips it (still with the banner).
#![allow(clippy::unwrap_used)]

mod support;
use rand::rngs::StdRng;
use rand::Rng;
use std::time::Duration;
use support::crash::{crash_rounds, Crash};
use support::*;
use walden_testkit::loopmount::{environment_or_skip, unavailable, Mount};

const TEST: &str = "power_cut_under_load";
const ROUNDS: u32 = 2;

/// Cuts the power under the server, then kills it; remounts before the restart.
struct PowerCut(Mount);

impl Crash for PowerCut {
    fn crash(&mut self, server: Server, rng: &mut StdRng) {
        // Without `-f` the journal is not flushed either.
        self.0.shutdown(false).unwrap();
        // Writes after the cut fail; let the clients see it, then kill the server.
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..200)));
        server.kill();
    }

    fn before_restart(&mut self) {
        self.0.unmount_and_detach().unwrap();
        self.0.attach_and_mount().unwrap();
    }
}

#[test]
fn power_cut_under_load() {
    let Some(tools) = environment_or_skip(TEST) else {
        return;
    };
    let dir = tempdir();
    let target = dir.path().join("mnt");
    let mount = match Mount::ext4(&tools, &dir.path().join("fs.img"), &target, 512 << 20) {
        Ok(m) => m,
        Err(why) => return unavailable(TEST, &why),
    };
    let mut cut = PowerCut(mount);
    crash_rounds(TEST, &target.join("data"), ROUNDS, 200..900, &mut cut);
}
