/** Text and JSON renderings of plans, reconcile results and status. */
import type { ApplyResult } from './apply.js';
import type { Action, Plan } from './model.js';
import type { AnyReconcilerKind } from './kind.js';
import type { PolicyStatus } from './model.js';
import type { PolicyProblem } from '../policy/index.js';
import { formatProblem } from '../policy/index.js';

const SIGN: Record<Action['kind'], string> = { create: '+', update: '~', replace: '±', delete: '-', noop: ' ' };

/** Counts of changes by kind. */
export function planCounts(actions: Action[]): Record<'create' | 'update' | 'replace' | 'delete', number> {
  const c = { create: 0, update: 0, replace: 0, delete: 0 };
  for (const a of actions) if (a.kind !== 'noop') c[a.kind]++;
  return c;
}

/** One line (plus detail lines) per action. */
export function renderAction(a: Action): string {
  const lines = [`${SIGN[a.kind]} ${a.kind.padEnd(7)} ${a.object}  (${a.reason})`];
  if (a.before !== undefined) lines.push(`      before: ${a.before}`);
  if (a.after !== undefined) lines.push(`      after:  ${a.after}`);
  return lines.join('\n');
}

/** The readable plan: changes, problems, and a summary line. */
export function renderPlanText(plan: Plan, loadProblems: PolicyProblem[], verbose = false): string {
  const out: string[] = [];
  for (const p of loadProblems) out.push(formatProblem(p));
  for (const p of plan.problems) out.push(`${p.condition === 'Failed' ? 'error' : 'warning'}: policy ${p.policy}: ${p.reason}: ${p.message}`);
  for (const a of plan.actions) if (verbose || a.kind !== 'noop') out.push(renderAction(a));
  const c = planCounts(plan.actions);
  const total = c.create + c.update + c.replace + c.delete;
  out.push(
    total === 0
      ? 'No changes. The kernel matches the policies.'
      : `Plan: ${c.create} to create, ${c.update} to update, ${c.replace} to replace, ${c.delete} to delete.`,
  );
  return out.join('\n');
}

/** Stable JSON shape of an action (the kernel operation's details are left out). */
export function actionJson(a: Action): Record<string, unknown> {
  return {
    kind: a.kind,
    phase: a.phase,
    object: a.object,
    policyKind: a.owner ?? null,
    policy: a.policy ?? null,
    domain: a.domain ?? null,
    operation: a.op.type,
    code: a.code ?? null,
    reason: a.reason,
    before: a.before ?? null,
    after: a.after ?? null,
  };
}

/** The stable JSON plan document (`plan --output json`). */
export function planJson(plan: Plan, loadProblems: PolicyProblem[]): Record<string, unknown> {
  return {
    apiVersion: 'ebpf-policy/v1',
    kind: 'Plan',
    changes: planCounts(plan.actions),
    actions: plan.actions.map(actionJson),
    problems: [
      ...loadProblems.map((p) => ({ policy: null, condition: 'Failed', reason: 'InvalidPolicy', message: formatProblem(p), file: p.file })),
      ...plan.problems.map((p) => ({ policy: p.policy, condition: p.condition, reason: p.reason, message: p.message, file: p.sourceFile ?? null })),
    ],
  };
}

/** Summary of an apply for the reconcile command. */
export function renderApplyText(result: ApplyResult, durationMs: number): string {
  const out: string[] = [];
  for (const f of result.failed) out.push(`error: ${f.action.policy ? `policy ${f.action.policy}: ` : ''}${f.action.object}: ${f.error.message}`);
  for (const s of result.skipped) out.push(`skipped: ${s.object} (an earlier step of ${s.policy ? `policy ${s.policy}` : s.domain} failed)`);
  const c = planCounts(result.applied);
  out.push(
    `Applied ${result.applied.length} change${result.applied.length === 1 ? '' : 's'} (${c.create} created, ${c.update} updated, ${c.replace} replaced, ${c.delete} deleted), ${result.failed.length} failed, in ${durationMs.toFixed(1)} ms.`,
  );
  return out.join('\n');
}

/** The readable status: each kind renders its own policies, in registry order. */
export function renderStatusText(statuses: readonly PolicyStatus[], kinds: readonly AnyReconcilerKind[]): string {
  if (statuses.length === 0) return 'No policies.';
  return kinds.flatMap((k) => {
    const mine = statuses.filter((s) => s.kind === k.kind);
    return mine.length ? k.renderStatus(mine) : [];
  }).join('\n');
}

/** The head line and condition lines every kind's status text starts with. */
export function renderStatusHead(s: PolicyStatus, summary: string): string[] {
  const flags = s.conditions.filter((c) => c.status).map((c) => c.type);
  const out = [`${s.name}  ${flags.length ? flags.join(',') : 'NotReady'}  ${summary}`];
  for (const c of s.conditions) if (c.status || c.type === 'Ready') out.push(`  ${c.type}=${c.status ? 'True' : 'False'} ${c.reason}: ${c.message}`);
  return out;
}
