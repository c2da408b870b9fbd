/**
 * The conformance kit of SyscallCounter: random policies (resolved with a
 * fake resolver: ConnectPolicy's fake cgroups and a fixed program tag), a
 * fake kernel of the one counter under ROOT/syscalls (program, link, maps,
 * and a slot per policy: config, wanted bits, count table, record), and
 * what a converged counter holds.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildDesiredCounters, type CounterResolver } from '../../../src/kinds/syscall-counter/desired.js';
import { GROUP_BY_FIELDS, type SyscallCounterPolicy } from '../../../src/kinds/syscall-counter/document.js';
import { COUNTER_DIR, COUNTER_MAPS, groupBits, MAX_POLICIES, MAX_SYSCALLS, NAME_LEN, RECORD_LEN, type CounterMapName } from '../../../src/kinds/syscall-counter/layout.js';
import type { CounterOperation, DesiredCounterPolicy, DesiredCounters } from '../../../src/kinds/syscall-counter/model.js';
import type { CounterPolicyRecord, ObservedCounter, ObservedCounters, ObservedSlot } from '../../../src/kinds/syscall-counter/store.js';
import type { PlanEnv } from '../../../src/reconciler/kind.js';
import { resolveFakeCgroup } from './connect-policy.kit.js';
import { ROOT, registeredKind, type ConformanceKit, type Damage, type FakeKernel, type Scenario } from './kit.js';

/** Tag of the counter program the desired states run. */
export const COUNTER_TAG = 'c0c0c0c0c0c0c0c0';
/** Tag of an older counter program (what an upgrade replaces). */
export const OLD_COUNTER_TAG = 'dddddddddddddddd';
/** The policy files of the random scenarios. */
export const COUNTER_FILES = ['/s/one.yaml', '/s/two.yaml', '/s/three.yaml'];
/** Where the counter lives. */
export const COUNTER_PATH = `${ROOT}/${COUNTER_DIR}`;

/** A resolver of cgroups (ConnectPolicy's {@link resolveFakeCgroup}: `missing`, `unreadable`, fixed ids) and of {@link COUNTER_TAG}. */
export function counterResolver(): CounterResolver {
  return { cgroup: resolveFakeCgroup, tag: () => COUNTER_TAG };
}

/** What a desired state was built from, to build it again with other files failed. */
const built = new WeakMap<DesiredCounters, { policies: readonly SyscallCounterPolicy[]; failed: ReadonlySet<string> }>();

/** The desired counter of `policies` with `failed` files, as the kind's `desired` builds it (with {@link counterResolver}). */
export function desiredCounters(policies: readonly SyscallCounterPolicy[], failed: Iterable<string> = []): DesiredCounters {
  const failedSet = new Set(failed);
  const d = buildDesiredCounters(policies, failedSet, counterResolver());
  built.set(d, { policies: [...policies], failed: failedSet });
  return d;
}

function rebuild(desired: DesiredCounters, keep: (p: SyscallCounterPolicy) => boolean, files: readonly string[]): DesiredCounters {
  const from = built.get(desired);
  if (!from) throw new Error('withFilesFailed: this desired state was not built by desiredCounters()');
  return desiredCounters(from.policies.filter(keep), [...from.failed, ...files]);
}

/** A SyscallCounter policy, for examples (fields not given: execve by syscall, every process, 1024 keys, from /s/f.yaml). */
export function counterPolicy(name: string, extra: Partial<SyscallCounterPolicy> = {}): SyscallCounterPolicy {
  return {
    kind: 'SyscallCounter',
    name,
    labels: {},
    source: { file: '/s/f.yaml', documentIndex: 0, line: 1, column: 1 },
    syscalls: [59],
    groupBy: ['syscall'],
    cgroup: undefined,
    maxKeys: 1024,
    ...extra,
  };
}

const NAMES = ['a', 'b', 'c'];
/** Syscall numbers as normalization leaves them (ascending, distinct), overlapping across lists. */
const SYSCALLS: ReadonlyArray<readonly number[]> = [[0], [0, 1], [59], [1, 59, 322], [2, MAX_SYSCALLS - 1]];

