/**
 * Policy conditions, as in Kubernetes — Ready, Degraded, Failed, each with a
 * reason, a message and a last transition time — computed the same way for
 * every kind from what the kind says about its policies (PolicyView), the
 * plan, the load problems and the failures of the last pass.
 */
import { resolve, sep } from 'node:path';
import { formatProblem, type PolicyProblem } from '../policy/index.js';
import type { PolicyView } from './kind.js';
import { describeFailure, type RecordedFailure } from './last-pass.js';
import type { Action, Condition, PlanProblem, PolicyStatus } from './model.js';

/** Everything conditions are computed from, besides the views. */
export interface ConditionInput {
  kind: string;
  loadProblems: readonly PolicyProblem[];
  /** The plan's actions of every kind (only this kind's count). */
  actions: readonly Action[];
  problems: readonly PlanProblem[];
  /** Failures of the pass that ran (or, for a dry run, of the last pass that ran). */
  failures: readonly RecordedFailure[];
  /** Conditions of the last pass, keyed `KIND/NAME`, for transition times. */
  previous?: Readonly<Record<string, Condition[]>>;
  /** ISO 8601 time of this computation. */
  now: string;
}

function some(list: string[]): string {
  return `${list.slice(0, 3).join('; ')}${list.length > 3 ? ` and ${list.length - 3} more` : ''}`;
}

/** The statuses of one kind's policies, with their conditions, sorted by name. */
export function statusesOf(views: readonly PolicyView[], input: ConditionInput): PolicyStatus[] {
  const loadErrors = new Map<string, string>();
  for (const p of input.loadProblems) if (p.severity === 'error' && !loadErrors.has(resolve(p.file))) loadErrors.set(resolve(p.file), formatProblem(p));
  // A file below a failed directory (a --policies directory that vanished) failed with it.
  const loadErrorOf = (file: string): string | undefined =>
    loadErrors.get(file) ?? [...loadErrors].find(([path]) => file.startsWith(path.endsWith(sep) ? path : path + sep))?.[1];
  // Indexed once: a pass may hold thousands of policies, problems and actions.
  const group = <T>(items: readonly T[], key: (t: T) => string | null | undefined): Map<string, T[]> => {
    const m = new Map<string, T[]>();
    for (const t of items) {
      const k = key(t);
      if (k === null || k === undefined) continue;
      const list = m.get(k);
      if (list) list.push(t);
      else m.set(k, [t]);
    }
    return m;
  };
  const mine = input.actions.filter((a) => a.owner === input.kind && a.kind !== 'noop');
  const actionsOfPolicy = group(mine, (a) => a.policy);
  const actionsOfDomain = group(
    mine.filter((a) => !a.policy),
    (a) => a.domain,
  );
  const failures = input.failures.filter((f) => f.kind === input.kind);
  const failuresOfPolicy = group(failures, (f) => f.policy);
  const failuresOfDomain = group(
    failures.filter((f) => !f.policy),
    (f) => f.domain,
  );
  const problemsOf = group(input.problems, (p) => p.policy);
  return [...views]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((v) => {
      // What concerns this policy: what names it, and what names none but one of its failure domains.
      const concerning = <T>(ofPolicy: Map<string, T[]>, ofDomain: Map<string, T[]>): T[] => [
        ...(ofPolicy.get(v.name) ?? []),
        ...v.domains.flatMap((d) => ofDomain.get(d) ?? []),
      ];
      const conditions: Condition[] = [];
      const loadError = v.sourceFile ? loadErrorOf(v.sourceFile) : undefined;
      const failed = concerning(failuresOfPolicy, failuresOfDomain);
      const problems = problemsOf.get(v.name) ?? [];
      const failedProblems = problems.filter((p) => p.condition === 'Failed');
      const degraded = problems.filter((p) => p.condition === 'Degraded');
      if (loadError) conditions.push({ type: 'Failed', status: true, reason: 'InvalidPolicy', message: loadError });
      else if (failed.length) conditions.push({ type: 'Failed', status: true, reason: 'ApplyFailed', message: failed.map(describeFailure).join('; ') });
      else if (failedProblems.length)
        conditions.push({ type: 'Failed', status: true, reason: failedProblems[0]!.reason, message: failedProblems.map((p) => p.message).join('; ') });
      else if (!v.desired)
        conditions.push({ type: 'Failed', status: true, reason: 'Removed', message: 'no policy file defines it any more; the next reconcile removes it' });
      if (degraded.length) conditions.push({ type: 'Degraded', status: true, reason: degraded[0]!.reason, message: degraded.map((p) => p.message).join('; ') });
      const todo = concerning(actionsOfPolicy, actionsOfDomain).map((a) => `${a.kind} ${a.object}`);
      const ready = !conditions.some((c) => c.type === 'Failed') && todo.length === 0 && !v.notReady;
      conditions.unshift({
        type: 'Ready',
        status: ready,
        reason: ready ? 'Converged' : todo.length ? 'Pending' : (v.notReady?.reason ?? 'NotConverged'),
        message: ready
          ? (v.readyMessage ?? 'the kernel matches the policy')
          : todo.length
            ? `reconcile would ${some(todo)}`
            : (v.notReady?.message ?? 'not converged'),
      });
      const before = input.previous?.[`${input.kind}/${v.name}`] ?? [];
      for (const c of conditions) {
        const was = before.find((b) => b.type === c.type);
        c.lastTransitionTime = was && was.status === c.status && was.reason === c.reason && was.lastTransitionTime ? was.lastTransitionTime : input.now;
      }
      return { name: v.name, kind: input.kind, sourceFile: v.sourceFile, netns: v.netns, conditions, ...v.details };
    });
}
