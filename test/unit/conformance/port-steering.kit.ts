/**
 * The conformance kit of PortSteering: random policies (each claiming its
 * own ports, as validation requires), a fake kernel of the dispatchers under
 * ROOT/netns, and what a converged dispatcher holds.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bindingEntries, bindingShapes } from '../../../src/kinds/port-steering/bindings.js';
import type {
  DesiredSteering,
  ObservedDispatcherState,
  PolicyRecord,
  SteeringDesired,
  SteeringObserved,
  SteeringOperation,
} from '../../../src/kinds/port-steering/model.js';
import { DISPATCHER_MAPS, dispatcherDir, type DispatcherMapName } from '../../../src/kinds/port-steering/store.js';
import { BINDING_KEY_SIZE, BINDING_VALUE_SIZE } from '../../../src/kinds/port-steering/layout.js';
import type { PlanEnv } from '../../../src/reconciler/kind.js';
import { ROOT, registeredKind, type ConformanceKit, type Damage, type FakeKernel, type Scenario } from './kit.js';

/** Tag of the dispatcher program the desired states run. */
export const STEERING_TAG = 'aaaaaaaaaaaaaaaa';
/** Tag of an older dispatcher program (what an upgrade replaces). */
export const OLD_STEERING_TAG = 'bbbbbbbbbbbbbbbb';
/** The policy files of the random scenarios. */
export const STEERING_FILES = ['/p/one.yaml', '/p/two.yaml', '/p/three.yaml'];
/** Namespace keys of the random scenarios ('missing' cannot be resolved). */
const NETNS = ['ino-1', 'ino-2'];
const NAMES = ['a', 'b', 'c', 'd', 'e'];

/** The cookie of the socket process `pid` holds (fd 3 of every pid is its listening socket). */
export function cookieOfPid(pid: number): string {
  return String(pid * 7);
}

/** A resolved PortSteering policy, for examples (fields not given are those of a TCP policy on port 80 in ino-1). */
export function steeringPolicy(name: string, extra: Partial<DesiredSteering> = {}): DesiredSteering {
  return {
    name,
    sourceFile: `/p/${name}.yaml`,
    netns: '/run/netns/x',
    netnsPath: '/run/netns/x',
    netnsKey: { ok: true, key: 'ino-1' },
    protocol: 'tcp',
    ports: [{ start: 80, end: 80 }],
    prefixes: ['0.0.0.0/0', '::/0'],
    targetText: 'listen 127.0.0.1:8080',
    targetSpec: { type: 'listen', family: 4, address: '127.0.0.1', port: 8080 },
    target: { ok: true, pid: 1, fd: 3, cookie: cookieOfPid(1) },
    specHash: `h-${name}`,
    ...extra,
  };
}

// Each policy claims ports from its own band, as validation rejects two policies claiming the same port and prefix.
const arbPolicy = (name: string): fc.Arbitrary<DesiredSteering> =>
  fc
    .record({
      ns: fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...NETNS) }, { weight: 1, arbitrary: fc.constant('missing') }),
      protocol: fc.constantFrom('tcp' as const, 'udp' as const),
      base: fc.integer({ min: 1, max: 10000 }).map((p) => p + NAMES.indexOf(name) * 12000),
      len: fc.integer({ min: 0, max: 40 }),
      extra: fc.option(fc.integer({ min: 11000, max: 11999 }).map((p) => p + NAMES.indexOf(name) * 12000), { nil: undefined }),
      prefixes: fc.constantFrom(['0.0.0.0/0', '::/0'], ['10.0.0.0/8'], ['10.1.0.0/16', '2001:db8::/32']),
      // The target as written, and the process that holds it now (undefined: nothing listens).
      listen: fc.constantFrom(8080, 8081),
      pid: fc.option(fc.integer({ min: 100, max: 103 }), { nil: undefined }),
      file: fc.constantFrom(...STEERING_FILES),
    })
    .map(({ ns, protocol, base, len, extra, prefixes, listen, pid, file }): DesiredSteering => {
      const ports = [{ start: base, end: base + len }, ...(extra ? [{ start: extra, end: extra }] : [])];
      const netns = `/run/netns/${ns}`;
      const netnsKey = ns === 'missing' ? { ok: false as const, reason: `network namespace ${netns} does not exist` } : { ok: true as const, key: ns };
      return {
        name,
        sourceFile: file,
        netns,
        netnsPath: netns,
        netnsKey,
        protocol,
        ports,
        prefixes: [...prefixes],
        targetText: `listen 127.0.0.1:${listen}`,
        targetSpec: { type: 'listen', family: 4, address: '127.0.0.1', port: listen },
        // As buildDesired does: an unresolved namespace leaves the target unresolved too.
        target: !netnsKey.ok
          ? { ok: false, reason: netnsKey.reason }
          : pid === undefined
            ? { ok: false, reason: `nothing listens on 127.0.0.1:${listen}` }
            : { ok: true, pid, fd: 3, cookie: cookieOfPid(pid) },
        specHash: JSON.stringify([ns, protocol, ports, prefixes, listen]),
      };
    });

