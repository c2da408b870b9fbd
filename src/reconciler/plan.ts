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
  // Per kind, in order: its plan, or the problems of a kind that could not be read or planned.
  const parts: Array<{ owner: string; plan: KindPlan } | { failed: PlanProblem[] }> = [];
  let complete = true; // every kind was planned
  for (const s of states) {
    if (s.observeError) {
      complete = false;
      parts.push({
        failed: s.policies.map((p) => ({
          policy: p.name,
          sourceFile: resolve(p.source.file),
          condition: 'Failed',
          reason: 'ObserveFailed',
          message: `cannot read the ${s.kind.kind} pins: ${s.observeError!.message}; nothing of this kind is changed until they can be read`,
        })),
      });
      continue;
    }
    try {
      parts.push({ owner: s.kind.kind, plan: s.kind.plan(s.desired, s.observed, env) });
    } catch (err) {
      // A bug in one kind's plan must not stop the others: its policies are Failed and nothing of it changes.
      complete = false;
      const message = err instanceof Error ? err.message : String(err);
      parts.push({
        failed: s.policies.map((pol) => ({
          policy: pol.name,
          sourceFile: resolve(pol.source.file),
          condition: 'Failed',
          reason: 'PlanFailed',
          message: `planning ${s.kind.kind} failed: ${message}; nothing of this kind is changed this pass`,
        })),
      });
    }
  }
  // The same kind plans (a kind may hand back its last plan: plan-memo.ts) merge into the same plan.
  const planned = parts as Array<{ owner: string; plan: KindPlan }>;
  if (complete && lastMerged !== undefined && sameParts(lastMerged.parts, planned) && sameStrings(lastMerged.rootStray, rootStray)) return lastMerged.plan;
  const actions: Action[] = [];
  const problems: PlanProblem[] = [];
  for (const part of parts) {
    if ('failed' in part) {
      problems.push(...part.failed);
      continue;
    }
    for (const a of ownedActions(part.plan, part.owner)) actions.push(a);
    problems.push(...part.plan.problems);
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
  const plan: Plan = { actions: PHASES.flatMap((phase) => actions.filter((a) => a.phase === phase)), problems };
  lastMerged = complete ? { parts: planned, rootStray: [...rootStray], plan } : undefined;
  return plan;
}

/** The last merged plan, with the kind plans and root strays it was merged from. */
let lastMerged: { parts: Array<{ owner: string; plan: KindPlan }>; rootStray: readonly string[]; plan: Plan } | undefined;

function sameParts(a: ReadonlyArray<{ owner: string; plan: KindPlan }>, b: ReadonlyArray<{ owner: string; plan: KindPlan }>): boolean {
  return a.length === b.length && a.every((x, i) => x.owner === b[i]!.owner && x.plan === b[i]!.plan);
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
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
