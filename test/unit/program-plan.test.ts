/**
 * Program's plan beyond the shared conformance properties
 * (conformance.test.ts), case by case: a new policy, the same object, an
 * upgrade that keeps the maps, a replace that names what it loses, changed
 * entries, targets removed, failed files, unreadable directories, policies
 * the resolver keeps; the bugs of the plan the conformance kit found (now
 * fixed). Pure: plans from plain data, no kernel.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { programDir, targetPinName, type AttachTarget, type EncodedEntry, type ProgramRecord } from '../../src/kinds/program/layout.js';
import type { DesiredProgram, DesiredPrograms, ObjectMapSummary, ObservedProgram, ObservedPrograms, ProgramOperation } from '../../src/kinds/program/model.js';
import { entriesHash, mapsSignature } from '../../src/kinds/program/object-file.js';
import { planPrograms } from '../../src/kinds/program/plan.js';
import type { PlanEnv } from '../../src/reconciler/kind.js';
import type { Action } from '../../src/reconciler/model.js';

const ROOT = '/sys/fs/bpf/ebpf-policy';
const env: PlanEnv = { root: ROOT, failedFiles: new Set() };
const SHA_A = 'aa'.repeat(32);
const SHA_B = 'bb'.repeat(32);

const MAPS: ObjectMapSummary[] = [
  { name: 'config', mapType: 2, keySize: 4, valueSize: 8, maxEntries: 1, keyType: 'u32', valueType: 'struct config/8' },
  { name: 'counts', mapType: 1, keySize: 8, valueSize: 16, maxEntries: 4096, keyType: 'struct tuple/8', valueType: 'struct counter/16' },
];
/** The same maps but `counts` of 1024 entries (-DCOUNTS_MAX_ENTRIES=1024): another signature. */
const MAPS_SMALL: ObjectMapSummary[] = [MAPS[0]!, { ...MAPS[1]!, maxEntries: 1024 }];

function xdp(ifindex: number, mode: 'auto' | 'native' | 'generic' = 'auto'): AttachTarget {
  return { kind: 'xdp', pin: targetPinName({ kind: 'xdp', netnsKey: '4026531840', ifindex }), netns: null, netnsPath: '/proc/1/ns/net', ifname: `eth${ifindex}`, ifindex, mode };
}
function cgroup(cgroupPath: string): AttachTarget {
  return { kind: 'cgroup', pin: targetPinName({ kind: 'cgroup' }), cgroupPath, id: '77', type: 'connect4', attachType: 10 };
}

function desiredProgram(name: string, extra: Partial<DesiredProgram> = {}): DesiredProgram {
  const maps = extra.maps ?? MAPS;
  const entries = extra.entries ?? [];
  return {
    name,
    sourceFile: '/p/one.yaml',
    dir: programDir(ROOT, name),
    objectPath: '/p/xdp_counter.o',
    sha256: SHA_A,
    program: 'count_tuples',
    targets: [xdp(2)],
    ...extra,
    maps,
    mapsSignature: mapsSignature(maps),
    entries,
    entriesHash: entriesHash(entries),
  };
}

function desiredOf(policies: DesiredProgram[], extra: Partial<DesiredPrograms> = {}): DesiredPrograms {
  return { policies, keep: [], problems: [], status: policies.map((p) => ({ name: p.name, sourceFile: p.sourceFile, objectPath: p.objectPath, program: p.program })), ...extra };
}

/** The pins a pass leaves for `d`: program 10, maps 20.., links 30.. running program 10, the record of `d`. */
function observedOf(d: DesiredProgram, extra: Partial<ObservedProgram> = {}, record: Partial<ProgramRecord> = {}): ObservedProgram {
  return {
    name: d.name,
    dir: d.dir,
    record: {
      v: 1,
      sha256: d.sha256,
      program: d.program,
      object: d.objectPath,
      sourceFile: d.sourceFile,
      mapsSignature: d.mapsSignature,
      entriesHash: d.entriesHash,
      declaredKeys: d.entries.map((e) => ({ map: e.map, key: e.key })),
      targets: [...d.targets],
      ...record,
    },
    program: { id: 10, tag: '1010101010101010' },
    maps: d.maps.map((m, i) => ({ name: m.name, id: 20 + i, mapType: m.mapType, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries })),
    links: d.targets.map((t, i) => ({ pin: t.pin, id: 30 + i, progId: 10, attached: true })),
    strays: [],
    ...extra,
  };
}

function plan(desired: DesiredPrograms, programs: ObservedProgram[], e: PlanEnv = env): Action<ProgramOperation>[] {
  return planPrograms(desired, { programs } satisfies ObservedPrograms, e).actions as Action<ProgramOperation>[];
}

