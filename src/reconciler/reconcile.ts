/**
 * One level-based pass over every registered kind: load the policies,
 * resolve each kind's desired state, read each kind's pins, plan (pure),
 * and, unless it is a dry run, apply and remember the outcome. Runs of the
 * tool are serialised by an flock on the pin root. The engine knows no kind:
 * it is handed them.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ensureBpffs, removePinPath } from '../bpf/bpffs.js';
import { RootLock } from '../bpf/root-lock.js';
import { loadPolicies, type KindRegistry, type PolicyLoadResult } from '../policy/index.js';
import { apply, type ApplyResult } from './apply.js';
import { HandleScope } from './apply-scope.js';
import { FailedPaths } from './failed-paths.js';
import type { DesiredPolicyBase } from '../policy/kind.js';
import type { AnyReconcilerKind, KindEnv, PolicyView } from './kind.js';
import { DEFAULT_REPORT_DIR, readLastPass, recordFailure, writeLastPass, type RecordedFailure } from './last-pass.js';
import type { Action, Condition, Plan, PolicyStatus } from './model.js';
import { planKinds, REMOVE_ROOT_STRAY, type KindState } from './plan.js';
import { statusesOf } from './status.js';

/** Default pin root. */
export const DEFAULT_ROOT = '/sys/fs/bpf/ebpf-policy';

/** The registered kinds, as the engine is handed them. */
export interface Engine {
  /** Reconciler kinds, in registry order (plans merge in this order within a phase). */
  kinds: readonly AnyReconcilerKind[];
  /** The policy-layer registry of the same kinds (validation). */
  documents: KindRegistry;
}

/** Options of a reconcile pass. */
export interface ReconcileOptions {
  /** Pin root (default /sys/fs/bpf/ebpf-policy). */
  root?: string;
  /** Policy files and directories (default /etc/ebpf-policies). */
  policyPaths?: string[];
  insecurePermissions?: boolean;
  /** Plan only: take no lock, change nothing, write no report. */
  dryRun?: boolean;
  /** Hears of each applied or failed action. */
  onAction?: (a: Action, error?: Error) => void;
  lockTimeoutMs?: number;
  /** Options of each kind, by kind name, e.g. `{ PortSteering: { objectPath } }` (see each kind's README in docs). */
  kindOptions?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Where the last-pass report lives (default /run/ebpf-policy); null: neither read nor written. */
  reportDir?: string | null;
  /**
   * After an apply that touched anything, read every kind's pins again and plan again, so `settled` is the
   * kernel as it is now (the daemon wants that for its drift expectation and metrics). Otherwise `settled`
   * keeps the observed state and drops the actions that ran: cheaper, for one-shot runs.
   */
  settle?: boolean;
}

/** Everything a pass learned and did. */
export interface ReconcileReport {
  root: string;
  load: PolicyLoadResult;
  /** Absolute paths of the files that failed to load or validate. */
  failedFiles: string[];
  /** Each kind's desired and observed state, as planned. */
  kinds: KindState[];
  /** Entries under the root that no kind owns. */
  rootStray: string[];
  plan: Plan;
  /** Absent on a dry run. */
  result?: ApplyResult;
  /** The state after the apply: re-observed and re-planned (with `settle`) or the plan less what ran, when the apply touched anything; else the same as planned. */
  settled: { kinds: KindState[]; plan: Plan };
  /** The failures statuses show: this pass's, or on a dry run those of the last pass that ran. */
  failures: RecordedFailure[];
  /** Conditions of the last pass (for transition times), keyed `KIND/NAME`. */
  previousConditions: Record<string, Condition[]>;
  /** The statuses (conditions only) this pass computed for its report, when it wrote one. */
  conditionStatuses?: PolicyStatus[];
  durationMs: number;
}

function kindEnv(root: string, failedFiles: ReadonlySet<string>, opts: ReconcileOptions, kind: AnyReconcilerKind): KindEnv {
  return { root, failedFiles, options: opts.kindOptions?.[kind.kind] ?? {} };
}

/** Resolves every kind's desired state and reads its pins; a kind that throws is left out of planning. */
function resolveKinds(engine: Engine, root: string, load: PolicyLoadResult, failedFiles: ReadonlySet<string>, opts: ReconcileOptions): KindState[] {
  const byKind = new Map<string, DesiredPolicyBase[]>(engine.kinds.map((k) => [k.kind, []]));
  for (const p of load.policies) byKind.get(p.kind)?.push(p);
  return engine.kinds.map((kind) => {
    const policies = byKind.get(kind.kind)!;
    const state: KindState = { kind, policies, desired: undefined };
    try {
      state.desired = kind.desired(policies, kindEnv(root, failedFiles, opts, kind));
      state.observed = kind.observe(root);
    } catch (err) {
      state.observeError = err instanceof Error ? err : new Error(String(err));
    }
    return state;
  });
}

/** The same desired states with the pins read again (after an apply). */
function reobserve(states: readonly KindState[], root: string): KindState[] {
  return states.map((s) => {
    if (s.observeError && s.observed === undefined && s.desired === undefined) return s;
    const next: KindState = { kind: s.kind, policies: s.policies, desired: s.desired };
    try {
      next.observed = s.kind.observe(root);
    } catch (err) {
      next.observeError = err instanceof Error ? err : new Error(String(err));
    }
    return next;
  });
}

/** Entries directly under `root` that no kind's directory claims. */
export function rootStrayOf(engine: Engine, root: string): string[] {
  if (!existsSync(root)) return [];
  const owned = new Set(engine.kinds.map((k) => k.pinDir));
  return readdirSync(root)
    .sort()
    .filter((e) => !owned.has(e))
    .map((e) => join(root, e));
}

