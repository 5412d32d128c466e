//! Arbitrary bytes through every public decoder of the on-disk format: header pages and
//! header copies, frame headers at every 8-aligned offset, and frame payloads of both kinds.
//! Must never panic; checks a few round-trip and consistency properties on the way.
#![no_main]

#[global_allocator]
static ALLOC: walden_log_fuzz::CappedAlloc = walden_log_fuzz::CappedAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| walden_log_fuzz::decode_all(data));
