/**
 * The engine's plan: every kind plans its own pins (pure), the engine adds
 * the removal of entries under the pin root that no kind owns, and orders
 * everything by phase. No I/O.
 */
import { resolve } from 'node:path';
import type { DesiredPolicyBase } from '../policy/kind.js';
import type { AnyReconcilerKind, KindPlan, PlanEnv } from './kind.js';
import { PHASES, type Action, type Plan, type PlanProblem } from './model.js';

/** The operation of removing an entry under the pin root that no kind owns; run by the engine itself. */
export const REMOVE_ROOT_STRAY = 'removeRootStray';

/** One kind's part of a pass: its desired state, and its observed state or why it could not be read. */
export interface KindState {
  kind: AnyReconcilerKind;
  /** The kind's valid loaded policies. */
  policies: readonly DesiredPolicyBase[];
  desired: unknown;
  observed?: unknown;
  /** Reading the kind's pins failed (not just "missing"): the kind is not planned at all this pass. */
  observeError?: Error;
}

/**
 * Plans every kind and merges the plans in phase order (within a phase, in
 * registry order). A kind whose pins could not be read gets no action, so
 * nothing of it is deleted; its policies are Failed with the error. A kind
 * whose plan throws (a bug) gets no action either, and its policies are
 * Failed (PlanFailed); the other kinds are planned as usual.
 * `rootStray` are entries directly under the root that no kind owns.
 * Pure and deterministic.
 */
export function planKinds(states: readonly KindState[], rootStray: readonly string[], env: PlanEnv): Plan {
  const actions: Action[] = [];
  const problems: PlanProblem[] = [];
  for (const s of states) {
    if (s.observeError) {
      for (const p of s.policies)
        problems.push({
          policy: p.name,
          sourceFile: resolve(p.source.file),
          condition: 'Failed',
          reason: 'ObserveFailed',
          message: `cannot read the ${s.kind.kind} pins: ${s.observeError.message}; nothing of this kind is changed until they can be read`,
        });
      continue;
    }
    let p: ReturnType<typeof s.kind.plan>;
    try {
      p = s.kind.plan(s.desired, s.observed, env);
    } catch (err) {
      // A bug in one kind's plan must not stop the others: its policies are Failed and nothing of it changes.
      const message = err instanceof Error ? err.message : String(err);
      for (const pol of s.policies)
        problems.push({
          policy: pol.name,
          sourceFile: resolve(pol.source.file),
          condition: 'Failed',
          reason: 'PlanFailed',
          message: `planning ${s.kind.kind} failed: ${message}; nothing of this kind is changed this pass`,
        });
      continue;
    }
    for (const a of ownedActions(p, s.kind.kind)) actions.push(a);
    problems.push(...p.problems);
  }
  for (const path of rootStray)
    actions.push({
      kind: 'delete',
      phase: 'gc',
      object: path,
      code: 'NotInLayout',
      reason: 'not part of the pin layout (left by an interrupted run or an older version)',
      op: { type: REMOVE_ROOT_STRAY, path } as Action['op'],
    });
  return { actions: PHASES.flatMap((phase) => actions.filter((a) => a.phase === phase)), problems };
}

/** A kind plan's actions with their owner set, kept by plan object: a kind that hands back the same plan (see plan-memo.ts) gets the same actions. */
function ownedActions(p: KindPlan, owner: string): readonly Action[] {
  const known = owned.get(p);
  if (known !== undefined && known.owner === owner) return known.actions;
  const actions = p.actions.map((a) => ({ ...a, owner }));
  owned.set(p, { owner, actions });
  return actions;
}
const owned = new WeakMap<KindPlan, { owner: string; actions: readonly Action[] }>();

/** Actions that change something (everything but noop). */
export function changes(p: Plan): Action[] {
  return p.actions.filter((a) => a.kind !== 'noop');
}
