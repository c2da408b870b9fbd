/**
 * Program's plan beyond the shared conformance properties
 * (conformance.test.ts), case by case: a new policy, the same object, an
 * upgrade that keeps the maps, a replace that names what it loses, changed
 * entries, targets removed, failed files, unreadable directories, policies
 * the resolver keeps; the bugs of the plan the conformance kit found (now
 * fixed); and document.ts `check` against the shipped example object.
 * Pure: plans from plain data, no kernel, no privileges.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { programKind } from '../../src/kinds/program/document.js';
import { programDir, programRecordOf, targetPinName, type AttachTarget, type EncodedEntry, type ProgramRecord } from '../../src/kinds/program/layout.js';
import type { DesiredProgram, DesiredPrograms, ObjectMapSummary, ObservedProgram, ObservedPrograms, ProgramOperation } from '../../src/kinds/program/model.js';
import { entriesHash, mapsSignature, sha256Of } from '../../src/kinds/program/object-file.js';
import { planPrograms } from '../../src/kinds/program/plan.js';
import type { PlanEnv } from '../../src/reconciler/kind.js';
import type { Action } from '../../src/reconciler/model.js';
import type { Program as ProgramDocument } from '../../src/types/generated/program.js';

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
    record: { ...programRecordOf(d, [...d.targets]), ...record },
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

// The plan, case by case.

test('a new policy: the program is created (loaded, pinned, entries written) and attached at each target', () => {
  const d = desiredProgram('counter', { targets: [xdp(2), xdp(3)], entries: [{ map: 'config', key: '00000000', value: '0000000001000000' }] });
  const actions = plan(desiredOf([d]), []);
  assert.deepEqual(summary(actions), ['create ProgramMissing createProgram', 'create LinkMissing attachTarget', 'create LinkMissing attachTarget']);
  assert.deepEqual(actions.slice(1).map((a) => (a.op as Extract<ProgramOperation, { type: 'attachTarget' }>).target), d.targets);
  assert.ok(actions.every((a) => a.phase === 'add' && a.domain === 'program counter' && a.policy === 'counter'));
});

test('the same digest, entries and targets: nothing to do', () => {
  const d = desiredProgram('counter', { targets: [xdp(2), cgroup('/sys/fs/cgroup/app')], entries: [{ map: 'config', key: '00000000', value: '0000000001000000' }] });
  assert.deepEqual(plan(desiredOf([d]), [observedOf(d)]), []);
});

test('a new digest with the same maps signature: one update ObjectChanged, an atomic upgrade from the pinned program', () => {
  const d = desiredProgram('counter', { sha256: SHA_B });
  const actions = plan(desiredOf([d]), [observedOf(d, {}, { sha256: SHA_A })]);
  assert.deepEqual(summary(actions), ['update ObjectChanged upgradeProgram']);
  assert.deepEqual(actions[0]!.op, { type: 'upgradeProgram', desired: d, expectedProgId: 10 });
  assert.match(actions[0]!.reason, /maps keep their contents/);
});

test('a new digest whose maps differ: replace MapsIncompatible naming the maps lost, its links switched to the new program, those not wanted detached', () => {
  const old = desiredProgram('counter', { targets: [xdp(2), xdp(4)] });
  const d = desiredProgram('counter', { sha256: SHA_B, maps: MAPS_SMALL, targets: [xdp(2), xdp(3)] });
  const actions = plan(desiredOf([d]), [observedOf(old)]);
  assert.deepEqual(summary(actions), ['replace MapsIncompatible createProgram', 'update ProgramReloaded attachTarget', 'create LinkMissing attachTarget', 'delete TargetRemoved detachTarget']);
  assert.deepEqual(
    actions.slice(1).map((a) => (a.op as { target?: AttachTarget; pin?: string }).target?.pin ?? (a.op as { pin: string }).pin),
    [xdp(2).pin, xdp(3).pin, xdp(4).pin],
  );
  assert.match(actions[0]!.reason, /lost: the contents of config \(same size\), counts \(changed\)/);
  // A map the new object no longer has is named as gone.
  const fewer = desiredProgram('counter', { sha256: SHA_B, maps: [MAPS[1]!] });
  assert.match(plan(desiredOf([fewer]), [observedOf(old)])[0]!.reason, /config \(gone\)/);
});

test('entries changed: writeEntries with the keys no longer declared deleted', () => {
  const e1: EncodedEntry = { map: 'counts', key: '0a00000150000600', value: '00'.repeat(16) };
  const e2: EncodedEntry = { map: 'counts', key: '0a00000251000600', value: '01'.repeat(16) };
  const cfg: EncodedEntry = { map: 'config', key: '00000000', value: '901f000001000000' };
  const old = desiredProgram('counter', { entries: [e1, e2] });
  const d = desiredProgram('counter', { entries: [e2, cfg] });
  const actions = plan(desiredOf([d]), [observedOf(old)]);
  assert.deepEqual(summary(actions), ['update EntriesChanged writeEntries']);
  assert.deepEqual(actions[0]!.op, { type: 'writeEntries', desired: d, deleteKeys: [{ map: 'counts', key: e1.key }] });
});

test('a target removed: its link is detached, the others stay', () => {
  const old = desiredProgram('counter', { targets: [xdp(2), xdp(3)] });
  const d = desiredProgram('counter', { targets: [xdp(3)] });
  const actions = plan(desiredOf([d]), [observedOf(old)]);
  assert.deepEqual(summary(actions), ['delete TargetRemoved detachTarget']);
  assert.deepEqual(actions[0]!.op, { type: 'detachTarget', dir: d.dir, pin: xdp(2).pin });
  assert.equal(actions[0]!.phase, 'remove');
});

test('a target whose hook changed (xdp mode) is attached again', () => {
  const old = desiredProgram('counter', { targets: [xdp(2, 'auto')] });
  const d = desiredProgram('counter', { targets: [xdp(2, 'generic')] });
  assert.deepEqual(summary(plan(desiredOf([d]), [observedOf(old)])), ['update TargetChanged attachTarget']);
});

test('a policy from a failed file: nothing is deleted, whether it vanished or stayed loaded', () => {
  const d = desiredProgram('counter');
  const failed: PlanEnv = { root: ROOT, failedFiles: new Set(['/p/one.yaml']) };
  // The file failed to load: the policy is gone from the documents.
  assert.deepEqual(plan(desiredOf([]), [observedOf(d)], failed), []);
  // The file has errors but its document loaded: the resolver keeps it.
  const kept = desiredOf([], { keep: ['counter'], status: [{ name: 'counter', sourceFile: '/p/one.yaml', objectPath: d.objectPath, program: d.program }] });
  assert.deepEqual(plan(kept, [observedOf(d)], failed), []);
  // Without the failure, the same vanished policy is removed.
  assert.deepEqual(summary(plan(desiredOf([]), [observedOf(d)])), ['delete PolicyRemoved removeProgram']);
});

test('an unreadable directory: noop PinsUnreadable (and a Failed problem for its policy), nothing else, whatever the policy wants', () => {
  const d = desiredProgram('counter', { sha256: SHA_B, targets: [xdp(2), xdp(3)] });
  const o: ObservedProgram = { name: 'counter', dir: d.dir, maps: [], links: [], strays: ['link_xdp_1_2_next'], unreadable: 'map_counts: EACCES' };
  const p = planPrograms(desiredOf([d]), { programs: [o] }, env);
  assert.deepEqual(summary(p.actions as Action<ProgramOperation>[]), ['noop PinsUnreadable none']);
  assert.deepEqual(p.problems.map((x) => [x.policy, x.condition, x.reason]), [['counter', 'Failed', 'PinsUnreadable']]);
  // Of no policy at all: left as it is too.
  assert.deepEqual(summary(plan(desiredOf([]), [o])), ['noop PinsUnreadable none']);
});

for (const reason of ['DigestMismatch', 'ObjectUnreadable'])
  test(`a policy the resolver keeps (${reason}): nothing of what runs is torn down`, () => {
    const d = desiredProgram('counter');
    const desired = desiredOf([], {
      keep: ['counter'],
      problems: [{ policy: 'counter', sourceFile: '/p/one.yaml', condition: 'Failed', reason, message: `${reason}; what runs for this policy stays as it is` }],
      status: [{ name: 'counter', sourceFile: '/p/one.yaml', objectPath: d.objectPath, program: d.program }],
    });
    const p = planPrograms(desired, { programs: [observedOf(d)] }, env);
    assert.deepEqual(p.actions, []);
    assert.deepEqual(p.problems.map((x) => x.reason), [reason]);
  });

test('a policy loaded that cannot be applied (not kept) is removed as NotApplied', () => {
  const d = desiredProgram('counter');
  const desired = desiredOf([], { status: [{ name: 'counter', sourceFile: '/p/one.yaml', objectPath: d.objectPath, program: d.program }] });
  assert.deepEqual(summary(plan(desired, [observedOf(d)])), ['delete NotApplied removeProgram']);
});

test('an unreadable record: the program is loaded anew (PinsIncomplete) and attached again', () => {
  const d = desiredProgram('counter');
  const o = observedOf(d);
  delete o.record;
  o.recordProblem = 'unsupported version 2';
  const actions = plan(desiredOf([d]), [o]);
  assert.deepEqual(summary(actions), ['replace PinsIncomplete createProgram', 'create LinkMissing attachTarget']);
  assert.match(actions[0]!.reason, /unsupported version 2/);
});

test('strays: program_next nothing runs and link_*_next are removed in the gc phase', () => {
  const d = desiredProgram('counter');
  const o = observedOf(d, { programNext: { id: 11, tag: '11' }, strays: [`${d.targets[0]!.pin}_next`] });
  const actions = plan(desiredOf([d]), [o]);
  assert.deepEqual(
    actions.map((a) => [a.phase, a.code, a.op]),
    [
      ['gc', 'Stray', { type: 'removeStray', path: `${d.dir}/program_next` }],
      ['gc', 'Stray', { type: 'removeStray', path: `${d.dir}/${d.targets[0]!.pin}_next` }],
    ],
  );
});

test('a detached link is attached again; a link running another program is updated', () => {
  const d = desiredProgram('counter', { targets: [xdp(2), xdp(3)] });
  const o = observedOf(d, {
    links: [
      { pin: d.targets[0]!.pin, id: 30, progId: 10, attached: false },
      { pin: d.targets[1]!.pin, id: 31, progId: 77, attached: true },
    ],
  });
  assert.deepEqual(summary(plan(desiredOf([d]), [o])), ['update LinkDetached attachTarget', 'update LinkRunsOtherProgram attachTarget']);
});

// document.ts `check` against the shipped example object (examples/xdp-counter/xdp_counter.o): what validate reports, offline.

const EXAMPLE_POLICY = fileURLToPath(new URL('../../../examples/xdp-counter/tuple-counter.yaml', import.meta.url));
const EXAMPLE_SHA = 'bbdf78e8154d669b9ef6878673d373dac648f92958740285934962e5173a7caf';

function programDocument(spec: Partial<ProgramDocument['spec']> = {}): ProgramDocument {
  return {
    apiVersion: 'ebpf-policy/v1',
    kind: 'Program',
    metadata: { name: 'tuple-counter' },
    spec: { object: 'xdp_counter.o', sha256: EXAMPLE_SHA, program: 'count_tuples', attach: { xdp: { interfaces: ['eth0'], mode: 'auto' } }, maps: maps({ config: [{ key: 0, value: { dport: 0, enabled: true } }] }), events: { map: 'events' }, ...spec },
  } as ProgramDocument;
}

/** spec.maps as YAML gives it (the generated type knows no scalar keys and values). */
function maps(m: Record<string, { key: unknown; value: unknown }[]>): ProgramDocument['spec']['maps'] {
  return m as ProgramDocument['spec']['maps'];
}

