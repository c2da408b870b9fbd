/**
 * PortSteering's plan beyond the shared conformance properties
 * (conformance.test.ts): examples of repairs, dispatchers whose pins cannot
 * be read, and the bugs of the plan the suite found (now fixed). Built on the kind's
 * conformance kit (its fake kernel and random policies).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { compareCodeUnits } from '../../src/common/compare.js';
import type { ObservedDispatcherState, SteeringDesired, SteeringObserved } from '../../src/kinds/port-steering/model.js';
import { allocate, bindingEntries, idAllocator } from '../../src/kinds/port-steering/bindings.js';
import { planSteering } from '../../src/kinds/port-steering/plan.js';
import { buildDesired, type Resolver } from '../../src/kinds/port-steering/desired.js';
import { dispatcherDir } from '../../src/kinds/port-steering/store.js';
import { changes, envOf, kindsOf, pass, pathsIn, planOf, ROOT } from './conformance/kit.js';
import { cookieOfPid, OLD_STEERING_TAG, portSteeringKit as kit, STEERING_FILES, STEERING_TAG, steeringFake, steeringPolicy } from './conformance/port-steering.kit.js';

const empty: SteeringObserved = { dispatchers: [], stray: [] };

function desiredOf(...policies: SteeringDesired['policies']): SteeringDesired {
  return { dispatcherTag: STEERING_TAG, policies };
}

/** The state one pass leaves for `desired`, from nothing. */
function applied(desired: SteeringDesired): SteeringObserved {
  const s = pass(kit, desired, empty, envOf());
  kit.assertConverged(desired, s, envOf());
  return s;
}

test('an upgrade of a dispatcher whose link is detached relinks the pinned program first, then swaps the new one into the new link', () => {
  const desired = desiredOf(steeringPolicy('a', { sourceFile: '/p/a.yaml', target: { ok: true, pid: 1, fd: 3, cookie: '9' }, specHash: 'h' }));
  const s = applied(desired);
  const d = s.dispatchers[0] as ObservedDispatcherState;
  d.program = { id: d.program!.id, tag: 'bbbbbbbbbbbbbbbb' };
  d.link!.attached = false;
  const plan = planSteering(desired, s, envOf());
  // A program cannot be swapped into a detached link (ENOLINK): the relink comes first, and the swap expects the program it attaches.
  const dispatcher = plan.actions.filter((a) => a.phase === 'dispatcher');
  assert.deepEqual(dispatcher.map((a) => `${a.kind} ${a.op.type} ${a.code}`), ['replace relink LinkDetached', 'replace replaceProgram BytecodeChanged']);
  assert.deepEqual(dispatcher[1]!.op, { type: 'replaceProgram', dir: d.dir, expectedProgId: d.program.id });
  // Nothing else: no entry is rewritten for a program upgrade.
  assert.deepEqual(changes(plan).filter((a) => a.phase !== 'dispatcher'), []);
  const after = pass(kit, desired, s, envOf());
  kit.assertConverged(desired, after, envOf());
  assert.deepEqual(changes(planOf(kit, desired, after, envOf())), []);
});

test('each repair on its own: a program upgrade swaps the program in the same link; a detached link is relinked with the same program', () => {
  const desired = desiredOf(steeringPolicy('a'));
  const s = applied(desired);
  const before = s.dispatchers[0]!;

  const old = structuredClone(s);
  old.dispatchers[0]!.program!.tag = OLD_STEERING_TAG;
  const upgrade = planOf(kit, desired, old, envOf());
  assert.deepEqual(kindsOf(changes(upgrade)), ['replace replaceProgram']);
  assert.equal(changes(upgrade)[0]!.code, 'BytecodeChanged');
  const upgraded = steeringFake.apply(old, upgrade.actions, desired).dispatchers[0]!;
  assert.equal(upgraded.link?.id, before.link?.id, 'the same link');
  assert.notEqual(upgraded.program?.id, before.program?.id, 'a new program');
  assert.deepEqual([upgraded.records, upgraded.bindings, upgraded.sockets], [before.records, before.bindings, before.sockets], 'records, entries and sockets stay');

  const detached = structuredClone(s);
  detached.dispatchers[0]!.link!.attached = false;
  const relink = planOf(kit, desired, detached, envOf());
  assert.deepEqual(kindsOf(changes(relink)), ['replace relink']);
  assert.equal(changes(relink)[0]!.code, 'LinkDetached');
  const relinked = steeringFake.apply(detached, relink.actions, desired).dispatchers[0]!;
  assert.equal(relinked.program?.id, before.program?.id, 'the same program');
  assert.ok(relinked.link?.attached && relinked.link.id !== before.link?.id, 'a new link');
});

