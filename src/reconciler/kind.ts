/**
 * The contract between the engine and one kind of policy: the reconciler-side
 * counterpart of the policy layer's {@link PolicyKind}, as a controller-runtime
 * Reconciler or a Terraform provider is to its core. The engine (plan merge
 * and phase order, apply with failure isolation, status, rendering), the
 * daemon (drift, metrics, fingerprint) and the CLI loop over registered kinds
 * and know none of them; a kind knows nothing of the others.
 *
 * A kind owns one directory under the pin root ({@link ReconcilerKind.pinDir})
 * and never touches another kind's pins. Its desired and observed states are
 * its own plain data; its plan is a pure function of them.
 */
import type { AnyPolicyKind, DesiredPolicyBase } from '../policy/kind.js';
import type { PolicyTestChecker, PolicyTestCase, PolicyTestResult } from '../policy/policy-test.js';
import type { Action, Operation, PlanProblem, PolicyStatus } from './model.js';

/** What a kind gets when it resolves policies or runs an operation. */
export interface KindEnv {
  /** The pin root; the kind's pins live under ROOT/{@link ReconcilerKind.pinDir}. */
  root: string;
  /** Absolute paths of policy files that failed to load: what came from them stays as it is. */
  failedFiles: ReadonlySet<string>;
  /** This kind's options (e.g. which compiled object to load), from the reconcile options. */
  options: Readonly<Record<string, unknown>>;
  /** While an apply runs (in `execute`): handles the kind may keep open until the apply ends. */
  scope?: ApplyScope;
}

/**
 * Handles a kind keeps open across the operations of one apply (see
 * apply-scope.ts); the engine closes them when the apply ends.
 */
export interface ApplyScope {
  /** The handle kept under `key`, opened with `open` the first time this apply asks for it. Throws what `open` throws. */
  keep<T extends Disposable>(key: string, open: () => T): T;
  /** Closes and forgets the handles whose keys start with `prefix` (before the objects they came from are replaced or removed). */
  forget(prefix: string): void;
}

/** What planning gets besides the two states. */
export interface PlanEnv {
  root: string;
  failedFiles: ReadonlySet<string>;
}

/** A kind's plan: actions with reasons, and the problems that keep policies from converging. */
export interface KindPlan {
  actions: Action[];
  problems: PlanProblem[];
}

/** What a kind says about one of its policies, for the engine to compute its conditions. */
export interface PolicyView {
  name: string;
  sourceFile: string | null;
  netns: string | null;
  /** A loaded policy document defines it (false: only the kernel remembers it). */
  desired: boolean;
  /** Failure domains whose pending or failed actions concern this policy (besides actions naming it). */
  domains: string[];
  /** Why the kernel does not (yet) run this policy, when nothing is pending; undefined when it does. */
  notReady?: { reason: string; message: string };
  /** The Ready condition's message when it is ready (default: `the kernel matches the policy`). */
  readyMessage?: string;
  /** The kind's own status fields (ids, counters, interfaces), merged into the status object. */
  details: Record<string, unknown>;
}

/** What a status computation gets. */
export interface StatusInput<D, O> {
  desired: D;
  observed: O;
  /** Whether to read counters from the kernel (false: conditions only, e.g. for the daemon's pass log). */
  readCounters: boolean;
  /** How many of its largest counters a kind lists per policy where it keeps many (`status --top N`); undefined: the kind's default. */
  top?: number;
  /** Whether to list the contents of the maps a kind holds for the user, decoded (`status --show-maps`). */
  showMaps?: boolean;
}

/** One metric family a kind exports (read at scrape time). */
export interface MetricFamily {
  /** Full name, e.g. `ebpf_policy_filter_rule_packets_total`. */
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  labelNames: readonly string[];
}

/** A sample of a metric family. */
export interface MetricSample {
  labels: Record<string, string>;
  value: number;
}

/** What a drift probe saw: differences from the expectation, and waiting policies that can make progress now. */
export interface DriftFindings {
  drift: string[];
  unblocked: string[];
}

/** One event as the `events` command prints it. */
export interface KindEvent {
  /** One readable line. */
  text: string;
  /** The event as one JSON object (keys in a fixed order). */
  json: Record<string, unknown>;
}