const arbPolicy = (name: string): fc.Arbitrary<SyscallCounterPolicy> =>
  fc
    .record({
      syscalls: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...SYSCALLS) }, { weight: 1, arbitrary: fc.constant('all' as const) }),
      // A non-empty subset, in canonical order.
      groupBy: fc.subarray([...GROUP_BY_FIELDS], { minLength: 1 }),
      cgroup: fc.oneof(
        { weight: 4, arbitrary: fc.constant(undefined) },
        { weight: 2, arbitrary: fc.constantFrom('app', '/sys/fs/cgroup/app', 'db') },
        { weight: 1, arbitrary: fc.constant('missing') },
        { weight: 1, arbitrary: fc.constant('unreadable') },
      ),
      maxKeys: fc.constantFrom(16, 1024, 10240),
      file: fc.constantFrom(...COUNTER_FILES),
    })
    .map(({ syscalls, groupBy, cgroup, maxKeys, file }) => ({
      kind: 'SyscallCounter' as const,
      name,
      labels: {},
      source: { file, documentIndex: 0, line: 1, column: 1 },
      syscalls: syscalls === 'all' ? 'all' : [...syscalls],
      groupBy,
      cgroup,
      maxKeys,
    }));

/** Random SyscallCounter policies (a subset of a, b, c). */
export const arbCounterPolicies: fc.Arbitrary<SyscallCounterPolicy[]> = fc.subarray(NAMES).chain((names) => fc.tuple(...names.map(arbPolicy)));

const arbScenario: fc.Arbitrary<Scenario<DesiredCounters>> = arbCounterPolicies.map((policies) => ({
  desired: desiredCounters(policies),
  files: [...new Set(policies.map((p) => p.source.file))].sort(),
}));

/** Thrown where the kernel or the store would fail. */
class FakeKernelError extends Error {
  override name = 'FakeKernelError';
}

/** The record planCounters writes for `p` at `slot` (plan.ts's `record()`). */
export function counterRecord(p: DesiredCounterPolicy, slot: number): CounterPolicyRecord {
  return {
    v: 1,
    name: p.name,
    sourceFile: p.sourceFile,
    specHash: p.specHash,
    slot,
    syscalls: p.syscalls === 'all' ? 'all' : [...p.syscalls],
    groupBy: [...p.groupBy],
    cgroupPath: p.cgroup?.path ?? null,
    cgroupId: p.cgroup?.id ?? null,
    maxKeys: p.maxKeys,
  };
}

/** The `wanted` bits a policy's slot should have: its syscalls below MAX_SYSCALLS, or every number for "*". */
export function wantedBits(syscalls: readonly number[] | 'all'): number[] {
  // A "*" policy's bit is set in every word: the program's hot path is then one lookup.
  return syscalls === 'all' ? Array.from({ length: MAX_SYSCALLS }, (_, nr) => nr) : syscalls.filter((nr) => nr < MAX_SYSCALLS);
}

const EMPTY_SLOT = () => ({ inUse: false, groupBy: 0, cgroup: false, all: false });

function maxId(c: ObservedCounter | undefined): number {
  if (!c) return 0;
  return Math.max(0, c.program?.id ?? 0, c.programNext?.id ?? 0, c.link?.id ?? 0, c.link?.progId ?? 0, ...c.slots.map((s) => s.table?.id ?? 0));
}

function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** The slots as observe lists them: those holding anything (in use, a table, a wanted bit), by number. */
function tidySlots(c: ObservedCounter): void {
  c.slots = c.slots.filter((s) => s.config.inUse || s.table !== undefined || s.syscalls.length > 0).sort((x, y) => x.slot - y.slot);
}

/** The pins (and the directory) of the counter's layout: never stray. */
function layoutPins(dir: string): string[] {
  return [dir, `${dir}/program`, `${dir}/link`, ...COUNTER_MAPS.map((m) => `${dir}/map_${m}`)];
}

const SLOT_MAPS: CounterMapName[] = ['wanted', 'config', 'policies', 'cgroups', 'counts', 'records'];

