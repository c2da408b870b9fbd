/**
 * apply(plan): the only step with side effects. Runs the actions in plan
 * order through a {@link KernelPort}; a failing action fails its policy (or,
 * for a dispatcher step, the policies of that dispatcher) and the rest go on.
 */
import type { FilterPort } from '../kinds/packet-filter/model.js';
import type { Action, Operation, PolicyRecord } from './model.js';
import { failpoint } from '../common/failpoint.js';

/** The kernel operations apply needs; src/bpf/kernel-port.ts implements them. */
export interface KernelPort extends FilterPort {
  createDispatcher(dir: string, netnsPath: string): void;
  replaceProgram(dir: string, expectedProgId: number): void;
  relink(dir: string, netnsPath: string): void;
  writeRecord(dir: string, record: PolicyRecord): void;
  putSocket(dir: string, destId: number, target: { pid: number; fd: number }): void;
  resetCounters(dir: string, bindingIds: number[]): void;
  upsertBindings(dir: string, entries: Array<{ key: string; destId: number; bindingId: number }>): void;
  deleteBindings(dir: string, keys: string[]): void;
  deleteSocket(dir: string, destId: number): void;
  deleteRecord(dir: string, name: string): void;
  removeDispatcher(dir: string): void;
  removeStray(path: string): void;
}

/** An action that failed, with its error. */
export interface FailedAction {
  action: Action;
  error: Error;
}

/** What apply did. */
export interface ApplyResult {
  applied: Action[];
  failed: FailedAction[];
  /** Actions not run because an earlier action of their policy or dispatcher failed. */
  skipped: Action[];
}

function run(port: KernelPort, op: Operation): void {
  switch (op.type) {
    case 'createDispatcher':
      return port.createDispatcher(op.dir, op.netnsPath);
    case 'replaceProgram':
      return port.replaceProgram(op.dir, op.expectedProgId);
    case 'relink':
      return port.relink(op.dir, op.netnsPath);
    case 'writeRecord':
      return port.writeRecord(op.dir, op.record);
    case 'putSocket':
      return port.putSocket(op.dir, op.destId, { pid: op.pid, fd: op.fd });
    case 'resetCounters':
      return port.resetCounters(op.dir, op.bindingIds);
    case 'upsertBindings':
      return port.upsertBindings(op.dir, op.entries);
    case 'deleteBindings':
      return port.deleteBindings(op.dir, op.keys);
    case 'deleteSocket':
      return port.deleteSocket(op.dir, op.destId);
    case 'deleteRecord':
      return port.deleteRecord(op.dir, op.name);
    case 'removeDispatcher':
      return port.removeDispatcher(op.dir);
    case 'removeStray':
      return port.removeStray(op.path);
    case 'createFilter':
      return port.createFilter(op);
    case 'writeFilterRules':
      return port.writeFilterRules(op);
    case 'writeFilterRecords':
      return port.writeFilterRecords(op);
    case 'replaceFilterProgram':
      return port.replaceFilterProgram(op);
    case 'attachFilter':
      return port.attachFilter(op);
    case 'removeFilter':
      return port.removeFilter(op);
    case 'none':
      return;
  }
}

/**
 * Runs the plan's actions in order. `onAction` hears of each one as it
 * finishes (for logs). Never throws for a failing action: failures are in
 * the result.
 */
export function apply(actions: Action[], port: KernelPort, onAction?: (a: Action, error?: Error) => void): ApplyResult {
  const result: ApplyResult = { applied: [], failed: [], skipped: [] };
  const failedPolicies = new Set<string>();
  const failedDispatchers = new Set<string>();
  for (const action of actions) {
    if ((action.policy && failedPolicies.has(action.policy)) || (action.dispatcher && failedDispatchers.has(action.dispatcher))) {
      result.skipped.push(action);
      continue;
    }
    if (action.kind === 'noop') continue;
    try {
      run(port, action.op);
      if (action.op.type !== 'none') failpoint('apply-step');
      result.applied.push(action);
      onAction?.(action);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      result.failed.push({ action, error });
      onAction?.(action, error);
      if (action.policy) failedPolicies.add(action.policy);
      else if (action.dispatcher && action.phase === 'dispatcher') failedDispatchers.add(action.dispatcher);
    }
  }
  return result;
}