test('a dispatcher whose namespace is gone is removed, even when it keeps a policy of a failed file', () => {
  const desired = desiredOf(steeringPolicy('a', { sourceFile: '/p/a.yaml' }));
  const s = applied(desired);
  s.dispatchers[0]!.link!.attached = false;
  const p = planOf(kit, desiredOf(), s, envOf(['/p/a.yaml']));
  assert.deepEqual(
    changes(p).map((a) => `${a.kind} ${a.op.type} ${a.code}`),
    ['delete removeDispatcher NamespaceGone'],
  );
});

/** A dispatcher whose pins cannot be read, as observe reports it. */
function unreadable(key: string): ObservedDispatcherState {
  return { key, dir: dispatcherDir(ROOT, key), missingMaps: [], bindings: [], records: [], badRecords: [], sockets: {}, stray: [], error: 'EACCES: permission denied' };
}

test('PinsUnreadable: a dispatcher whose pins cannot be read gets no action, and every policy that wants it is Failed', () => {
  const KEYS = ['ino-1', 'ino-2', 'ino-3'];
  fc.assert(
    fc.property(
      kit.arbScenario,
      kit.arbScenario,
      fc.subarray(KEYS, { minLength: 1 }),
      fc.subarray(STEERING_FILES),
      (before, after, keys, failed) => {
        const s1 = applied(before.desired);
        const desired = kit.withFilesFailed(after.desired, failed);
        const env = envOf(failed);
        const observed: SteeringObserved = {
          ...s1,
          dispatchers: [...s1.dispatchers.filter((d) => !keys.includes(d.key)), ...keys.map(unreadable)].sort((a, b) => a.key.localeCompare(b.key)),
        };
        const p = planOf(kit, desired, observed, env);
        for (const key of keys) {
          const dir = dispatcherDir(ROOT, key);
          for (const a of changes(p)) {
            assert.notEqual(a.domain, `dispatcher ${key}`, `${a.object}: no change in the domain of ${key}`);
            for (const path of pathsIn(a.op)) assert.ok(path !== dir && !path.startsWith(`${dir}/`), `${a.object}: ${path} is in ${dir}`);
          }
          assert.ok(
            p.actions.some((a) => a.kind === 'noop' && a.code === 'PinsUnreadable' && a.domain === `dispatcher ${key}`),
            `the plan says ${key} is left alone`,
          );
        }
        const wanting = desired.policies.filter((x) => !failed.includes(x.sourceFile) && x.netnsKey.ok && keys.includes(x.netnsKey.key));
        assert.deepEqual(
          p.problems.filter((x) => x.reason === 'PinsUnreadable').map((x) => `${x.policy} ${x.condition}`).sort(),
          wanting.map((x) => `${x.name} Failed`).sort(),
          'each policy that wants an unreadable dispatcher is Failed, and no other',
        );
        for (const x of p.problems.filter((y) => y.reason === 'PinsUnreadable')) assert.match(x.message, /EACCES: permission denied/);
        // The fake kernel refuses any change to those pins; applying the plan leaves them as they were.
        const s2 = steeringFake.apply(observed, p.actions, desired);
        assert.deepEqual(
          s2.dispatchers.filter((d) => keys.includes(d.key)),
          keys.map(unreadable),
        );
      },
    ),
    { numRuns: 150, includeErrorInReport: true },
  );
});

// Once known bugs of the plan (found by the conformance suite), fixed.

