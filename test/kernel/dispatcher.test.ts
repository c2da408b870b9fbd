/**
 * The foundation's proof against the real kernel: loading and pinning,
 * reopening from another process, batch round trips, sk_lookup steering of a
 * real TCP connection seen by bpftool, atomic link update, and a clean
 * teardown that bpftool confirms.
 */
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BpfMap,
  ErrnoError,
  Link,
  Netns,
  Pidfd,
  Program,
  allIds,
  listPins,
  loadObject,
  sumPerCpuU64,
  unpin,
} from '../../src/bpf/index.js';
import {
  DISPATCHER_OBJECT,
  TEST_COUNTER_OBJECT,
  decodeBindingValue,
  encodeBindingKey,
  encodeBindingValue,
  encodePortBlockKey,
  u32Key,
} from '../../src/kinds/port-steering/layout.js';
import { bpftool, bpftoolIds, eventually, kernelTest } from './harness.js';

const bpfIndex = fileURLToPath(new URL('../../src/bpf/index.js', import.meta.url));

kernelTest('an object loads and pins, and a second process reopens it by pin', ({ pinDir }) => {
  using obj = loadObject(DISPATCHER_OBJECT);
  const prog = obj.program('dispatcher');
  const info = prog.info();
  assert.equal(info.name, 'dispatcher');
  assert.equal(prog.typeName(), 'sk_lookup');
  assert.equal(info.mapIds.length >= 4, true, 'program references its maps');
  prog.pin(join(pinDir, 'prog'));
  obj.map('bindings').pin(join(pinDir, 'bindings'));
  obj.map('bindings').update(
    encodeBindingKey({ protocol: 'tcp', address: '10.1.2.0', prefixLength: 24, port: 443 }),
    encodeBindingValue(7, 3),
  );

  const script = `
    const { Program, BpfMap } = await import(${JSON.stringify(bpfIndex)});
    const p = Program.fromPin(process.argv[1]);
    const m = BpfMap.fromPin(process.argv[2]);
    try {
      const [, v] = m.entries()[0];
      console.log(JSON.stringify({ id: p.info().id, tag: p.info().tag, mapId: m.info().id, value: v.toString('hex') }));
    } finally {
      p.close();
      m.close();
    }`;
  const r = runBounded(process.execPath, ['--input-type=module', '-e', script, join(pinDir, 'prog'), join(pinDir, 'bindings')]);
  assert.equal(r.status, 0, r.stderr);
  const seen = JSON.parse(r.stdout) as { id: number; tag: string; mapId: number; value: string };
  assert.equal(seen.id, info.id);
  assert.equal(seen.tag, info.tag);
  assert.equal(seen.mapId, obj.map('bindings').info().id);
  assert.deepEqual(decodeBindingValue(Buffer.from(seen.value, 'hex')), { destId: 7, bindingId: 3 });

  // Pinning twice at the same path is refused with a typed error naming the path.
  assert.throws(
    () => prog.pin(join(pinDir, 'prog')),
    (e: unknown) => e instanceof ErrnoError && e.code === 'EEXIST' && e.message.includes(join(pinDir, 'prog')),
  );
  assert.equal(unpin(join(pinDir, 'prog')), true);
  assert.equal(unpin(join(pinDir, 'bindings')), true);
  assert.equal(unpin(join(pinDir, 'prog')), false);
});

