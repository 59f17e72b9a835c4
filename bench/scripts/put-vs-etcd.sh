#!/usr/bin/env bash
# The put benchmark against etcd and ferrocd on this machine, one table.
#
# For each server and each client count, a fresh single member is started on
# a temporary data dir and free loopback ports, `ferrobench put` runs against
# it (after a short warm-up) with --server-pid so the table shows the
# server's CPU time per 1000 puts (and ferrobench's own beside it: the load
# generator shares the cores) and its peak RSS, and the server is stopped by
# PID (SIGTERM, then SIGKILL after 10 s).
#
# usage: bench/scripts/put-vs-etcd.sh [options]
#   --etcd PATH        an etcd to measure; repeat for several
#                      (default: /usr/bin/etcd, Debian's etcd 3.4)
#   --ferrocd PATH     the ferrocd server binary; without it, or if PATH is
#                      not an executable, ferrocd is skipped with a message
#   --ferrobench PATH  default: target/release/ferrobench (built if missing)
#   --clients "LIST"   client counts (default: "1 16 256")
#   --total N          puts per run (default: 2000 for 1 client, 20000 for
#                      up to 16, 50000 above)
#   --max-secs S       bound on each run (default: 30)
#   --key-size B --val-size B   (default: 8 and 256)
#   --data-root DIR    where data dirs go (default: $TMPDIR or /tmp); use a
#                      real disk, not tmpfs, or fsync costs nothing
#   --json-out FILE    also append every run's JSON report to FILE
#
# Needs python3 (free ports, JSON) and curl (health checks).
set -euo pipefail
cd "$(dirname "$0")/../.."

etcds=()
ferrocd=""
ferrobench=""
clients="1 16 256"
total=""
max_secs=30
key_size=8
val_size=256
data_root="${TMPDIR:-/tmp}"
json_out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --etcd) etcds+=("$2"); shift 2 ;;
    --ferrocd) ferrocd="$2"; shift 2 ;;
    --ferrobench) ferrobench="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --total) total="$2"; shift 2 ;;
    --max-secs) max_secs="$2"; shift 2 ;;
    --key-size) key_size="$2"; shift 2 ;;
    --val-size) val_size="$2"; shift 2 ;;
    --data-root) data_root="$2"; shift 2 ;;
    --json-out) json_out="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#etcds[@]} -gt 0 ] || etcds=(/usr/bin/etcd)

if [ -z "$ferrobench" ]; then
  ferrobench=target/release/ferrobench
  if [ ! -x "$ferrobench" ]; then
    echo "building ferrobench (release)..." >&2
    cargo build --release -p ferrocd-bench >&2
  fi
fi
[ -x "$ferrobench" ] || { echo "no ferrobench at $ferrobench" >&2; exit 1; }

work="$(mktemp -d "$data_root/put-vs-etcd.XXXXXX")"
results="$work/results.tsv"
: > "$results"
server_pid=""

stop_server() {
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "server $server_pid ignored SIGTERM for 10 s; SIGKILL" >&2
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT

free_ports() {
  python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])'
}

# start_server LABEL BIN KIND: starts a fresh member; sets server_pid, port.
start_server() {
  local label="$1" bin="$2" kind="$3" dir peer extra=()
  read -r port peer < <(free_ports)
  dir="$work/data-$RANDOM$RANDOM"
  # etcd 3.4 logs through capnslog unless told otherwise.
  [ "$kind" = etcd ] && extra=(--logger zap)
  "$bin" --name bench --data-dir "$dir" \
    --listen-client-urls "http://127.0.0.1:$port" \
    --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "bench=http://127.0.0.1:$peer" \
    --initial-cluster-state new --log-level error "${extra[@]}" \
    > "$dir.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 200); do
    if curl -fsS "http://127.0.0.1:$port/health" 2>/dev/null | grep -q '"health":"true"'; then
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$label did not become healthy; log:" >&2
  tail -20 "$dir.log" >&2
  stop_server
  return 1
}

