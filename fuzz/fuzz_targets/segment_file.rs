//! A log directory (a valid log written by the library then damaged, or raw files) through
//! `inspect_dir`, `dump_records` and `Wal::open_with` / `Wal::open_read_only` in every
//! recovery mode, reading everything. Must never panic or allocate hugely. See
//! `walden_log_fuzz::Input` for how the bytes are read.
#![no_main]

#[global_allocator]
static ALLOC: walden_log_fuzz::CappedAlloc = walden_log_fuzz::CappedAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| walden_log_fuzz::run_segment_file(data));
