/**
 * SyscallCounter's plan beyond the shared conformance properties
 * (conformance.test.ts): the one counter is built for the first policy and
 * removed with the last, policies come and go as slot writes (a fresh count
 * table only when groupBy or maxKeys change), slots stay put, missing
 * cgroups, failed files, a full counter, upgrades and a removed link; the
 * bugs of the plan the suite found (now fixed); and how status names and
 * orders the largest counts. Built on the kind's conformance kit (its fake
 * kernel, resolver and random policies).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { counterExpectation } from '../../src/kinds/syscall-counter/drift.js';
import { MAX_POLICIES, MAX_SYSCALLS } from '../../src/kinds/syscall-counter/layout.js';
import { METRIC_KEYS_PER_POLICY } from '../../src/kinds/syscall-counter/metrics.js';
import type { CounterOperation, DesiredCounters } from '../../src/kinds/syscall-counter/model.js';
import { planCounters } from '../../src/kinds/syscall-counter/plan.js';
import { topCounts } from '../../src/kinds/syscall-counter/status.js';
import type { CountEntry, ObservedCounter, ObservedCounters, SlotWrite } from '../../src/kinds/syscall-counter/store.js';
import type { Action } from '../../src/reconciler/model.js';
import { changes, envOf, kindsOf, pass, planOf } from './conformance/kit.js';
import {
  arbCounterPolicies,
  COUNTER_PATH,
  COUNTER_TAG,
  counterFake,
  counterPolicy as policy,
  desiredCounters,
  OLD_COUNTER_TAG,
  syscallCounterKit as kit,
} from './conformance/syscall-counter.kit.js';

const empty: ObservedCounters = {};
const noFailures = envOf();

/** The state one pass leaves for `desired`, from nothing. */
function applied(desired: DesiredCounters): ObservedCounters {
  const s = pass(kit, desired, empty, noFailures);
  kit.assertConverged(desired, s, noFailures);
  return s;
}

/** Plans `desired` from `s`, applies it, and checks that it converged and that planning again changes nothing. */
function converge(desired: DesiredCounters, s: ObservedCounters, env = noFailures): { actions: Action[]; after: ObservedCounters } {
  const actions = planOf(kit, desired, s, env).actions;
  const after = counterFake.apply(s, actions, desired);
  kit.assertConverged(desired, after, env);
  assert.deepEqual(changes(planOf(kit, desired, after, env)), [], 'planning again changes nothing');
  return { actions: changes({ actions, problems: [] }), after };
}

function counterOf(s: ObservedCounters): ObservedCounter {
  assert.ok(s.counter, 'a counter');
  return s.counter;
}

/** Slot of each recorded policy, by name. */
function slotsOf(s: ObservedCounters): Record<string, number> {
  return Object.fromEntries(counterOf(s).policies.map((r) => [r.name, r.slot]));
}

/** The slot write of a writeSlot action. */
function writeOf(a: Action): SlotWrite {
  const op = a.op as CounterOperation;
  assert.equal(op.type, 'writeSlot');
  return (op as Extract<CounterOperation, { type: 'writeSlot' }>).write;
}

const from = (file: string) => ({ source: { file, documentIndex: 0, line: 1, column: 1 } });
const names = (n: number) => Array.from({ length: n }, (_, i) => `p${String(i).padStart(2, '0')}`);

test('the first policy creates the counter and writes its slot with a new count table', () => {
  const d = desiredCounters([policy('p', { syscalls: [59, 322], groupBy: ['syscall', 'comm'], cgroup: 'app', maxKeys: 512 })]);
  const p = planCounters(d, empty, noFailures);
  const acts = changes(p);
  assert.deepEqual(
    acts.map((a) => `${a.kind} ${a.phase} ${a.op.type} ${a.code}`),
    ['create dispatcher createCounter Needed', 'create add writeSlot NewPolicy'],
  );
  assert.equal(acts[0]!.reason, 'policy p count syscalls');
  assert.deepEqual(acts[0]!.op, { type: 'createCounter', dir: COUNTER_PATH });
  assert.equal(acts[1]!.after, '2 syscalls by syscall, comm in cgroup /sys/fs/cgroup/app, at most 512 keys');
  const w = writeOf(acts[1]!);
  assert.deepEqual(
    { slot: w.slot, config: w.config, syscalls: w.syscalls, newTable: w.newTable, cgroup: w.cgroup, allMask: w.allMask, nSlots: w.nSlots },
    { slot: 0, config: { inUse: true, groupBy: 3, cgroup: true, all: false }, syscalls: [59, 322], newTable: 512, cgroup: { cgroupPath: '/sys/fs/cgroup/app', cgroupId: '4101' }, allMask: '0', nSlots: 1 },
  );
  assert.deepEqual(p.problems, []);
  const s = counterFake.apply(empty, p.actions, d);
  kit.assertConverged(d, s, noFailures);
  assert.deepEqual(changes(planCounters(d, s, noFailures)), []);
});

