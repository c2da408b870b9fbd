/**
 * Property tests of the pure plan: applying a plan to the observed state
 * (with an in-memory model of the dispatcher's pins) yields the desired
 * state, planning again then changes nothing, and failed files are never
 * torn down.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { bindingEntries } from '../../src/kinds/port-steering/bindings.js';
import { changes, plan } from '../../src/kinds/port-steering/plan.js';
import type { Action, DesiredState, DesiredSteering, ObservedState, ObservedDispatcherState } from '../../src/reconciler/model.js';

const ROOT = '/sys/fs/bpf/ebpf-policy';
const TAG = 'aaaaaaaaaaaaaaaa';

/** Applies actions to a deep copy of `observed`, as the kernel port would. */
function simulate(observed: ObservedState, actions: Action[], desired: DesiredState): ObservedState {
  const s: ObservedState = structuredClone(observed);
  let nextId = 1000;
  const byDir = (dir: string) => s.dispatchers.find((d) => d.dir === dir)!;
  const cookieOf = (pid: number, fd: number) => {
    for (const p of desired.policies) if (p.target.ok && p.target.pid === pid && p.target.fd === fd) return p.target.cookie;
    throw new Error(`no target pid ${pid} fd ${fd}`);
  };
  for (const a of actions) {
    const op = a.op;
    switch (op.type) {
      case 'createDispatcher': {
        s.dispatchers = s.dispatchers.filter((d) => d.dir !== op.dir);
        const key = op.dir.split('/').pop()!;
        const progId = nextId++;
        s.dispatchers.push({
          key,
          dir: op.dir,
          program: { id: progId, tag: desired.dispatcherTag },
          link: { id: nextId++, progId, netnsIno: Number(key.slice(4)), attached: true },
          missingMaps: [],
          bindings: [],
          records: [],
          badRecords: [],
          sockets: {},
          stray: [],
        });
        s.dispatchers.sort((x, y) => x.key.localeCompare(y.key));
        break;
      }
      case 'replaceProgram': {
        const d = byDir(op.dir);
        d.program = { id: nextId++, tag: desired.dispatcherTag };
        d.link!.progId = d.program.id;
        break;
      }
      case 'relink': {
        const d = byDir(op.dir);
        d.link = { id: nextId++, progId: d.program!.id, netnsIno: 1, attached: true };
        break;
      }
      case 'writeRecord': {
        const d = byDir(op.dir);
        d.records = [...d.records.filter((r) => r.name !== op.record.name), op.record].sort((x, y) => x.name.localeCompare(y.name));
        break;
      }
      case 'putSocket':
        byDir(op.dir).sockets[op.destId] = cookieOf(op.pid, op.fd);
        break;
      case 'deleteSocket':
        byDir(op.dir).sockets[op.destId] = null;
        break;
      case 'upsertBindings': {
        const d = byDir(op.dir);
        const m = new Map(d.bindings.map((b) => [b.key, b]));
        for (const e of op.entries) m.set(e.key, e);
        d.bindings = [...m.values()].sort((x, y) => (x.key < y.key ? -1 : 1));
        break;
      }
      case 'deleteBindings': {
        const d = byDir(op.dir);
        const del = new Set(op.keys);
        d.bindings = d.bindings.filter((b) => !del.has(b.key));
        break;
      }
      case 'deleteRecord': {
        const d = byDir(op.dir);
        d.records = d.records.filter((r) => r.name !== op.name);
        d.badRecords = d.badRecords.filter((r) => r.name !== op.name);
        break;
      }
      case 'removeDispatcher':
        s.dispatchers = s.dispatchers.filter((d) => d.dir !== op.dir);
        break;
      case 'removeStray':
        s.stray = s.stray.filter((p) => p !== op.path);
        for (const d of s.dispatchers) d.stray = d.stray.filter((p) => p !== op.path);
        break;
      case 'resetCounters':
      case 'none':
        break;
    }
  }
  // Sockets of destinations no record uses are not observed (the store only looks up recorded ones).
  for (const d of s.dispatchers) {
    const ids = new Set(d.records.map((r) => r.destId));
    d.sockets = Object.fromEntries(Object.entries(d.sockets).filter(([id]) => ids.has(Number(id))));
  }
  return s;
}

const NAMES = ['a', 'b', 'c', 'd', 'e'];
const NETNS = ['ino-1', 'ino-2'];

// Each policy claims ports from its own band, as validation rejects two policies claiming the same port and prefix.
const arbPolicy = (name: string): fc.Arbitrary<DesiredSteering> =>
  fc
    .record({
      ns: fc.constantFrom(...NETNS),
      protocol: fc.constantFrom('tcp' as const, 'udp' as const),
      base: fc.integer({ min: 1, max: 10000 }).map((p) => p + NAMES.indexOf(name) * 12000),
      len: fc.integer({ min: 0, max: 40 }),
      extra: fc.option(fc.integer({ min: 11000, max: 11999 }).map((p) => p + NAMES.indexOf(name) * 12000), { nil: undefined }),
      prefixes: fc.constantFrom(['0.0.0.0/0', '::/0'], ['10.0.0.0/8'], ['10.1.0.0/16', '2001:db8::/32']),
      target: fc.oneof(fc.constant(undefined), fc.integer({ min: 100, max: 105 })),
      file: fc.constantFrom('/p/one.yaml', '/p/two.yaml'),
    })
    .map(({ ns, protocol, base, len, extra, prefixes, target, file }) => {
      const ports = [{ start: base, end: base + len }, ...(extra ? [{ start: extra, end: extra }] : [])];
      return {
        name,
        sourceFile: file,
        netns: `/run/netns/${ns}`,
        netnsPath: `/run/netns/${ns}`,
        netnsKey: { ok: true as const, key: ns },
        protocol,
        ports,
        prefixes: [...prefixes],
        targetText: `listen 127.0.0.1:${target ?? 1}`,
        target: target === undefined ? { ok: false as const, reason: 'nothing listens' } : { ok: true as const, pid: target, fd: 3, cookie: String(target * 7) },
        specHash: JSON.stringify([ns, protocol, ports, prefixes, target]),
      };
    });