kernelTest('a 65,535-entry batch update round-trips (hash map and LPM trie)', () => {
  const N = 65535;
  {
    using obj = loadObject(TEST_COUNTER_OBJECT);
    const m = obj.map('big_hash');
    const keys = Buffer.alloc(N * 4);
    const values = Buffer.alloc(N * 8);
    for (let i = 0; i < N; i++) {
      keys.writeUInt32LE(i * 7 + 1, i * 4);
      values.writeBigUInt64LE(BigInt(i) * 1_000_003n, i * 8);
    }
    m.updateBatch(keys, values);
    assert.equal(m.usesPerElementFallback, false, 'hash maps have batch ops');
    const entries = m.entries();
    assert.equal(entries.length, N);
    const got = new Map(entries.map(([k, v]) => [k.readUInt32LE(0), v.readBigUInt64LE(0)]));
    for (let i = 0; i < N; i += 97) assert.equal(got.get(i * 7 + 1), BigInt(i) * 1_000_003n);
    // readAll: the same entries in the same order, flat, whatever size it is told to expect.
    for (const expected of [0, 10, N]) {
      const all = m.readAll(expected);
      assert.equal(all.count, N);
      assert.deepEqual(Buffer.concat(entries.map(([k]) => k)), all.keys);
      assert.deepEqual(Buffer.concat(entries.map(([, v]) => v)), all.values);
    }
    assert.equal(m.deleteBatch(keys.subarray(0, 1000 * 4)), 1000);
    assert.equal(m.entries().length, N - 1000);
    // Deleting keys that are already gone is not an error, and counts nothing.
    assert.equal(m.deleteBatch(keys.subarray(0, 10 * 4)), 0);
  }
  {
    using obj = loadObject(DISPATCHER_OBJECT);
    const m = obj.map('bindings');
    const keys: Buffer[] = [];
    for (let port = 1; port <= N; port++) keys.push(encodeBindingKey({ protocol: 'tcp', address: '0.0.0.0', prefixLength: 0, port }));
    const values = Buffer.alloc(N * 8);
    for (let i = 0; i < N; i++) encodeBindingValue(1, i).copy(values, i * 8);
    m.updateBatch(Buffer.concat(keys), values);
    const entries = m.entries();
    assert.equal(entries.length, N);
    const all = m.readAll();
    assert.equal(all.count, N);
    assert.deepEqual(all.keys, Buffer.concat(entries.map(([k]) => k)));
    assert.deepEqual(all.values, Buffer.concat(entries.map(([, v]) => v)));
    const probe = encodeBindingKey({ protocol: 'tcp', address: '0.0.0.0', prefixLength: 0, port: 4242 });
    assert.deepEqual(decodeBindingValue(m.lookup(probe)!), { destId: 1, bindingId: 4241 });
    assert.equal(m.deleteBatch(Buffer.concat(keys)), N);
    assert.equal(m.entries().length, 0);
    assert.equal(m.readAll(N).count, 0);
  }
});

kernelTest('an sk_lookup link in a fresh netns steers a real TCP connection, and bpftool shows the link', async ({ pinDir, sandbox }) => {
  const server = await sandbox.startServer('127.0.0.1', 8080);
  assert.match(sandbox.connect('127.0.0.1', 8081), /^error ConnectionRefusedError/);

  using obj = loadObject(DISPATCHER_OBJECT);
  const prog = obj.program('dispatcher');
  using netns = Netns.open(sandbox.path);
  using link = Link.attachSkLookup(prog, netns.fd);
  link.pin(join(pinDir, 'link'));
  {
    using pidfd = Pidfd.open(server.pid);
    using sock = pidfd.getfd(server.fd);
    obj.map('sockets').updateSocket(u32Key(1), sock.fd);
  }
  obj.map('bindings').update(encodeBindingKey({ protocol: 'tcp', address: '127.0.0.0', prefixLength: 8, port: 8081 }), encodeBindingValue(1, 5));

  assert.match(sandbox.connect('127.0.0.1', 8081), new RegExp(`^listener=8080 local=8081 pid=${server.pid}$`));
  assert.match(sandbox.connect('127.0.0.2', 8081), /^listener=8080 local=8081/, 'the /8 prefix covers 127.0.0.2');
  assert.match(sandbox.connect('127.0.0.1', 8082), /^error/, 'other ports are not steered');
  assert.equal(sumPerCpuU64(obj.map('binding_hits').lookup(u32Key(5))!), 2n);

  const info = link.info();
  assert.deepEqual(info.target, { kind: 'netns', netnsIno: netns.inode, attachType: 36, attached: true });
  const seen = bpftool('link', 'show', 'id', String(info.id)) as { id: number; type: string; prog_id: number; netns_ino: number };
  assert.equal(seen.type, 'netns');
  assert.equal(seen.prog_id, prog.info().id);
  assert.equal(seen.netns_ino, netns.inode);
  unpin(join(pinDir, 'link'));
});

