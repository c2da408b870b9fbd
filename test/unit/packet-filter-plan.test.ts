/**
 * PacketFilter's plan beyond the shared conformance properties
 * (conformance.test.ts): rule changes never rebuild or reattach a filter and
 * keep counter slots with their rules; repairs, conflicts and interfaces the
 * filter cannot parse; filters whose pins cannot be read; and the bugs of
 * the plan the suite found (now fixed). Built on the kind's conformance kit
 * (its fake kernel, resolver and random policies).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { PacketFilterRule } from '../../src/kinds/packet-filter/document.js';
import type { DesiredFilters } from '../../src/kinds/packet-filter/model.js';
import { planFilters } from '../../src/kinds/packet-filter/plan.js';
import type { ObservedFilter, ObservedFilters } from '../../src/kinds/packet-filter/store.js';
import { planKinds } from '../../src/reconciler/plan.js';
import { changes, envOf, kindsOf, pass, pathsIn, planOf } from './conformance/kit.js';
import {
  arbFilterPolicies,
  desiredFilters,
  FILTER_FILES,
  filterFake,
  filterPolicy as policy,
  IFACES,
  OLD_FILTER_TAG,
  packetFilterKit as kit,
} from './conformance/packet-filter.kit.js';
import { portSteeringKit } from './conformance/port-steering.kit.js';

const empty: ObservedFilters = { filters: [], stray: [] };
const noFailures = envOf();

/** The state one pass leaves for `desired`, from nothing. */
function applied(desired: DesiredFilters): ObservedFilters {
  const s = pass(kit, desired, empty, noFailures);
  kit.assertConverged(desired, s, noFailures);
  return s;
}

const drop23: PacketFilterRule = { name: 'telnet', protocol: 'tcp', srcPrefixes: undefined, dstPrefixes: undefined, srcPorts: undefined, dstPorts: [{ start: 23, end: 23 }], action: 'drop', mode: 'enforce' };

test('rule changes never rebuild or reattach a filter, and rules keep their counter slots', () => {
  fc.assert(
    fc.property(arbFilterPolicies, arbFilterPolicies, (before, after) => {
      const s1 = applied(desiredFilters(before));
      const d2 = desiredFilters(after);
      const p2 = planOf(kit, d2, s1, noFailures).actions;
      const s2 = filterFake.apply(s1, p2, d2);
      kit.assertConverged(d2, s2, noFailures);
      // Filters that stay are never rebuilt or reattached, and rules keep their counter slots.
      for (const f of s2.filters) {
        const old = s1.filters.find((x) => x.key === f.key);
        if (!old) continue;
        assert.deepEqual([f.program?.id, f.link?.id], [old.program?.id, old.link?.id], `${f.key}: same program and link`);
        for (const now of f.slots) {
          const was: { slot: number } | undefined = old.slots.find((x) => x.policy === now.policy && x.rule === now.rule);
          if (was) assert.equal(now.slot, was.slot, `${now.policy}/${now.rule} keeps slot ${was.slot}`);
        }
      }
      for (const a of p2)
        if (['createFilter', 'attachFilter'].includes(a.op.type))
          assert.ok(!s1.filters.some((f) => pathsIn(a.op).includes(f.dir) && f.link?.attached), `${a.object}: ${a.op.type} on an attached filter`);
    }),
    { numRuns: 200, includeErrorInReport: true },
  );
});

