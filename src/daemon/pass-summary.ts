/**
 * What a daemon pass did, in a few numbers: for the pass log line, the
 * metrics and /healthz. Pure: computed from the pass's report and the
 * policies' statuses after it.
 */
import { createHash } from 'node:crypto';
import type { ActionKind, PolicyStatus } from '../reconciler/model.js';
import { reconcileExitCode, type ReconcileReport } from '../reconciler/reconcile.js';

type ChangeKind = Exclude<ActionKind, 'noop'>;

/** Summary of one pass. */
export interface PassSummary {
  /** True when the pass converged everything it should (reconcile --once would exit 0). */
  ok: boolean;
  durationMs: number;
  /** Changes applied, and changes that failed, by kind. */
  applied: Record<ChangeKind, number>;
  failed: Record<ChangeKind, number>;
  /** Actions not run because an earlier step of their policy failed. */
  skipped: number;
  /** Policies known (desired or recorded in the kernel). */
  policies: number;
  /** Policies with each condition true. */
  conditions: { Ready: number; Degraded: number; Failed: number };
  /** Invalid policy files (their policies keep their last applied state). */
  invalidFiles: number;
  /** The kernel changed although the policies did not: the pass repaired drift. */
  driftRepair: boolean;
  /** Why the pass is not ok: short lines, e.g. `policy web: InvalidSourceFile: …`. */
  failing: string[];
}

function zeroKinds(): Record<ChangeKind, number> {
  return { create: 0, update: 0, replace: 0, delete: 0 };
}

/**
 * A hash of what the policies ask for (every loaded policy of every kind as
 * normalized from its document, the invalid files, and the tags of the
 * programs every kind runs), not of how targets or namespaces resolved. Two
 * passes with the same fingerprint had the same input: what changed the
 * kernel between them is drift.
 */
export function inputFingerprint(r: ReconcileReport): string {
  const hash = createHash('sha256');
  for (const s of r.kinds) hash.update(`${s.kind.kind}:${s.desired === undefined ? '-' : s.kind.programTags(s.desired).join(',')}\n`);
  hash.update(JSON.stringify(r.failedFiles));
  for (const p of r.load.policies) hash.update(JSON.stringify(p));
  return hash.digest('hex').slice(0, 16);
}

/** What a summary needs of a policy's status (every kind has these). */
export type StatusConditions = Pick<PolicyStatus, 'name' | 'conditions'>;

/**
 * Summarises a pass. `statuses` are the policies' statuses after the pass (all kinds);
 * `sameInputAsLastPass` says whether the previous pass had the same
 * {@link inputFingerprint}.
 */
export function summarizePass(r: ReconcileReport, statuses: StatusConditions[], sameInputAsLastPass: boolean): PassSummary {
  const applied = zeroKinds();
  const failed = zeroKinds();
  for (const a of r.result?.applied ?? []) if (a.kind !== 'noop') applied[a.kind]++;
  for (const f of r.result?.failed ?? []) if (f.action.kind !== 'noop') failed[f.action.kind]++;
  const conditions = { Ready: 0, Degraded: 0, Failed: 0 };
  const failing: string[] = [];
  for (const s of statuses)
    for (const c of s.conditions) {
      if (!c.status) continue;
      conditions[c.type]++;
      if (c.type === 'Failed') failing.push(`policy ${s.name}: ${c.reason}: ${c.message}`);
    }
  for (const f of r.result?.failed ?? []) failing.push(`${f.action.object}: ${f.error.message}`); // the object names the policy
  const invalid = [...new Set(r.load.problems.filter((p) => p.severity === 'error').map((p) => p.file))];
  for (const file of invalid) if (!failing.some((l) => l.includes(file))) failing.push(`${file}: invalid policy file`);
  const changed = Object.values(applied).some((n) => n > 0);
  return {
    ok: reconcileExitCode(r) === 0,
    durationMs: r.durationMs,
    applied,
    failed,
    skipped: r.result?.skipped.length ?? 0,
    policies: statuses.length,
    conditions,
    invalidFiles: invalid.length,
    driftRepair: sameInputAsLastPass && changed,
    failing,
  };
}

/** Total of a by-kind count. */
export function total(counts: Record<ChangeKind, number>): number {
  return counts.create + counts.update + counts.replace + counts.delete;
}
