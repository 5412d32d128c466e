//! SIGTERM stops accepting, lets requests in flight finish (their writes are acknowledged
//! and durable), syncs and exits 0; the next start finds every acknowledged write.
#![allow(clippy::unwrap_used)]

mod support;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use support::*;

#[test]
fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let s = Server::start(&data, &[]);
    let base = s.base.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (base, stop, acked) = (base.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let agent = agent();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("w{t}-{i}");
                    match try_call(
                        &agent,
                        "PUT",
                        &format!("{base}/v1/ns/g/kv/{key}"),
                        Some(b"v"),
                        &[],
                    ) {
                        Ok(r) if r.status == 200 => acked.lock().unwrap().push(key),
                        // Refused or cut off by the shutdown: not acknowledged.
                        _ => break,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = s.terminate();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(status.success(), "exit status {status:?}");
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());

    let s = Server::start(&data, &[]);
    let stderr_mentions_recovery = s.stderr().contains("store open");
    for key in &acked {
        assert_eq!(get(&s, "g", key).status, 200, "acknowledged {key} lost");
    }
    assert!(
        stderr_mentions_recovery,
        "startup logs recovery: {}",
        s.stderr()
    );
}
