#!/usr/bin/env bash
# The full walden-bench run, as docs/BENCHMARKS.md quotes it: builds in release, waits for a
# quiet machine (1-minute load average below 1.0, checked every minute, at most
# WAIT_MINUTES), then runs every workload against the floor and every peer.
#
# Usage: scripts/bench-full.sh [OUT_DIR] [extra walden-bench flags...]
#   OUT_DIR     where full.json and full.md go (default target/bench)
#   FEATURES    cargo features, e.g. FEATURES=rocksdb (default none: RocksDB's C++ build is slow)
#   WAIT_MINUTES  how long to wait for a quiet machine (default 60; 0 = do not wait)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/bench}"
shift || true
mkdir -p "$out"
features=()
if [ -n "${FEATURES:-}" ]; then features=(--features "$FEATURES"); fi

cargo build --release -p walden-bench "${features[@]}"

wait_minutes="${WAIT_MINUTES:-60}"
for ((i = 0; i < wait_minutes; i++)); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  if awk -v l="$load" 'BEGIN { exit !(l < 1.0) }'; then break; fi
  echo "bench-full: load $load, waiting ($i/$wait_minutes min)" >&2
  sleep 60
done
echo "bench-full: starting at load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

./target/release/walden-bench --json "$out/full.json" --markdown "$out/full.md" "$@"