const arbScenario: fc.Arbitrary<Scenario<SteeringDesired>> = fc
  .subarray(NAMES)
  .chain((picked) => fc.tuple(...picked.map(arbPolicy)))
  .map((policies) => ({
    desired: { dispatcherTag: STEERING_TAG, policies },
    files: [...new Set(policies.map((p) => p.sourceFile))].sort(),
  }));

/** Thrown where the kernel or the store would fail. */
class FakeKernelError extends Error {
  override name = 'FakeKernelError';
}

function maxId(s: SteeringObserved): number {
  let max = 0;
  for (const d of s.dispatchers) max = Math.max(max, d.program?.id ?? 0, d.programNext?.id ?? 0, d.link?.id ?? 0, d.link?.progId ?? 0);
  return max;
}

/** What observe reads: sockets only of destinations some record uses. */
function visibleSockets(d: ObservedDispatcherState): void {
  const ids = new Set(d.records.map((r) => r.destId));
  d.sockets = Object.fromEntries(Object.entries(d.sockets).filter(([id]) => ids.has(Number(id))));
}

/** The dispatchers under ROOT/netns in memory, changed as src/kinds/port-steering/store.ts changes the pins. */
export const steeringFake: FakeKernel<SteeringDesired, SteeringObserved> = {
  unobservable: ['resetCounters'],
  apply(observed, actions, desired) {
    const s: SteeringObserved = structuredClone(observed);
    let nextId = maxId(s) + 1;
    const at = (dir: string, op: string, map?: DispatcherMapName): ObservedDispatcherState => {
      const d = s.dispatchers.find((x) => x.dir === dir);
      if (!d) throw new FakeKernelError(`${op}: no dispatcher at ${dir} (ENOENT)`);
      if (d.error) throw new FakeKernelError(`${op}: the pins of ${dir} cannot be read (${d.error})`);
      if (map && d.missingMaps.includes(map)) throw new FakeKernelError(`${op}: ${dir}/map_${map} is missing (ENOENT)`);
      return d;
    };
    const cookieOf = (pid: number, fd: number) => {
      for (const p of desired.policies) if (p.target.ok && p.target.pid === pid && p.target.fd === fd) return p.target.cookie;
      throw new FakeKernelError(`putSocket: no socket at pid ${pid} fd ${fd}`);
    };
    for (const a of actions) {
      const op = a.op as SteeringOperation;
      switch (op.type) {
        case 'createDispatcher': {
          // Whatever the directory held is removed first; then maps, program and link are pinned.
          const old = s.dispatchers.find((d) => d.dir === op.dir);
          if (old?.error) throw new FakeKernelError(`createDispatcher: the pins of ${op.dir} cannot be read (${old.error})`);
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
          const d = at(op.dir, op.type);
          if (d.missingMaps.length > 0) throw new FakeKernelError(`replaceProgram: cannot reuse missing maps ${d.missingMaps.join(', ')} (ENOENT)`);
          // The new program goes into the link with BPF_F_REPLACE: the link must exist, be attached, and run the expected program.
          if (!d.link) throw new FakeKernelError(`replaceProgram: ${op.dir}/link is missing (ENOENT)`);
          if (!d.link.attached) throw new FakeKernelError(`replaceProgram: link ${d.link.id} is detached (ENOLINK)`);
          if (d.link.progId !== op.expectedProgId)
            throw new FakeKernelError(`replaceProgram: link ${d.link.id} runs program ${d.link.progId}, not ${op.expectedProgId} (EPERM)`);
          // swapPinnedProgram: program_next (whatever a crash left there is unpinned first) is swapped in, then renamed over program.
          d.program = { id: nextId++, tag: desired.dispatcherTag };
          d.link.progId = d.program.id;
          delete d.programNext;
          d.stray = d.stray.filter((p) => p !== `${d.dir}/program_next`);
          break;
        }
        case 'finishUpgrade': {
          // finishPinnedSwap: program_next renamed over program.
          const d = at(op.dir, op.type);
          if (!d.programNext) throw new FakeKernelError(`finishUpgrade: ${op.dir}/program_next is missing (ENOENT)`);
          d.program = d.programNext;
          delete d.programNext;
          d.stray = d.stray.filter((p) => p !== `${d.dir}/program_next`);
          break;
        }
        case 'relink': {
          const d = at(op.dir, op.type);
          if (!d.program) throw new FakeKernelError(`relink: ${op.dir}/program is missing (ENOENT)`);
          d.link = { id: nextId++, progId: d.program.id, netnsIno: Number(d.key.slice(4)), attached: true };
          break;
        }
        case 'writeRecord': {
          const d = at(op.dir, op.type, 'policies');
          d.records = [...d.records.filter((r) => r.name !== op.record.name), structuredClone(op.record)].sort((x, y) => x.name.localeCompare(y.name));
          d.badRecords = d.badRecords.filter((r) => r.name !== op.record.name);
          break;
        }
        case 'putSocket':
          at(op.dir, op.type, 'sockets').sockets[op.destId] = cookieOf(op.pid, op.fd);
          break;
        case 'deleteSocket':
          at(op.dir, op.type, 'sockets').sockets[op.destId] = null;
          break;
        case 'upsertBindings': {
          const d = at(op.dir, op.type, 'bindings');
          // The batch update (store.upsertBindings) writes the packed keys and values as they are.
          const { keys, values, count } = op.entries;
          if (keys.length !== count * BINDING_KEY_SIZE || values.length !== count * BINDING_VALUE_SIZE)
            throw new FakeKernelError(`upsertBindings: ${keys.length} key bytes and ${values.length} value bytes are not ${count} entries (EINVAL)`);
          const m = new Map(d.bindings.map((b) => [b.key, b]));
          for (let i = 0; i < count; i++) {
            const key = keys.toString('latin1', i * BINDING_KEY_SIZE, (i + 1) * BINDING_KEY_SIZE);
            m.set(key, { key, destId: values.readUInt32LE(i * BINDING_VALUE_SIZE), bindingId: values.readUInt32LE(i * BINDING_VALUE_SIZE + 4) });
          }
          d.bindings = [...m.values()].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
          break;
        }
        case 'deleteBindings': {
          const d = at(op.dir, op.type, 'bindings');
          const del = new Set(op.keys);
          d.bindings = d.bindings.filter((b) => !del.has(b.key));
          break;
        }
        case 'deleteRecord': {
          const d = at(op.dir, op.type, 'policies');
          d.records = d.records.filter((r) => r.name !== op.name);
          d.badRecords = d.badRecords.filter((r) => r.name !== op.name);
          break;
        }
        case 'resetCounters':
          at(op.dir, op.type, 'binding_hits');
          break;
        case 'removeDispatcher':
          at(op.dir, op.type);
          s.dispatchers = s.dispatchers.filter((d) => d.dir !== op.dir);
          break;
        case 'removeStray': {
          // removePinPath: a path that is gone already is fine; one of the layout's pins is not stray.
          const inside = s.dispatchers.find((d) => op.path === d.dir || op.path.startsWith(`${d.dir}/`));
          if (inside?.error) throw new FakeKernelError(`removeStray: the pins of ${inside.dir} cannot be read (${inside.error})`);
          if (inside && !inside.stray.includes(op.path) && op.path !== `${inside.dir}/program_next`)
            throw new FakeKernelError(`removeStray: ${op.path} is part of dispatcher ${inside.key}, not stray`);
          if (inside && op.path === `${inside.dir}/program_next`) {
            if (inside.programNext && inside.link?.progId === inside.programNext.id)
              throw new FakeKernelError(`removeStray: ${op.path} is the program the link runs`);
            delete inside.programNext;
          }
          s.stray = s.stray.filter((p) => p !== op.path);
          for (const d of s.dispatchers) d.stray = d.stray.filter((p) => p !== op.path);
          break;
        }
        case 'none':
          break;
        default:
          throw new FakeKernelError(`PortSteering has no operation ${(op as { type: string }).type}`);
      }
    }
    for (const d of s.dispatchers) visibleSockets(d);
    return s;
  },
};

