#!/usr/bin/env bash
# PostgreSQL peer for walden-bench: durable single-row insert commits, measured with pgbench.
#
# Starts a throwaway cluster (initdb into a temporary directory under --dir, so the WAL lives
# on the disk being benchmarked; the server listens only on a Unix socket in a private
# directory), runs every requested (clients, record size) pair --reps times with
# synchronous_commit=on (every commit waits for its WAL fdatasync; concurrent commits share
# flushes, which is PostgreSQL's group commit), stops the cluster and removes it. Prints one
# JSON object on stdout:
#   {"status":"ok","version":"...","runs":[{"clients":C,"record_bytes":B,"rep":R,"seconds":S,
#     "transactions":N,"tps":T,"wal_syncs":W,"lat_p50_us":..,"lat_p99_us":..,"lat_p999_us":..}]}
# or {"status":"missing","reason":"..."} when PostgreSQL is not installed or cannot start.
# Progress goes to stderr. Needs Debian's postgresql (initdb, pg_ctl, pgbench, psql); as root
# the server runs as the `postgres` user (initdb refuses root).
#
# Usage: pg-peer.sh --dir DIR [--seconds N] [--reps N] [--runs "C:B,C:B,..."]
#   --runs   clients:record_bytes pairs (default "1:128,1:4096,4:128,16:128,64:128,256:128")
set -euo pipefail

dir=""
seconds=5
reps=3
runs="1:128,1:4096,4:128,16:128,64:128,256:128"
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "pg-peer.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

missing() {
  # JSON string escaping for the few characters a reason can hold.
  local reason=${1//\\/\\\\}
  reason=${reason//\"/\\\"}
  printf '{"status":"missing","reason":"%s"}\n' "$reason"
  exit 0
}

[ -n "$dir" ] || { echo "pg-peer.sh: --dir is required" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd) # absolute: pgbench runs from another directory

bindir="${PG_BIN:-}"
if [ -z "$bindir" ]; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ -z "$bindir" ] && command -v pg_config >/dev/null 2>&1; then
  bindir=$(pg_config --bindir)
fi
for tool in initdb pg_ctl pgbench psql; do
  if [ -z "$bindir" ] || [ ! -x "$bindir/$tool" ]; then
    missing "PostgreSQL not installed: no $tool under /usr/lib/postgresql/*/bin (apt-get install -y postgresql)"
  fi
done

as_pg=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || missing "running as root and there is no postgres user to run the server"
  as_pg=(runuser -u postgres --)
fi

work=$(mktemp -d "$dir/pg.XXXXXX")
sock=$(mktemp -d /tmp/wbpg.XXXXXX) # a short path: Unix socket paths are limited to 107 bytes
chmod 755 "$work" "$sock"
if [ ${#as_pg[@]} -gt 0 ]; then chown postgres: "$work" "$sock"; fi
data="$work/data"
psql_cmd=("${as_pg[@]}" "$bindir/psql" -X -q -t -A -h "$sock" -U bench -d postgres)

cleanup() {
  "${as_pg[@]}" "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work" "$sock"
}
trap cleanup EXIT

# initdb --no-sync: the throwaway cluster's initial files need no crash safety; commits do.
if ! "${as_pg[@]}" "$bindir/initdb" -D "$data" -U bench -A trust -E UTF8 --no-sync \
    >"$work/initdb.log" 2>&1; then
  missing "initdb failed: $(tail -n 1 "$work/initdb.log")"
fi
if ! "${as_pg[@]}" "$bindir/pg_ctl" -D "$data" -l "$work/server.log" -w -t 60 \
    -o "-c listen_addresses='' -c unix_socket_directories='$sock' -c max_connections=300 \
        -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c commit_delay=0 \
        -c shared_buffers=128MB -c max_wal_size=4GB" start >/dev/null 2>&1; then
  missing "the server did not start: $(tail -n 1 "$work/server.log" 2>/dev/null)"
fi
version=$("${psql_cmd[@]}" -c "SHOW server_version" | head -n 1)
echo "pg-peer: PostgreSQL $version in $data, socket $sock" >&2

# One table, no index: a single-row insert per transaction, the value stored uncompressed
# (STORAGE PLAIN) so a 4 KiB record puts 4 KiB into the WAL.
"${psql_cmd[@]}" -c "CREATE TABLE t (v text); ALTER TABLE t ALTER COLUMN v SET STORAGE PLAIN;" >/dev/null
printf 'INSERT INTO t (v) VALUES (repeat(%s, :size));\n' "'x'" >"$work/insert.sql"
chmod 644 "$work/insert.sql"

out="$work/runs.json"
: >"$out"
IFS=',' read -r -a pairs <<<"$runs"
for ((rep = 0; rep < reps; rep++)); do
  for pair in "${pairs[@]}"; do
    clients=${pair%%:*}
    size=${pair##*:}
    jobs=$((clients < 2 ? 1 : 2))
    "${psql_cmd[@]}" -c "TRUNCATE t; CHECKPOINT; SELECT pg_stat_reset_shared('wal');" >/dev/null
    rm -f "$work"/lat.*
    log="$work/pgbench.log"
    if ! (cd "$work" && "${as_pg[@]}" "$bindir/pgbench" -h "$sock" -U bench -n -M prepared \
        -c "$clients" -j "$jobs" -T "$seconds" -f "$work/insert.sql" -D size="$size" \
        -l --log-prefix="$work/lat" postgres) >"$log" 2>&1; then
      missing "pgbench failed at $clients clients: $(tail -n 1 "$log")"
    fi
    sleep 0.5 # let exiting backends flush their WAL statistics
    tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log")
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$log")
    syncs=$("${psql_cmd[@]}" -c "SELECT wal_sync FROM pg_stat_wal" | head -n 1)
    # Field 3 of pgbench's per-transaction log is the transaction's latency in microseconds.
    read -r p50 p99 p999 < <(cat "$work"/lat.* | awk '{print $3}' | sort -n | awk '
      { v[NR] = $1 }
      END {
        if (NR == 0) { print "null null null"; exit }
        i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
        i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
        i999 = int(NR * 0.999); if (i999 < 1) i999 = 1
        print v[i50], v[i99], v[i999]
      }')
    echo "pg-peer: rep $rep, $clients clients, $size B: $tps tps, $syncs WAL syncs" >&2
    printf '{"clients":%s,"record_bytes":%s,"rep":%s,"seconds":%s,"transactions":%s,"tps":%s,"wal_syncs":%s,"lat_p50_us":%s,"lat_p99_us":%s,"lat_p999_us":%s}\n' \
      "$clients" "$size" "$rep" "$seconds" "${tx:-0}" "${tps:-0}" "${syncs:-null}" \
      "$p50" "$p99" "$p999" >>"$out"
  done
done

printf '{"status":"ok","version":"%s","runs":[%s]}\n' "$version" "$(paste -sd, "$out")"
