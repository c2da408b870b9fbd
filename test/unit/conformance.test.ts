/**
 * One conformance suite over every registered kind: the same properties of
 * the pure plan, checked for each kind in src/kinds/registry.ts with its
 * kit (test/unit/conformance/): applying a plan with the kind's fake kernel
 * yields the desired state and planning again changes nothing; planning is
 * pure and deterministic; failed files change and delete nothing of what
 * came from them; actions run in phase order with a reason and a code; a
 * kind touches only its own pins.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { KINDS } from '../../src/kinds/registry.js';
import { PHASES, type Action } from '../../src/reconciler/model.js';
import { planKinds, REMOVE_ROOT_STRAY, type KindState } from '../../src/reconciler/plan.js';
import { changes, envOf, pathsIn, planOf, ROOT, type ConformanceKit, type Damage, type Scenario } from './conformance/kit.js';
import { KITS, kitProblems } from './conformance/registry.js';

/** Runs of each property, per kind (CONFORMANCE_RUNS=n for a deeper search). */
const RUNS = Number(process.env.CONFORMANCE_RUNS ?? 150);
/** fast-check's parameters: a failure reports the assertion that failed. */
const PARAMS = { numRuns: RUNS, includeErrorInReport: true };

/** How the files that fail in a transition fail: not at all, with every document lost, or with their other documents still loaded. */
type FailMode = 'none' | 'vanished' | 'invalid';

/** One pass from a converged state of `before` to `after`, with damage in between and some files failed. */
interface Transition<D> {
  before: Scenario<D>;
  /** What the next pass wants: `before` again (only the damage to repair), or another scenario. */
  after: Scenario<D>;
  damage: Damage[];
  failMode: FailMode;
  /** Bit i set: the i-th file (of before's and after's, sorted) fails. */
  failBits: number;
}

function arbDamage<D, O>(kit: ConformanceKit<D, O>): fc.Arbitrary<Damage[]> {
  return fc.array(fc.record({ what: fc.constantFrom(...kit.damages), target: fc.nat(7) }), { maxLength: 4 });
}

function arbTransition<D, O>(kit: ConformanceKit<D, O>): fc.Arbitrary<Transition<D>> {
  return fc
    .record({
      before: kit.arbScenario,
      next: fc.option(kit.arbScenario, { nil: undefined, freq: 3 }),
      damage: arbDamage(kit),
      failMode: fc.constantFrom<FailMode>('none', 'vanished', 'invalid'),
      failBits: fc.nat(),
    })
    .map(({ next, ...t }) => ({ ...t, after: next ?? t.before }));
}

/** The files whose bit is set in `bits` (at least one of them when `atLeastOne` and there are files). */
function pickFiles(files: readonly string[], bits: number, atLeastOne = false): string[] {
  const picked = files.filter((_, i) => (bits >> i) & 1);
  return picked.length === 0 && atLeastOne && files.length > 0 ? [files[bits % files.length]!] : picked;
}

/** The desired state of `after` with `files` failed as `mode` says. */
function failing<D, O>(kit: ConformanceKit<D, O>, desired: D, files: readonly string[], mode: FailMode): D {
  if (mode === 'vanished') return kit.withFilesFailed(desired, files);
  if (mode === 'invalid') return kit.withFilesInvalid(desired, files);
  return desired;
}

/** Converges `desired` from a root without pins (checking it), and returns the state. */
function converged<D, O>(kit: ConformanceKit<D, O>, desired: D): O {
  const env = envOf();
  const s = kit.fake.apply(kit.empty(), planOf(kit, desired, kit.empty(), env).actions, desired);
  kit.assertConverged(desired, s, env);
  assert.deepEqual(changes(planOf(kit, desired, s, env)), [], 'a second plan changes nothing');
  return s;
}

/** The state a transition starts from, and what it plans for. */
function setUp<D, O>(kit: ConformanceKit<D, O>, t: Transition<D>) {
  const s1 = converged(kit, t.before.desired);
  const damaged = kit.damage(s1, t.damage);
  const failed = t.failMode === 'none' ? [] : pickFiles([...new Set([...t.before.files, ...t.after.files])].sort(), t.failBits);
  const desired = failing(kit, t.after.desired, failed, t.failMode);
  const env = envOf(failed);
  return { s1, damaged, failed, desired, env, knownBug: kit.knownBugs.find((b) => b.hits(desired, damaged, env)) };
}

/** Whether `path` is the pin directory `pinDir` of a kind (a kind whose one object is its directory, e.g. ROOT/syscalls) or lies under it. */
function inPinDir(path: string, pinDir: string): boolean {
  return path === `${ROOT}/${pinDir}` || path.startsWith(`${ROOT}/${pinDir}/`);
}

function describeAction(a: Action): string {
  return `${a.kind} ${a.phase} ${a.object} (${a.op.type})`;
}