/**
 * Runs one pass. Throws only for fatal problems (bpffs cannot be mounted, the
 * lock stays taken); per-policy and per-kind problems are in the report.
 */
export async function reconcileOnce(engine: Engine, opts: ReconcileOptions = {}): Promise<ReconcileReport> {
  const started = performance.now();
  const root = opts.root ?? DEFAULT_ROOT;
  const reportDir = opts.reportDir === undefined ? DEFAULT_REPORT_DIR : opts.reportDir;
  const load = loadPolicies({ paths: opts.policyPaths, insecurePermissions: opts.insecurePermissions, kinds: engine.documents });
  const failedFiles = [...new Set(load.problems.filter((p) => p.severity === 'error').map((p) => resolve(p.file)))].sort();
  const failedSet = new FailedPaths(failedFiles);
  let lock: RootLock | undefined;
  try {
    if (!opts.dryRun) {
      ensureBpffs(root);
      lock = await RootLock.acquire(root, opts.lockTimeoutMs);
    }
    const last = reportDir === null ? undefined : readLastPass(reportDir, root);
    const kinds = resolveKinds(engine, root, load, failedSet, opts);
    const rootStray = rootStrayOf(engine, root);
    const plan = planKinds(kinds, rootStray, { root, failedFiles: failedSet });
    const report: ReconcileReport = {
      root,
      load,
      failedFiles,
      kinds,
      rootStray,
      plan,
      settled: { kinds, plan },
      failures: last?.failures ?? [],
      previousConditions: last?.conditions ?? {},
      durationMs: 0,
    };
    if (!opts.dryRun) {
      const byName = new Map(engine.kinds.map((k) => [k.kind, k]));
      // One scope per kind: what a kind keeps open during the apply is closed when it ends.
      const scopes = new Map<string, HandleScope>();
      let result: ApplyResult;
      try {
        result = apply(
          plan.actions,
          (a) => {
            if (a.op.type === REMOVE_ROOT_STRAY) return void removePinPath((a.op as unknown as { path: string }).path);
            const kind = byName.get(a.owner ?? '');
            if (!kind) throw new Error(`no kind ${a.owner} to run ${a.op.type}`);
            let scope = scopes.get(kind.kind);
            if (!scope) scopes.set(kind.kind, (scope = new HandleScope()));
            kind.execute(a.op, { ...kindEnv(root, failedSet, opts, kind), scope });
          },
          opts.onAction,
        );
      } finally {
        for (const scope of scopes.values()) scope.close();
      }
      report.result = result;
      const at = new Date().toISOString();
      report.failures = result.failed.map((f) => recordFailure(f, at));
      if (result.applied.length + result.failed.length > 0) {
        if (opts.settle) {
          const again = reobserve(kinds, root);
          report.settled = { kinds: again, plan: planKinds(again, rootStrayOf(engine, root), { root, failedFiles: failedSet }) };
        } else {
          // Without reading the pins again: what remains of the plan is what did not run (failed or skipped).
          const ran = new Set(result.applied);
          report.settled = { kinds, plan: { ...plan, actions: plan.actions.filter((a) => !ran.has(a)) } };
        }
      }
      // The report is rewritten when this pass changed or failed anything, or the last one had failures to
      // clear; a pass that found nothing to do leaves it (a no-op pass stays cheap with thousands of policies).
      const quiet = result.applied.length + result.failed.length === 0 && last !== undefined && last.failures.length === 0;
      if (reportDir !== null && !quiet) {
        const statuses = computeStatuses(report, false);
        report.conditionStatuses = statuses;
        writeLastPass(reportDir, {
          v: 1,
          root,
          finishedAt: at,
          failures: report.failures,
          conditions: Object.fromEntries(statuses.map((s) => [`${s.kind}/${s.name}`, s.conditions])),
        });
      }
    }
    report.durationMs = performance.now() - started;
    return report;
  } finally {
    lock?.close();
  }
}

/** Views of a kind that could not be read: its loaded policies, Failed by the plan's ObserveFailed problem. */
function unreadableViews(s: KindState): PolicyView[] {
  return s.policies.map((p) => ({
    name: p.name,
    sourceFile: resolve(p.source.file),
    netns: null,
    desired: true,
    domains: [],
    notReady: { reason: 'ObserveFailed', message: s.observeError?.message ?? 'unreadable' },
    details: {},
  }));
}

/**
 * Every policy's status, by kind in registry order, computed from the
 * settled state of the report. `readCounters` reads the kernel's counters
 * (false: conditions only); `options.top` bounds the counters a kind lists
 * per policy (see StatusInput.top).
 */
export function computeStatuses(r: ReconcileReport, readCounters: boolean, options: { top?: number; showMaps?: boolean } = {}): PolicyStatus[] {
  const now = new Date().toISOString();
  return r.settled.kinds.flatMap((s) => {
    const views = s.observeError ? unreadableViews(s) : s.kind.policies({ desired: s.desired, observed: s.observed, readCounters, ...(options.top !== undefined ? { top: options.top } : {}), ...(options.showMaps ? { showMaps: true } : {}) });
    return statusesOf(views, {
      kind: s.kind.kind,
      loadProblems: r.load.problems,
      actions: r.settled.plan.actions,
      problems: r.settled.plan.problems,
      failures: r.failures,
      previous: r.previousConditions,
      now,
    });
  });
}

/** The state of one kind in a report (settled), by kind name; undefined when no such kind is registered. */
export function kindState(r: ReconcileReport, kind: string): KindState | undefined {
  return r.settled.kinds.find((s) => s.kind.kind === kind);
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
