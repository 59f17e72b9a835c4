"""The interop scenario with the Python etcd3 client (grpcio), for
core/tests/interop/python.rs.

    scenario.py CONFIG_JSON

CONFIG_JSON: {"endpoint": "127.0.0.1:P", "snapshot": PATH, "lease_ttl": S,
"keepalive_secs": S, "large": N, "too_large": N, "over_limit": N}.

Prints one JSON report on stdout, in the shape core/tests/interop/report.rs
documents and checks (the Node and Rust clients print the same). The
server must be fresh: the report's revisions start at 1. Every wait is
bounded (the client's 10 s timeout, queue timeouts), so a hung server
makes this fail, not hang.
"""

import hashlib
import json
import os
import queue
import sys
import time

import etcd3
import grpc

# One bound for every call and wait.
TIMEOUT = 10


def pattern(n):
    """The large values' bytes: every byte value, not valid UTF-8."""
    return bytes((i * 31 + 7) % 251 for i in range(n))


def kv_meta(value, meta):
    if meta is None:
        return None
    return {
        "value": value.decode(),
        "create_revision": meta.create_revision,
        "mod_revision": meta.mod_revision,
        "version": meta.version,
    }


def pairs(items):
    return [[m.key.decode(), v.decode()] for v, m in items]


def rpc_error(call):
    """Runs `call`, which must fail with a gRPC error: its code and text."""
    try:
        call()
    except grpc.RpcError as e:
        return {"code": e.code().name, "message": e.details()}
    return None


def kv(c):
    r = {}
    r["put_rev"] = c.put("foo", "bar").header.revision
    r["get"] = kv_meta(*c.get("foo"))
    r["put_revs"] = [
        c.put(k, v).header.revision
        for k, v in [("dir/a", "1"), ("dir/b", "2"), ("dir/c", "3"), ("dirx", "no")]
    ]
    r["prefix"] = pairs(c.get_prefix("dir/"))
    d = c.delete("dir/b", return_response=True)
    r["delete"] = {"deleted": d.deleted, "revision": d.header.revision}
    r["prefix_after"] = pairs(c.get_prefix("dir/"))
    t = c.transactions

    def cas():
        return c.transaction(
            compare=[t.value("foo") == "bar"],
            success=[t.put("foo", "baz")],
            failure=[t.get("foo")],
        )

    won, _ = cas()
    lost, responses = cas()
    r["cas_won"] = won
    r["cas_lost"] = lost
    r["cas_lost_value"] = responses[0][0][0].decode()
    r["after_cas"] = kv_meta(*c.get("foo"))
    return r


def watch(c):
    got = queue.Queue()
    # Returns once the server has answered the create request.
    watch_id = c.add_watch_prefix_callback("w/", got.put)
    writes = [
        lambda: c.put("w/1", "a"),
        lambda: c.put("w/2", "b"),
        lambda: c.delete("w/1", return_response=True),
        lambda: c.put("x", "outside"),
        lambda: c.put("w/2", "c"),
        lambda: c.put("w/3", "d"),
    ]
    revs = [w().header.revision for w in writes]
    events = []
    deadline = time.monotonic() + TIMEOUT
    while len(events) < 5 and time.monotonic() < deadline:
        try:
            resp = got.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if isinstance(resp, Exception):
            raise resp
        for e in resp.events:
            events.append(
                {
                    "type": "PUT" if isinstance(e, etcd3.events.PutEvent) else "DELETE",
                    "key": e.key.decode(),
                    "value": e.value.decode(),
                    "mod_revision": e.mod_revision,
                }
            )
    c.cancel_watch(watch_id)
    return {"write_revs": revs, "events": events}


def lease(c, ttl, keepalive_secs):
    r = {}
    lease = c.lease(ttl)
    r["granted_ttl"] = lease.ttl
    r["put_rev"] = c.put("l/key", "v", lease=lease).header.revision
    # etcd3 0.12 refreshes with one LeaseKeepAlive stream per call; every
    # half second, as an application's loop would.
    keepalives = 0
    end = time.monotonic() + keepalive_secs
    while time.monotonic() < end:
        for resp in lease.refresh():
            if resp.TTL > 0:
                keepalives += 1
        time.sleep(0.5)
    r["keepalives"] = keepalives
    info = c.get_lease_info(lease.id)
    r["ttl"] = info.TTL
    r["granted_ttl_after"] = info.grantedTTL
    r["keys"] = [k.decode() for k in info.keys]
    r["key_after_keepalive"] = kv_meta(*c.get("l/key"))
    lease.revoke()
    r["key_after_revoke"] = kv_meta(*c.get("l/key"))
    r["ttl_after_revoke"] = c.get_lease_info(lease.id).TTL
    r["revision_after_revoke"] = c.get_response("l/key").header.revision
    return r


def large(c, n, too_large, over_limit):
    r = {}
    value = pattern(n)
    r["put_rev"] = c.put("big", value).header.revision
    back, _ = c.get("big")
    r["len"] = len(back)
    r["sha256"] = hashlib.sha256(back).hexdigest()
    r["too_large"] = rpc_error(lambda: c.put("big", pattern(too_large)))
    r["over_limit"] = rpc_error(lambda: c.put("big", pattern(over_limit)))
    r["revision_after"] = c.get_response("big").header.revision
    return r


def snapshot(c, path):
    with open(path, "wb") as f:
        c.snapshot(f)
    with open(path, "rb") as f:
        return {"bytes": len(f.read())}


def main():
    cfg = json.loads(sys.argv[1])
    host, port = cfg["endpoint"].rsplit(":", 1)
    # grpcio takes any message size it is given to send; the server's
    # limits are what the large-value steps test.
    c = etcd3.client(
        host=host,
        port=int(port),
        timeout=TIMEOUT,
        grpc_options=[("grpc.max_receive_message_length", 16 << 20)],
    )
    report = {"client": "python etcd3 " + etcd3.__version__}
    report["kv"] = kv(c)
    report["watch"] = watch(c)
    report["lease"] = lease(c, cfg["lease_ttl"], cfg["keepalive_secs"])
    report["large"] = large(c, cfg["large"], cfg["too_large"], cfg["over_limit"])
    report["snapshot"] = snapshot(c, cfg["snapshot"])
    print(json.dumps(report), flush=True)
    # Not c.close(): the watch thread would retry on the closed channel
    # and print a traceback; nothing is left to flush or release.
    os._exit(0)


if __name__ == "__main__":
    main()
