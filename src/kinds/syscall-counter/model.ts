/**
 * Plain data of the reconciler for SyscallCounter policies: the policies as
 * resolved (syscall numbers, groupBy, cgroup), and the operations of a plan.
 * The observed side is store.ts's ObservedCounters.
 */
import type { GroupByField } from './document.js';
import type { CounterPolicyRecord, ObservedCounters, SlotWrite } from './store.js';

export type { ObservedCounters };

/** One SyscallCounter policy as the counter should run it. */
export interface DesiredCounterPolicy {
  name: string;
  sourceFile: string;
  specHash: string;
  syscalls: readonly number[] | 'all';
  groupBy: readonly GroupByField[];
  /** The cgroup whose subtree it counts (resolved now), or null for every process. */
  cgroup: { path: string; id: string } | null;
  maxKeys: number;
}

/** A SyscallCounter policy as written and resolved, for status. */
export interface DesiredCounterStatus {
  name: string;
  sourceFile: string;
  syscalls: readonly number[] | 'all';
  groupBy: readonly GroupByField[];
  /** spec.cgroup as written, and whether the policy waits for it to exist. */
  cgroup: string | null;
  waitingForCgroup?: boolean;
  /** It runs in the counter (false: refused or waiting). */
  applied: boolean;
}

/** What the reconciler wants for SyscallCounter policies. */
export interface DesiredCounters {
  /** Tag of the program we ship. */
  tag: string;
  /** The policies to count, by name. */
  policies: DesiredCounterPolicy[];
  status: DesiredCounterStatus[];
  /** Names of policies whose slot must stay as it is (an invalid file, an unreadable cgroup). */
  keepPolicies: string[];
  problems: Array<{ policy: string; sourceFile?: string; condition: 'Failed' | 'Degraded'; reason: string; message: string }>;
}

/** The operations of a plan for the counter (the `op` of an Action). */
export type CounterOperation =
  | { type: 'createCounter'; dir: string }
  | { type: 'attachCounter'; dir: string }
  | { type: 'replaceCounterProgram'; dir: string }
  | { type: 'finishUpgrade'; dir: string }
  | { type: 'writeSlot'; dir: string; write: SlotWrite }
  | { type: 'clearSlot'; dir: string; slot: number; allMask: string; nSlots: number; deleteRecords: string[] }
  | { type: 'writeCounterConfig'; dir: string; allMask: string; nSlots: number }
  | { type: 'deleteRecords'; dir: string; names: string[] }
  | { type: 'removeCounter'; dir: string }
  | { type: 'removeStray'; path: string }
  | { type: 'none' };

export type { CounterPolicyRecord };