function findings(spec: Partial<ProgramDocument['spec']> = {}): { path: string; severity: string; message: string }[] {
  return programKind.check(programDocument(spec), { file: EXAMPLE_POLICY, documentIndex: 0, line: 1, column: 1 }).map((f) => ({ path: f.path.join('.'), severity: f.severity, message: f.message }));
}

test('check: the shipped example as written has no findings (its object has the declared digest)', () => {
  assert.equal(sha256Of(readFileSync(join(dirname(EXAMPLE_POLICY), 'xdp_counter.o'))), EXAMPLE_SHA, 'the committed object is the one the example names');
  assert.deepEqual(findings(), []);
});

test('check: a wrong digest is refused at spec.sha256, naming both digests', () => {
  const f = findings({ sha256: '00'.repeat(32) });
  assert.deepEqual(f.map((x) => [x.path, x.severity]), [['spec.sha256', 'error']]);
  assert.match(f[0]!.message, new RegExp(EXAMPLE_SHA.slice(0, 12)));
});

test('check: an unknown program is refused at spec.program, naming those the object has', () => {
  const f = findings({ program: 'count_nothing' });
  assert.deepEqual(f.map((x) => [x.path, x.severity]), [['spec.program', 'error']]);
  assert.match(f[0]!.message, /no program "count_nothing".*count_tuples/);
});