test('an enforce <-> audit switch (spec.mode, a rule mode, the default drop) is an update of the rule tables: no new program, link or slot', () => {
  const enforce = desiredFilters([policy('p', [drop23], { defaultAction: 'drop' })]);
  let s = applied(enforce);
  const f0 = s.filters[0]!;
  const switches: Array<[string, DesiredFilters]> = [
    ['spec.mode audit', desiredFilters([policy('p', [{ ...drop23, mode: 'audit' }], { defaultAction: 'drop', mode: 'audit' })])],
    ['the rule back to enforce, the default still audited', desiredFilters([policy('p', [drop23], { defaultAction: 'drop', mode: 'audit' })])],
    ['everything enforced again', enforce],
  ];
  for (const [what, d] of switches) {
    const p = planFilters(d, s, noFailures);
    assert.deepEqual(
      changes(p).map((a) => `${a.kind} ${a.op.type} ${a.code}`),
      ['update writeFilterRules RulesChanged', 'update writeFilterRecords RecordsOutdated'],
      `${what}: the tables of the other generation are written and switched to, and the spec hash recorded`,
    );
    const rules = changes(p)[0]!;
    assert.match(rules.reason, /switched to in one map write \(no new program or link\)/);
    const after = filterFake.apply(s, p.actions, d);
    kit.assertConverged(d, after, noFailures);
    const f = after.filters[0]!;
    assert.notEqual(f.fingerprint, s.filters[0]!.fingerprint, `${what}: the mode is part of the tables`);
    assert.deepEqual([f.program, f.link?.id, f.slots], [f0.program, f0.link?.id, f0.slots], `${what}: same program, link and counter slots`);
    assert.deepEqual(changes(planFilters(d, after, noFailures)), []);
    s = after;
  }
  assert.match(changes(planFilters(switches[0]![1], applied(enforce), noFailures))[0]!.after ?? '', /1 drop, 1 of them audited\).*default drop \(audit\)/);
});

test('a changed program tag is swapped into the link; a detached link is reattached; a vanished interface is removed', () => {
  const d = desiredFilters([policy('p', [drop23])]);
  const s = applied(d);
  const f = s.filters[0]!;
  f.program = { id: f.program!.id, tag: OLD_FILTER_TAG };
  f.link!.attached = false;
  // A program cannot be swapped into a detached link (ENOLINK): the pinned program is attached first, and the swap expects it.
  const p = planFilters(d, s, noFailures);
  assert.deepEqual(kindsOf(changes(p)), ['replace attachFilter', 'replace replaceFilterProgram']);
  assert.deepEqual(changes(p)[1]!.op, { type: 'replaceFilterProgram', dir: f.dir, expectedProgId: f.program.id });
  const after = filterFake.apply(s, p.actions, d);
  kit.assertConverged(d, after, noFailures);
  assert.deepEqual(changes(planFilters(d, after, noFailures)), []);

  // The interface is gone: no desired filter, the link reports attached: false.
  const gone = desiredFilters([policy('p', [drop23])], [], IFACES.filter((i) => i.name !== 'eth0'));
  const acts = changes(planFilters(gone, s, noFailures));
  assert.deepEqual(kindsOf(acts), ['delete removeFilter']);
  assert.match(acts[0]!.reason, /interface eth0 is gone \(its link reports attached: false\)/);
  assert.ok(gone.problems.some((p) => p.reason === 'NoInterface'));
});

test('a new filter is created under env.root', () => {
  const d = desiredFilters([policy('p', [drop23])]);
  const p = planFilters(d, empty, { root: '/elsewhere', failedFiles: new Set() });
  assert.deepEqual(pathsIn(changes(p)[0]!.op), ['/elsewhere/filters/ino-1/xdp-2']);
});

test('each repair on its own: an upgrade swaps the program in the same link; a detached link is reattached with the same program', () => {
  const d = desiredFilters([policy('p', [drop23])]);
  const s = applied(d);
  const before = s.filters[0]!;

  const old = structuredClone(s);
  old.filters[0]!.program!.tag = OLD_FILTER_TAG;
  const upgrade = planOf(kit, d, old, noFailures);
  assert.deepEqual(kindsOf(changes(upgrade)), ['replace replaceFilterProgram']);
  const upgraded = filterFake.apply(old, upgrade.actions, d).filters[0]!;
  assert.equal(upgraded.link?.id, before.link?.id, 'the same link');
  assert.notEqual(upgraded.program?.id, before.program?.id, 'a new program');
  assert.deepEqual([upgraded.slots, upgraded.fingerprint, upgraded.policies], [before.slots, before.fingerprint, before.policies], 'rules, counters and records stay');

  const detached = structuredClone(s);
  detached.filters[0]!.link!.attached = false;
  const reattach = planOf(kit, d, detached, noFailures);
  assert.deepEqual(kindsOf(changes(reattach)), ['replace attachFilter']);
  const reattached = filterFake.apply(detached, reattach.actions, d).filters[0]!;
  assert.equal(reattached.program?.id, before.program?.id, 'the same program');
  assert.ok(reattached.link?.attached && reattached.link.id !== before.link?.id, 'a new link');
});