/** The conformance properties of one kind. */
function conformance<D, O>(kit: ConformanceKit<D, O>): void {
  const name = kit.kind.kind;

  /** The convergence property; `skipKnownBugs`: inputs that hit a known bug of the plan are skipped. */
  const convergence = (skipKnownBugs: boolean) =>
    fc.assert(
      fc.property(arbTransition(kit), (t) => {
        const { damaged, desired, env, knownBug } = setUp(kit, t);
        if (skipKnownBugs) fc.pre(knownBug === undefined);
        const inputs = structuredClone({ desired, damaged });
        const p = planOf(kit, desired, damaged, env);
        assert.deepEqual({ desired, damaged }, inputs, 'planning changes neither the desired nor the observed state');
        assert.deepEqual(planOf(kit, inputs.desired, inputs.damaged, env), p, 'the same inputs give the same plan');
        const s2 = kit.fake.apply(damaged, p.actions, desired);
        assert.deepEqual(damaged, inputs.damaged, 'the fake kernel changes a copy');
        kit.assertConverged(desired, s2, env);
        assert.deepEqual(changes(planOf(kit, desired, s2, env)), [], 'planning again changes nothing');
      }),
      PARAMS,
    );

  test(`${name}: applying a plan yields the desired state, planning again changes nothing, and planning is pure and deterministic`, () => convergence(true));

  if (kit.knownBugs.length > 0)
    test(`${name}: known bugs of the plan (inputs the other properties skip)`, { todo: kit.knownBugs.map((b) => b.what).join('; ') }, () => convergence(false));

  test(`${name}: when files fail, what converged stays as it is: no change at all`, () => {
    fc.assert(
      fc.property(kit.arbScenario, fc.nat(), fc.constantFrom<FailMode>('vanished', 'invalid'), (before, bits, mode) => {
        fc.pre(before.files.length > 0);
        const s1 = converged(kit, before.desired);
        // Some or all of the files fail; their policies vanish from the documents, or stay marked as from failed files.
        const failed = pickFiles(before.files, bits, true);
        const p = planOf(kit, failing(kit, before.desired, failed, mode), s1, envOf(failed));
        assert.deepEqual(changes(p).map(describeAction), [], `nothing changes when ${failed.join(', ')} fail (${mode})`);
      }),
      PARAMS,
    );
  });

  test(`${name}: a failed file never deletes or changes what came from it, whatever else changes`, () => {
    fc.assert(
      fc.property(kit.arbScenario, kit.arbScenario, fc.nat(), fc.nat(), fc.constantFrom<FailMode>('vanished', 'invalid'), (before, after, bits, more, mode) => {
        fc.pre(before.files.length > 0);
        const s1 = converged(kit, before.desired);
        const failed = [...new Set([...pickFiles(before.files, bits, true), ...pickFiles(after.files, more)])].sort();
        const desired = failing(kit, after.desired, failed, mode);
        const env = envOf(failed);
        const failedSet = new Set(failed);
        const held = kit.heldFrom(s1, failedSet, desired);
        const s2 = kit.fake.apply(s1, planOf(kit, desired, s1, env).actions, desired);
        assert.deepEqual(kit.heldFrom(s2, failedSet, desired), held, `what came from ${failed.join(', ')} is as it was`);
      }),
      PARAMS,
    );
  });

  test(`${name}: actions come in phase order (dispatcher, add, remove, gc), each with an owner, a reason and a code`, () => {
    fc.assert(
      fc.property(arbTransition(kit), (t) => {
        const { damaged, desired, env, knownBug } = setUp(kit, t);
        fc.pre(knownBug === undefined);
        const p = planOf(kit, desired, damaged, env);
        const own = kit.kind.plan(desired, damaged, env).actions;
        for (const a of own) {
          assert.ok(PHASES.includes(a.phase), `${describeAction(a)}: a known phase`);
          // Adds before removes: what deletes runs after every addition, what creates or changes runs before every removal.
          if (a.kind === 'delete') assert.ok(a.phase === 'remove' || a.phase === 'gc', `${describeAction(a)}: a deletion in a removing phase`);
          if (a.kind === 'create' || a.kind === 'update' || a.kind === 'replace')
            assert.ok(a.phase === 'dispatcher' || a.phase === 'add', `${describeAction(a)}: an addition in an adding phase`);
        }
        const phases = p.actions.map((a) => PHASES.indexOf(a.phase));
        assert.deepEqual(phases, [...phases].sort((a, b) => a - b), 'phases in order');
        // The engine keeps each phase in the kind's own order: the kind's plan, stably sorted by phase.
        assert.deepEqual(
          p.actions,
          PHASES.flatMap((phase) => own.filter((a) => a.phase === phase)).map((a) => ({ ...a, owner: name })),
          'the engine keeps the kind order within a phase',
        );
        for (const a of p.actions) {
          assert.equal(a.owner, name, `${describeAction(a)}: owner`);
          assert.ok(typeof a.reason === 'string' && a.reason.length > 0, `${describeAction(a)}: reason`);
          assert.ok(typeof a.code === 'string' && /^[A-Z][A-Za-z]+$/.test(a.code), `${describeAction(a)}: code ${a.code}`);
        }
        for (const x of p.problems) assert.ok(x.reason.length > 0 && x.message.length > 0, `problem of ${x.policy} has a reason and a message`);
      }),
      PARAMS,
    );
  });

  test(`${name}: every path an operation touches is ROOT/${kit.kind.pinDir} or lies under it`, () => {
    fc.assert(
      fc.property(arbTransition(kit), (t) => {
        const { damaged, desired, env, knownBug } = setUp(kit, t);
        fc.pre(knownBug === undefined);
        const actions = [...planOf(kit, t.before.desired, kit.empty(), envOf()).actions, ...planOf(kit, desired, damaged, env).actions];
        for (const a of actions) {
          assert.notEqual(a.op.type, REMOVE_ROOT_STRAY, `${describeAction(a)}: only the engine removes entries of the root`);
          for (const path of pathsIn(a.op)) {
            assert.ok(inPinDir(path, kit.kind.pinDir), `${describeAction(a)}: ${path} is not in ${ROOT}/${kit.kind.pinDir}`);
            assert.ok(!path.split('/').includes('..'), `${describeAction(a)}: ${path} climbs out`);
          }
        }
      }),
      PARAMS,
    );
  });

  test(`${name}: reads only ROOT/${kit.kind.pinDir}: other kinds' pins and other entries of the root are not its state, and planning leaves them alone`, () => {
    const root = mkdtempSync(join(tmpdir(), 'ebpf-policy-conformance-'));
    try {
      // Other kinds' directories, shaped like either layout, and an entry no kind owns.
      for (const other of KINDS.filter((k) => k !== kit.kind)) {
        mkdirSync(join(root, other.pinDir, 'ino-1', 'xdp-2'), { recursive: true });
        mkdirSync(join(root, other.pinDir, 'ino-2'), { recursive: true });
        writeFileSync(join(root, other.pinDir, 'ino-2', 'program'), '');
      }
      mkdirSync(join(root, 'junk'));
      assert.deepEqual(kit.kind.observe(root), kit.empty(), 'without its own directory, the kind sees nothing');
      mkdirSync(join(root, kit.kind.pinDir));
      const observed = kit.kind.observe(root) as O;
      assert.deepEqual(observed, kit.empty(), 'with its own directory empty, the kind sees nothing');
      assert.deepEqual(changes(planOf(kit, kit.none(), observed, { root, failedFiles: new Set() })).map(describeAction), [], 'nothing to do');
    } finally {
      rmSync(root, { recursive: true });
    }
  });

  test(`${name}: the kit's checks can fail: a plan missing one of its changes does not converge`, () => {
    fc.assert(
      fc.property(kit.arbScenario, fc.nat(), (scenario, pick) => {
        const env = envOf();
        const p = planOf(kit, scenario.desired, kit.empty(), env);
        const droppable = p.actions.flatMap((a, i) => (a.kind !== 'noop' && !kit.fake.unobservable.includes(a.op.type) ? [i] : []));
        fc.pre(droppable.length > 0);
        const drop = droppable[pick % droppable.length]!;
        const actions = p.actions.filter((_, i) => i !== drop);
        assert.throws(() => kit.assertConverged(scenario.desired, kit.fake.apply(kit.empty(), actions, scenario.desired), env), `without ${describeAction(p.actions[drop]!)}`);
      }),
      PARAMS,
    );
  });
}

