#!/usr/bin/env bash
# What the web console's key tree costs on a large keyspace: one release
# ferrocd with the console on, N keys laid out as Kubernetes does
# (/registry/<kind>/<namespace>/<name>, 20 kinds x 100 namespaces), then
# headless Chromium (driven over chromedriver's WebDriver HTTP API, from
# Python's standard library) opens the console and expands directories
# level by level. For each step it reports the wall time from the click
# until the children are on screen and how many /v3 requests the page
# made. The server is stopped by PID.
#
# The tree's requests are keys-only ranges with a limit, and etcd's range
# counts every key to the end of the range whatever the limit, so their
# cost is that count's; with --etcd PATH the same keys are loaded into an
# etcd too and one such range is timed on both.
#
# usage: bench/scripts/console-tree.sh [--keys N] [--ferrocd PATH]
#          [--etcd PATH] [--data-root DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."

ferrocd=target/release/ferrocd
keys=1000000
etcd=""
data_root="${TMPDIR:-/tmp}"
while [ $# -gt 0 ]; do
  case "$1" in
    --keys) keys="$2"; shift 2 ;;
    --ferrocd) ferrocd="$2"; shift 2 ;;
    --etcd) etcd="$2"; shift 2 ;;
    --data-root) data_root="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$ferrocd" ] || cargo build --release -p ferrocd-core
command -v chromedriver >/dev/null || { echo "needs chromedriver (Debian: chromium chromium-driver)" >&2; exit 1; }
dir="$(mktemp -d "$data_root/console-tree.XXXXXX")"
pid=""
driver=""
etcd_pid=""
cleanup() {
  [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null || true
  [ -n "$driver" ] && kill "$driver" 2>/dev/null || true
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$ferrocd" --name a --data-dir "$dir/a" \
  --listen-client-urls http://127.0.0.1:24890 --advertise-client-urls http://127.0.0.1:24890 \
  --listen-peer-urls http://127.0.0.1:24900 --initial-advertise-peer-urls http://127.0.0.1:24900 \
  --initial-cluster a=http://127.0.0.1:24900 --listen-ui-urls http://127.0.0.1:24910/ui \
  --quota-backend-bytes 8589934592 --log-level error >"$dir/a.log" 2>&1 &
pid="$!"
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:24890/health >/dev/null && break
  sleep 0.1
done
chromedriver --port=24920 >"$dir/driver.log" 2>&1 &
driver="$!"
if [ -n "$etcd" ]; then
  "$etcd" --name e --data-dir "$dir/e" \
    --listen-client-urls http://127.0.0.1:24930 --advertise-client-urls http://127.0.0.1:24930 \
    --listen-peer-urls http://127.0.0.1:24940 --initial-advertise-peer-urls http://127.0.0.1:24940 \
    --initial-cluster e=http://127.0.0.1:24940 --quota-backend-bytes 8589934592 \
    --log-level error >"$dir/e.log" 2>&1 &
  etcd_pid="$!"
  for _ in $(seq 100); do
    curl -sf http://127.0.0.1:24930/health >/dev/null && break
    sleep 0.1
  done
fi

KEYS="$keys" ETCD="$etcd" python3 - <<'EOF'
import base64, http.client, json, os, sys, time

n = int(os.environ["KEYS"])
b64 = lambda s: base64.b64encode(s.encode()).decode()
kinds = [f"kind{k:02}" for k in range(20)]

# Load: txns of 128 puts (etcd's default --max-txn-ops) on one connection.
def load(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port)
    t = time.time()
    batch = []
    def flush():
        body = json.dumps({"success": [{"request_put": {"key": b64(k), "value": b64("v")}} for k in batch]})
        c.request("POST", "/v3/kv/txn", body)
        r = c.getresponse(); r.read()
        assert r.status == 200, r.status
        batch.clear()
    for i in range(n):
        batch.append(f"/registry/{kinds[i % 20]}/ns-{(i // 20) % 100:02}/obj-{i:07}")
        if len(batch) == 128:
            flush()
            if i % 100000 < 128:
                print(f"{name}: loaded {i + 1}/{n} keys", file=sys.stderr)
    if batch:
        flush()
    print(f"{name}: loaded {n} keys in {time.time() - t:.1f} s", file=sys.stderr)
    return c

# One tree request from the start of /registry/ (keys only, limit 101:
# the server still counts all n keys), best of 5.
def range_ms(c):
    body = json.dumps({"key": b64("/registry/"), "range_end": b64("/registry0"), "limit": 101, "keys_only": True})
    best = None
    for _ in range(5):
        t = time.perf_counter()
        c.request("POST", "/v3/kv/range", body)
        r = c.getresponse(); j = json.loads(r.read())
        ms = (time.perf_counter() - t) * 1000
        assert int(j["count"]) == n and len(j["kvs"]) == 101, j.get("count")
        best = ms if best is None else min(best, ms)
    return best

f = load(24890, "ferrocd")
lines = [f"range /registry/ limit 101 keys-only (counts {n}), best of 5: ferrocd {range_ms(f):.1f} ms"]
if os.environ["ETCD"]:
    e = load(24930, "etcd")
    lines[0] += f", etcd {range_ms(e):.1f} ms"

# The browser.
d = http.client.HTTPConnection("127.0.0.1", 24920)
def wd(method, path, body=None):
    for _ in range(100):
        try:
            d.request(method, path, json.dumps(body) if body is not None else None)
            r = d.getresponse()
            return json.loads(r.read())["value"]
        except (ConnectionRefusedError, http.client.RemoteDisconnected):
            time.sleep(0.1)
    raise SystemExit("chromedriver did not answer")
caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--window-size=1280,900"]}}}}
sid = wd("POST", "/session", caps)["sessionId"]
wd("POST", f"/session/{sid}/url", {"url": "http://127.0.0.1:24910/ui/#/keys"})
# Wait for the root listing.
wd("POST", f"/session/{sid}/execute/async", {"script": """
const done = arguments[arguments.length - 1];
const poll = () => document.querySelector('[data-dir]') ? done(true) : setTimeout(poll, 10);
poll();""", "args": []})

EXPAND = """
const [sel] = arguments; const done = arguments[arguments.length - 1];
let requests = 0; const real = window.fetch;
window.fetch = (...a) => { requests++; return real(...a); };
const b = document.querySelector(sel);
const li = b.parentElement;
const t0 = performance.now();
b.click();
const poll = () => {
  const ul = li.querySelector(':scope > ul');
  if (ul && ul.children.length) {
    window.fetch = real;
    done({ms: performance.now() - t0, requests, shown: ul.children.length,
          more: !!ul.querySelector(':scope > li.more')});
  } else setTimeout(poll, 2);
};
poll();"""
print(f"\n{'expand':<28} {'children shown':>14} {'more':>5} {'requests':>9} {'ms':>9}")
for sel in ['/', '/registry/', '/registry/kind00/', '/registry/kind00/ns-00/']:
    r = wd("POST", f"/session/{sid}/execute/async",
           {"script": EXPAND, "args": [f'[data-dir="{sel}"]']})
    shown = r["shown"] - (1 if r["more"] else 0)
    print(f"{sel:<28} {shown:>14} {str(r['more']):>5} {r['requests']:>9} {r['ms']:>9.1f}")
wd("DELETE", f"/session/{sid}")
print()
print("\n".join(lines))
EOF