/** The kinds of damage {@link damageSteering} does. */
const STEERING_DAMAGES = [
  'old-program', // an older version's dispatcher (an upgrade is due)
  'link-detached', // someone detached the link (or its namespace went away)
  'link-missing', // the link pin was removed
  'link-runs-other', // the link runs another program than the pinned one
  'map-missing', // a map pin was removed
  'stray-pin', // program_next of an upgrade interrupted before the swap (nothing runs it)
  'swap-interrupted', // an upgrade interrupted after the swap: the link runs program_next, program is the old one
  'bad-record', // an unreadable policy record
  'orphan-entries', // binding entries of no record (an interrupted run)
  'socket-closed', // a target socket closed: its sockmap slot emptied
  'entries-lost', // binding entries deleted behind our back
  'record-lost', // a policy record deleted behind our back
  'stray-top', // something under ROOT/netns that is not a dispatcher
];

/**
 * The observed state after `damages`, as observe would read it (a copy;
 * the input is not changed).
 */
function damageSteering(observed: SteeringObserved, damages: readonly Damage[]): SteeringObserved {
  const s = structuredClone(observed);
  for (const { what, target } of damages) {
    if (what === 'stray-top') {
      const path = `${ROOT}/netns/leftover-${target % 3}`;
      if (!s.stray.includes(path)) s.stray = [...s.stray, path].sort();
      continue;
    }
    const d = s.dispatchers[target % Math.max(1, s.dispatchers.length)];
    if (!d || d.error) continue;
    switch (what) {
      case 'old-program':
        if (d.program) d.program = { ...d.program, tag: OLD_STEERING_TAG };
        break;
      case 'link-detached':
        if (d.link) d.link = { ...d.link, attached: false };
        break;
      case 'link-missing':
        delete d.link;
        break;
      case 'link-runs-other':
        if (d.link) d.link = { ...d.link, progId: 1 };
        break;
      case 'map-missing': {
        const map = DISPATCHER_MAPS[target % DISPATCHER_MAPS.length]!;
        if (d.missingMaps.includes(map)) break;
        d.missingMaps = [...d.missingMaps, map];
        if (map === 'bindings') d.bindings = [];
        if (map === 'policies') {
          d.records = [];
          d.badRecords = [];
        }
        if (map === 'sockets') for (const id of Object.keys(d.sockets)) d.sockets[Number(id)] = null;
        visibleSockets(d);
        break;
      }
      case 'stray-pin':
        if (d.programNext) break;
        d.programNext = { id: maxId(s) + 1, tag: STEERING_TAG };
        d.stray = [...d.stray, `${d.dir}/program_next`].sort();
        break;
      case 'swap-interrupted':
        if (d.programNext || !d.program || !d.link) break;
        d.programNext = { id: maxId(s) + 1, tag: d.program.tag };
        d.program = { ...d.program, tag: OLD_STEERING_TAG };
        d.link = { ...d.link, progId: d.programNext.id };
        d.stray = [...d.stray, `${d.dir}/program_next`].sort();
        break;
      case 'bad-record':
        if (!d.missingMaps.includes('policies') && !d.badRecords.some((b) => b.name === 'zz-bad')) d.badRecords.push({ name: 'zz-bad', reason: 'not JSON: Unexpected token' });
        break;
      case 'orphan-entries': {
        const key = `\u0000orphan-${target % 3}`;
        if (!d.missingMaps.includes('bindings') && !d.bindings.some((b) => b.key === key))
          d.bindings = [...d.bindings, { key, destId: 60000 + (target % 3), bindingId: 60000 }].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
        break;
      }
      case 'socket-closed': {
        const ids = Object.keys(d.sockets);
        if (ids.length > 0) d.sockets[Number(ids[target % ids.length])] = null;
        break;
      }
      case 'entries-lost':
        d.bindings = d.bindings.filter((_, i) => i % 2 === 1);
        break;
      case 'record-lost':
        if (d.records.length > 0) d.records.splice(target % d.records.length, 1);
        visibleSockets(d);
        break;
      default:
        throw new Error(`no damage ${what}`);
    }
  }
  return s;
}

