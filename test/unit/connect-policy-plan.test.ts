/**
 * ConnectPolicy's plan beyond the shared conformance properties
 * (conformance.test.ts): rule edits and audit/enforce switches are rule
 * writes only, policies leave a shared guard without disturbing it, removed
 * cgroups, failed files, upgrades, detached links, full cgroups, and the bug
 * of the plan the suite found (now fixed). Built on the kind's conformance
 * kit (its fake kernel, resolver and random policies).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { compileGuard, GENERATION_LIMITS, GuardCompileError } from '../../src/kinds/connect-policy/compile.js';
import { buildDesiredGuards } from '../../src/kinds/connect-policy/desired.js';
import { guardExpectation } from '../../src/kinds/connect-policy/drift.js';
import { GUARD_HOOKS, MAX_POLICIES } from '../../src/kinds/connect-policy/layout.js';
import type { DesiredGuards, GuardOperation } from '../../src/kinds/connect-policy/model.js';
import { planGuards } from '../../src/kinds/connect-policy/plan.js';
import type { ObservedGuard, ObservedGuards } from '../../src/kinds/connect-policy/store.js';
import type { Action } from '../../src/reconciler/model.js';
import { changes, envOf, kindsOf, pass, pathsIn, planOf, ROOT } from './conformance/kit.js';
import {
  arbConnectPolicies,
  connectPolicy as policy,
  connectPolicyKit as kit,
  connectRule as rule,
  desiredGuards,
  GUARD_TAGS,
  guardFake,
  OLD_GUARD_TAG,
} from './conformance/connect-policy.kit.js';

const empty: ObservedGuards = { guards: [], stray: [] };
const noFailures = envOf();
const APP = `${ROOT}/connect/cg-4101`;

/** The state one pass leaves for `desired`, from nothing. */
function applied(desired: DesiredGuards): ObservedGuards {
  const s = pass(kit, desired, empty, noFailures);
  kit.assertConverged(desired, s, noFailures);
  return s;
}

/** Plans `desired` from `s`, applies it, and checks that it converged and that planning again changes nothing. */
function converge(desired: DesiredGuards, s: ObservedGuards, env = noFailures): { actions: Action[]; after: ObservedGuards } {
  const actions = planOf(kit, desired, s, env).actions;
  const after = guardFake.apply(s, actions, desired);
  kit.assertConverged(desired, after, env);
  assert.deepEqual(changes(planOf(kit, desired, after, env)), [], 'planning again changes nothing');
  return { actions: changes({ actions, problems: [] }), after };
}

/** Program and link ids of every hook of a guard. */
function idsOf(g: ObservedGuard): string[] {
  return GUARD_HOOKS.map((h) => `${h} ${g.hooks[h].program?.id} ${g.hooks[h].link?.id}`);
}

const denyMetadata = rule('metadata', { destinations: ['169.254.169.254/32'] });
const denySmtp = rule('smtp', { protocol: 'tcp', ports: [{ start: 25, end: 25 }] });

test('a new guard is created with its rules, records and four links, saying which policies guard which cgroup', () => {
  const d = desiredGuards([policy('p', [denyMetadata]), policy('q', [denySmtp], { cgroup: '/sys/fs/cgroup/app' })]);
  assert.deepEqual(
    d.guards.map((g) => `${g.key} ${g.cgroupPath} ${g.policies.map((p) => p.name).join(',')}`),
    ['cg-4101 /sys/fs/cgroup/app p,q'],
    'both spellings of the cgroup share one guard',
  );
  const p = planGuards(d, empty, noFailures);
  const acts = changes(p);
  assert.deepEqual(
    acts.map((a) => `${a.kind} ${a.op.type} ${a.code}`),
    ['create createGuard Needed'],
  );
  assert.equal(acts[0]!.reason, 'policies p, q guard the connects of cgroup /sys/fs/cgroup/app');
  assert.match(acts[0]!.after!, /^2 rules of p, q, \d+ decision entries; cgroup links for connect4, connect6, sendmsg4, sendmsg6$/);
  assert.deepEqual(pathsIn(acts[0]!.op), [APP]);
  assert.deepEqual(p.problems, []);
  const s = guardFake.apply(empty, p.actions, d);
  kit.assertConverged(d, s, noFailures);
  assert.deepEqual(changes(planGuards(d, s, noFailures)), []);
});

