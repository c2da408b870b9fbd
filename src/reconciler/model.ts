/**
 * Plain data the reconciler works on: the desired state (from policy
 * documents, with namespaces and targets resolved), the observed state (from
 * bpffs pins and kernel object info), and the plan between them.
 */
import type { ObservedDispatcher } from '../kinds/port-steering/store.js';
import type { DesiredFilters, FilterOperation, ObservedFilters } from '../kinds/packet-filter/model.js';

/** An inclusive port range. */
export interface Range {
  start: number;
  end: number;
}

/** A resolved steering target: a socket some process holds, and its cookie. */
export type ResolvedTarget =
  | { ok: true; pid: number; fd: number; cookie: string }
  | { ok: false; reason: string };

/** One PortSteering policy, ready to plan. */
export interface DesiredSteering {
  name: string;
  /** Absolute path of the file the policy came from. */
  sourceFile: string;
  /** The namespace path as written (undefined = our own). */
  netns: string | undefined;
  /** Path to open the namespace with (netns, or /proc/self/ns/net). */
  netnsPath: string;
  /** Pin-layout key of the namespace (`ino-N`), or why it could not be resolved. */
  netnsKey: { ok: true; key: string } | { ok: false; reason: string };
  protocol: 'tcp' | 'udp';
  ports: Range[];
  prefixes: string[];
  /** The target as written, e.g. `listen 127.0.0.1:8080` or `pid 1234 fd 3`. */
  targetText: string;
  target: ResolvedTarget;
  /** Hash of everything above that defines the policy (not the resolution). */
  specHash: string;
}

/** What the reconciler wants. */
export interface DesiredState {
  /** The pin root everything lives under. */
  root: string;
  /** Tag of the dispatcher program we ship (what a live program must have). */
  dispatcherTag: string;
  policies: DesiredSteering[];
  /** Absolute paths of files that failed to load or validate: what came from them stays as it is. */
  failedFiles: string[];
  /** PacketFilter policies, resolved (absent: the filters under ROOT/filters are not planned at all). */
  filters?: DesiredFilters;
}

/** One binding of a policy: a port range on a prefix ('*' = every address, both families). */
export interface RecordedBinding {
  id: number;
  start: number;
  end: number;
  prefix: string;
}

/** What we remember about an applied policy, stored in the dispatcher's `policies` map. */
export interface PolicyRecord {
  v: 1;
  name: string;
  sourceFile: string;
  netns: string | null;
  specHash: string;
  protocol: 'tcp' | 'udp';
  targetText: string;
  destId: number;
  bindings: RecordedBinding[];
}

/** A dispatcher as observed (see ObservedDispatcher in the store), with records parsed and sockets looked up. */
export interface ObservedDispatcherState extends Omit<ObservedDispatcher, 'records'> {
  records: PolicyRecord[];
  /** Records that could not be parsed (name and why): treated as foreign and removed. */
  badRecords: Array<{ name: string; reason: string }>;
  /** Cookie per destination id of the records (null = empty slot). */
  sockets: Record<number, string | null>;
}

/** Everything under the pin root. */
export interface ObservedState {
  dispatchers: ObservedDispatcherState[];
  stray: string[];
  /** The packet filters under ROOT/filters (see src/bpf/filter-store.ts). */
  filters?: ObservedFilters;
}

/** The kinds of action, as in Terraform. */
export type ActionKind = 'create' | 'update' | 'replace' | 'delete' | 'noop';

/** The concrete kernel operation behind an action. */
export type Operation =
  | { type: 'createDispatcher'; dir: string; netnsPath: string }
  | { type: 'replaceProgram'; dir: string; expectedProgId: number }
  | { type: 'relink'; dir: string; netnsPath: string }
  | { type: 'writeRecord'; dir: string; record: PolicyRecord }
  | { type: 'putSocket'; dir: string; destId: number; pid: number; fd: number }
  | { type: 'resetCounters'; dir: string; bindingIds: number[] }
  | { type: 'upsertBindings'; dir: string; entries: Array<{ key: string; destId: number; bindingId: number }> }
  | { type: 'deleteBindings'; dir: string; keys: string[] }
  | { type: 'deleteSocket'; dir: string; destId: number }
  | { type: 'deleteRecord'; dir: string; name: string }
  | { type: 'removeDispatcher'; dir: string }
  | { type: 'removeStray'; path: string }
  | FilterOperation
  | { type: 'none' };

/** When an action runs: dispatchers first, then additions, then removals, then garbage collection. */
export type Phase = 'dispatcher' | 'add' | 'remove' | 'gc';

/** One step of a plan, with its reason. */
export interface Action {
  kind: ActionKind;
  phase: Phase;
  /** What is changed, e.g. `dispatcher ino-4026531840` or `policy web: bindings`. */
  object: string;
  /** The policy this action belongs to (failures stay within it). */
  policy?: string;
  /** The dispatcher this action belongs to (a failed dispatcher step skips its policies). */
  dispatcher?: string;
  reason: string;
  before?: string;
  after?: string;
  op: Operation;
}

/** A policy the plan cannot converge, and why. */
export interface PlanProblem {
  policy: string;
  sourceFile?: string;
  condition: 'Failed' | 'Degraded';
  reason: string;
  message: string;
}

/** The output of plan(). */
export interface Plan {
  actions: Action[];
  problems: PlanProblem[];
}