for (const link of ['detached', 'missing', 'runs-other'] as const)
  test(`an upgrade of a dispatcher whose link is ${link} converges in one pass`, () => {
    const desired = desiredOf(steeringPolicy('a'));
    const s = applied(desired);
    const d = s.dispatchers[0]!;
    d.program!.tag = OLD_STEERING_TAG;
    if (link === 'detached') d.link!.attached = false;
    if (link === 'missing') delete d.link;
    if (link === 'runs-other') d.link!.progId = d.program!.id + 100;
    const p = planOf(kit, desired, s, envOf());
    // The swap never goes into a link that cannot take it: a new link comes first; a link running another program takes the swap itself.
    assert.deepEqual(
      changes(p).map((a) => `${a.op.type} ${a.code}`),
      link === 'runs-other' ? ['replaceProgram BytecodeChanged'] : [`relink ${link === 'missing' ? 'LinkMissing' : 'LinkDetached'}`, 'replaceProgram BytecodeChanged'],
    );
    const after = steeringFake.apply(s, p.actions, desired);
    kit.assertConverged(desired, after, envOf());
    assert.deepEqual(changes(planOf(kit, desired, after, envOf())), [], 'converged in one pass');
  });

test('a link detached after an upgrade was interrupted (it runs program_next) is relinked, not finished: only an attached link runs a program', () => {
  const desired = desiredOf(steeringPolicy('a'));
  const s = applied(desired);
  const d = s.dispatchers[0]!;
  d.programNext = { id: d.program!.id + 100, tag: STEERING_TAG };
  d.program!.tag = OLD_STEERING_TAG;
  d.link = { ...d.link!, progId: d.programNext.id, attached: false };
  d.stray = [`${d.dir}/program_next`];
  const p = planOf(kit, desired, s, envOf());
  assert.deepEqual(
    changes(p).map((a) => `${a.op.type} ${a.code}`),
    ['relink LinkDetached', 'replaceProgram BytecodeChanged', 'removeStray LeftByInterruptedRun'],
  );
  const after = steeringFake.apply(s, p.actions, desired);
  kit.assertConverged(desired, after, envOf());
  assert.deepEqual(changes(planOf(kit, desired, after, envOf())), []);
});

test('an upgrade interrupted between the link update and the rename (the link runs program_next) is finished, not redone', () => {
  const desired = desiredOf(steeringPolicy('a'));
  const s = applied(desired);
  const d = s.dispatchers[0]!;
  const before = structuredClone(d);
  // swapPinnedProgram: program_next pinned and swapped into the link; the crash comes before the rename.
  d.programNext = { id: d.program!.id + 100, tag: STEERING_TAG };
  d.program!.tag = OLD_STEERING_TAG;
  d.link!.progId = d.programNext.id;
  d.stray = [`${d.dir}/program_next`];
  const p = planOf(kit, desired, s, envOf());
  assert.deepEqual(
    changes(p).map((a) => `${a.kind} ${a.op.type} ${a.code}`),
    ['update finishUpgrade FinishUpgrade'],
  );
  const after = steeringFake.apply(s, p.actions, desired);
  kit.assertConverged(desired, after, envOf());
  assert.deepEqual(after.dispatchers[0]!.program, { id: d.programNext.id, tag: STEERING_TAG }, 'program_next is the program now');
  assert.equal(after.dispatchers[0]!.link?.id, before.link?.id, 'the same link');
  assert.deepEqual(changes(planOf(kit, desired, after, envOf())), []);
});

test('a program_next that nothing runs (an upgrade interrupted before the swap) is removed as stray', () => {
  const desired = desiredOf(steeringPolicy('a'));
  const s = applied(desired);
  const d = s.dispatchers[0]!;
  d.programNext = { id: d.program!.id + 100, tag: STEERING_TAG };
  d.stray = [`${d.dir}/program_next`];
  const p = planOf(kit, desired, s, envOf());
  assert.deepEqual(
    changes(p).map((a) => `${a.kind} ${a.op.type} ${a.code}`),
    ['delete removeStray LeftByInterruptedRun'],
  );
  kit.assertConverged(desired, steeringFake.apply(s, p.actions, desired), envOf());
});