test('every registered kind has a conformance kit, and owns a pin directory of its own', () => {
  assert.deepEqual(kitProblems(), []);
  assert.deepEqual(
    KITS.map((k) => k.kind.kind),
    KINDS.map((k) => k.kind),
  );
});

for (const kit of KITS) conformance(kit);

test('the engine plans every kind together as each alone: merged by phase, each action in its owner\'s pins', () => {
  fc.assert(
    fc.property(fc.tuple(...KITS.map((k) => fc.tuple(k.arbScenario, k.arbScenario))), (pairs) => {
      const env = envOf();
      const states: KindState[] = KITS.map((kit, i) => {
        const [before, after] = pairs[i]!;
        return { kind: kit.kind, policies: [], desired: after.desired, observed: converged(kit, before.desired) };
      });
      const all = planKinds(states, [], env);
      const alone = states.map((s) => planKinds([s], [], env));
      assert.deepEqual(
        all.actions,
        PHASES.flatMap((phase) => alone.flatMap((p) => p.actions.filter((a) => a.phase === phase))),
      );
      assert.deepEqual(all.problems, alone.flatMap((p) => p.problems));
      for (const a of all.actions) {
        const kind = KINDS.find((k) => k.kind === a.owner)!;
        for (const path of pathsIn(a.op)) assert.ok(inPinDir(path, kind.pinDir), `${a.owner} ${describeAction(a)}: ${path}`);
      }
    }),
    PARAMS,
  );
});
