/**
 * apply(plan): the only step with side effects. Runs the actions in plan
 * order, each through the kind that planned it. A failing action fails its
 * policy (its later actions are skipped) or, when it names no policy, its
 * failure domain (the domain's later actions are skipped); everything else
 * goes on.
 */
import { failpoint } from '../common/failpoint.js';
import type { Action } from './model.js';

/** An action that failed, with its error. */
export interface FailedAction {
  action: Action;
  error: Error;
}

/** What apply did. */
export interface ApplyResult {
  applied: Action[];
  failed: FailedAction[];
  /** Actions not run because an earlier action of their policy or failure domain failed. */
  skipped: Action[];
}

/** Runs one action's operation (the engine routes it to the kind that planned it). */
export type Executor = (action: Action) => void;

/**
 * Runs the actions in order. `onAction` hears of each one as it finishes
 * (for logs). Never throws for a failing action: failures are in the result.
 * Marks the failpoint `apply-step` after every kernel-changing action.
 */
export function apply(actions: readonly Action[], execute: Executor, onAction?: (a: Action, error?: Error) => void): ApplyResult {
  const result: ApplyResult = { applied: [], failed: [], skipped: [] };
  const failedPolicies = new Set<string>();
  const failedDomains = new Set<string>();
  const scope = (a: Action, name: string) => `${a.owner ?? ''}\u0000${name}`;
  for (const action of actions) {
    if (
      (action.policy && failedPolicies.size > 0 && failedPolicies.has(scope(action, action.policy))) ||
      (action.domain && failedDomains.size > 0 && failedDomains.has(scope(action, action.domain)))
    ) {
      result.skipped.push(action);
      continue;
    }
    if (action.kind === 'noop' || action.op.type === 'none') continue;
    try {
      execute(action);
      failpoint('apply-step');
      result.applied.push(action);
      onAction?.(action);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      result.failed.push({ action, error });
      onAction?.(action, error);
      if (action.policy) failedPolicies.add(scope(action, action.policy));
      else if (action.domain) failedDomains.add(scope(action, action.domain));
    }
  }
  return result;
}
