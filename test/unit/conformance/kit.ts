/**
 * The conformance kit: what the shared property tests (conformance.test.ts)
 * need of one registered kind to check it without a kernel — random desired
 * states, a fake kernel that applies the kind's operations to its observed
 * state as the real store would, and what "converged" means for the kind.
 * Every kind in src/kinds/registry.ts has one (see registry.ts here).
 *
 * Not a test file itself: the kits and the helpers below are imported by
 * the tests.
 */
import type fc from 'fast-check';
import { KINDS } from '../../../src/kinds/registry.js';
import type { PlanEnv, ReconcilerKind } from '../../../src/reconciler/kind.js';
import type { Action, Plan } from '../../../src/reconciler/model.js';
import { changes, planKinds } from '../../../src/reconciler/plan.js';

/** Actions that change something (re-exported from the engine for the tests). */
export { changes };

/** The pin root every kit plans under. */
export const ROOT = '/sys/fs/bpf/ebpf-policy';

/** A random desired state of one kind, and the policy files its policies come from. */
export interface Scenario<D> {
  desired: D;
  /** Absolute paths of the files the policies come from (sorted, distinct). */
  files: string[];
}

/**
 * Something that happens to a kind's pins between two passes — a crash
 * leftover, another tool detaching a link, an older version's program —
 * as plain data, so that counterexamples print. `what` is one of the kit's
 * {@link ConformanceKit.damages}; `target` picks the object it hits (modulo
 * how many there are).
 */
export interface Damage {
  what: string;
  target: number;
}

/**
 * A kernel in memory for one kind: applies the operations of a plan to a
 * copy of the observed state, as the kind's store would, and refuses
 * (throws) where the kernel or the store would fail: an object that does
 * not exist, a map whose pin is missing, pins that could not be read, an
 * atomic program swap on a link that does not run the expected program.
 */
export interface FakeKernel<D, O> {
  /** The observed state after running `actions` in order (the input is not changed). `desired` resolves what the kernel would look up (sockets, program tags). */
  apply(observed: O, actions: readonly Action[], desired: D): O;
  /** Operation types whose effect the observed state does not show (e.g. counters reset): dropping one from a plan cannot be detected. */
  readonly unobservable: readonly string[];
}

/**
 * A bug of the kind's plan that the suite knows of (see the kind's todo
 * tests): the properties skip the inputs that hit it, and a todo test runs
 * them without skipping. Remove the entry when the bug is fixed.
 */
export interface KnownBug<D, O> {
  /** What goes wrong, and where in src/. */
  readonly what: string;
  /** Whether planning `desired` from `observed` under `env` hits the bug. */
  hits(desired: D, observed: O, env: PlanEnv): boolean;
}

/**
 * What the conformance suite needs of one kind.
 * @typeParam D the kind's desired state.
 * @typeParam O the kind's observed state.
 */
export interface ConformanceKit<D, O> {
  /** The real kind, as registered in src/kinds/registry.ts (found by name with {@link registeredKind}). */
  readonly kind: ReconcilerKind<D, O, unknown>;
  /** The observed state of a root without any of the kind's pins. */
  empty(): O;
  /** The desired state with no policy of this kind. */
  none(): D;
  /** Random desired states (no file failed) whose policies come from a few files. */
  readonly arbScenario: fc.Arbitrary<Scenario<D>>;
  /**
   * The desired state as if `files` failed to load and none of their
   * documents loaded: their policies are gone. Planned with those files
   * (and any the state already had failed) in `env.failedFiles`.
   */
  withFilesFailed(desired: D, files: readonly string[]): D;
  /**
   * The desired state as if `files` have errors but their other documents
   * still loaded: the policies stay and come from failed files. Planned
   * with those files in `env.failedFiles`.
   */
  withFilesInvalid(desired: D, files: readonly string[]): D;
  /** The kinds of {@link Damage} the kit can do to an observed state. */
  readonly damages: readonly string[];
  /** The observed state after `damage` (a copy; the input is not changed). */
  damage(observed: O, damage: readonly Damage[]): O;
  /** The fake kernel. */
  readonly fake: FakeKernel<D, O>;
  /**
   * Throws (an AssertionError naming what differs) unless `observed` is
   * what the kernel should hold for `desired`, for the policies that can be
   * applied: those of files in `env.failedFiles` and those that cannot be
   * resolved keep what they had.
   */
  assertConverged(desired: D, observed: O, env: PlanEnv): void;
  /**
   * What `observed` holds that came from the failed files `failed` and
   * that no policy of `desired` from a file that loaded takes over: plain
   * data, which planning and applying with those files failed must leave
   * exactly as it is.
   */
  heldFrom(observed: O, failed: ReadonlySet<string>, desired: D): unknown;
  /** Known bugs of the kind's plan (empty when there are none). */
  readonly knownBugs: readonly KnownBug<D, O>[];
}

/** A kit with its data types erased, as the registry lists it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyConformanceKit = ConformanceKit<any, any>;

/** The registered kind named `name` (throws if no such kind is registered). */
export function registeredKind<D, O>(name: string): ReconcilerKind<D, O, unknown> {
  const kind = KINDS.find((k) => k.kind === name);
  if (!kind) throw new Error(`no kind ${name} in src/kinds/registry.ts (KINDS: ${KINDS.map((k) => k.kind).join(', ')})`);
  return kind as ReconcilerKind<D, O, unknown>;
}

/** The environment of a pass under {@link ROOT} with `failed` files. */
export function envOf(failed: Iterable<string> = []): PlanEnv {
  return { root: ROOT, failedFiles: new Set(failed) };
}

/** The kind's plan as the engine makes it when the kind is the only one: owners set, actions in phase order. */
export function planOf<D, O>(kit: ConformanceKit<D, O>, desired: D, observed: O, env: PlanEnv): Plan {
  return planKinds([{ kind: kit.kind, policies: [], desired, observed }], [], env);
}

/** Plans `desired` from `observed` and applies the plan with the fake kernel: the state a pass leaves. */
export function pass<D, O>(kit: ConformanceKit<D, O>, desired: D, observed: O, env: PlanEnv): O {
  return kit.fake.apply(observed, planOf(kit, desired, observed, env).actions, desired);
}

/** Every string at a key `dir` or `path`, anywhere inside `value` (the paths an operation touches). */
export function pathsIn(value: unknown): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        if ((k === 'dir' || k === 'path') && typeof x === 'string') out.push(x);
        else walk(x);
      }
  };
  walk(value);
  return out;
}

/** Actions as `kind operation` strings, e.g. `replace relink`. */
export function kindsOf(actions: readonly Action[]): string[] {
  return actions.map((a) => `${a.kind} ${a.op.type}`);
}