/**
 * Whether the record `r` is kept as it is under `env`: its policy is defined in a file that failed
 * (wherever the record says it came from), or, defined in no loaded file, it came from a file that
 * failed; or its policy's namespace cannot be resolved.
 */
function keptRecord(r: PolicyRecord, desired: SteeringDesired, failed: ReadonlySet<string>): boolean {
  const d = desired.policies.find((p) => p.name === r.name);
  if (!d) return failed.has(r.sourceFile);
  return failed.has(d.sourceFile) || !d.netnsKey.ok;
}

function assertSteeringConverged(desired: SteeringDesired, s: SteeringObserved, env: PlanEnv): void {
  const failed = env.failedFiles;
  const applicable = desired.policies.filter((p) => !failed.has(p.sourceFile) && p.netnsKey.ok);
  for (const p of applicable) {
    const key = (p.netnsKey as { key: string }).key;
    const d = s.dispatchers.find((x) => x.key === key);
    assert.ok(d, `dispatcher ${key} for ${p.name}`);
    assert.equal(d.dir, dispatcherDir(env.root, key), `dispatcher ${key} lives under the root`);
    assert.equal(d.program?.tag, desired.dispatcherTag, `dispatcher ${key} runs the desired program`);
    assert.ok(d.link?.attached, `dispatcher ${key} is linked`);
    assert.equal(d.link.progId, d.program.id, `the link of ${key} runs the pinned program`);
    const rec = d.records.find((r) => r.name === p.name);
    assert.ok(rec, `record of ${p.name}`);
    assert.deepEqual(
      { sourceFile: rec.sourceFile, specHash: rec.specHash, protocol: rec.protocol, targetText: rec.targetText, netns: rec.netns },
      { sourceFile: p.sourceFile, specHash: p.specHash, protocol: p.protocol, targetText: p.targetText, netns: p.netns ?? null },
      `record of ${p.name} matches the policy`,
    );
    assert.deepEqual(
      rec.bindings.map(({ start, end, prefix }) => ({ start, end, prefix })),
      bindingShapes(p),
      `bindings of ${p.name}`,
    );
    const want = rec.bindings.flatMap((b) => bindingEntries(p.protocol, b, rec.destId)).map((e) => `${e.key}>${e.bindingId}`).sort();
    const have = d.bindings.filter((b) => b.destId === rec.destId).map((b) => `${b.key}>${b.bindingId}`).sort();
    assert.deepEqual(have, want, `entries of ${p.name}`);
    if (p.target.ok) assert.equal(d.sockets[rec.destId], p.target.cookie, `socket of ${p.name}`);
  }
  assert.deepEqual(s.stray, [], 'nothing stray under ROOT/netns');
  // No dispatcher without a reason to exist, no record nobody wants, no entry without an owner, no id twice.
  for (const d of s.dispatchers) {
    assert.ok(d.records.length > 0, `dispatcher ${d.key} holds policies`);
    for (const r of d.records) {
      const wanted = applicable.some((p) => p.name === r.name && (p.netnsKey as { key: string }).key === d.key);
      assert.ok(wanted || keptRecord(r, desired, failed), `record ${r.name} in ${d.key} is wanted there, or kept`);
    }
    if (!d.records.some((r) => keptRecord(r, desired, failed))) {
      // Dispatchers only kept for failed files or unresolved namespaces keep their state as it is.
      assert.deepEqual([d.missingMaps, d.badRecords, d.stray, d.programNext], [[], [], [], undefined], `dispatcher ${d.key} is complete and clean`);
    }
    const owners = new Set(d.records.map((r) => r.destId));
    for (const b of d.bindings) assert.ok(owners.has(b.destId), `every entry of ${d.key} has an owner`);
    assert.equal(owners.size, d.records.length, `destination ids of ${d.key} are distinct`);
    const ids = d.records.flatMap((r) => r.bindings.map((b) => b.id));
    assert.equal(new Set(ids).size, ids.length, `binding ids of ${d.key} are distinct`);
  }
}

