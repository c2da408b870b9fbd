/**
 * One level-based pass: load the policies, read the kernel, plan, and (unless
 * it is a dry run) apply. Runs of the tool are serialised by an flock on the
 * pin root.
 */
import { ensureBpffs } from '../bpf/bpffs.js';
import { RootLock } from '../bpf/root-lock.js';
import { DISPATCHER_OBJECT } from '../kinds/port-steering/layout.js';
import { kernelPort, type FilterOptions } from '../kinds/kernel-port.js';
import { systemResolver } from '../kinds/port-steering/resolver.js';
import { loadPolicies, type PolicyLoadResult } from '../policy/index.js';
import { apply, type ApplyResult } from './apply.js';
import { buildDesired } from '../kinds/port-steering/desired.js';
import type { Action, DesiredState, ObservedState, Plan } from './model.js';
import { observe } from '../kinds/port-steering/observe.js';
import { plan } from '../kinds/port-steering/plan.js';

/** Default pin root. */
export const DEFAULT_ROOT = '/sys/fs/bpf/ebpf-policy';

/** Options of a reconcile pass. */
export interface ReconcileOptions {
  /** Pin root (default /sys/fs/bpf/ebpf-policy). */
  root?: string;
  /** Policy files and directories (default /etc/ebpf-policies). */
  policyPaths?: string[];
  insecurePermissions?: boolean;
  /** Compiled dispatcher to run (default build/bpf/dispatcher.o). */
  objectPath?: string;
  /** Plan only: take no lock, change nothing. */
  dryRun?: boolean;
  /** Hears of each applied or failed action. */
  onAction?: (a: Action, error?: Error) => void;
  lockTimeoutMs?: number;
  /** Where packet filters come from (object, forced tc attach method). */
  filters?: FilterOptions;
}

/** Everything a pass learned and did. */
export interface ReconcileReport {
  root: string;
  load: PolicyLoadResult;
  desired: DesiredState;
  observed: ObservedState;
  plan: Plan;
  /** Absent on a dry run. */
  result?: ApplyResult;
  durationMs: number;
}

/**
 * Runs one pass. Throws only for fatal problems (bpffs cannot be mounted,
 * the lock stays taken, libbpf missing); per-policy problems are in the report.
 */
export async function reconcileOnce(opts: ReconcileOptions = {}): Promise<ReconcileReport> {
  const started = performance.now();
  const root = opts.root ?? DEFAULT_ROOT;
  const objectPath = opts.objectPath ?? DISPATCHER_OBJECT;
  const load = loadPolicies({ paths: opts.policyPaths, insecurePermissions: opts.insecurePermissions });
  let lock: RootLock | undefined;
  try {
    if (!opts.dryRun) {
      ensureBpffs(root);
      lock = await RootLock.acquire(root, opts.lockTimeoutMs);
    }
    const desired = buildDesired(load, root, systemResolver(objectPath, opts.filters));
    const observed = observe(root);
    const p = plan(desired, observed);
    const result = opts.dryRun ? undefined : apply(p.actions, kernelPort(objectPath, opts.filters), opts.onAction);
    return { root, load, desired, observed, plan: p, result, durationMs: performance.now() - started };
  } finally {
    lock?.close();
  }
}

/**
 * Exit code of `reconcile --once`: 0 when every policy converged (a
 * Degraded target is a warning), 1 when some policy failed.
 */
export function reconcileExitCode(r: ReconcileReport): 0 | 1 {
  const failed =
    (r.result?.failed.length ?? 0) > 0 ||
    r.load.problems.some((p) => p.severity === 'error') ||
    r.plan.problems.some((p) => p.condition === 'Failed');
  return failed ? 1 : 0;
}