/** The counter under ROOT/syscalls in memory, changed as src/kinds/syscall-counter/store.ts changes the pins. */
export const counterFake: FakeKernel<DesiredCounters, ObservedCounters> = {
  unobservable: [],
  apply(observed, actions, desired) {
    const s: ObservedCounters = structuredClone(observed);
    let nextId = maxId(s.counter) + 1;
    const at = (dir: string, op: string, maps: readonly CounterMapName[] = []): ObservedCounter => {
      const c = s.counter;
      if (!c || c.dir !== dir) throw new FakeKernelError(`${op}: no counter at ${dir} (ENOENT)`);
      if (c.error) throw new FakeKernelError(`${op}: the pins of ${dir} cannot be read (${c.error})`);
      const missing = maps.filter((m) => c.missingMaps.includes(m));
      if (missing.length > 0) throw new FakeKernelError(`${op}: ${missing.map((m) => `${dir}/map_${m}`).join(', ')} missing (ENOENT)`);
      // Maps of an older layout cannot be written with this one's key and value sizes.
      if (maps.length > 0 && c.layoutMismatch.length > 0) throw new FakeKernelError(`${op}: ${dir} has maps of an older layout (EINVAL)`);
      return c;
    };
    const checkSlot = (op: string, slot: number) => {
      if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_POLICIES) throw new FakeKernelError(`${op}: no slot ${slot} (E2BIG)`);
    };
    const slotOf = (c: ObservedCounter, slot: number): ObservedSlot => {
      let x = c.slots.find((y) => y.slot === slot);
      if (!x) c.slots.push((x = { slot, config: EMPTY_SLOT(), syscalls: [] }));
      return x;
    };
    const dropStray = (c: ObservedCounter, path: string) => {
      c.stray = c.stray.filter((p) => p !== path);
    };
    const deleteRecords = (c: ObservedCounter, names: readonly string[]) => {
      c.policies = c.policies.filter((r) => !names.includes(r.name));
      c.badRecords = c.badRecords.filter((b) => !names.includes(b.name));
    };
    for (const a of actions) {
      const op = a.op as CounterOperation;
      switch (op.type) {
        case 'createCounter': {
          // Whatever the directory held is removed first; then the maps, the program, an empty config and the link.
          if (op.dir !== COUNTER_PATH) throw new FakeKernelError(`createCounter: ${op.dir} is not the counter directory`);
          if (s.counter?.error) throw new FakeKernelError(`createCounter: the pins of ${op.dir} cannot be read (${s.counter.error})`);
          const progId = nextId++;
          s.counter = {
            dir: op.dir,
            program: { id: progId, tag: desired.tag },
            link: { id: nextId++, progId },
            missingMaps: [],
            layoutMismatch: [],
            config: { allMask: 0n, nSlots: 0 },
            slots: [],
            policies: [],
            badRecords: [],
            stray: [],
          };
          break;
        }
        case 'attachCounter': {
          // The pinned program, in a new link pinned as link_next (whatever a crash left there is unpinned first) and renamed over link.
          const c = at(op.dir, op.type);
          if (!c.program) throw new FakeKernelError(`attachCounter: ${op.dir}/program is missing (ENOENT)`);
          c.link = { id: nextId++, progId: c.program.id };
          dropStray(c, `${op.dir}/link_next`);
          break;
        }
        case 'replaceCounterProgram': {
          // Loaded with every pinned map reused; program_next pinned (a leftover unpinned first), attached with a new link, renamed over program.
          const c = at(op.dir, op.type, COUNTER_MAPS);
          c.program = { id: nextId++, tag: desired.tag };
          c.link = { id: nextId++, progId: c.program.id };
          delete c.programNext;
          dropStray(c, `${op.dir}/program_next`);
          dropStray(c, `${op.dir}/link_next`);
          break;
        }
        case 'finishUpgrade': {
          // finishPinnedSwap: program_next renamed over program.
          const c = at(op.dir, op.type);
          if (!c.programNext) throw new FakeKernelError(`finishUpgrade: ${op.dir}/program_next is missing (ENOENT)`);
          c.program = c.programNext;
          delete c.programNext;
          dropStray(c, `${op.dir}/program_next`);
          break;
        }
        case 'writeSlot': {
          const c = at(op.dir, op.type, SLOT_MAPS);
          const w = op.write;
          checkSlot(op.type, w.slot);
          if (w.record.slot !== w.slot) throw new FakeKernelError(`writeSlot: the record of ${w.record.name} names slot ${w.record.slot}, not ${w.slot}`);
          if (Buffer.byteLength(w.record.name) >= NAME_LEN) throw new FakeKernelError(`writeSlot: policy name ${w.record.name} is too long for a record key`);
          if (Buffer.byteLength(JSON.stringify(w.record)) > RECORD_LEN - 4) throw new FakeKernelError(`writeSlot: the record of ${w.record.name} is too large`);
          if (w.cgroup) {
            // openCgroupDir: ENOENT for a cgroup that is gone, ESTALE for one created again (another id).
            const cg = resolveFakeCgroup(w.cgroup.cgroupPath);
            if (!cg.ok) throw new FakeKernelError(`writeSlot: ${cg.reason}`);
            if (String(cg.id) !== w.cgroup.cgroupId) throw new FakeKernelError(`writeSlot: cgroup ${w.cgroup.cgroupPath} is ${cg.id} now, not ${w.cgroup.cgroupId} (ESTALE)`);
          }
          const x = slotOf(c, w.slot);
          // A fresh table only when asked: without one, the slot keeps what it has (possibly none).
          if (w.newTable !== undefined) x.table = { id: nextId++, maxEntries: w.newTable };
          x.config = { ...w.config };
          x.syscalls = [...new Set(w.syscalls.filter((nr) => nr >= 0 && nr < MAX_SYSCALLS))].sort((p, q) => p - q);
          c.config = { allMask: BigInt(w.allMask), nSlots: w.nSlots };
          c.policies = [...c.policies.filter((r) => r.name !== w.record.name), structuredClone(w.record)].sort(byName);
          c.badRecords = c.badRecords.filter((b) => b.name !== w.record.name);
          tidySlots(c);
          break;
        }
        case 'clearSlot': {
          const c = at(op.dir, op.type, SLOT_MAPS);
          checkSlot(op.type, op.slot);
          c.slots = c.slots.filter((x) => x.slot !== op.slot);
          c.config = { allMask: BigInt(op.allMask), nSlots: op.nSlots };
          deleteRecords(c, op.deleteRecords);
          break;
        }
        case 'writeCounterConfig': {
          const c = at(op.dir, op.type, ['config']);
          c.config = { allMask: BigInt(op.allMask), nSlots: op.nSlots };
          break;
        }
        case 'deleteRecords':
          deleteRecords(at(op.dir, op.type, ['records']), op.names);
          break;
        case 'removeCounter':
          at(op.dir, op.type);
          delete s.counter;
          break;
        case 'removeStray': {
          // removePinPath: a path that is gone already is fine; one of the layout's pins is not stray.
          const c = s.counter;
          if (!c || !op.path.startsWith(`${c.dir}/`)) break;
          if (c.error) throw new FakeKernelError(`removeStray: the pins of ${c.dir} cannot be read (${c.error})`);
          if (layoutPins(c.dir).includes(op.path)) throw new FakeKernelError(`removeStray: ${op.path} is part of the counter, not stray`);
          if (op.path === `${c.dir}/program_next` && c.programNext) {
            if (c.link?.progId === c.programNext.id) throw new FakeKernelError(`removeStray: ${op.path} is the program the link runs`);
            delete c.programNext;
          }
          dropStray(c, op.path);
          break;
        }
        case 'none':
          break;
        default:
          throw new FakeKernelError(`SyscallCounter has no operation ${(op as { type: string }).type}`);
      }
    }
    return s;
  },
};

