#!/usr/bin/env bash
# The full walden-bench run, as docs/BENCHMARKS.md quotes it: builds in release, waits for a
# quiet machine (1-minute load average below 1.0, checked every minute, at most
# WAIT_MINUTES), then runs every workload against the floor and every peer.
#
# Usage: scripts/bench-full.sh [OUT_DIR] [extra walden-bench flags...]
#   OUT_DIR     where full.json and full.md go (default target/bench)
#   FEATURES    cargo features, e.g. FEATURES=rocksdb (default none). With librocksdb-dev
#               installed it links Debian's library; without it, librocksdb-sys builds
#               RocksDB from C++ source (many minutes; needs libclang-dev).
#   WAIT_MINUTES  how long to wait for a quiet machine (default 60; 0 = do not wait)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/bench}"
shift || true
mkdir -p "$out"
features=()
if [ -n "${FEATURES:-}" ]; then features=(--features "$FEATURES"); fi
# The RocksDB peer links against Debian's librocksdb-dev (7.8) when it is installed
# (apt-get install librocksdb-dev): seconds instead of a many-minute C++ build.
if [[ "${FEATURES:-}" == *rocksdb* && -z "${ROCKSDB_LIB_DIR:-}" ]]; then
  for d in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib; do
    if [ -e "$d/librocksdb.so" ]; then export ROCKSDB_LIB_DIR="$d"; break; fi
  done
fi

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