test('a second policy is one slot write: no program, link or other slot action', () => {
  const a = policy('a');
  const s = applied(desiredCounters([a]));
  const before = counterOf(s);
  const { actions, after } = converge(desiredCounters([a, policy('b', { syscalls: 'all', groupBy: ['pid'] })]), s);
  assert.deepEqual(
    actions.map((x) => `${x.kind} ${x.op.type} ${x.code}`),
    ['create writeSlot NewPolicy'],
  );
  const w = writeOf(actions[0]!);
  assert.deepEqual([w.slot, w.newTable, w.syscalls.length, w.config.all, w.allMask, w.nSlots], [1, 1024, MAX_SYSCALLS, true, '2', 2], 'slot 1, every syscall: its bit in every wanted word, and in the all mask');
  const c = counterOf(after);
  assert.deepEqual([c.program, c.link], [before.program, before.link], 'the same program and link');
  assert.deepEqual(c.slots[0], before.slots[0], "a's slot as it was");
});

test('editing syscalls or the cgroup rewrites the slot in place: same slot, same count table', () => {
  const s = applied(desiredCounters([policy('a'), policy('p', { syscalls: [0, 1] })]));
  const before = counterOf(s).slots.find((x) => x.slot === slotsOf(s).p)!;
  for (const edited of [policy('p', { syscalls: [1, 2, 59] }), policy('p', { syscalls: 'all' }), policy('p', { syscalls: [0, 1], cgroup: 'db' })]) {
    const { actions, after } = converge(desiredCounters([policy('a'), edited]), s);
    assert.deepEqual(
      actions.map((x) => `${x.kind} ${x.op.type} ${x.code}`),
      ['update writeSlot CountingChanged'],
    );
    assert.match(actions[0]!.reason, /\(in place: no new program or link\)$/);
    const w = writeOf(actions[0]!);
    assert.equal(w.newTable, undefined, 'no new table: counts stay');
    assert.equal(w.slot, before.slot);
    assert.deepEqual(counterOf(after).slots.find((x) => x.slot === before.slot)!.table, before.table, 'the same count table');
  }
});

test('changing groupBy or maxKeys gives the policy a fresh count table in the same slot', () => {
  const s = applied(desiredCounters([policy('p', { groupBy: ['syscall'], maxKeys: 1024 })]));
  const before = counterOf(s).slots[0]!;
  for (const edited of [policy('p', { groupBy: ['syscall', 'pid'] }), policy('p', { maxKeys: 2048 })]) {
    const { actions, after } = converge(desiredCounters([edited]), s);
    assert.deepEqual(
      actions.map((x) => `${x.kind} ${x.op.type} ${x.code}`),
      ['update writeSlot CountTableChanged'],
    );
    assert.match(actions[0]!.reason, /groupBy or maxKeys changed: a fresh count table \(counts restart\)/);
    const w = writeOf(actions[0]!);
    assert.deepEqual([w.slot, w.newTable], [0, edited.maxKeys]);
    const table = counterOf(after).slots[0]!.table!;
    assert.notEqual(table.id, before.table!.id, 'a new table');
    assert.equal(table.maxEntries, edited.maxKeys);
  }
});