test('a rule edit is one rules write into the inactive generation: no program, link or record action', () => {
  const s = applied(desiredGuards([policy('p', [denyMetadata, denySmtp])]));
  const before = s.guards[0]!;
  const d = desiredGuards([policy('p', [denyMetadata, { ...denySmtp, ports: [{ start: 25, end: 25 }, { start: 587, end: 587 }] }])]);
  const { actions, after } = converge(d, s);
  assert.deepEqual(
    actions.map((a) => `${a.kind} ${a.op.type} ${a.code}`),
    ['update writeGuardRules RulesChanged', 'update writeGuardRecords RecordsOutdated'],
    'the rules, and the record of the new spec hash',
  );
  const op = actions[0]!.op as Extract<GuardOperation, { type: 'writeGuardRules' }>;
  assert.equal(op.rules.encoded.gen, before.activeGen! ^ 1, 'the inactive generation');
  assert.deepEqual([op.rules.newSlots, op.rules.staleSlots], [[], []], 'rules keep their counter slots');
  const g = after.guards[0]!;
  assert.deepEqual(idsOf(g), idsOf(before), 'the same programs and links');
  assert.deepEqual(g.slots, before.slots);
  assert.equal(g.activeGen, before.activeGen! ^ 1);
});

test('switching a rule or a policy between audit and enforce is only a rules write', () => {
  const s = applied(desiredGuards([policy('p', [denyMetadata, denySmtp])]));
  const before = s.guards[0]!;
  for (const d of [
    desiredGuards([policy('p', [denyMetadata, { ...denySmtp, mode: 'audit' }])]),
    desiredGuards([policy('p', [{ ...denyMetadata, mode: 'audit' }, { ...denySmtp, mode: 'audit' }], { mode: 'audit' })]),
    desiredGuards([policy('p', [denyMetadata, denySmtp], { mode: 'audit', defaultAction: 'deny' })]),
  ]) {
    const { actions, after } = converge(d, s);
    assert.deepEqual(
      actions.filter((a) => a.op.type !== 'writeGuardRecords').map((a) => `${a.kind} ${a.op.type} ${a.code}`),
      ['update writeGuardRules RulesChanged'],
    );
    assert.deepEqual(idsOf(after.guards[0]!), idsOf(before), 'the same programs and links');
    assert.deepEqual(after.guards[0]!.slots, before.slots, 'the same counter slots');
  }
});

test('a policy deleted from a shared guard: the rules are rewritten without it and its record dropped; the guard stays', () => {
  const s = applied(desiredGuards([policy('p', [denyMetadata]), policy('q', [denySmtp])]));
  const before = s.guards[0]!;
  const d = desiredGuards([policy('p', [denyMetadata])]);
  const { actions, after } = converge(d, s);
  assert.deepEqual(
    actions.map((a) => `${a.kind} ${a.op.type} ${a.code}`),
    ['update writeGuardRules RulesChanged', 'update writeGuardRecords RecordsOutdated'],
  );
  assert.deepEqual((actions[1]!.op as Extract<GuardOperation, { type: 'writeGuardRecords' }>).deletes, ['q']);
  const op = actions[0]!.op as Extract<GuardOperation, { type: 'writeGuardRules' }>;
  assert.deepEqual(op.rules.staleSlots, before.slots.filter((x) => x.policy === 'q').map((x) => x.slot), "q's counter slots are freed");
  const g = after.guards[0]!;
  assert.deepEqual(idsOf(g), idsOf(before), 'the same programs and links');
  assert.deepEqual(g.policies.map((r) => r.name), ['p']);
});

test('the last policy deleted removes the guard', () => {
  const s = applied(desiredGuards([policy('p', [denyMetadata])]));
  const acts = changes(planGuards(desiredGuards([]), s, noFailures));
  assert.deepEqual(
    acts.map((a) => `${a.kind} ${a.phase} ${a.op.type} ${a.code}`),
    ['delete remove removeGuard Unused'],
  );
  assert.equal(acts[0]!.reason, 'no policy guards cgroup /sys/fs/cgroup/app any more');
  assert.deepEqual(guardFake.apply(s, acts, desiredGuards([])), empty);
});

test('a removed cgroup: the policy is Degraded (CgroupNotFound) and the old guard, its links detached, is removed (CgroupGone)', () => {
  const p = policy('p', [denyMetadata]);
  const s = applied(desiredGuards([p]));
  for (const h of GUARD_HOOKS) s.guards[0]!.hooks[h].link!.attached = false;
  // The same policy; its cgroup does not exist any more.
  const d = buildDesiredGuards([p], new Set(), ROOT, {
    cgroup: () => ({ ok: false, missing: true, reason: 'cgroup /sys/fs/cgroup/app does not exist (yet)' }),
    tags: () => ({ ...GUARD_TAGS }),
  });
  const plan = planGuards(d, s, noFailures);
  assert.deepEqual(
    plan.problems.map((x) => `${x.policy} ${x.condition} ${x.reason}: ${x.message}`),
    ['p Degraded CgroupNotFound: cgroup /sys/fs/cgroup/app does not exist (yet): nothing to guard until it exists'],
  );
  const acts = changes(plan);
  assert.deepEqual(
    acts.map((a) => `${a.kind} ${a.op.type} ${a.code}`),
    ['delete removeGuard CgroupGone'],
  );
  assert.equal(acts[0]!.reason, 'cgroup /sys/fs/cgroup/app is gone (its links report attached: false)');
  assert.deepEqual(guardFake.apply(s, acts, d), empty);
});