test('an incomplete dispatcher that only keeps a policy of a failed file is left as it is', () => {
  const desired = desiredOf(steeringPolicy('a', { sourceFile: '/p/a.yaml' }));
  const s = applied(desired);
  s.dispatchers[0]!.missingMaps = ['sockets'];
  const env = envOf(['/p/a.yaml']);
  for (const d of [desiredOf(), desired]) {
    const p = planOf(kit, d, s, env);
    assert.deepEqual(kindsOf(changes(p)), [], 'nothing is rebuilt or removed');
    assert.ok(p.actions.some((a) => a.kind === 'noop' && a.code === 'KeptIncomplete' && a.domain === 'dispatcher ino-1'), 'the plan says why');
    assert.deepEqual(steeringFake.apply(s, p.actions, d), s);
  }
});

test('an incomplete dispatcher rebuilt for an applied policy writes the kept policies\' records and entries again', () => {
  const a = steeringPolicy('a', { sourceFile: '/p/a.yaml' });
  const b = steeringPolicy('b', { sourceFile: '/p/b.yaml', ports: [{ start: 90, end: 91 }], target: { ok: true, pid: 2, fd: 3, cookie: cookieOfPid(2) } });
  const s = applied(desiredOf(a, b));
  const kept = s.dispatchers[0]!.records.find((r) => r.name === 'a')!;
  s.dispatchers[0]!.missingMaps = ['bindings'];
  s.dispatchers[0]!.bindings = [];
  const env = envOf(['/p/a.yaml']);
  const desired = desiredOf(b);
  const p = planOf(kit, desired, s, env);
  assert.deepEqual(
    changes(p).map((x) => `${x.op.type} ${x.code}${x.policy ? ` ${x.policy}` : ''}`),
    ['createDispatcher Incomplete', 'writeRecord KeptAcrossRebuild a', 'upsertBindings KeptAcrossRebuild a', 'writeRecord NewPolicy b', 'resetCounters NewBindings b', 'putSocket SteerToTarget b', 'upsertBindings BindingsToAdd b'],
  );
  const after = steeringFake.apply(s, p.actions, desired);
  kit.assertConverged(desired, after, env);
  const d = after.dispatchers[0]!;
  assert.deepEqual(d.records.find((r) => r.name === 'a'), kept, 'the kept record is as it was');
  assert.equal(d.bindings.filter((e) => e.destId === kept.destId).length, kept.bindings.flatMap((x) => bindingEntries(kept.protocol, x, kept.destId)).length, 'with its entries');
  assert.deepEqual(changes(planOf(kit, desired, after, env)), []);
});

test('a policy whose document moved into a file that failed keeps its last applied state, as its Failed condition says', () => {
  const s = applied(desiredOf(steeringPolicy('a', { sourceFile: '/p/two.yaml' })));
  const env = envOf(['/p/one.yaml']);
  const p = planOf(kit, desiredOf(steeringPolicy('a', { sourceFile: '/p/one.yaml' })), s, env);
  assert.ok(p.problems.some((x) => x.policy === 'a' && x.reason === 'InvalidSourceFile' && /keeps its last applied state/.test(x.message)));
  assert.deepEqual(kindsOf(changes(p)), [], 'nothing of a is deleted');
  assert.ok(p.actions.some((a) => a.kind === 'noop' && a.policy === 'a' && a.code === 'KeptForInvalidFile' && a.reason.startsWith('/p/one.yaml failed')));
});