/** A stream of a kind's events (e.g. sampled drops). Owns what it opened; close() is idempotent. */
export interface EventStream {
  /** How many kernel sources (ring buffers) the stream reads now. */
  readonly sources: number;
  /** The events that arrived since the last call; never blocks. */
  poll(): KindEvent[];
  /** Picks up sources that appeared or vanished since the last call. */
  refresh(): void;
  close(): void;
}

/** What a kind's policy test runner gets. */
export interface PolicyTestEnv {
  /** This kind's options (e.g. which compiled object to load), as for reconcile. */
  options: Readonly<Record<string, unknown>>;
}

/**
 * Runs PolicyTest cases through a kind's real program (`ebpf-policy test`):
 * with private, unpinned maps filled as reconcile fills them; never touches
 * pins, links or interfaces.
 */
export interface KindPolicyTest extends PolicyTestChecker {
  /**
   * Runs `cases` (already checked) against `policy`, one result per case in
   * order. A case that cannot run here (e.g. its target socket does not
   * exist) is a result with status `error`; throws only for failures of the
   * whole run (the program does not load).
   */
  run(policy: DesiredPolicyBase, cases: readonly PolicyTestCase[], env: PolicyTestEnv): PolicyTestResult[];
}

/**
 * One kind of policy, as the engine drives it.
 * @typeParam D the kind's desired state (plain data, resolved against the system).
 * @typeParam O the kind's observed state (plain data, read from its pins).
 * @typeParam E the kind's drift expectation (plain data).
 */
export interface ReconcilerKind<D = unknown, O = unknown, E = unknown> {
  /** The documents' `kind` value, e.g. `PortSteering`. */
  readonly kind: string;
  /** The policy-layer half: schema, checks, normalization, conflicts. */
  readonly document: AnyPolicyKind;
  /** The directory under the pin root that this kind owns (one path segment, e.g. `netns`). */
  readonly pinDir: string;

  /**
   * Resolves this kind's valid policies (namespaces, targets, interfaces)
   * against the system. Reads only; never throws for a policy that cannot be
   * resolved: that is a problem in the desired state, planned as such.
   */
  desired(policies: readonly DesiredPolicyBase[], env: KindEnv): D;

  /**
   * Reads the kind's pins under `root`. Only a missing pin (ENOENT) reads as
   * absent; any other error opening a pin is reported in the observed state
   * (that object's failure domain is left alone) or thrown (the whole kind is
   * left alone this pass).
   */
  observe(root: string): O;

  /** Pure and deterministic: the actions that take `observed` to `desired`, each with a reason. */
  plan(desired: D, observed: O, env: PlanEnv): KindPlan;

  /** Runs one operation of this kind's plan against the kernel. Throws what the kernel layer throws. */
  execute(op: Operation, env: KindEnv): void;

  /** The kind's policies as status views (the engine adds the conditions). */
  policies(input: StatusInput<D, O>): PolicyView[];

  /** Readable lines of this kind's policies' statuses (`status` without --output json). */
  renderStatus(statuses: readonly PolicyStatus[]): string[];

  /** Tags of the programs the desired state runs: part of the daemon's input fingerprint. */
  programTags(desired: D): string[];

  /** Removes everything the kind has under `root` that unpinning alone would not undo (e.g. cls_bpf filters); returns what it removed. */
  teardown?(root: string): string[];

  /** The drift probe: an expectation taken after a pass, and a cheap look at the kernel against it. */
  drift?: {
    expect(desired: D, observed: O, env: PlanEnv): E;
    probe(expectation: E, env: KindEnv): DriftFindings;
  };

  /** Events the kind's programs emit (for `ebpf-policy events`): opens a stream of every policy's, or of one policy's. */
  events?: {
    open(root: string, policy?: string): EventStream;
  };

  /** Checks and runs PolicyTest cases for this kind's policies; absent: `ebpf-policy test` does not support the kind yet. */
  policyTest?: KindPolicyTest;

  /** Metrics read at scrape time from the state of the last pass. */
  metrics?: {
    families: readonly MetricFamily[];
    collect(desired: D, observed: O): Record<string, MetricSample[]>;
  };
}

/** A kind with its data types erased, as held by the registry and the engine. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyReconcilerKind = ReconcilerKind<any, any, any>;
