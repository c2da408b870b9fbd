/**
 * Plain data of the reconciler for ConnectPolicy policies: the desired
 * guards (one per cgroup, serving every policy on it), the policies as
 * resolved, and the operations of a plan. The observed side is store.ts's
 * ObservedGuards.
 */
import type { PortRange } from '../../policy/net/ports.js';
import type { ConnectAction, ConnectMode } from './document.js';
import type { GuardHook } from './layout.js';
import type { GenerationWrite, GuardPolicyRecord, GuardRecord, ObservedGuards } from './store.js';

export type { ObservedGuards };

/** One rule of a policy on a guard, in the policy's match order. Absent match fields match everything. */
export interface DesiredGuardRule {
  rule: string;
  action: ConnectAction;
  /** The rule's effective mode is audit: a deny is counted and reported, not enforced. */
  audit: boolean;
  protocol?: 'tcp' | 'udp';
  destinations?: readonly string[];
  ports?: readonly PortRange[];
}

/** One policy as a guard runs it. */
export interface DesiredGuardPolicy {
  name: string;
  sourceFile: string;
  specHash: string;
  rules: DesiredGuardRule[];
  defaultAction: ConnectAction;
  defaultAudit: boolean;
  /** Report every Nth deny or would-deny (0 = never). */
  sample: number;
}

/** The guard one cgroup should run. */
export interface DesiredGuard {
  /** `cg-<cgroup id>`, as ObservedGuard.key. */
  key: string;
  /** ROOT/connect/cg-<cgroup id> */
  dir: string;
  cgroupId: string;
  /** Absolute path of the cgroup directory. */
  cgroupPath: string;
  /** The policies it serves, by name (their index is the policy index in the maps). */
  policies: DesiredGuardPolicy[];
}

/** A ConnectPolicy policy as resolved, for status. */
export interface DesiredConnectPolicy {
  name: string;
  sourceFile: string;
  /** spec.cgroup as written. */
  cgroup: string;
  mode: ConnectMode;
  /** The resolved cgroup (undefined: it cannot be resolved now). */
  cgroupPath?: string;
  /** The guard it is part of (undefined: none, e.g. the cgroup is missing). */
  guard?: string;
  /** Its cgroup does not exist yet: the daemon's probe watches for it. */
  waitingForCgroup?: boolean;
}

/** What the reconciler wants for ConnectPolicy policies. */
export interface DesiredGuards {
  /** Tags of the programs we ship, per hook. */
  tags: Record<GuardHook, string>;
  guards: DesiredGuard[];
  policies: DesiredConnectPolicy[];
  /** Names of policies whose guards must be kept as they are (their file failed to validate, or their cgroup cannot be read now). */
  keepPolicies: string[];
  /** Problems found while resolving (missing cgroups, too many policies on one cgroup). */
  problems: Array<{ policy: string; sourceFile?: string; condition: 'Failed' | 'Degraded'; reason: string; message: string }>;
}

/** The operations of a plan for guards (the `op` of an Action). */
export type GuardOperation =
  | { type: 'createGuard'; dir: string; guard: GuardRecord; rules: GenerationWrite; policies: GuardPolicyRecord[] }
  | { type: 'writeGuardRules'; dir: string; rules: GenerationWrite }
  | { type: 'writeGuardRecords'; dir: string; upserts: Array<GuardPolicyRecord | GuardRecord>; deletes: string[] }
  | { type: 'attachGuardHook'; dir: string; hook: GuardHook; guard: GuardRecord }
  | { type: 'replaceGuardProgram'; dir: string; hook: GuardHook; expectedProgId: number }
  | { type: 'finishUpgrade'; dir: string }
  | { type: 'removeGuard'; dir: string }
  | { type: 'removeStray'; path: string }
  | { type: 'none' };