test('check: a program whose section does not suit the attach kind is refused at spec.attach.<kind>', () => {
  const tc = findings({ attach: { tc: { interfaces: ['eth0'], direction: 'ingress' } } });
  assert.deepEqual(tc.map((x) => x.path), ['spec.attach.tc']);
  assert.match(tc[0]!.message, /section "xdp".*SEC\("tc"\)/);
  const tp = findings({ attach: { tracepoint: { category: 'syscalls', name: 'sys_enter_execve' } } });
  assert.deepEqual(tp.map((x) => x.path), ['spec.attach.tracepoint']);
});

test('check: entries of an unknown map are refused at spec.maps.<map>', () => {
  const f = findings({ maps: maps({ nope: [{ key: 0, value: 1 }] }) });
  assert.deepEqual(f.map((x) => x.path), ['spec.maps.nope']);
  assert.match(f[0]!.message, /no map "nope".*config/);
});

test('check: an entry with an unknown field or an out-of-range value is refused with a path into spec.maps', () => {
  const unknown = findings({ maps: maps({ config: [{ key: 0, value: { dport: 0, enabled: true, bogus: 1 } }] }) });
  assert.deepEqual(unknown.map((x) => x.path), ['spec.maps.config.0.value.bogus']);
  assert.match(unknown[0]!.message, /unknown field of struct config/);
  const range = findings({ maps: maps({ config: [{ key: 0, value: { dport: 70000, enabled: true } }] }) });
  assert.deepEqual(range.map((x) => x.path), ['spec.maps.config.0.value.dport']);
  const key = findings({ maps: maps({ config: [{ key: -1, value: { dport: 0, enabled: true } }] }) });
  assert.deepEqual(key.map((x) => x.path), ['spec.maps.config.0.key']);
});

test('check: spec.netns with a tracepoint (or a cgroup) is an error at spec.netns', () => {
  const f = findings({ netns: '/run/netns/web', attach: { tracepoint: { category: 'syscalls', name: 'sys_enter_execve' } } });
  assert.ok(f.some((x) => x.path === 'spec.netns' && x.severity === 'error'), JSON.stringify(f));
  const c = findings({ netns: '/run/netns/web', attach: { cgroup: { path: '/sys/fs/cgroup/app', type: 'connect4' } } });
  assert.ok(c.some((x) => x.path === 'spec.netns' && x.severity === 'error'), JSON.stringify(c));
});
