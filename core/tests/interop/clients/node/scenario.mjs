// The interop scenario with Node's etcd3 client (@grpc/grpc-js), for
// core/tests/interop/node.rs.
//
//     node scenario.mjs CONFIG_JSON
//
// CONFIG_JSON: {"endpoint": "127.0.0.1:P", "snapshot": PATH, "lease_ttl": S,
// "keepalive_secs": S, "large": N, "too_large": N, "over_limit": N,
// "modules": DIR} (DIR: the node_modules that `npm ci` filled from this
// directory's package-lock.json).
//
// Prints one JSON report on stdout, in the shape core/tests/interop/report.rs
// documents and checks (the Python and Rust clients print the same). The
// server must be fresh: the report's revisions start at 1. Every call has a
// deadline and every wait a timer, so a hung server makes this fail.

import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const cfg = JSON.parse(process.argv[2]);
const require = createRequire(join(cfg.modules, 'noop.js'));
const { Etcd3, LeaseClient } = require('etcd3');
const etcd3Version = require('etcd3/package.json').version;
const { noop } = require('cockatiel');

// One bound for every call and wait, in milliseconds.
const TIMEOUT = 10000;

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

// Rejects after TIMEOUT: for waits on events rather than calls.
function bounded(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// The large values' bytes: every byte value, not valid UTF-8.
function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) % 251;
  return b;
}

const num = s => Number(s);

function kvMeta(kv) {
  if (!kv) return null;
  return {
    value: kv.value.toString(),
    create_revision: num(kv.create_revision),
    mod_revision: num(kv.mod_revision),
    version: num(kv.version),
  };
}

async function getOne(c, key) {
  const r = await c.get(key).exec();
  return kvMeta(r.kvs[0]);
}

async function prefix(c, p) {
  const r = await c.getAll().prefix(p).exec();
  return r.kvs.map(kv => [kv.key.toString(), kv.value.toString()]);
}

// Runs `call`, which must fail with a gRPC error: its code and text.
// etcd3 turns grpc-js's error into its own class (e.g.
// GRPCInvalidArgumentError) and keeps grpc-js's message, "3
// INVALID_ARGUMENT: <details>".
async function rpcError(call) {
  try {
    await call();
  } catch (e) {
    const m = /^(?:\w+: )?\d+ ([A-Z_]+): (.*)$/s.exec(e.message);
    if (!m) return { code: 'UNPARSED', message: `${e.name}: ${e.message}` };
    return { code: m[1], message: m[2], class: e.constructor.name };
  }
  return null;
}

async function kv(c) {
  const r = {};
  r.put_rev = num((await c.put('foo').value('bar').exec()).header.revision);
  r.get = await getOne(c, 'foo');
  r.put_revs = [];
  for (const [k, v] of [['dir/a', '1'], ['dir/b', '2'], ['dir/c', '3'], ['dirx', 'no']]) {
    r.put_revs.push(num((await c.put(k).value(v).exec()).header.revision));
  }
  r.prefix = await prefix(c, 'dir/');
  const d = await c.delete().key('dir/b').exec();
  r.delete = { deleted: num(d.deleted), revision: num(d.header.revision) };
  r.prefix_after = await prefix(c, 'dir/');
  const cas = () =>
    c.if('foo', 'Value', '==', 'bar').then(c.put('foo').value('baz')).else(c.get('foo')).commit();
  const won = await cas();
  const lost = await cas();
  r.cas_won = won.succeeded;
  r.cas_lost = lost.succeeded;
  r.cas_lost_value = lost.responses[0].response_range.kvs[0].value.toString();
  r.after_cas = await getOne(c, 'foo');
  return r;
}