test('a dispatcher full: the policy (by name) that does not fit fails naming the limit; the others converge; one applied before keeps its state', () => {
  // 9 prefixes x 65,535 ports: 589,815 entries each; two of them exceed the 1,048,576 a dispatcher holds.
  const prefixes = Array.from({ length: 9 }, (_, i) => `10.${i}.0.0/16`);
  // b is UDP: it claims no key of a's, yet both live in the same dispatcher.
  const big = (name: string) => steeringPolicy(name, { ports: [{ start: 1, end: 65535 }], prefixes, protocol: name === 'b' ? 'udp' : 'tcp' });
  const small = steeringPolicy('s', { ports: [{ start: 80, end: 80 }] });
  const first = desiredOf(big('a'), small);
  const s = applied(first);
  const p = planSteering(desiredOf(big('a'), big('b'), small), s, envOf());
  const full = p.problems.find((x) => x.reason === 'DispatcherFull');
  assert.ok(full, JSON.stringify(p.problems));
  assert.equal(full.policy, 'b');
  assert.match(full.message, /policy b needs 589815 binding entries, but the dispatcher of network namespace \/run\/netns\/x holds at most 1048576 and the policies before it \(by name\) take 589815/);
  assert.ok(!p.actions.some((a) => a.policy === 'b' && a.kind !== 'noop'), 'nothing of b is written');
  assert.deepEqual(changes(p), [], 'a and s stay as they are');

  // b applied before with a few ports, now grown past the limit: it keeps its last applied state.
  const grown = applied(desiredOf(big('a'), steeringPolicy('b', { ports: [{ start: 80, end: 81 }], prefixes, protocol: 'udp' })));
  const p2 = planSteering(desiredOf(big('a'), big('b')), grown, envOf());
  assert.ok(p2.problems.some((x) => x.policy === 'b' && x.reason === 'DispatcherFull'));
  assert.deepEqual(changes(p2), [], 'nothing of b is deleted');
  assert.ok(p2.actions.some((a) => a.policy === 'b' && a.kind === 'noop' && a.code === 'KeptAtLimit'));
});

test('with no PortSteering policy and no failed file, the dispatcher tag is not asked for (plan loads nothing) and dispatchers are removed', () => {
  let asked = 0;
  const resolver: Resolver = {
    netnsKey: () => {
      throw new Error('not called');
    },
    target: () => {
      throw new Error('not called');
    },
    dispatcherTag: () => {
      asked++;
      return STEERING_TAG;
    },
  };
  const none = buildDesired([], resolver, new Set());
  assert.equal(asked, 0, 'loading the object to learn its tag is not needed');
  assert.deepEqual(none, { dispatcherTag: '', policies: [] });
  const s = applied(desiredOf(steeringPolicy('a', { sourceFile: '/p/a.yaml', target: { ok: true, pid: 1, fd: 3, cookie: '9' }, specHash: 'h' })));
  const plan = planSteering(none, s, envOf());
  assert.ok(plan.actions.some((a) => a.op.type === 'removeDispatcher'), 'the unused dispatcher is removed');
  assert.ok(!plan.actions.some((a) => a.code === 'BytecodeChanged'), 'no tag is compared');
  // A file that failed may hold policies that keep their dispatcher: then the tag is needed.
  assert.equal(buildDesired([], resolver, new Set(['/p/a.yaml'])).dispatcherTag, STEERING_TAG);
  assert.equal(asked, 1);
});

test('entries observed as the very same objects again are not compared again, yet a changed binding, entry or entry count is still planned', () => {
  const one = (ports: { start: number; end: number }[]) => desiredOf(steeringPolicy('a', { ports, prefixes: ['10.0.0.1/32'] }), steeringPolicy('b', { ports: [{ start: 80, end: 99 }], prefixes: ['10.0.0.2/32'] }));
  const desired = one([{ start: 80, end: 89 }]);
  const s = applied(desired);
  const upserted = (d: SteeringDesired, o: SteeringObserved) =>
    changes(planOf(kit, d, o, envOf()))
      .filter((a) => a.op.type === 'upsertBindings')
      .reduce((n, a) => n + (a.op as unknown as { entries: { count: number } }).entries.count, 0);
  // Twice on the same objects: the second answer comes from the memo.
  assert.equal(upserted(structuredClone(desired), s), 0);
  assert.equal(upserted(structuredClone(desired), s), 0);
  // The same observed objects, a binding more in the desired state.
  assert.equal(upserted(one([{ start: 80, end: 90 }]), s), 11);
  const d = s.dispatchers[0]!;
  const withBindings = (bindings: ObservedDispatcherState['bindings']): SteeringObserved => ({ ...s, dispatchers: [{ ...d, bindings }] });
  // One entry of policy a (its last: the memo is found by the first) replaced by a new object with another binding id;
  // every other entry the same object.
  const i = d.bindings.findLastIndex((e) => e.destId === d.records.find((r) => r.name === 'a')!.destId);
  const changed = [...d.bindings];
  changed[i] = { ...d.bindings[i]!, bindingId: d.bindings[i]!.bindingId + 1 };
  assert.equal(upserted(structuredClone(desired), withBindings(changed)), 1);
  // One entry of policy a gone: the same objects, one fewer.
  assert.equal(upserted(structuredClone(desired), withBindings(d.bindings.filter((_, k) => k !== i))), 1);
  assert.equal(upserted(structuredClone(desired), s), 0);
});

