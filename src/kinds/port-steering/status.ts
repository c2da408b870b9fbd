/**
 * Policy conditions, as in Kubernetes: Ready, Degraded, Failed, each with a
 * reason and a message, computed from a (dry-run) reconcile report and the
 * kernel's counters.
 */
import { resolve } from 'node:path';
import { formatProblem } from '../../policy/index.js';
import type { ReconcileReport } from '../../reconciler/reconcile.js';
import type { PolicyRecord } from '../../reconciler/model.js';

/** One condition of a policy. */
export interface Condition {
  type: 'Ready' | 'Degraded' | 'Failed';
  status: boolean;
  reason: string;
  message: string;
}

/** Status of one policy. */
export interface PolicyStatus {
  name: string;
  kind: 'PortSteering';
  sourceFile: string | null;
  netns: string | null;
  conditions: Condition[];
  /** Live kernel ids of the dispatcher serving it. */
  programId: number | null;
  linkId: number | null;
  /** Per binding: ports, prefix, hits. */
  bindings: Array<{ id: number; ports: string; prefix: string; hits: string }>;
}

/** Counter reader: hits per binding id of the dispatcher in `dir`. */
export type CounterReader = (dir: string, bindingIds: number[]) => Map<number, bigint>;

/** Builds every policy's status from a dry-run report. */
export function policyStatuses(r: ReconcileReport, counters: CounterReader): PolicyStatus[] {
  const out = new Map<string, PolicyStatus>();
  const recordOf = new Map<string, { record: PolicyRecord; dir: string; programId: number | null; linkId: number | null }>();
  for (const d of r.observed.dispatchers)
    for (const record of d.records)
      recordOf.set(record.name, { record, dir: d.dir, programId: d.program?.id ?? null, linkId: d.link?.attached ? d.link.id : null });
  const pending = new Map<string, string[]>();
  for (const a of r.plan.actions) {
    if (!a.policy || a.kind === 'noop') continue;
    pending.set(a.policy, [...(pending.get(a.policy) ?? []), `${a.kind} ${a.object}`]);
  }
  const loadErrors = new Map<string, string>();
  for (const p of r.load.problems)
    if (p.severity === 'error' && !loadErrors.has(resolve(p.file))) loadErrors.set(resolve(p.file), formatProblem(p));

  const names = new Set([...r.desired.policies.map((p) => p.name), ...recordOf.keys()]);
  for (const name of [...names].sort()) {
    const d = r.desired.policies.find((p) => p.name === name);
    const rec = recordOf.get(name);
    const sourceFile = d?.sourceFile ?? rec?.record.sourceFile ?? null;
    const conditions: Condition[] = [];
    const problem = r.plan.problems.find((p) => p.policy === name && p.condition === 'Failed');
    const loadError = sourceFile ? loadErrors.get(sourceFile) : undefined;
    if (loadError) conditions.push({ type: 'Failed', status: true, reason: 'InvalidPolicy', message: loadError });
    else if (problem) conditions.push({ type: 'Failed', status: true, reason: problem.reason, message: problem.message });
    else if (!d && rec && !loadError)
      conditions.push({ type: 'Failed', status: true, reason: 'Removed', message: 'no policy file defines it any more; the next reconcile removes it' });
    const degraded = r.plan.problems.find((p) => p.policy === name && p.condition === 'Degraded');
    if (degraded) conditions.push({ type: 'Degraded', status: true, reason: degraded.reason, message: degraded.message });
    const todo = pending.get(name);
    const ready = !conditions.some((c) => c.type === 'Failed') && !todo && rec !== undefined && rec.linkId !== null;
    conditions.unshift({
      type: 'Ready',
      status: ready,
      reason: ready ? 'Converged' : todo ? 'Pending' : rec ? 'NotConverged' : 'NotApplied',
      message: ready
        ? 'the kernel matches the policy'
        : todo
          ? `reconcile would ${todo.slice(0, 3).join('; ')}${todo.length > 3 ? ` and ${todo.length - 3} more` : ''}`
          : rec
            ? 'the dispatcher link is not attached'
            : 'not applied yet',
    });
    const hits = rec ? counters(rec.dir, rec.record.bindings.map((b) => b.id)) : new Map<number, bigint>();
    out.set(name, {
      name,
      kind: 'PortSteering',
      sourceFile,
      netns: d?.netns ?? rec?.record.netns ?? null,
      conditions,
      programId: rec?.programId ?? null,
      linkId: rec?.linkId ?? null,
      bindings: (rec?.record.bindings ?? []).map((b) => ({
        id: b.id,
        ports: b.start === b.end ? String(b.start) : `${b.start}-${b.end}`,
        prefix: b.prefix === '*' ? 'any' : b.prefix,
        hits: (hits.get(b.id) ?? 0n).toString(),
      })),
    });
  }
  return [...out.values()];
}