test('a failed file keeps the guard of its policy as it is (KeptForPolicy), whatever the other policies on the cgroup want', () => {
  const a = policy('a', [denyMetadata], { source: { file: '/p/a.yaml', documentIndex: 0, line: 1, column: 1 } });
  const b = policy('b', [denySmtp], { source: { file: '/p/b.yaml', documentIndex: 0, line: 1, column: 1 } });
  const s = applied(desiredGuards([a, b]));
  const env = envOf(['/p/a.yaml']);
  const edited = { ...b, rules: [{ ...denySmtp, action: 'allow' as const }] };
  // The file vanished (no policy of it loaded), or has errors (its policies loaded, marked as from a failed file).
  for (const d of [desiredGuards([b], ['/p/a.yaml']), desiredGuards([a, edited], ['/p/a.yaml']), desiredGuards([edited], ['/p/a.yaml'])]) {
    const p = planOf(kit, d, s, env);
    assert.deepEqual(changes(p), []);
    assert.deepEqual(
      p.actions.map((x) => `${x.kind} ${x.code} ${x.domain}`),
      ['noop KeptForPolicy connect cg-4101'],
    );
    assert.match(p.actions[0]!.reason, /^policy a cannot be applied now \(invalid file or unreadable cgroup\): keeping the last applied state$/);
  }
  const invalid = planOf(kit, desiredGuards([a, b], ['/p/a.yaml']), s, env);
  assert.deepEqual(
    invalid.problems.map((x) => `${x.policy} ${x.condition} ${x.reason}`),
    ['a Failed InvalidSourceFile'],
  );
});

test("an upgrade replaces each hook's program in its link, expecting the program the link runs: four actions, no rebuild", () => {
  const d = desiredGuards([policy('p', [denyMetadata])]);
  const s = applied(d);
  const before = structuredClone(s.guards[0]!);
  for (const h of GUARD_HOOKS) s.guards[0]!.hooks[h].program!.tag = OLD_GUARD_TAG;
  const { actions, after } = converge(d, s);
  assert.deepEqual(
    actions.map((a) => `${a.kind} ${a.op.type} ${a.code}`),
    GUARD_HOOKS.map(() => 'replace replaceGuardProgram BytecodeChanged'),
  );
  assert.deepEqual(
    actions.map((a) => a.op),
    GUARD_HOOKS.map((hook) => ({ type: 'replaceGuardProgram', dir: APP, hook, expectedProgId: before.hooks[hook].link!.progId })),
  );
  const g = after.guards[0]!;
  for (const h of GUARD_HOOKS) {
    assert.equal(g.hooks[h].link!.id, before.hooks[h].link!.id, `${h}: the same link`);
    assert.notEqual(g.hooks[h].program!.id, before.hooks[h].program!.id, `${h}: a new program`);
  }
  assert.deepEqual([g.slots, g.fingerprint, g.activeGen, g.policies], [before.slots, before.fingerprint, before.activeGen, before.policies], 'rules, counters and records stay');
});

test('an upgrade of a hook whose link runs another program expects that program; one whose link is detached attaches first', () => {
  const d = desiredGuards([policy('p', [denyMetadata])]);
  const s = applied(d);
  const g = s.guards[0]!;
  for (const h of GUARD_HOOKS) g.hooks[h].program!.tag = OLD_GUARD_TAG;
  g.hooks.connect6.link!.progId = 999;
  g.hooks.sendmsg4.link!.attached = false;
  delete g.hooks.sendmsg6.link;
  const { actions } = converge(d, s);
  assert.deepEqual(
    actions.map((a) => `${a.op.type} ${a.code} ${(a.op as { hook?: string }).hook} ${(a.op as { expectedProgId?: number }).expectedProgId ?? ''}`.trim()),
    [
      `replaceGuardProgram BytecodeChanged connect4 ${g.hooks.connect4.program!.id}`,
      'replaceGuardProgram BytecodeChanged connect6 999',
      'attachGuardHook LinkDetached sendmsg4',
      `replaceGuardProgram BytecodeChanged sendmsg4 ${g.hooks.sendmsg4.program!.id}`,
      'attachGuardHook NotAttached sendmsg6',
      `replaceGuardProgram BytecodeChanged sendmsg6 ${g.hooks.sendmsg6.program!.id}`,
    ],
  );
});

