#!/usr/bin/env bash
# ferrocd's binary protocol against its gRPC API, on one single-member
# ferrocd, with the gRPC run against a real etcd alongside.
#
# One fresh ferrocd (and, with --etcd, one fresh etcd) on temporary data
# dirs and fixed loopback ports; for each workload the protocols run in
# alternation (grpc, fast, grpc, fast, …) so drift of this shared machine
# hits both; every run reports the server's CPU time per 1000 operations.
# Servers are stopped by PID.
#
# usage: bench/scripts/fast-vs-grpc.sh [--ferrocd PATH] [--etcd PATH]
#          [--rounds N] [--clients N] [--data-root DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."

ferrocd=target/release/ferrocd
ferrobench=target/release/ferrobench
etcd=""
rounds=2
clients=256
data_root="${TMPDIR:-/tmp}"
while [ $# -gt 0 ]; do
  case "$1" in
    --ferrocd) ferrocd="$2"; shift 2 ;;
    --etcd) etcd="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --data-root) data_root="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$ferrobench" ] || cargo build --release -p ferrocd-bench
dir="$(mktemp -d "$data_root/fast-vs-grpc.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

start() { # name bin client-port peer-port
  "$2" --name "$1" --data-dir "$dir/$1" \
    --listen-client-urls "http://127.0.0.1:$3" --advertise-client-urls "http://127.0.0.1:$3" \
    --listen-peer-urls "http://127.0.0.1:$4" --initial-advertise-peer-urls "http://127.0.0.1:$4" \
    --initial-cluster "$1=http://127.0.0.1:$4" --log-level error >"$dir/$1.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$3/health" >/dev/null && return 0
    sleep 0.1
  done
  echo "$1 did not start" >&2; exit 1
}

start ferrocd "$ferrocd" 24790 24800
fpid="${pids[0]}"
if [ -n "$etcd" ]; then start etcd "$etcd" 25790 25800; epid="${pids[1]}"; fi

run() { # label endpoint pid protocol workload args...
  local label="$1" ep="$2" pid="$3" proto="$4"; shift 4
  printf '%-28s ' "$label"
  "$ferrobench" "$@" --endpoints "$ep" --protocol "$proto" --clients "$clients" --conns 4 \
    --server-pid "$pid" -q | tr '\n' ' ' | sed -E 's/ +/ /g'
  echo
}

for w in "put --total 40000" "range --consistency s --total 100000" "range --consistency l --total 100000"; do
  for r in $(seq "$rounds"); do
    # shellcheck disable=SC2086
    run "ferrocd grpc $w" 127.0.0.1:24790 "$fpid" grpc $w
    # shellcheck disable=SC2086
    run "ferrocd fast $w" 127.0.0.1:24790 "$fpid" fast $w
  done
  if [ -n "$etcd" ]; then
    # shellcheck disable=SC2086
    run "etcd grpc $w" 127.0.0.1:25790 "$epid" grpc $w
  fi
done
