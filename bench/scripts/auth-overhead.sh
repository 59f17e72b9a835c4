#!/usr/bin/env bash
# What auth costs: the same workloads on one single-member ferrocd with
# auth off and on (a user whose role grants readwrite on the bench keys,
# so every request goes through the permission check; not root, which
# skips it), alternating off/on per round so drift of this shared machine
# hits both; both protocols. The server is stopped by PID.
#
# usage: bench/scripts/auth-overhead.sh [--ferrocd PATH] [--rounds N]
#          [--clients N] [--data-root DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."

ferrocd=target/release/ferrocd
ferroctl=target/release/ferroctl
ferrobench=target/release/ferrobench
rounds=2
clients=256
data_root="${TMPDIR:-/tmp}"
while [ $# -gt 0 ]; do
  case "$1" in
    --ferrocd) ferrocd="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --data-root) data_root="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$ferrobench" ] && [ -x "$ferroctl" ] || cargo build --release -p ferrocd-bench -p ferrocd-core
dir="$(mktemp -d "$data_root/auth-overhead.XXXXXX")"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$ferrocd" --name a --data-dir "$dir/a" \
  --listen-client-urls http://127.0.0.1:24890 --advertise-client-urls http://127.0.0.1:24890 \
  --listen-peer-urls http://127.0.0.1:24900 --initial-advertise-peer-urls http://127.0.0.1:24900 \
  --initial-cluster a=http://127.0.0.1:24900 --log-level error >"$dir/a.log" 2>&1 &
pid="$!"
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:24890/health >/dev/null && break
  sleep 0.1
done
ctl() { "$ferroctl" --endpoints 127.0.0.1:24890 "$@" >/dev/null; }
ctl user add root:rootpw
ctl role add root
ctl user grant-role root root
ctl role add bench
# The bench keys are zero-padded decimals: "0" up to ":" holds them all.
ctl role grant-permission bench readwrite 0 :
ctl user add bench:benchpw
ctl user grant-role bench bench

run() { # label protocol auth workload args...
  local label="$1" proto="$2" auth="$3"; shift 3
  local user=()
  [ "$auth" = on ] && user=(--user bench:benchpw)
  printf '%-36s ' "$label"
  "$ferrobench" "$@" --endpoints 127.0.0.1:24890 --protocol "$proto" --clients "$clients" \
    --conns 4 --server-pid "$pid" "${user[@]}" -q | tr '\n' ' ' | sed -E 's/ +/ /g'
  echo
}

for w in "put --total 20000" "range --consistency s --total 50000" "range --consistency l --total 50000"; do
  for r in $(seq "$rounds"); do
    for auth in off on; do
      if [ "$auth" = on ]; then ctl auth enable; else ctl --user root:rootpw auth disable 2>/dev/null || true; fi
      for proto in grpc fast; do
        # shellcheck disable=SC2086
        run "auth $auth $proto $w" "$proto" "$auth" $w
      done
    done
  done
done
