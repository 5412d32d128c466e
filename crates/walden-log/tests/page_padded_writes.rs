//! Every write the engine makes ends at a 4 KiB page boundary (or at the segment's end).
//!
//! A buffered write of part of a page that is not in the page cache makes the kernel read
//! that page before it can write, and segments zero-filled with `O_DIRECT` are not in the
//! cache: when the group commit's end marker stopped 32 bytes after the last frame, every
//! 4 KiB durable append read a page first (W1 4 KiB fell from 0.97x to 0.70x of the floor,
//! docs/BENCHMARKS.md). The marker now pads to the end of its page, so the next write's
//! first page is the one the last write left in the cache.
#![allow(clippy::unwrap_used)]

mod matrix_util;

use matrix_util::*;
use std::io;
use std::sync::{Arc, Mutex};
use walden_log::storage::{SimStorage, StorageFile};
use walden_log::{Durability, Wal};
use walden_testkit::forwarding::{FileHooks, Forwarding};

/// Records the end of every write.
#[derive(Debug, Default)]
struct WriteEnds(Mutex<Vec<(u64, usize)>>);

impl FileHooks for WriteEnds {
    fn write_all_at(&self, file: &dyn StorageFile, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.lock().unwrap().push((offset, buf.len()));
        file.write_all_at(buf, offset)
    }
}

#[test]
fn every_write_ends_at_a_page_boundary() {
    let sim = SimStorage::new(3);
    let storage = Arc::new(Forwarding::new(sim.clone(), WriteEnds::default()));
    let options = sim_options(SMALL_SEGMENT_BYTES);
    let wal = Wal::open_with(options, storage.clone(), &mut |_| {}).unwrap();
    for i in 0..300u64 {
        let record = vec![b'r'; (i as usize * 37) % 3000 + 1];
        let durability = if i % 3 == 0 {
            Durability::Buffered
        } else {
            Durability::Sync
        };
        wal.append_with(&record, durability).unwrap();
    }
    wal.sync().unwrap();
    wal.close().unwrap();
    let writes = storage.hooks().0.lock().unwrap().clone();
    assert!(writes.len() > 100, "{} writes", writes.len());
    for (offset, len) in writes {
        let end = offset + len as u64;
        assert!(
            end.is_multiple_of(4096) || end == SMALL_SEGMENT_BYTES,
            "a write of {len} bytes at {offset} ends inside a page"
        );
    }
}