test("another tool's XDP program is a conflict: no filter is created, the policy fails with the program named", () => {
  const taken = IFACES.map((i) => (i.name === 'eth0' ? { ...i, xdp: [{ mode: 'native' as const, progId: 77 }] } : i));
  const d = desiredFilters([policy('p', [drop23])], [], taken);
  const p = planFilters(d, empty, noFailures);
  assert.deepEqual(changes(p), []);
  assert.deepEqual(
    p.problems.map((x) => `${x.condition} ${x.reason}: ${x.message}`),
    ['Failed XdpConflict: interface eth0 already runs XDP program 77 (native mode) of another tool: not replacing it'],
  );
});

test('our own XDP program on the interface is no conflict', () => {
  const d = desiredFilters([policy('p', [drop23])]);
  const s = applied(d);
  const f = s.filters[0]!;
  // The interface list now shows the program our link runs.
  const ours = IFACES.map((i) => (i.name === 'eth0' ? { ...i, xdp: [{ mode: 'native' as const, progId: f.link!.progId }] } : i));
  const p = planFilters(desiredFilters([policy('p', [drop23])], [], ours), s, noFailures);
  assert.deepEqual(changes(p), []);
  assert.deepEqual(p.problems, []);
});

test('policies that disagree on an interface only their patterns share are reported at runtime, naming both', () => {
  const a = policy('a', [drop23], { interfaces: ['eth*'] });
  const b = policy('b', [{ ...drop23, name: 'telnet-ok', action: 'pass' }], { interfaces: ['*0'] });
  const d = desiredFilters([a, b]);
  assert.deepEqual(
    d.problems.map((x) => `${x.policy} ${x.reason}: ${x.message}`),
    ['b Conflict: rule "telnet-ok" of policy "b" passes tcp to port 23, but rule "telnet" of policy "a" drops the same packets on xdp of eth0; b is not applied there'],
  );
  assert.deepEqual(d.filters.map((f) => `${f.ifname}: ${f.policies.map((x) => x.name).join(',')}`), ['eth0: a', 'eth1: a']);
  assert.ok(d.problems.every((x) => x.policy !== 'a'));
});

test('non-Ethernet interfaces are left out: named ones with a warning, glob matches silently', () => {
  const d = desiredFilters([policy('p', [drop23], { interfaces: ['tun0', 'eth0'] }), policy('q', [drop23], { interfaces: ['*'], hook: 'tc-ingress' })]);
  assert.deepEqual(d.problems.map((x) => `${x.policy} ${x.condition} ${x.reason}`), ['p Degraded UnsupportedInterface']);
  assert.deepEqual(d.policies.find((x) => x.name === 'q')?.skipped.map((x) => x.ifname), ['tun0']);
});

test('with filters pinned and no PacketFilter policy left, the engine removes them, and PortSteering plans nothing for them', () => {
  const s = applied(desiredFilters([policy('p', [drop23])]));
  const plan = planKinds(
    [
      { kind: portSteeringKit.kind, policies: [], desired: portSteeringKit.none(), observed: portSteeringKit.empty() },
      { kind: kit.kind, policies: [], desired: kit.none(), observed: s },
    ],
    [],
    noFailures,
  );
  assert.deepEqual(
    changes(plan).map((a) => `${a.owner} ${a.op.type} ${pathsIn(a.op).join(' ')}`),
    [`PacketFilter removeFilter ${s.filters[0]!.dir}`],
  );
});

