#!/usr/bin/env bash
# 3-member clusters side by side: put throughput at N clients against the
# leader, and leader fail-over time (kill -9 of the leader → first write
# that succeeds through a survivor), for etcd and ferrocd on this machine.
#
# usage: bench/scripts/cluster3-vs-etcd.sh [--etcd PATH] [--ferrocd PATH]
#          [--clients N] [--total N] [--rounds N] [--data-root DIR]
#   --etcd      default /usr/bin/etcd (Debian's etcd 3.4)
#   --ferrocd   default target/release/ferrocd (skipped if missing)
#   --clients   concurrent clients (default 256), over 16 connections
#   --total     puts per run (default 50000)
#   --rounds    fail-over rounds, each on a fresh cluster (default 3)
# Needs python3 (free ports, JSON) and curl; stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/../.."

etcd=/usr/bin/etcd
ferrocd=target/release/ferrocd
clients=256
total=50000
rounds=3
root="${TMPDIR:-/tmp}"
while [ $# -gt 0 ]; do
  case "$1" in
    --etcd) etcd="$2"; shift 2 ;;
    --ferrocd) ferrocd="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --total) total="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --data-root) root="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
bench=target/release/ferrobench
[ -x "$bench" ] || cargo build --release -p ferrocd-bench >&2

pids=()
dirs=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  for d in "${dirs[@]:-}"; do [ -n "$d" ] && rm -rf "$d"; done
  pids=(); dirs=()
}
trap cleanup EXIT

ports() { python3 -c 'import socket
s=[socket.socket() for _ in range(6)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))'; }

# start BIN → sets CP (client ports), PIDS (member pids)
start() {
  local bin=$1 dir
  dir=$(mktemp -d "$root/cluster3.XXXXXX"); dirs+=("$dir")
  read -r c0 c1 c2 p0 p1 p2 <<<"$(ports)"
  CP=("$c0" "$c1" "$c2"); local PP=("$p0" "$p1" "$p2")
  local ic="m0=http://127.0.0.1:$p0,m1=http://127.0.0.1:$p1,m2=http://127.0.0.1:$p2"
  PIDS=()
  for i in 0 1 2; do
    "$bin" --name "m$i" --data-dir "$dir/m$i" \
      --listen-client-urls "http://127.0.0.1:${CP[$i]}" --advertise-client-urls "http://127.0.0.1:${CP[$i]}" \
      --listen-peer-urls "http://127.0.0.1:${PP[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${PP[$i]}" \
      --initial-cluster "$ic" --initial-cluster-state new --initial-cluster-token bench \
      --log-level error >"$dir/m$i.log" 2>&1 &
    PIDS+=($!); pids+=($!); disown $!
  done
  for i in 0 1 2; do
    for _ in $(seq 1 200); do
      curl -sf "http://127.0.0.1:${CP[$i]}/health" >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
}

# leader → sets LI (index of the leader in CP/PIDS)
leader() {
  local st
  for _ in $(seq 1 100); do
    st=$(curl -s -X POST "http://127.0.0.1:${CP[0]}/v3/maintenance/status" -d '{}' || true)
    local lid
    lid=$(python3 -c 'import json,sys
try: print(json.loads(sys.argv[1]).get("leader",""))
except Exception: print("")' "$st")
    if [ -n "$lid" ] && [ "$lid" != "0" ]; then
      for i in 0 1 2; do
        local me
        me=$(curl -s -X POST "http://127.0.0.1:${CP[$i]}/v3/maintenance/status" -d '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["member_id"])')
        if [ "$me" = "$lid" ]; then LI=$i; return 0; fi
      done
    fi
    sleep 0.1
  done
  echo "no leader" >&2; return 1
}

cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }

run() {
  local name=$1 bin=$2
  start "$bin"; leader
  echo "== $name: put, $clients clients → leader m$LI" >&2
  local before after json
  before=$(cpu_ticks "${PIDS[@]}")
  json=$("$bench" put --endpoints "127.0.0.1:${CP[$LI]}" --clients "$clients" --conns 16 \
           --total "$total" --max-secs 60 -q -w json)
  after=$(cpu_ticks "${PIDS[@]}")
  python3 - "$name" "$json" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import json, sys
name, j, b, a, hz = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ops = j["ops_per_sec"]
lat = {k: v / 1000.0 for k, v in j["latency_us"].items()}
ok = j["completed"] - j["errors"]
cpu = (a - b) * 1000.0 / hz
client = (j.get("client") or {}).get("cpu_ms_per_1k_ops")
print(f"PUT {name:12} ops/s {ops:9.0f}  p50 {lat['p50']:7.2f} ms  p99 {lat['p99']:7.2f} ms  "
      f"p99.9 {lat['p99.9']:7.2f} ms  errors {j['errors']}  cluster CPU {cpu / max(ok, 1) * 1000:6.1f} ms/1k  "
      f"client CPU {'-' if client is None else f'{client:6.1f}'} ms/1k")
PY
  cleanup
  local r times=()
  for r in $(seq 1 "$rounds"); do
    start "$bin"; leader
    local s1=$(( (LI + 1) % 3 ))
    sleep 1
    local t0 t1
    t0=$(date +%s.%N)
    kill -9 "${PIDS[$LI]}"
    for _ in $(seq 1 600); do
      if curl -sf -m 0.5 -X POST "http://127.0.0.1:${CP[$s1]}/v3/kv/put" \
           -d '{"key":"ZmFpbG92ZXI=","value":"eA=="}' >/dev/null 2>&1; then break; fi
    done
    t1=$(date +%s.%N)
    times+=("$(python3 -c "print(f'{$t1 - $t0:.2f}')")")
    echo "== $name: fail-over round $r: ${times[-1]} s" >&2
    cleanup
  done
  echo "FAILOVER $name seconds: ${times[*]} (median $(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (rounds + 1) / 2 ))p"))"
}

run "etcd $("$etcd" --version 2>/dev/null | head -1 | awk '{print $3}')" "$etcd"
if [ -x "$ferrocd" ]; then run ferrocd "$ferrocd"; else echo "ferrocd skipped: $ferrocd not executable" >&2; fi