test('a detached hook link is attached again with the pinned program; the other hooks, rules and records stay', () => {
  const d = desiredGuards([policy('p', [denyMetadata])]);
  const s = applied(d);
  const before = structuredClone(s.guards[0]!);
  s.guards[0]!.hooks.sendmsg6.link!.attached = false;
  const { actions, after } = converge(d, s);
  assert.deepEqual(kindsOf(actions), ['replace attachGuardHook']);
  assert.equal(actions[0]!.code, 'LinkDetached');
  assert.deepEqual(actions[0]!.op, { type: 'attachGuardHook', dir: APP, hook: 'sendmsg6', guard: { v: 1, cgroupPath: '/sys/fs/cgroup/app', cgroupId: '4101' } });
  const g = after.guards[0]!;
  assert.equal(g.hooks.sendmsg6.link!.progId, before.hooks.sendmsg6.program!.id, 'the same program');
  assert.notEqual(g.hooks.sendmsg6.link!.id, before.hooks.sendmsg6.link!.id, 'a new link');
  for (const h of GUARD_HOOKS.filter((x) => x !== 'sendmsg6')) assert.deepEqual(g.hooks[h], before.hooks[h], `${h} as it was`);
  assert.deepEqual([g.slots, g.fingerprint, g.policies], [before.slots, before.fingerprint, before.policies]);
});

test(`${MAX_POLICIES + 1} policies on one cgroup: ${MAX_POLICIES} are applied, the last by name fails (CgroupFull)`, () => {
  const names = Array.from({ length: MAX_POLICIES + 1 }, (_, i) => `p${String(i).padStart(2, '0')}`);
  const d = desiredGuards(names.map((n, i) => policy(n, [rule(`r${i}`, { destinations: [`10.0.${i}.0/24`] })], { cgroup: i % 2 ? 'app' : '/sys/fs/cgroup/app' })));
  assert.deepEqual(d.guards.map((g) => g.policies.length), [MAX_POLICIES]);
  const p = planGuards(d, empty, noFailures);
  assert.deepEqual(
    p.problems.map((x) => `${x.policy} ${x.condition} ${x.reason}`),
    ['p16 Failed CgroupFull'],
  );
  assert.match(p.problems[0]!.message, /^cgroup \/sys\/fs\/cgroup\/app already has 16 ConnectPolicy policies \(p00, .*, p15\), the most one guard serves; p16 is not applied$/);
  assert.deepEqual(kindsOf(changes(p)), ['create createGuard']);
  const s = guardFake.apply(empty, p.actions, d);
  kit.assertConverged(d, s, noFailures);
  assert.deepEqual(s.guards[0]!.policies.map((r) => r.name), names.slice(0, MAX_POLICIES));
});

test('an upgrade interrupted between the link update and the rename (the link runs program_next) is finished, not redone', () => {
  const d = desiredGuards([policy('p', [denyMetadata])]);
  const s = applied(d);
  const g = s.guards[0]!;
  const h = g.hooks.connect4;
  h.programNext = { id: 500, tag: h.program!.tag };
  h.program!.tag = OLD_GUARD_TAG;
  h.link!.progId = 500;
  g.stray = [`${APP}/connect4/program_next`];
  const { actions, after } = converge(d, s);
  assert.deepEqual(
    actions.map((a) => `${a.kind} ${a.op.type} ${a.code}`),
    ['update finishUpgrade FinishUpgrade'],
  );
  assert.deepEqual(actions[0]!.op, { type: 'finishUpgrade', dir: `${APP}/connect4` });
  assert.deepEqual(after.guards[0]!.hooks.connect4.program, { id: 500, tag: GUARD_TAGS.connect4 });
});