test('maps of an older layout are rebuilt, saying why', () => {
  const d = desiredFilters([policy('p', [drop23])]);
  const s = applied(d);
  s.filters[0]!.layoutMismatch = ['map config (key 4/4, value 16/52 bytes)'];
  const acts = changes(planFilters(d, s, noFailures));
  assert.deepEqual(kindsOf(acts), ['replace createFilter']);
  assert.match(acts[0]!.reason, /older layout \(map config \(key 4\/4, value 16\/52 bytes\)\): rebuilding it \(counters restart\)/);
});

/** A filter whose pins cannot be read, as observeFilters reports it. */
function unreadable(like: Pick<ObservedFilter, 'key' | 'netnsKey' | 'dir' | 'hook' | 'ifindex'>): ObservedFilter {
  const { key, netnsKey, dir, hook, ifindex } = like;
  return { key, netnsKey, dir, hook, ifindex, missingMaps: [], layoutMismatch: [], policies: [], badRecords: [], activeGen: 0, slots: [], stray: [], error: 'EACCES: permission denied' };
}

test('PinsUnreadable: a filter whose pins cannot be read gets no action, and every policy that wants it is Failed', () => {
  fc.assert(
    fc.property(kit.arbScenario, kit.arbScenario, fc.nat(), fc.subarray(FILTER_FILES), (before, after, bits, failed) => {
      const s1 = applied(before.desired);
      const desired = kit.withFilesFailed(after.desired, failed);
      const env = envOf(failed);
      // Some of the filters there are or should be cannot be read.
      const candidates = [...s1.filters, ...desired.filters.filter((w) => !s1.filters.some((f) => f.key === w.key))].sort((a, b) => (a.key < b.key ? -1 : 1));
      const picked = candidates.filter((_, i) => (bits >> i) & 1);
      fc.pre(picked.length > 0);
      const bad = picked.map(unreadable);
      const observed: ObservedFilters = {
        ...s1,
        filters: [...s1.filters.filter((f) => !picked.some((x) => x.key === f.key)), ...bad].sort((a, b) => (a.key < b.key ? -1 : 1)),
      };
      const p = planOf(kit, desired, observed, env);
      for (const f of bad) {
        for (const a of changes(p)) {
          assert.notEqual(a.domain, `filter ${f.key}`, `${a.object}: no change in the domain of ${f.key}`);
          for (const path of pathsIn(a.op)) assert.ok(path !== f.dir && !path.startsWith(`${f.dir}/`), `${a.object}: ${path} is in ${f.dir}`);
        }
        assert.ok(
          p.actions.some((a) => a.kind === 'noop' && a.code === 'PinsUnreadable' && a.domain === `filter ${f.key}`),
          `the plan says ${f.key} is left alone`,
        );
      }
      const wanting = bad.flatMap((f) => (desired.filters.find((w) => w.key === f.key)?.policies ?? []).map((x) => `${x.name} Failed ${f.dir}`));
      const reported = p.problems
        .filter((x) => x.reason === 'PinsUnreadable')
        .map((x) => `${x.policy} ${x.condition} ${bad.find((f) => x.message.includes(`(${f.dir}): EACCES: permission denied`))?.dir}`);
      assert.deepEqual(reported.sort(), wanting.sort(), 'each policy that wants an unreadable filter is Failed for it, and no other');
      // The fake kernel refuses any change to those pins; applying the plan leaves them as they were.
      const s2 = filterFake.apply(observed, p.actions, desired);
      assert.deepEqual(
        s2.filters.filter((f) => f.error),
        bad,
      );
    }),
    { numRuns: 150, includeErrorInReport: true },
  );
});