/** The kinds of damage {@link damageCounter} does. */
const COUNTER_DAMAGES = [
  'old-program', // an older version's program (an upgrade is due)
  'program-missing', // the program pin was removed
  'link-missing', // the link pin was removed (the counter is detached)
  'link-runs-other', // the link runs another program than the pinned one
  'map-missing', // a map pin was removed
  'older-layout', // maps pinned by an older layout
  'stray-link-next', // link_next of an interrupted attach
  'program-next', // program_next of an upgrade interrupted before the swap (nothing runs it)
  'stray-junk', // something in ROOT/syscalls that is not part of the layout (or a directory a crash left with only that)
  'swap-interrupted', // an upgrade interrupted after the swap: the link runs program_next, program is the old one
  'bad-record', // an unreadable record of no policy
  'bad-own-record', // an unreadable record of a policy in a slot (e.g. written by a newer version)
  'slot-bits-changed', // someone set or cleared a wanted bit of a slot
  'table-gone', // a slot's count table is gone from `counts`
  'table-resized', // a slot's count table is not of the size its record says
  'slot-config-changed', // a slot's config is not the one written
  'config-changed', // the config (all mask, slot count) is not the one written
  'orphan-slot', // a slot in use that no record names (a crash between the slot write and the record)
];

/**
 * The observed state after `damages`, as observeCounters would read it (a
 * copy; the input is not changed).
 */