total_for() {
  if [ -n "$total" ]; then echo "$total"
  elif [ "$1" -le 1 ]; then echo 2000
  elif [ "$1" -le 16 ]; then echo 20000
  else echo 50000
  fi
}

# One connection per client up to 16 clients, then 16 clients per connection.
conns_for() { if [ "$1" -le 16 ]; then echo "$1"; else echo $(( $1 / 16 )); fi; }

bench_server() {
  local label="$1" bin="$2" kind="$3" c n conns json
  for c in $clients; do
    n="$(total_for "$c")"
    conns="$(conns_for "$c")"
    start_server "$label" "$bin" "$kind" || { printf '%s\t%s\tFAILED TO START\n' "$label" "$c" >> "$results"; continue; }
    echo "== $label: $c clients, $conns conns, $n puts (server pid $server_pid, port $port)" >&2
    "$ferrobench" put --endpoints "127.0.0.1:$port" --clients 16 --conns 4 \
      --total 1000 --key-space 1000 --key-size "$key_size" --val-size "$val_size" \
      --quiet > /dev/null
    if json="$("$ferrobench" put --endpoints "127.0.0.1:$port" --clients "$c" --conns "$conns" \
        --total "$n" --max-secs "$max_secs" --key-size "$key_size" --val-size "$val_size" \
        --server-pid "$server_pid" -w json)"; then :; else
      echo "ferrobench reported errors against $label" >&2
    fi
    stop_server
    [ -n "$json_out" ] && printf '%s\n' "$json" | sed "s/^{/{\"server\":\"$label\",/" >> "$json_out"
    printf '%s\t%s\n' "$label" "$json" >> "$results"
  done
}

for e in "${etcds[@]}"; do
  if [ ! -x "$e" ]; then echo "skipping etcd: no executable at $e" >&2; continue; fi
  bench_server "etcd $("$e" --version | sed -n 's/^etcd Version: //p')" "$e" etcd
done
if [ -z "$ferrocd" ]; then
  echo "skipping ferrocd: no --ferrocd PATH given" >&2
elif [ ! -x "$ferrocd" ]; then
  echo "skipping ferrocd: no executable at $ferrocd (build it with cargo build --release -p ferrocd-core)" >&2
else
  bench_server "ferrocd" "$ferrocd" ferrocd
fi

echo
echo "put: key $key_size B, value $val_size B, one Put RPC per request; $(nproc) cores; data in $data_root"
python3 - "$results" <<'EOF'
import json, sys
rows = [("server", "clients", "conns", "puts", "ops/s", "p50 ms", "p90 ms", "p99 ms",
         "p99.9 ms", "max ms", "cpu ms/1k", "client ms/1k", "rss MiB", "errors")]
for line in open(sys.argv[1]):
    label, rest = line.rstrip("\n").split("\t", 1)
    try:
        j = json.loads(rest)
    except ValueError:
        rows.append((label, rest.split("\t")[0], "-", "-", rest.split("\t")[-1]) + ("",) * 9)
        continue
    lat = j["latency_us"]
    srv = j.get("server") or {}
    cli = j.get("client") or {}
    ms = lambda us: f"{us / 1000:.2f}"
    rows.append((label, str(j["clients"]), str(j["conns"]), str(j["completed"]),
                 f"{j['ops_per_sec']:.0f}", ms(lat["p50"]), ms(lat["p90"]), ms(lat["p99"]),
                 ms(lat["p99.9"]), ms(lat["max"]),
                 "-" if srv.get("cpu_ms_per_1k_ops") is None else f"{srv['cpu_ms_per_1k_ops']:.1f}",
                 "-" if cli.get("cpu_ms_per_1k_ops") is None else f"{cli['cpu_ms_per_1k_ops']:.1f}",
                 "-" if srv.get("peak_rss_kib") is None else f"{srv['peak_rss_kib'] / 1024:.0f}",
                 str(j["errors"])))
widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
for r in rows:
    print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
EOF
