/**
 * The engine bound to the registered kinds: what the CLI, the daemon, the
 * demo, the benchmarks and the tests call. Like controller-runtime's Manager
 * it names no kind; it hands src/kinds/registry.ts's list to the
 * kind-agnostic engine (src/reconciler/).
 */
import { loadPolicies as loadWith, type LoadPoliciesOptions, type PolicyLoadResult } from './policy/index.js';
import { validatePolicyDocuments as validateWith, type ValidateOptions, type ValidationResult } from './policy/validate.js';
import type { PolicyDocument } from './policy/parse.js';
import { DOCUMENT_KINDS, ENGINE, KINDS } from './kinds/registry.js';
import { reconcileOnce as reconcileWith, type ReconcileOptions, type ReconcileReport } from './reconciler/reconcile.js';

export { KINDS, DOCUMENT_KINDS, ENGINE };
export { computeStatuses, kindState, reconcileExitCode, DEFAULT_ROOT } from './reconciler/reconcile.js';
export type { ReconcileOptions, ReconcileReport } from './reconciler/reconcile.js';
export { changes } from './reconciler/plan.js';

/** One pass over every registered kind (see the engine's reconcileOnce). */
export function reconcileOnce(opts: ReconcileOptions = {}): Promise<ReconcileReport> {
  return reconcileWith(ENGINE, opts);
}

/** Loads and validates policy files against the registered kinds. */
export function loadPolicies(opts: Omit<LoadPoliciesOptions, 'kinds'> & { kinds?: LoadPoliciesOptions['kinds'] } = {}): PolicyLoadResult {
  return loadWith({ ...opts, kinds: opts.kinds ?? DOCUMENT_KINDS });
}

/** Validates parsed documents against the registered kinds. */
export function validatePolicyDocuments(documents: readonly PolicyDocument[], opts: Partial<ValidateOptions> = {}): ValidationResult {
  return validateWith(documents, { ...opts, kinds: opts.kinds ?? DOCUMENT_KINDS });
}