const arbDesired: fc.Arbitrary<DesiredState> = fc
  .record({
    picked: fc.subarray(NAMES),
    failed: fc.subarray(['/p/one.yaml', '/p/two.yaml'], { maxLength: 1 }),
  })
  .chain(({ picked, failed }) =>
    fc.tuple(...picked.map(arbPolicy)).map((policies) => ({ root: ROOT, dispatcherTag: TAG, policies, failedFiles: failed })),
  );

const empty: ObservedState = { dispatchers: [], stray: [] };

/** The state as the kernel would hold it for `desired`, checked per applicable policy. */
function assertConverged(desired: DesiredState, s: ObservedState): void {
  for (const p of desired.policies) {
    if (desired.failedFiles.includes(p.sourceFile) || !p.netnsKey.ok) continue;
    const d = s.dispatchers.find((x) => x.key === (p.netnsKey as { key: string }).key);
    assert.ok(d, `dispatcher for ${p.name}`);
    assert.equal(d.program?.tag, TAG);
    assert.ok(d.link?.attached);
    const rec = d.records.find((r) => r.name === p.name);
    assert.ok(rec, `record of ${p.name}`);
    const want = rec.bindings.flatMap((b) => bindingEntries(p.protocol, b, rec.destId)).map((e) => e.key).sort();
    const have = d.bindings.filter((b) => b.destId === rec.destId).map((b) => b.key).sort();
    assert.deepEqual(have, want, `entries of ${p.name}`);
    if (p.target.ok) assert.equal(d.sockets[rec.destId], p.target.cookie);
  }
  // No dispatcher without a reason to exist, no entry without an owner.
  for (const d of s.dispatchers) {
    assert.ok(d.records.length > 0, `dispatcher ${d.key} holds policies`);
    const owners = new Set(d.records.map((r) => r.destId));
    for (const b of d.bindings) assert.ok(owners.has(b.destId), 'every entry has an owner');
  }
}

test('applying a plan yields the desired state, and planning again changes nothing', () => {
  fc.assert(
    fc.property(arbDesired, arbDesired, (before, after) => {
      // Reach `before` from nothing, then go to `after`.
      const noFail = { ...before, failedFiles: [] };
      const s1 = simulate(empty, plan(noFail, empty).actions, noFail);
      assertConverged(noFail, s1);
      assert.deepEqual(changes(plan(noFail, s1)), [], 'a second plan is empty');

      const p2 = plan(after, s1);
      const s2 = simulate(s1, p2.actions, after);
      assertConverged(after, s2);
      assert.deepEqual(changes(plan(after, s2)), [], 'planning twice changes nothing');
      assert.deepEqual(plan(after, s1), p2, 'plan is deterministic');
    }),
    { numRuns: 150 },
  );
});

test('a failed file never causes a deletion of what came from it', () => {
  fc.assert(
    fc.property(arbDesired, (before) => {
      const noFail = { ...before, failedFiles: [] };
      const s1 = simulate(empty, plan(noFail, empty).actions, noFail);
      // Every file fails now, and its policies vanish from the desired state.
      const broken: DesiredState = { ...noFail, policies: [], failedFiles: ['/p/one.yaml', '/p/two.yaml'] };
      const p = plan(broken, s1);
      assert.deepEqual(changes(p), [], 'nothing is torn down');
    }),
  );
});

test('adds come before removes, and every action has a reason', () => {
  fc.assert(
    fc.property(arbDesired, arbDesired, (before, after) => {
      const noFail = { ...before, failedFiles: [] };
      const s1 = simulate(empty, plan(noFail, empty).actions, noFail);
      const acts = plan(after, s1).actions;
      const order = ['dispatcher', 'add', 'remove', 'gc'];
      for (let i = 1; i < acts.length; i++) assert.ok(order.indexOf(acts[i - 1]!.phase) <= order.indexOf(acts[i]!.phase));
      for (const a of acts) assert.ok(a.reason.length > 0);
    }),
  );
});

test('a changed program tag is replaced in place; a detached link is relinked', () => {
  const desired: DesiredState = {
    root: ROOT,
    dispatcherTag: TAG,
    failedFiles: [],
    policies: [
      {
        name: 'a',
        sourceFile: '/p/a.yaml',
        netns: '/run/netns/x',
        netnsPath: '/run/netns/x',
        netnsKey: { ok: true, key: 'ino-1' },
        protocol: 'tcp',
        ports: [{ start: 80, end: 80 }],
        prefixes: ['0.0.0.0/0', '::/0'],
        targetText: 'listen 127.0.0.1:8080',
        target: { ok: true, pid: 1, fd: 3, cookie: '9' },
        specHash: 'h',
      },
    ],
  };
  const s = simulate(empty, plan(desired, empty).actions, desired);
  const d = s.dispatchers[0] as ObservedDispatcherState;
  d.program = { id: d.program!.id, tag: 'bbbbbbbbbbbbbbbb' };
  d.link!.attached = false;
  const kinds = plan(desired, s).actions.filter((a) => a.phase === 'dispatcher').map((a) => `${a.kind} ${a.op.type}`);
  assert.deepEqual(kinds, ['replace replaceProgram', 'replace relink']);
  // Nothing else: no entry is rewritten for a program upgrade.
  assert.deepEqual(changes(plan(desired, s)).filter((a) => a.phase !== 'dispatcher'), []);
});