/** PortSteering's conformance kit. */
export const portSteeringKit: ConformanceKit<SteeringDesired, SteeringObserved> = {
  kind: registeredKind<SteeringDesired, SteeringObserved>('PortSteering'),
  empty: () => ({ dispatchers: [], stray: [] }),
  none: () => ({ dispatcherTag: STEERING_TAG, policies: [] }),
  arbScenario,
  withFilesFailed: (desired, files) => ({ ...structuredClone(desired), policies: structuredClone(desired.policies.filter((p) => !files.includes(p.sourceFile))) }),
  // The desired state does not record failures: the plan reads them from env.failedFiles.
  withFilesInvalid: (desired) => structuredClone(desired),
  damages: STEERING_DAMAGES,
  damage: damageSteering,
  fake: steeringFake,
  assertConverged: assertSteeringConverged,
  heldFrom(observed, failed, desired) {
    const takenOver = new Set(desired.policies.filter((p) => !failed.has(p.sourceFile)).map((p) => p.name));
    // Also what a policy now defined in a failed file left wherever it came from (it moved there).
    const movedIntoFailed = new Set(desired.policies.filter((p) => failed.has(p.sourceFile)).map((p) => p.name));
    return observed.dispatchers.flatMap((d) =>
      d.records
        .filter((r) => (failed.has(r.sourceFile) && !takenOver.has(r.name)) || movedIntoFailed.has(r.name))
        .map((r) => ({
          dispatcher: d.key,
          record: r,
          entries: d.bindings.filter((b) => b.destId === r.destId),
          socket: d.sockets[r.destId] ?? null,
        })),
    );
  },
  knownBugs: [],
};