/** Actions as "kind code op", for comparing plans. */
function summary(actions: readonly Action<ProgramOperation>[]): string[] {
  return actions.map((a) => `${a.kind} ${a.code} ${a.op.type}`);
}

/** Every string at a key `dir` or `path` inside `value` (what the conformance suite checks lies under ROOT/programs). */
function pathsIn(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(pathsIn);
  if (!value || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, x]) => ((k === 'dir' || k === 'path') && typeof x === 'string' ? [x] : pathsIn(x)));
}

// Bugs the conformance kit found (test/unit/conformance/program.kit.ts), fixed.

test('regression: a cgroup target names its cgroup as cgroupPath, so no operation carries a path outside ROOT/programs', () => {
  const d = desiredProgram('guard', { targets: [cgroup('/sys/fs/cgroup/app')] });
  const actions = plan(desiredOf([d]), []);
  assert.deepEqual(summary(actions), ['create ProgramMissing createProgram', 'create LinkMissing attachTarget']);
  for (const a of actions) for (const p of pathsIn(a.op)) assert.ok(p.startsWith(`${ROOT}/programs/`), `${a.op.type}: ${p} lies outside ROOT/programs`);
});

test('regression: an upgrade interrupted after the swap is finished, and the next upgrade expects program_next (the old program is freed by the rename)', () => {
  const d = desiredProgram('counter', { sha256: SHA_B });
  // The links run program_next (11); program (10) is the old one; the record still names the older object.
  const o = observedOf(d, { programNext: { id: 11, tag: '1111111111111111' }, links: [{ pin: d.targets[0]!.pin, id: 30, progId: 11, attached: true }] }, { sha256: SHA_A });
  const actions = plan(desiredOf([d]), [o]);
  assert.deepEqual(summary(actions), ['update FinishUpgrade finishUpgrade', 'update ObjectChanged upgradeProgram']);
  const upgrade = actions[1]!.op as Extract<ProgramOperation, { type: 'upgradeProgram' }>;
  assert.equal(upgrade.expectedProgId, 11, 'the upgrade swaps from the program the links run once the swap is finished');
});

test('regression: a policy that moves to another file (same object) has its record name the new file, so a failure of that file keeps its pins', () => {
  const d = desiredProgram('counter', { sourceFile: '/p/two.yaml' });
  const o = observedOf(d, {}, { sourceFile: '/p/one.yaml' });
  const actions = plan(desiredOf([d]), [o]);
  assert.deepEqual(summary(actions), ['update SourceChanged recordSource']);
  assert.deepEqual(actions[0]!.op, { type: 'recordSource', dir: d.dir, sourceFile: '/p/two.yaml', object: d.objectPath });
  // Once recorded, /p/two.yaml failing (the policy vanished with it) deletes nothing.
  const recorded = observedOf(d);
  assert.deepEqual(plan(desiredOf([]), [recorded], { root: ROOT, failedFiles: new Set(['/p/two.yaml']) }), []);
});

test('regression: a link running a foreign program is updated also while a stray program_next (an upgrade interrupted before its swap) is removed', () => {
  const d = desiredProgram('counter');
  const o = observedOf(d, { programNext: { id: 11, tag: '1111111111111111' }, links: [{ pin: d.targets[0]!.pin, id: 30, progId: 999, attached: true }] });
  assert.deepEqual(summary(plan(desiredOf([d]), [o])), ['delete Stray removeStray', 'update LinkRunsOtherProgram attachTarget']);
});

test('an upgrade interrupted halfway (one link swapped, another not) is finished, and the link left behind is updated to the program finished', () => {
  const d = desiredProgram('counter', { targets: [xdp(2), xdp(3)] });
  const o = observedOf(d, {
    programNext: { id: 11, tag: '1111111111111111' },
    links: [
      { pin: d.targets[0]!.pin, id: 30, progId: 10, attached: true },
      { pin: d.targets[1]!.pin, id: 31, progId: 11, attached: true },
    ],
  });
  const actions = plan(desiredOf([d]), [o]);
  assert.deepEqual(summary(actions), ['update FinishUpgrade finishUpgrade', 'update LinkRunsOtherProgram attachTarget']);
  assert.equal((actions[1]!.op as Extract<ProgramOperation, { type: 'attachTarget' }>).target.pin, d.targets[0]!.pin);
});

test('regression: a target no longer wanted whose link pin is already gone is dropped from the record', () => {
  const d = desiredProgram('counter', { targets: [] });
  // The record still names the xdp target; its link pin was removed.
  const o = observedOf(d, { links: [] }, { targets: [xdp(2)] });
  const actions = plan(desiredOf([d]), [o]);
  assert.deepEqual(summary(actions), ['delete TargetRemoved detachTarget']);
  assert.deepEqual(actions[0]!.op, { type: 'detachTarget', dir: d.dir, pin: xdp(2).pin });
});