kernelTest('a link update swaps the program atomically and keeps the link id', async ({ sandbox }) => {
  const server = await sandbox.startServer('127.0.0.1', 8080);
  using dispatcher = loadObject(DISPATCHER_OBJECT);
  using counter = loadObject(TEST_COUNTER_OBJECT);
  using netns = Netns.open(sandbox.path);
  using link = Link.attachSkLookup(dispatcher.program('dispatcher'), netns.fd);
  {
    using pidfd = Pidfd.open(server.pid);
    using sock = pidfd.getfd(server.fd);
    dispatcher.map('sockets').updateSocket(u32Key(1), sock.fd);
  }
  dispatcher.map('bindings').update(encodePortBlockKey({ protocol: 'tcp', port: 0, bits: 0 }), encodeBindingValue(1, 0));
  assert.match(sandbox.connect('127.0.0.1', 9999), /^listener=8080 local=9999/, 'a /0 port block steers every port');

  const before = link.info();
  // A wrong "expected old program" is refused, and nothing changes.
  assert.throws(
    () => link.update(counter.program('pass_counter'), counter.program('pass_counter')),
    (e: unknown) => e instanceof ErrnoError && e.code === 'EPERM' && e.operation === 'bpf_link_update',
  );
  assert.equal(link.info().progId, dispatcher.program('dispatcher').info().id);

  link.update(counter.program('pass_counter'), dispatcher.program('dispatcher'));
  const after = link.info();
  assert.equal(after.id, before.id, 'link id unchanged');
  assert.equal(after.progId, counter.program('pass_counter').info().id);
  assert.match(sandbox.connect('127.0.0.1', 9999), /^error ConnectionRefusedError/, 'the new program steers nothing');
  assert.ok(counter.map('seen').lookup(u32Key(0))!.readBigUInt64LE(0) >= 1n, 'the new program runs');

  link.update(dispatcher.program('dispatcher'), counter.program('pass_counter'));
  assert.match(sandbox.connect('127.0.0.1', 9999), /^listener=8080 local=9999/, 'and back');
});

kernelTest('after unpin and close, bpftool shows none of our objects', async ({ pinDir, sandbox }) => {
  const ids = { prog: [] as number[], map: [] as number[], link: [] as number[] };
  {
    using obj = loadObject(DISPATCHER_OBJECT);
    using netns = Netns.open(sandbox.path);
    using link = Link.attachSkLookup(obj.program('dispatcher'), netns.fd);
    obj.program('dispatcher').pin(join(pinDir, 'prog'));
    link.pin(join(pinDir, 'link'));
    for (const [name, m] of obj.maps) {
      m.pin(join(pinDir, `map_${name}`));
      ids.map.push(m.info().id);
    }
    ids.prog.push(obj.program('dispatcher').info().id);
    ids.link.push(link.info().id);
  }
  // Closed, but pinned: still alive, and bpftool agrees with our enumeration.
  for (const kind of ['prog', 'map', 'link'] as const) {
    const live = bpftoolIds(kind);
    const ours = new Set(allIds(kind));
    for (const id of ids[kind]) {
      assert.ok(live.has(id), `bpftool sees ${kind} ${id} while pinned`);
      assert.ok(ours.has(id), `allIds sees ${kind} ${id} while pinned`);
    }
  }
  {
    using again = Link.fromPin(join(pinDir, 'link'));
    assert.equal(again.info().id, ids.link[0]);
  }
  for (const pin of listPins(pinDir)) unpin(pin);
  for (const kind of ['prog', 'map', 'link'] as const) {
    const gone = await eventually(() => {
      const live = bpftoolIds(kind);
      return ids[kind].every((id) => !live.has(id));
    });
    assert.ok(gone, `bpftool still shows one of our ${kind}s ${ids[kind].join(',')}`);
  }
  assert.throws(() => Program.fromId(ids.prog[0]!), (e: unknown) => e instanceof ErrnoError && e.code === 'ENOENT');
  assert.throws(() => BpfMap.fromPin(join(pinDir, 'map_bindings')), (e: unknown) => e instanceof ErrnoError && e.code === 'ENOENT');
});

kernelTest('a map type without batch operations (sockmap) falls back to one call per element', async () => {
  // Two listening sockets of our own, on loopback.
  const servers = await Promise.all(
    [0, 1].map(
      () =>
        new Promise<Server>((resolve) => {
          const s = createServer();
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  try {
    const fds = servers.map((s) => (s as unknown as { _handle: { fd: number } })._handle.fd);
    using obj = loadObject(DISPATCHER_OBJECT);
    const sockets = obj.map('sockets');
    const keys = Buffer.concat([u32Key(1), u32Key(2)]);
    const values = Buffer.alloc(16);
    values.writeBigUInt64LE(BigInt(fds[0]!), 0);
    values.writeBigUInt64LE(BigInt(fds[1]!), 8);
    sockets.updateBatch(keys, values);
    assert.equal(sockets.usesPerElementFallback, true);
    const c1 = sockets.lookup(u32Key(1))!.readBigUInt64LE(0);
    const c2 = sockets.lookup(u32Key(2))!.readBigUInt64LE(0);
    assert.ok(c1 > 0n && c2 > 0n && c1 !== c2, 'each slot holds its socket (by cookie)');
    assert.equal(sockets.deleteBatch(keys), 2);
    assert.equal(sockets.lookup(u32Key(1)), undefined);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
});