test('idAllocator hands out the ids repeated allocate(used, 1, from) calls would, whatever ids are taken already', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 200 }), { maxLength: 120 }), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 150 }), (taken, from, count) => {
      const max = 260;
      const expectedUsed = new Set(taken);
      const expected: Array<number | 'none'> = [];
      for (let i = 0; i < count; i++) {
        try {
          expected.push(allocate(expectedUsed, 1, from, max)[0]!);
        } catch {
          expected.push('none');
        }
      }
      const used = new Set(taken);
      const next = idAllocator(used, from, max);
      const got: Array<number | 'none'> = [];
      for (let i = 0; i < count; i++) {
        try {
          got.push(next());
        } catch (err) {
          assert.ok(err instanceof RangeError);
          got.push('none');
        }
      }
      assert.deepEqual(got, expected);
      assert.deepEqual([...used].sort((a, b) => a - b), [...expectedUsed].sort((a, b) => a - b));
    }),
    { numRuns: 300 },
  );
});

test('the keys a plan deletes are in byte order whatever order the map was read in: a removed policy, a shrunk one and orphaned entries', () => {
  const a = steeringPolicy('a', { ports: [{ start: 80, end: 120 }], prefixes: ['10.0.0.1/32', '2001:db8::/64'] });
  const b = steeringPolicy('b', { ports: [{ start: 1000, end: 1040 }], prefixes: ['10.0.0.2/32'] });
  const s = applied(desiredOf(a, b));
  const d = s.dispatchers[0]!;
  // Entries of a destination no record names: garbage of an interrupted run.
  const orphans = bindingEntries('udp', { start: 5000, end: 5030, prefix: '10.9.9.9/32', id: 777 }, 999).map((e) => ({ key: e.key, destId: 999, bindingId: e.bindingId }));
  const all = [...d.bindings, ...orphans];
  // Policy a keeps ports 80-90 (30 ports fewer on each of its two prefixes); policy b is gone.
  const deleted = (bindings: ObservedDispatcherState['bindings']) =>
    changes(planOf(kit, desiredOf({ ...a, ports: [{ start: 80, end: 90 }] }), { ...s, dispatchers: [{ ...d, bindings }] }, envOf()))
      .filter((x) => x.op.type === 'deleteBindings')
      .map((x) => ({ policy: x.policy ?? null, code: x.code, keys: (x.op as unknown as { keys: string[] }).keys }));
  const inOrder = deleted(all);
  assert.deepEqual(
    inOrder.map((x) => [x.policy, x.keys.length]).sort(),
    [['a', 60], ['b', 41], [null, 31]].sort(),
    "policy a's dropped ports, policy b's entries and the orphans are each deleted",
  );
  for (const { keys } of inOrder) assert.deepEqual(keys, [...keys].sort(compareCodeUnits), 'in byte order');
  // Read in any other order: the same deletions, in the same order.
  fc.assert(
    fc.property(fc.array(fc.nat(), { minLength: all.length, maxLength: all.length }), (weights) => {
      const shuffled = all.map((e, i) => ({ e, w: weights[i]! })).sort((x, y) => x.w - y.w).map((x) => x.e);
      assert.deepEqual(deleted(shuffled), inOrder);
    }),
    { numRuns: 50 },
  );
});