function damageCounter(observed: ObservedCounters, damages: readonly Damage[]): ObservedCounters {
  const s = structuredClone(observed);
  for (const { what, target } of damages) {
    if (what === 'stray-junk' && !s.counter) {
      // A directory a crashed run left with nothing of the layout in it.
      s.counter = { dir: COUNTER_PATH, missingMaps: [...COUNTER_MAPS], layoutMismatch: [], slots: [], policies: [], badRecords: [], stray: [`${COUNTER_PATH}/junk`] };
      continue;
    }
    const c = s.counter;
    if (!c || c.error) continue;
    const addStray = (path: string) => {
      if (!c.stray.includes(path)) c.stray = [...c.stray, path].sort();
    };
    const readable = c.layoutMismatch.length === 0;
    const slot = c.slots[target % Math.max(1, c.slots.length)];
    switch (what) {
      case 'old-program':
        if (c.program) c.program = { ...c.program, tag: OLD_COUNTER_TAG };
        break;
      case 'program-missing':
        delete c.program;
        break;
      case 'link-missing':
        delete c.link;
        break;
      case 'link-runs-other':
        if (c.link) c.link = { ...c.link, progId: 90000 + target }; // not a program of ours
        break;
      case 'map-missing': {
        const map = COUNTER_MAPS[target % COUNTER_MAPS.length]!;
        if (c.missingMaps.includes(map)) break;
        c.missingMaps = [...c.missingMaps, map];
        if (!readable) break;
        if (map === 'records') {
          c.policies = [];
          c.badRecords = [];
        }
        if (map === 'config') delete c.config;
        if (map === 'policies') for (const x of c.slots) x.config = EMPTY_SLOT();
        if (map === 'counts') for (const x of c.slots) delete x.table;
        if (map === 'wanted') for (const x of c.slots) x.syscalls = [];
        tidySlots(c);
        break;
      }
      case 'older-layout':
        // observeCounter stops at a layout mismatch: nothing of the maps is read.
        c.layoutMismatch = ['map policies (key 4/4, value 12/16 bytes)'];
        c.policies = [];
        c.badRecords = [];
        c.slots = [];
        delete c.config;
        break;
      case 'stray-link-next':
        addStray(`${c.dir}/link_next`);
        break;
      case 'program-next':
        if (c.programNext) break;
        c.programNext = { id: maxId(c) + 1, tag: COUNTER_TAG };
        addStray(`${c.dir}/program_next`);
        break;
      case 'stray-junk':
        addStray(`${c.dir}/junk`);
        break;
      case 'swap-interrupted':
        if (c.programNext || !c.program || !c.link) break;
        c.programNext = { id: maxId(c) + 1, tag: c.program.tag };
        c.program = { ...c.program, tag: OLD_COUNTER_TAG };
        c.link = { ...c.link, progId: c.programNext.id };
        addStray(`${c.dir}/program_next`);
        break;
      case 'bad-record':
        if (c.missingMaps.includes('records') || !readable || c.badRecords.some((b) => b.name === 'zz-bad')) break;
        c.badRecords = [...c.badRecords, { name: 'zz-bad', reason: 'not JSON: Unexpected token' }];
        break;
      case 'bad-own-record': {
        const own = c.policies[target % Math.max(1, c.policies.length)];
        if (!own) break;
        c.policies = c.policies.filter((r) => r !== own);
        c.badRecords = [...c.badRecords, { name: own.name, reason: 'unsupported version 2' }];
        break;
      }
      case 'slot-bits-changed':
        if (!slot) break;
        // Set a bit no policy wants, or clear one a policy wants.
        slot.syscalls = target % 2 && slot.syscalls.length > 0 ? slot.syscalls.slice(1) : [...new Set([...slot.syscalls, 200 + target])].sort((x, y) => x - y);
        tidySlots(c);
        break;
      case 'table-gone':
        if (!slot) break;
        delete slot.table;
        tidySlots(c);
        break;
      case 'table-resized':
        if (slot?.table) slot.table = { id: maxId(c) + 1, maxEntries: slot.table.maxEntries + 1 + target };
        break;
      case 'slot-config-changed':
        if (!slot) break;
        slot.config = target % 2 ? { ...slot.config, all: !slot.config.all } : { ...slot.config, groupBy: slot.config.groupBy ^ (1 << (target % 4)) };
        break;
      case 'config-changed':
        if (!c.config) break;
        c.config = target % 2 ? { ...c.config, allMask: c.config.allMask ^ (1n << BigInt(target % 4)) } : { ...c.config, nSlots: c.config.nSlots + 1 };
        break;
      case 'orphan-slot': {
        if (!readable) break;
        const taken = new Set([...c.slots.map((x) => x.slot), ...c.policies.map((r) => r.slot)]);
        const free = Array.from({ length: MAX_POLICIES }, (_, i) => i).filter((i) => !taken.has(i));
        const at = free[target % free.length];
        if (at === undefined) break;
        c.slots.push({ slot: at, config: { inUse: true, groupBy: 1, cgroup: false, all: target % 2 === 1 }, table: { id: maxId(c) + 1, maxEntries: 64 }, syscalls: target % 2 ? [] : [59] });
        tidySlots(c);
        break;
      }
      default:
        throw new Error(`no damage ${what}`);
    }
  }
  return s;
}