async function watch(c) {
  const events = [];
  let done;
  const all = new Promise(resolve => (done = resolve));
  // create() resolves once the server has answered the create request.
  const w = await bounded(c.watch().prefix('w/').create(), 'watch created');
  w.on('data', res => {
    for (const e of res.events) {
      events.push({
        type: e.type.toUpperCase(),
        key: e.kv.key.toString(),
        value: e.kv.value.toString(),
        mod_revision: num(e.kv.mod_revision),
      });
    }
    if (events.length >= 5) done();
  });
  const writes = [
    () => c.put('w/1').value('a').exec(),
    () => c.put('w/2').value('b').exec(),
    () => c.delete().key('w/1').exec(),
    () => c.put('x').value('outside').exec(),
    () => c.put('w/2').value('c').exec(),
    () => c.put('w/3').value('d').exec(),
  ];
  const revs = [];
  for (const write of writes) revs.push(num((await write()).header.revision));
  await bounded(all, 'five watch events').catch(() => {});
  await w.cancel();
  return { write_revs: revs, events };
}

async function lease(c, ttl, keepaliveSecs) {
  const r = {};
  // etcd3's Lease keeps itself alive on one LeaseKeepAlive stream, every
  // ttl/3 seconds.
  const l = c.lease(ttl);
  let keepalives = 0;
  l.on('keepaliveSucceeded', res => {
    if (num(res.TTL) > 0) keepalives++;
  });
  const id = await l.grant();
  const rpc = new LeaseClient(c.pool);
  r.granted_ttl = num((await rpc.leaseTimeToLive({ ID: id })).grantedTTL);
  r.put_rev = num((await l.put('l/key').value('v').exec()).header.revision);
  await sleep(keepaliveSecs * 1000);
  r.keepalives = keepalives;
  const info = await rpc.leaseTimeToLive({ ID: id, keys: true });
  r.ttl = num(info.TTL);
  r.granted_ttl_after = num(info.grantedTTL);
  r.keys = info.keys.map(k => k.toString());
  r.key_after_keepalive = await getOne(c, 'l/key');
  await l.revoke();
  r.key_after_revoke = await getOne(c, 'l/key');
  r.ttl_after_revoke = num((await rpc.leaseTimeToLive({ ID: id })).TTL);
  r.revision_after_revoke = num((await c.get('l/key').exec()).header.revision);
  return r;
}

async function large(c, n, tooLarge, overLimit) {
  const r = {};
  r.put_rev = num((await c.put('big').value(pattern(n)).exec()).header.revision);
  const back = await c.get('big').buffer();
  r.len = back.length;
  r.sha256 = createHash('sha256').update(back).digest('hex');
  r.too_large = await rpcError(() => c.put('big').value(pattern(tooLarge)).exec());
  r.over_limit = await rpcError(() => c.put('big').value(pattern(overLimit)).exec());
  r.revision_after = num((await c.get('big').exec()).header.revision);
  return r;
}

async function snapshot(c, path) {
  const stream = await c.maintenance.snapshot();
  const chunks = [];
  await bounded(
    new Promise((resolve, reject) => {
      stream.on('data', res => chunks.push(res.blob));
      stream.on('end', resolve);
      stream.on('error', reject);
    }),
    'snapshot stream',
  );
  const bytes = Buffer.concat(chunks);
  writeFileSync(path, bytes);
  return { bytes: bytes.length };
}

async function main() {
  const c = new Etcd3({
    hosts: `http://${cfg.endpoint}`,
    dialTimeout: TIMEOUT,
    // Unary calls get a deadline; streams are bounded by `bounded`.
    defaultCallOptions: ctx => (ctx.isStream ? {} : { deadline: Date.now() + TIMEOUT }),
    grpcOptions: { 'grpc.max_receive_message_length': 16 << 20 },
    // etcd3's default per-host circuit breaker opens after the two
    // requests refused on purpose below (against etcd too) and then
    // refuses every call; the default retry of unavailable hosts stays.
    faultHandling: { host: () => noop },
  });
  const report = { client: `node etcd3 ${etcd3Version}` };
  report.kv = await kv(c);
  report.watch = await watch(c);
  report.lease = await lease(c, cfg.lease_ttl, cfg.keepalive_secs);
  report.large = await large(c, cfg.large, cfg.too_large, cfg.over_limit);
  report.snapshot = await snapshot(c, cfg.snapshot);
  c.close();
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().then(
  () => process.exit(0),
  e => {
    process.stderr.write(`scenario failed: ${e.stack || e}\n`);
    process.exit(1);
  },
);