test('a binding another policy takes over in the same plan is written for it and not deleted with the policy that had it', () => {
  const prefixes = ['10.0.0.1/32'];
  const before = desiredOf(steeringPolicy('a', { ports: [{ start: 80, end: 90 }], prefixes }), steeringPolicy('c', { ports: [{ start: 7000, end: 7000 }], prefixes }));
  const s = applied(before);
  // Policy a is gone; policy b, new, claims ports 85-95 of the same prefix (six of a's keys); c stays.
  const after = desiredOf(steeringPolicy('b', { ports: [{ start: 85, end: 95 }], prefixes, target: { ok: true, pid: 2, fd: 3, cookie: cookieOfPid(2) } }), steeringPolicy('c', { ports: [{ start: 7000, end: 7000 }], prefixes }));
  const plan = planOf(kit, after, s, envOf());
  const keysOf = (type: string, policy: string) =>
    changes(plan)
      .filter((x) => x.op.type === type && x.policy === policy)
      .flatMap((x) => (type === 'deleteBindings' ? (x.op as unknown as { keys: string[] }).keys : [...(x.op as unknown as { entries: Iterable<{ key: string }> }).entries].map((e) => e.key)));
  const written = new Set(keysOf('upsertBindings', 'b'));
  const deleted = keysOf('deleteBindings', 'a');
  assert.equal(written.size, 11, "b's eleven entries are written");
  assert.equal(deleted.length, 5, "only a's five keys that b does not take are deleted");
  assert.ok(deleted.every((k) => !written.has(k)), 'no key b writes is deleted');
  const next = pass(kit, after, s, envOf());
  kit.assertConverged(after, next, envOf());
});

test('a policy may not take a binding a kept policy (of a file that failed) still steers: it fails naming the binding and the holder, and nothing of the kept policy changes', () => {
  const prefixes = ['127.0.0.1/32'];
  const web = steeringPolicy('web', { sourceFile: '/p/web.yaml', ports: [{ start: 9000, end: 9010 }], prefixes });
  const s = applied(desiredOf(web));
  // api.yaml is new and claims 9005; the conflict check failed web.yaml (the later file by load order).
  const api = steeringPolicy('api', { sourceFile: '/p/api.yaml', ports: [{ start: 9005, end: 9005 }, { start: 9100, end: 9100 }], prefixes, target: { ok: true, pid: 2, fd: 3, cookie: cookieOfPid(2) } });
  const env = envOf(['/p/web.yaml']);
  const plan = planOf(kit, desiredOf(web, api), s, env);
  const problem = plan.problems.find((x) => x.policy === 'api');
  assert.equal(problem?.reason, 'BindingHeldByKeptPolicy');
  assert.match(problem!.message, /tcp port 9005 for 127\.0\.0\.1\/32 is steered by policy web, which keeps its last applied state because \/p\/web\.yaml failed to validate/);
  assert.deepEqual(changes(plan), [], 'nothing is written: web keeps port 9005 and api takes nothing');
  assert.deepEqual(pass(kit, desiredOf(web, api), s, env), s);
  // Once web.yaml is fixed without port 9005, api is applied.
  const fixed = desiredOf({ ...web, ports: [{ start: 9000, end: 9004 }, { start: 9006, end: 9010 }] }, api);
  const next = pass(kit, fixed, s, envOf());
  kit.assertConverged(fixed, next, envOf());
  // A policy applied before that now claims a kept binding keeps its last applied state.
  const both = applied(desiredOf(web, { ...api, ports: [{ start: 9100, end: 9100 }] }));
  const p2 = planOf(kit, desiredOf(web, api), both, env);
  assert.equal(p2.problems.find((x) => x.policy === 'api')?.reason, 'BindingHeldByKeptPolicy');
  assert.ok(p2.actions.some((a) => a.policy === 'api' && a.kind === 'noop' && a.code === 'KeptForClaimOnKept'));
  assert.deepEqual(changes(p2), [], 'api keeps port 9100 as it was');
  // Whose live bindings are held in turn: a new policy claiming 9100 fails naming api.
  const late = steeringPolicy('late', { sourceFile: '/p/late.yaml', ports: [{ start: 9100, end: 9100 }], prefixes });
  const p3 = planOf(kit, desiredOf(web, api, late), both, env);
  assert.match(p3.problems.find((x) => x.policy === 'late')?.message ?? '', /port 9100 for 127\.0\.0\.1\/32 is steered by policy api, which keeps its last applied state because it claims a binding that policy web keeps/);
  assert.deepEqual(changes(p3), []);
});
