#!/usr/bin/env bash
# Redis peer for walden-bench W7: a throwaway redis-server on a loopback port, durable per
# acknowledged write (appendonly yes, appendfsync always: the AOF is fdatasynced before the
# replies of an event-loop pass are sent, so concurrent writes share one fsync), with its data
# directory (the AOF) under --dir, i.e. on the disk being benchmarked. No RDB snapshots.
#
#   redis-peer.sh start --dir DIR --port PORT
#       starts it (daemonized) and waits for PING; prints one JSON line on stdout:
#       {"status":"ok","version":"7.0.15","pid":1234}
#       or {"status":"missing","reason":"..."} when redis-server is not installed or fails.
#   redis-peer.sh stop --dir DIR
#       stops the server started in DIR (SIGTERM, then SIGKILL after 10 s).
#
# The benchmark drives it itself (walden-bench's W7 client, one connection per client, SET).
# Needs Debian's redis-server (apt-get install -y redis-server).
set -euo pipefail

cmd="${1:-}"
shift || true
dir=""
port=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "redis-peer.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

missing() {
  local reason=${1//\\/\\\\}
  reason=${reason//\"/\\\"}
  printf '{"status":"missing","reason":"%s"}\n' "$reason"
  exit 0
}

[ -n "$dir" ] || { echo "redis-peer.sh: --dir is required" >&2; exit 2; }

case "$cmd" in
  start)
    [ -n "$port" ] || { echo "redis-peer.sh: --port is required" >&2; exit 2; }
    command -v redis-server >/dev/null 2>&1 ||
      missing "Redis not installed: no redis-server on PATH (apt-get install -y redis-server)"
    command -v redis-cli >/dev/null 2>&1 ||
      missing "Redis not installed: no redis-cli on PATH (apt-get install -y redis-tools)"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    cat >"$dir/redis.conf" <<EOF
bind 127.0.0.1
port $port
protected-mode yes
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
dir $dir
save ""
appendonly yes
appendfsync always
maxclients 4096
EOF
    if ! redis-server "$dir/redis.conf" >"$dir/start.log" 2>&1; then
      missing "redis-server did not start: $(tail -n 1 "$dir/start.log")"
    fi
    for _ in $(seq 1 100); do
      if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ]; then
        ready=1
        break
      fi
      sleep 0.1
    done
    if [ -z "${ready:-}" ]; then
      missing "redis-server did not answer PING on port $port: $(tail -n 1 "$dir/redis.log" 2>/dev/null)"
    fi
    aof=$(redis-cli -h 127.0.0.1 -p "$port" config get appendfsync | tail -n 1)
    [ "$aof" = "always" ] || missing "redis-server runs with appendfsync $aof, not always"
    version=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
    pid=$(cat "$dir/redis.pid" 2>/dev/null || echo 0)
    echo "redis-peer: Redis $version (pid $pid) on 127.0.0.1:$port, AOF in $dir, appendfsync always" >&2
    printf '{"status":"ok","version":"%s","pid":%s}\n' "$version" "$pid"
    ;;
  stop)
    pidfile="$dir/redis.pid"
    [ -f "$pidfile" ] || exit 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || exit 0
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || exit 0
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    ;;
  *)
    echo "usage: redis-peer.sh start|stop --dir DIR [--port PORT]" >&2
    exit 2
    ;;
esac