test('a deleted policy: its slot is cleared and its record deleted; the other slots stay as they are', () => {
  const s = applied(desiredCounters([policy('a'), policy('b', { syscalls: 'all' }), policy('c', { syscalls: [1] })]));
  assert.deepEqual(slotsOf(s), { a: 0, b: 1, c: 2 });
  const { actions, after } = converge(desiredCounters([policy('a'), policy('c', { syscalls: [1] })]), s);
  assert.deepEqual(
    actions.map((x) => `${x.kind} ${x.phase} ${x.op.type} ${x.code}`),
    ['delete remove clearSlot Unused'],
  );
  assert.deepEqual(actions[0]!.op, { type: 'clearSlot', dir: COUNTER_PATH, slot: 1, allMask: '0', nSlots: 3, deleteRecords: ['b'] });
  const c = counterOf(after);
  const was = counterOf(s);
  assert.deepEqual(slotsOf(after), { a: 0, c: 2 });
  assert.deepEqual(
    c.slots.map((x) => x.slot),
    [0, 2],
  );
  for (const slot of [0, 2]) assert.deepEqual(c.slots.find((x) => x.slot === slot), was.slots.find((x) => x.slot === slot), `slot ${slot} as it was`);
  assert.deepEqual([c.program, c.link], [was.program, was.link]);
});

test('the last policy deleted removes the counter', () => {
  const s = applied(desiredCounters([policy('a'), policy('b')]));
  const acts = changes(planCounters(desiredCounters([]), s, noFailures));
  assert.deepEqual(
    acts.map((a) => `${a.kind} ${a.phase} ${a.op.type} ${a.code}`),
    ['delete remove removeCounter Unused'],
  );
  assert.equal(acts[0]!.reason, 'no policy counts syscalls any more');
  assert.deepEqual(counterFake.apply(s, acts, desiredCounters([])), empty);
});

test('a policy whose cgroup does not exist is Degraded (CgroupNotFound), not applied, and waits for it; one refused for CounterFull does not wait', () => {
  const full = names(MAX_POLICIES + 1).map((n) => policy(n));
  const d = desiredCounters([...full, policy('later', { cgroup: 'missing-app' })]);
  const p = planCounters(d, empty, noFailures);
  assert.deepEqual(
    p.problems.map((x) => `${x.policy} ${x.condition} ${x.reason}`),
    ['later Degraded CgroupNotFound', `p${MAX_POLICIES} Failed CounterFull`],
  );
  assert.equal(p.problems[0]!.message, 'cgroup missing-app does not exist (yet): nothing to count until it exists');
  assert.deepEqual(
    d.status.filter((x) => !x.applied).map((x) => `${x.name} ${x.waitingForCgroup ?? false}`),
    ['later true', `p${MAX_POLICIES} false`],
  );
  const s = counterFake.apply(empty, p.actions, d);
  kit.assertConverged(d, s, noFailures);
  assert.ok(!counterOf(s).policies.some((r) => r.name === 'later'), 'not in the counter');
  assert.deepEqual(counterExpectation(d, s).waiting, [{ policy: 'later', cgroup: 'missing-app' }]);
  assert.deepEqual(counterExpectation(d, s).link, { dir: COUNTER_PATH, id: counterOf(s).link!.id, progId: counterOf(s).program!.id });
});

test('a cgroup removed under an applied policy: its slot is cleared until the cgroup exists again', () => {
  const s = applied(desiredCounters([policy('a'), policy('b', { cgroup: 'db' })]));
  const d = desiredCounters([policy('a'), policy('b', { cgroup: 'missing-db' })]);
  const { actions } = converge(d, s);
  assert.deepEqual(kindsOf(actions), ['delete clearSlot']);
  assert.deepEqual((actions[0]!.op as Extract<CounterOperation, { type: 'clearSlot' }>).deleteRecords, ['b']);
});