/** Records kept as they are: of policies whose file failed (and that no loaded file defines now) or whose cgroup cannot be read now. */
function keptRecords(c: ObservedCounter, desired: DesiredCounters, failed: ReadonlySet<string>): CounterPolicyRecord[] {
  const names = new Set(desired.status.map((p) => p.name));
  return c.policies.filter((r) => desired.keepPolicies.includes(r.name) || (failed.has(r.sourceFile) && !names.has(r.name)));
}

function assertCounterConverged(desired: DesiredCounters, s: ObservedCounters, env: PlanEnv): void {
  const c = s.counter;
  const kept = c && !c.error ? keptRecords(c, desired, env.failedFiles) : [];
  if (desired.policies.length === 0 && kept.length === 0) {
    assert.equal(c, undefined, 'no counter when no policy counts and none is kept');
    return;
  }
  assert.ok(c, 'a counter when a policy counts');
  assert.equal(c.dir, COUNTER_PATH, 'the counter lives where the layout says');
  assert.deepEqual([c.error, c.missingMaps, c.layoutMismatch, c.badRecords, c.stray, c.programNext], [undefined, [], [], [], [], undefined], 'the counter is complete and clean');
  assert.ok(c.program, 'a program');
  // Without any policy loaded (only kept ones), the plan knows no tag: the program stays.
  if (desired.tag !== '') assert.equal(c.program.tag, desired.tag, 'the counter runs the desired program');
  assert.ok(c.link, 'the counter is attached');
  assert.equal(c.link.progId, c.program.id, 'the link runs the pinned program');
  // Every policy counts, as long as the slots kept for others leave it one.
  const placed = desired.policies.filter((p) => c.policies.some((r) => r.name === p.name));
  assert.equal(placed.length, Math.min(desired.policies.length, MAX_POLICIES - kept.length), 'a slot for each policy counting, as long as the counter has free slots');
  assert.deepEqual(
    c.policies.map((r) => r.name),
    [...new Set([...placed.map((p) => p.name), ...kept.map((r) => r.name)])].sort(),
    'a record for each policy counting, and for each kept, and no other',
  );
  const keptSlots = kept.map((r) => r.slot);
  const slots: number[] = [];
  for (const p of placed) {
    const r: CounterPolicyRecord = c.policies.find((x) => x.name === p.name)!;
    const what = `policy ${p.name} (slot ${r.slot})`;
    assert.ok(Number.isInteger(r.slot) && r.slot >= 0 && r.slot < MAX_POLICIES, `${what}: a slot of the counter`);
    assert.deepEqual(r, counterRecord(p, r.slot), `${what}: the record of what it counts`);
    const x: ObservedSlot | undefined = c.slots.find((y) => y.slot === r.slot);
    assert.ok(x, `${what}: the slot holds it`);
    assert.deepEqual(x.config, { inUse: true, groupBy: groupBits(p.groupBy), cgroup: p.cgroup !== null, all: p.syscalls === 'all' }, `${what}: slot config`);
    assert.deepEqual(x.syscalls, wantedBits(p.syscalls), `${what}: exactly its syscalls have its wanted bit`);
    assert.equal(x.table?.maxEntries, p.maxKeys, `${what}: a count table of maxKeys keys`);
    slots.push(r.slot);
  }
  const used = [...slots, ...keptSlots];
  assert.equal(new Set(used).size, used.length, 'slots are distinct');
  const unwanted = c.slots.filter((x) => !used.includes(x.slot)).map((x) => x.slot);
  assert.deepEqual(unwanted, [], 'no slot holds anything without a policy counting or kept in it');
  const allMask = c.slots.filter((x) => x.config.all).reduce((m, x) => m | (1n << BigInt(x.slot)), 0n);
  assert.deepEqual(c.config, { allMask, nSlots: used.length === 0 ? 0 : Math.max(...used) + 1 }, 'config: the slots counting every syscall, 1 + the highest slot in use');
}

