/**
 * Runs PortSteering's plan operations against the kernel (store.ts). The
 * dispatcher maps an operation writes stay open in the apply's scope, when
 * the engine gives one, until the apply ends; other pins are opened and
 * closed by each call.
 */
import type { KindEnv } from '../../reconciler/kind.js';
import type { Operation } from '../../reconciler/model.js';
import { DISPATCHER_OBJECT } from './layout.js';
import type { SteeringOperation } from './model.js';
import * as store from './store.js';
import { removePinPath } from '../../bpf/bpffs.js';
import { finishPinnedSwap } from '../../bpf/program-swap.js';

/** PortSteering's options (`kindOptions.PortSteering`). */
export interface SteeringOptions {
  /** Compiled dispatcher to run (default build/bpf/dispatcher.o). */
  objectPath?: string;
}

/** The dispatcher object a pass runs. */
export function dispatcherObjectOf(env: Pick<KindEnv, 'options'>): string {
  return (env.options as SteeringOptions).objectPath ?? DISPATCHER_OBJECT;
}

/** Runs one operation. Throws what the kernel layer throws (ErrnoError, LoadError). */
export function executeSteering(operation: Operation, env: KindEnv): void {
  const op = operation as SteeringOperation;
  const objectPath = dispatcherObjectOf(env);
  // Maps stay open for the rest of the apply when the engine gives a scope; an operation that replaces or
  // removes a dispatcher's pins closes what was kept of them first.
  const use = env.scope ? store.keptIn(env.scope) : store.openEachTime;
  if (env.scope && (op.type === 'createDispatcher' || op.type === 'removeDispatcher')) env.scope.forget(`${op.dir}/`);
  switch (op.type) {
    case 'createDispatcher':
      return void store.createDispatcher(op.dir, op.netnsPath, objectPath);
    case 'replaceProgram':
      return void store.replaceDispatcherProgram(op.dir, objectPath, op.expectedProgId);
    case 'finishUpgrade':
      return finishPinnedSwap(op.dir);
    case 'relink':
      return void store.relinkDispatcher(op.dir, op.netnsPath);
    case 'writeRecord':
      return store.writeRecord(op.dir, op.record.name, JSON.stringify(op.record), use);
    case 'putSocket':
      return store.putSocket(op.dir, op.destId, { pid: op.pid, fd: op.fd }, use);
    case 'resetCounters':
      return op.bindingIds.forEach((id) => store.resetCounter(op.dir, id, use));
    case 'upsertBindings':
      return store.upsertBindings(op.dir, op.entries, use);
    case 'deleteBindings':
      return store.deleteBindings(op.dir, op.keys, use);
    case 'deleteSocket':
      return store.deleteSocket(op.dir, op.destId, use);
    case 'deleteRecord':
      return store.deleteRecord(op.dir, op.name, use);
    case 'removeDispatcher':
      return void store.removeDispatcher(op.dir);
    case 'removeStray':
      return void removePinPath(op.path);
    case 'none':
      return;
    default:
      throw new Error(`PortSteering has no operation ${(op as Operation).type}`);
  }
}