test('a failed file keeps the slot of its policy as it is, whatever else changes', () => {
  const a = policy('a', { ...from('/s/a.yaml'), syscalls: 'all' });
  const b = policy('b', from('/s/b.yaml'));
  const s = applied(desiredCounters([a, b]));
  const env = envOf(['/s/a.yaml']);
  // The file vanished (no policy of it loaded), or has errors (its policies loaded, marked as from a failed file).
  for (const d of [desiredCounters([b], ['/s/a.yaml']), desiredCounters([a, b], ['/s/a.yaml']), desiredCounters([{ ...a, syscalls: [1] }, b], ['/s/a.yaml'])]) {
    const p = planOf(kit, d, s, env);
    assert.deepEqual(changes(p), []);
    assert.deepEqual(
      p.actions.map((x) => `${x.kind} ${x.code}`),
      ['noop UpToDate'],
    );
  }
  assert.deepEqual(
    planOf(kit, desiredCounters([a, b], ['/s/a.yaml']), s, env).problems.map((x) => `${x.policy} ${x.condition} ${x.reason}`),
    ['a Failed InvalidSourceFile'],
  );
  // Another policy edited and a new one: they are written around a's slot, which stays, its bit still in the all mask.
  const d = desiredCounters([{ ...b, syscalls: [2] }, policy('c', from('/s/c.yaml'))], ['/s/a.yaml']);
  const { actions, after } = converge(d, s, env);
  assert.deepEqual(
    actions.map((x) => `${x.op.type} ${writeOf(x).record.name} ${writeOf(x).slot} ${writeOf(x).allMask} ${writeOf(x).nSlots}`),
    ['writeSlot b 1 1 3', 'writeSlot c 2 1 3'],
  );
  assert.deepEqual(counterOf(after).slots[0], counterOf(s).slots[0], "a's slot as it was");
  assert.deepEqual(counterOf(after).policies[0], counterOf(s).policies[0], "a's record as it was");
});

test(`${MAX_POLICIES + 1} policies: ${MAX_POLICIES} are applied, the last by name fails (CounterFull)`, () => {
  const all = names(MAX_POLICIES + 1);
  const d = desiredCounters(all.map((n) => policy(n)));
  assert.equal(d.policies.length, MAX_POLICIES);
  const p = planCounters(d, empty, noFailures);
  assert.deepEqual(
    p.problems.map((x) => `${x.policy} ${x.condition} ${x.reason}`),
    [`p${MAX_POLICIES} Failed CounterFull`],
  );
  assert.equal(p.problems[0]!.message, `${MAX_POLICIES} SyscallCounter policies are counting already, the most the counter holds; p${MAX_POLICIES} is not applied`);
  assert.deepEqual(kindsOf(changes(p)), ['create createCounter', ...all.slice(0, MAX_POLICIES).map(() => 'create writeSlot')]);
  const s = counterFake.apply(empty, p.actions, d);
  kit.assertConverged(d, s, noFailures);
  assert.deepEqual(slotsOf(s), Object.fromEntries(all.slice(0, MAX_POLICIES).map((n, i) => [n, i])));
  assert.deepEqual(counterOf(s).config, { allMask: 0n, nSlots: MAX_POLICIES });
});

test('an upgrade is one replaceCounterProgram: a new program in a new link; slots, tables and records stay', () => {
  const d = desiredCounters([policy('a'), policy('b', { syscalls: 'all' })]);
  const s = applied(d);
  const before = structuredClone(counterOf(s));
  counterOf(s).program!.tag = OLD_COUNTER_TAG;
  const { actions, after } = converge(d, s);
  assert.deepEqual(
    actions.map((a) => `${a.kind} ${a.phase} ${a.op.type} ${a.code}`),
    ['replace dispatcher replaceCounterProgram BytecodeChanged'],
  );
  assert.deepEqual(actions[0]!.op, { type: 'replaceCounterProgram', dir: COUNTER_PATH });
  const c = counterOf(after);
  assert.equal(c.program!.tag, COUNTER_TAG);
  assert.notEqual(c.program!.id, before.program!.id, 'a new program');
  assert.notEqual(c.link!.id, before.link!.id, 'a new link');
  assert.deepEqual([c.slots, c.policies, c.config], [before.slots, before.policies, before.config]);
});

test('a removed link is attached again with the pinned program; one running another program is replaced', () => {
  const d = desiredCounters([policy('a')]);
  const s = applied(d);
  const before = counterOf(s);
  const detached = structuredClone(s);
  delete counterOf(detached).link;
  const { actions, after } = converge(d, detached);
  assert.deepEqual(
    actions.map((a) => `${a.kind} ${a.op.type} ${a.code}`),
    ['create attachCounter NotAttached'],
  );
  assert.deepEqual(actions[0]!.op, { type: 'attachCounter', dir: COUNTER_PATH });
  assert.equal(counterOf(after).link!.progId, before.program!.id, 'the same program');
  assert.deepEqual(counterOf(after).slots, before.slots);
  const other = structuredClone(s);
  counterOf(other).link!.progId = 999;
  assert.deepEqual(
    converge(d, other).actions.map((a) => `${a.kind} ${a.op.type} ${a.code}`),
    ['replace attachCounter LinkRunsOtherProgram'],
  );
});

