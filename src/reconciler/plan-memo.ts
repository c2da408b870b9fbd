/**
 * A kind's plan is pure: the same desired and observed state give the same
 * plan. Kinds whose desire and observe hand back the very same objects when
 * nothing changed (they do: see each kind's observe) can wrap their plan in
 * {@link lastPlanMemo} so that a no-op pass does not plan thousands of
 * policies again. The kernel is still read on every pass: a different byte
 * gives different objects, and the plan runs.
 */
import type { KindPlan, PlanEnv } from './kind.js';

/** Whether two plan environments are the same: the same root, and failed files that answer the same (same class, same paths). */
function sameEnv(a: PlanEnv, b: PlanEnv): boolean {
  if (a.root !== b.root) return false;
  const fa = a.failedFiles;
  const fb = b.failedFiles;
  if (fa === fb) return true;
  if (fa.constructor !== fb.constructor || fa.size !== fb.size) return false;
  for (const p of fa) if (!fb.has(p)) return false;
  for (const p of fb) if (!fa.has(p)) return false;
  return true;
}

/** `plan`, returning its last result again when called with the same desired and observed objects and an equal environment. */
export function lastPlanMemo<D, O>(plan: (desired: D, observed: O, env: PlanEnv) => KindPlan): (desired: D, observed: O, env: PlanEnv) => KindPlan {
  let last: { desired: D; observed: O; env: PlanEnv; plan: KindPlan } | undefined;
  return (desired, observed, env) => {
    if (last !== undefined && last.desired === desired && last.observed === observed && sameEnv(last.env, env)) return last.plan;
    const result = plan(desired, observed, env);
    last = { desired, observed, env, plan: result };
    return result;
  };
}