for (const hook of ['xdp', 'tc-ingress'] as const)
  test(`an ${hook} upgrade interrupted between the link update and the rename (the link runs program_next) is finished, not redone`, () => {
    const d = desiredFilters([policy('p', [drop23], { hook })]);
    const s = applied(d);
    const f = s.filters[0]!;
    const before = structuredClone(f);
    f.programNext = { id: f.program!.id + 100, tag: f.program!.tag };
    f.program!.tag = OLD_FILTER_TAG;
    f.link!.progId = f.programNext.id;
    f.stray = [`${f.dir}/program_next`];
    const p = planOf(kit, d, s, noFailures);
    assert.deepEqual(
      changes(p).map((a) => `${a.kind} ${a.op.type} ${a.code}`),
      ['update finishUpgrade FinishUpgrade'],
    );
    const after = filterFake.apply(s, p.actions, d);
    kit.assertConverged(d, after, noFailures);
    assert.deepEqual(after.filters[0]!.program, f.programNext, 'program_next is the program now');
    assert.deepEqual([after.filters[0]!.link?.id, after.filters[0]!.slots], [before.link?.id, before.slots], 'the same link, rules and counters');
    assert.deepEqual(changes(planOf(kit, d, after, noFailures)), []);
  });

// Once known bugs of the plan (found by the conformance suite), fixed.

for (const hook of ['xdp', 'tc-ingress'] as const)
  for (const link of ['detached', 'missing', 'runs-other'] as const)
    test(`an upgrade of an ${hook} filter whose link is ${link} converges in one pass`, () => {
      const d = desiredFilters([policy('p', [drop23], { hook })]);
      const s = applied(d);
      const f = s.filters[0]!;
      f.program!.tag = OLD_FILTER_TAG;
      if (link === 'detached') f.link!.attached = false;
      if (link === 'missing') delete f.link;
      if (link === 'runs-other') f.link!.progId = f.program!.id + 100;
      const p = planOf(kit, d, s, noFailures);
      // The swap never goes into a link that cannot take it: the attachment comes first; a link running another program takes the swap itself.
      assert.deepEqual(
        changes(p).map((a) => `${a.op.type} ${a.code}`),
        link === 'runs-other' ? ['replaceFilterProgram BytecodeChanged'] : [`attachFilter ${link === 'missing' ? 'NotAttached' : 'LinkDetached'}`, 'replaceFilterProgram BytecodeChanged'],
      );
      const after = filterFake.apply(s, p.actions, d);
      kit.assertConverged(d, after, noFailures);
      assert.deepEqual(changes(planOf(kit, d, after, noFailures)), [], 'converged in one pass');
    });

for (const hook of ['xdp', 'tc-ingress'] as const)
  test(`an ${hook} filter whose link runs a program that is neither the pinned one nor program_next is repaired in one pass, in the same link`, () => {
    const d = desiredFilters([policy('p', [drop23], { hook })]);
    const s = applied(d);
    const f = s.filters[0]!;
    const before = structuredClone(f);
    f.link!.progId = f.program!.id + 100;
    // The interface list shows the program our link runs: that is no other tool's.
    const seen = hook === 'xdp' ? desiredFilters([policy('p', [drop23], { hook })], [], IFACES.map((i) => (i.name === 'eth0' ? { ...i, xdp: [{ mode: 'native' as const, progId: f.link!.progId }] } : i))) : d;
    const p = planOf(kit, seen, s, noFailures);
    // A second XDP link would be refused (EBUSY): the pinned program is swapped into our link, expecting what it runs now.
    assert.deepEqual(changes(p).map((a) => `${a.kind} ${a.op.type} ${a.code}`), ['replace replaceFilterProgram LinkRunsOtherProgram']);
    assert.deepEqual(changes(p)[0]!.op, { type: 'replaceFilterProgram', dir: f.dir, expectedProgId: f.program!.id + 100 });
    assert.deepEqual(p.problems, []);
    const after = filterFake.apply(s, p.actions, seen);
    kit.assertConverged(seen, after, noFailures);
    assert.equal(after.filters[0]!.link?.id, before.link?.id, 'the same link');
    assert.deepEqual([after.filters[0]!.slots, after.filters[0]!.fingerprint, after.filters[0]!.policies], [before.slots, before.fingerprint, before.policies], 'rules, counters and records stay');
    assert.deepEqual(changes(planOf(kit, d, after, noFailures)), []);
  });