test('an upgrade interrupted between the new link and the rename (the link runs program_next) is finished, not redone', () => {
  const d = desiredCounters([policy('a')]);
  const s = applied(d);
  const c = counterOf(s);
  c.programNext = { id: 500, tag: COUNTER_TAG };
  c.program!.tag = OLD_COUNTER_TAG;
  c.link!.progId = 500;
  c.stray = [`${COUNTER_PATH}/program_next`];
  const { actions, after } = converge(d, s);
  assert.deepEqual(
    actions.map((a) => `${a.kind} ${a.op.type} ${a.code}`),
    ['update finishUpgrade FinishUpgrade'],
  );
  assert.deepEqual(counterOf(after).program, { id: 500, tag: COUNTER_TAG });
});

test('a policy keeps its slot when others are removed, added or edited', () => {
  const s = applied(desiredCounters([policy('a'), policy('b'), policy('c')]));
  assert.deepEqual(slotsOf(s), { a: 0, b: 1, c: 2 });
  // a removed, d added: d takes the lowest free slot; b and c stay.
  const { after } = converge(desiredCounters([policy('b', { syscalls: [3] }), policy('c', { groupBy: ['comm'] }), policy('d')]), s);
  assert.deepEqual(slotsOf(after), { b: 1, c: 2, d: 0 });
  fc.assert(
    fc.property(arbCounterPolicies, arbCounterPolicies, (before, next) => {
      const s1 = pass(kit, desiredCounters(before), empty, noFailures);
      const d2 = desiredCounters(next);
      const s2 = counterFake.apply(s1, planOf(kit, d2, s1, noFailures).actions, d2);
      kit.assertConverged(d2, s2, noFailures);
      const was = s1.counter ? slotsOf(s1) : {};
      for (const r of s2.counter?.policies ?? []) if (r.name in was) assert.equal(r.slot, was[r.name], `${r.name} keeps slot ${was[r.name]}`);
      const c1 = s1.counter;
      const c2 = s2.counter;
      // The counter is built once: while a policy counts, its program and link stay.
      if (c1 && c2) assert.deepEqual([c2.program, c2.link], [c1.program, c1.link]);
    }),
    { numRuns: 200, includeErrorInReport: true },
  );
});

test('PinsUnreadable: a counter whose pins cannot be read gets no action, and the policies are Failed', () => {
  const d = desiredCounters([policy('a')]);
  const bad: ObservedCounters = { counter: { dir: COUNTER_PATH, missingMaps: [], layoutMismatch: [], slots: [], policies: [], badRecords: [], stray: [], error: 'EACCES: permission denied' } };
  const p = planCounters(d, bad, noFailures);
  assert.deepEqual(changes(p), []);
  assert.deepEqual(
    p.problems.map((x) => `${x.policy} ${x.condition} ${x.reason}`),
    ['a Failed PinsUnreadable'],
  );
});

// Bugs of the plan found while writing the conformance kit, fixed.

test('every file failed (no policy loaded, no program tag known): the counter kept for them is left as it is, not "upgraded"', () => {
  const a = policy('a', from('/s/a.yaml'));
  const s = applied(desiredCounters([a]));
  const d = desiredCounters([], ['/s/a.yaml']);
  assert.equal(d.tag, '');
  const p = planOf(kit, d, s, envOf(['/s/a.yaml']));
  assert.deepEqual(changes(p), []);
  // Its link is still repaired.
  const detached = structuredClone(s);
  delete counterOf(detached).link;
  assert.deepEqual(kindsOf(converge(d, detached, envOf(['/s/a.yaml'])).actions), ['create attachCounter']);
});

test('records of policies gone are deleted in the remove phase, as a deletion', () => {
  // c takes a's slot 0 (the lowest free): b's slot is cleared with its record, a's record is dropped on its own.
  const s = applied(desiredCounters([policy('a'), policy('b')]));
  const { actions } = converge(desiredCounters([policy('c')]), s);
  assert.deepEqual(
    actions.map((a) => `${a.kind} ${a.phase} ${a.op.type}`),
    ['create add writeSlot', 'delete remove clearSlot', 'delete remove deleteRecords'],
  );
});