/** SyscallCounter's conformance kit. */
export const syscallCounterKit: ConformanceKit<DesiredCounters, ObservedCounters> = {
  kind: registeredKind<DesiredCounters, ObservedCounters>('SyscallCounter'),
  empty: () => ({}),
  none: () => desiredCounters([]),
  arbScenario,
  withFilesFailed: (desired, files) => rebuild(desired, (p) => !files.includes(p.source.file), files),
  withFilesInvalid: (desired, files) => rebuild(desired, () => true, files),
  damages: COUNTER_DAMAGES,
  damage: damageCounter,
  fake: counterFake,
  assertConverged: assertCounterConverged,
  heldFrom(observed, failed, desired) {
    const c = observed.counter;
    if (!c || c.error) return [];
    const takenOver = new Set(desired.status.filter((p) => !failed.has(p.sourceFile)).map((p) => p.name));
    // Also a policy now defined in a failed file (it moved there from the file its record names).
    const movedIntoFailed = new Set(desired.status.filter((p) => failed.has(p.sourceFile)).map((p) => p.name));
    // A slot that holds a policy of a failed file is kept whole: its config, bits, table and record, its bit of the all mask, and counted.
    return c.policies
      .filter((r) => (failed.has(r.sourceFile) && !takenOver.has(r.name)) || movedIntoFailed.has(r.name))
      .map((r) => ({
        record: r,
        slot: c.slots.find((x) => x.slot === r.slot) ?? null,
        all: c.config ? (c.config.allMask >> BigInt(r.slot)) & 1n : null,
        counted: c.config ? c.config.nSlots > r.slot : null,
      }));
  },
  knownBugs: [],
};