test('rule changes never rebuild or reattach a guard, and rules keep their counter slots', () => {
  fc.assert(
    fc.property(arbConnectPolicies, arbConnectPolicies, (before, after) => {
      const s1 = applied(desiredGuards(before));
      const d2 = desiredGuards(after);
      const p2 = planOf(kit, d2, s1, noFailures).actions;
      const s2 = guardFake.apply(s1, p2, d2);
      kit.assertConverged(d2, s2, noFailures);
      for (const g of s2.guards) {
        const old = s1.guards.find((x) => x.key === g.key);
        if (!old) continue;
        assert.deepEqual(idsOf(g), idsOf(old), `${g.key}: same programs and links`);
        for (const now of g.slots) {
          const was: { slot: number } | undefined = old.slots.find((x) => x.policy === now.policy && x.rule === now.rule);
          if (was) assert.equal(now.slot, was.slot, `${now.policy}/${now.rule} keeps slot ${was.slot}`);
        }
      }
      for (const a of p2)
        if (['createGuard', 'attachGuardHook', 'replaceGuardProgram'].includes(a.op.type))
          assert.ok(!s1.guards.some((g) => pathsIn(a.op).includes(g.dir)), `${a.object}: ${a.op.type} on a guard in place`);
    }),
    { numRuns: 200, includeErrorInReport: true },
  );
});

test('PinsUnreadable: a guard whose pins cannot be read gets no action, and the policies that want it are Failed', () => {
  const d = desiredGuards([policy('p', [denyMetadata])]);
  const s = applied(d);
  const g = s.guards[0]!;
  const bad: ObservedGuards = {
    guards: [{ ...g, hooks: { connect4: {}, connect6: {}, sendmsg4: {}, sendmsg6: {} }, policies: [], slots: [], error: 'EACCES: permission denied' }],
    stray: [],
  };
  delete bad.guards[0]!.guard;
  const p = planGuards(d, bad, noFailures);
  assert.deepEqual(changes(p), []);
  assert.deepEqual(p.actions.map((a) => `${a.kind} ${a.code}`), ['noop PinsUnreadable']);
  assert.deepEqual(p.problems.map((x) => `${x.policy} ${x.condition} ${x.reason}`), ['p Failed PinsUnreadable']);
});

// Once a known bug of the plan (found by the conformance suite), fixed.

test("an unreadable record of a policy the guard serves is rewritten, not deleted after the rewrite: one pass converges", () => {
  const d = desiredGuards([policy('p', [denyMetadata]), policy('q', [denySmtp])]);
  const s = applied(d);
  const g = s.guards[0]!;
  // E.g. written by a newer version: observe reports it as a bad record under the policy's name.
  g.policies = g.policies.filter((r) => r.name !== 'q');
  g.badRecords = [{ name: 'q', reason: 'unsupported version 2' }, { name: 'zz', reason: 'not JSON' }];
  const { actions } = converge(d, s);
  assert.deepEqual(kindsOf(actions), ['update writeGuardRecords']);
  const op = actions[0]!.op as Extract<GuardOperation, { type: 'writeGuardRecords' }>;
  assert.deepEqual(op.upserts.map((r) => ('name' in r ? r.name : '@guard')), ['q']);
  assert.deepEqual(op.deletes, ['zz'], 'only the record of no policy is deleted');
});

test('the drift probe waits only for cgroups that do not exist yet: a policy refused for CgroupFull, or kept for its failed file, is not waiting', () => {
  const names = Array.from({ length: MAX_POLICIES + 1 }, (_, i) => `p${String(i).padStart(2, '0')}`);
  const full = names.map((n, i) => policy(n, [rule(`r${i}`, { destinations: [`10.0.${i}.0/24`] })], { cgroup: 'app' }));
  const missing = policy('later', [rule('r', { destinations: ['10.9.0.0/16'] })], { cgroup: 'missing-app' });
  const d = desiredGuards([...full, missing]);
  const e = guardExpectation(d, applied(d));
  assert.deepEqual(e.waiting, [{ policy: 'later', cgroup: 'missing-app' }]);
});

test('a generation must fit half of each shared map (the other half holds the previous generation)', () => {
  // Every odd port is a run of its own (32,768 blocks, all there is room for); one more port of another rule overflows.
  const odd = Array.from({ length: GENERATION_LIMITS.ports }, (_, i) => ({ start: 2 * i + 1, end: 2 * i + 1 }));
  const rules = [
    { protocol: 'tcp' as const, ports: odd, action: 'deny' as const, audit: false, slot: 1 },
    { protocol: 'tcp' as const, ports: [{ start: 2, end: 2 }], action: 'deny' as const, audit: false, slot: 2 },
  ];
  assert.doesNotThrow(() => compileGuard([{ rules: rules.slice(0, 1), defaultAction: 'allow', defaultAudit: false, defaultSlot: 3, sample: 0 }]));
  assert.throws(
    () => compileGuard([{ rules, defaultAction: 'allow', defaultAudit: false, defaultSlot: 3, sample: 0 }]),
    (e: unknown) => e instanceof GuardCompileError && /port block entries, more than the 32768 a generation holds/.test(e.message),
  );
});