test('a counter full with a slot kept for a failed file: a new policy fails (CounterFull) instead of getting a slot the counter does not have', () => {
  const all = names(MAX_POLICIES);
  const policies = all.map((n, i) => policy(n, from(i === 0 ? '/s/a.yaml' : '/s/b.yaml')));
  const s = applied(desiredCounters(policies));
  const env = envOf(['/s/a.yaml']);
  // p00's file vanished (its slot is kept), and a new policy comes: 32 policies want a slot, 31 are free.
  const d = desiredCounters([...policies.slice(1), policy('q', from('/s/c.yaml'))], ['/s/a.yaml']);
  assert.equal(d.policies.length, MAX_POLICIES);
  const p = planOf(kit, d, s, env);
  assert.deepEqual(
    p.problems.map((x) => `${x.policy} ${x.condition} ${x.reason}`),
    ['q Failed CounterFull'],
  );
  assert.deepEqual(changes(p), [], 'nothing to write: q has no slot');
  const after = counterFake.apply(s, p.actions, d);
  kit.assertConverged(d, after, env);
  assert.equal(slotsOf(after).p00, 0, 'the kept slot stays');
});

/** Runs `fn` with process.arch reading `arch` (syscall names are known on x86_64). */
function withArch<T>(arch: string, fn: () => T): T {
  const saved = Object.getOwnPropertyDescriptor(process, 'arch')!;
  Object.defineProperty(process, 'arch', { ...saved, value: arch });
  try {
    return fn();
  } finally {
    Object.defineProperty(process, 'arch', saved);
  }
}

test('topCounts: largest first (ties as read), syscalls named from the table (59: execve), only the fields grouped by, at most top', () => withArch('x64', () => {
  const entries: CountEntry[] = [
    { key: { syscall: 0, pid: 10, cgroupId: 4101n, comm: 'cat' }, count: 5n },
    { key: { syscall: 59, pid: 11, cgroupId: 4101n, comm: 'sh' }, count: 10n },
    { key: { syscall: 999, pid: 12, cgroupId: 4202n, comm: 'x' }, count: 10n },
    { key: { syscall: 257, pid: 13, cgroupId: 1n, comm: 'ls' }, count: 1n },
  ];
  const path = (id: bigint) => (id === 4101n ? '/sys/fs/cgroup/app' : `cgroup id ${id}`);
  assert.deepEqual(topCounts(entries, ['syscall'], 10, path), [
    { syscall: 'execve', comm: null, cgroup: null, pid: null, count: '10' },
    { syscall: '#999', comm: null, cgroup: null, pid: null, count: '10' },
    { syscall: 'read', comm: null, cgroup: null, pid: null, count: '5' },
    { syscall: 'openat', comm: null, cgroup: null, pid: null, count: '1' },
  ]);
  assert.deepEqual(topCounts(entries, ['comm', 'cgroup', 'pid'], 2, path), [
    { syscall: null, comm: 'sh', cgroup: '/sys/fs/cgroup/app', pid: 11, count: '10' },
    { syscall: null, comm: 'x', cgroup: 'cgroup id 4202', pid: 12, count: '10' },
  ]);
  assert.deepEqual(topCounts([], ['syscall'], 10, path), []);
  assert.deepEqual(entries.map((e) => e.count), [5n, 10n, 10n, 1n], 'the entries are not reordered');
}));

test(`the metrics take at most ${METRIC_KEYS_PER_POLICY} keys per policy, the largest (topCounts with the cap)`, () => {
  // collectCounterMetrics reads the tables from the kernel; the cap is topCounts(…, METRIC_KEYS_PER_POLICY, …).
  const entries: CountEntry[] = Array.from({ length: METRIC_KEYS_PER_POLICY + 20 }, (_, i) => ({ key: { syscall: 0, pid: i + 1, cgroupId: 0n, comm: '' }, count: BigInt(i + 1) }));
  const top = topCounts(entries, ['pid'], METRIC_KEYS_PER_POLICY, () => '');
  assert.equal(top.length, METRIC_KEYS_PER_POLICY);
  assert.deepEqual(top[0], { syscall: null, comm: null, cgroup: null, pid: METRIC_KEYS_PER_POLICY + 20, count: String(METRIC_KEYS_PER_POLICY + 20) });
  assert.equal(top.at(-1)!.pid, 21, 'the 20 smallest are left out');
});