test('a filter kept for a policy of a failed file whose link is detached is attached again, and nothing of the kept policy is dropped', () => {
  const a = policy('a', [drop23], { source: { file: '/p/a.yaml', documentIndex: 0, line: 1, column: 1 } });
  const b = policy('b', [{ ...drop23, name: 'ssh', dstPorts: [{ start: 22, end: 22 }] }], { source: { file: '/p/b.yaml', documentIndex: 0, line: 1, column: 1 } });
  const s = applied(desiredFilters([a, b]));
  const f = s.filters.find((x) => x.key === 'ino-1/xdp-2')!;
  f.link!.attached = false;
  const env = envOf(['/p/a.yaml']);
  for (const d of [desiredFilters([b], ['/p/a.yaml']), desiredFilters([a, b], ['/p/a.yaml'])]) {
    const p = planOf(kit, d, s, env);
    assert.deepEqual(
      changes(p).map((x) => `${x.kind} ${x.op.type} ${x.code} ${x.domain}`),
      ['replace attachFilter LinkDetached filter ino-1/xdp-2'],
      'only the attachment is repaired: rules and records stay',
    );
    assert.ok(p.actions.some((x) => x.kind === 'noop' && x.code === 'KeptForPolicy' && x.domain === 'filter ino-1/xdp-2'));
    const after = filterFake.apply(s, p.actions, d);
    const g = after.filters.find((x) => x.key === f.key)!;
    assert.ok(g.link?.attached && g.link.progId === g.program?.id, 'attached again with the pinned program');
    assert.deepEqual([g.policies, g.slots, g.fingerprint, g.program], [f.policies, f.slots, f.fingerprint, f.program], 'the kept state is as it was');
    kit.assertConverged(d, after, env);
    assert.deepEqual(changes(planOf(kit, d, after, env)), []);
  }
});

test('a filter full: the policy (by name) whose rules would exceed what a filter holds fails naming the limit; the others converge', () => {
  const rules = (prefix: string, n: number): PacketFilterRule[] =>
    Array.from({ length: n }, (_, i) => ({
      name: `${prefix}${i}`,
      protocol: 'tcp',
      srcPrefixes: undefined,
      dstPrefixes: undefined,
      srcPorts: undefined,
      dstPorts: [{ start: 1 + (i % 60000), end: 1 + (i % 60000) }],
      action: 'drop',
      mode: 'enforce',
    }));
  const desired = desiredFilters([policy('a', rules('a', 10_000)), policy('b', rules('b', 7_000)), policy('c', rules('c', 3))]);
  const full = desired.problems.find((p) => p.reason === 'FilterFull');
  assert.ok(full, JSON.stringify(desired.problems));
  assert.equal(full.policy, 'b');
  assert.match(full.message, /the policies a, b have 17000 rules on xdp of eth0, more than the 16383 a filter holds; b is not applied there/);
  assert.deepEqual(
    desired.filters.map((f) => f.policies.map((p) => p.name)),
    [['a', 'c']],
    'a and c share the filter; b is left out',
  );
});

test('a kind whose plan throws (a bug) leaves its pins alone and its policies Failed (PlanFailed); the other kinds are planned as usual', () => {
  const s = applied(desiredFilters([policy('p', [drop23])]));
  const broken = { ...kit.kind, plan: () => { throw new RangeError('value out of range'); } };
  const p = policy('p', [drop23]);
  const plan = planKinds(
    [
      { kind: broken, policies: [p], desired: desiredFilters([p]), observed: s },
      { kind: portSteeringKit.kind, policies: [], desired: portSteeringKit.none(), observed: { ...portSteeringKit.empty() } },
    ],
    [],
    noFailures,
  );
  assert.deepEqual(changes(plan), [], 'nothing of the broken kind is changed');
  assert.deepEqual(
    plan.problems.map((x) => `${x.policy} ${x.condition} ${x.reason}: ${x.message}`),
    ['p Failed PlanFailed: planning PacketFilter failed: value out of range; nothing of this kind is changed this pass'],
  );
});
