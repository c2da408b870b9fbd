/**
 * Plain data of the engine, the same for every kind: the actions of a plan
 * (with reasons and failure domains), the problems that keep a policy from
 * converging, and policy conditions. What a kind wants, observes and writes is
 * its own data, behind {@link ReconcilerKind} (kind.ts).
 */

/** The kinds of action, as in Terraform. */
export type ActionKind = 'create' | 'update' | 'replace' | 'delete' | 'noop';

/**
 * When an action runs: the kinds' infrastructure first (dispatchers,
 * filters: what policies attach to), then additions, then removals, then
 * garbage collection, so traffic is never briefly unhandled.
 */
export type Phase = 'dispatcher' | 'add' | 'remove' | 'gc';

/** Phases in the order they run. */
export const PHASES: readonly Phase[] = ['dispatcher', 'add', 'remove', 'gc'];

/** A kernel operation of one kind: `type` names it, the rest is the kind's own data. */
export interface Operation {
  type: string;
}

/** One step of a plan, with its reason. */
export interface Action<Op extends Operation = Operation> {
  kind: ActionKind;
  phase: Phase;
  /** What is changed, e.g. `dispatcher ino-4026531840` or `policy web: bindings`. */
  object: string;
  /** The policy kind whose `execute` runs the operation (set by the engine). */
  owner?: string;
  /** The policy this action belongs to: when it fails, the policy's later actions are skipped. */
  policy?: string;
  /**
   * The failure domain (e.g. `dispatcher ino-4026531840`, `filter ino-4026531840/xdp-2`):
   * when an action of the domain without a policy fails, the domain's later actions are skipped.
   */
  domain?: string;
  /** A stable reason code, e.g. `BytecodeChanged`, for machines. */
  code?: string;
  /** Why, in prose. */
  reason: string;
  before?: string;
  after?: string;
  op: Op;
}

/** A policy the plan cannot converge, and why. */
export interface PlanProblem {
  policy: string;
  sourceFile?: string;
  condition: 'Failed' | 'Degraded';
  reason: string;
  message: string;
}

/** The output of planning. */
export interface Plan {
  actions: Action[];
  problems: PlanProblem[];
}

/** One condition of a policy, as in Kubernetes. */
export interface Condition {
  type: 'Ready' | 'Degraded' | 'Failed';
  status: boolean;
  reason: string;
  message: string;
  /** When the condition last changed its status or reason (ISO 8601), when known. */
  lastTransitionTime?: string;
}

/** Status of one policy of any kind; a kind adds its own fields (ids, counters, interfaces). */
export interface PolicyStatus {
  name: string;
  kind: string;
  sourceFile: string | null;
  netns: string | null;
  conditions: Condition[];
  [detail: string]: unknown;
}
