/**
 * Runs PortSteering's plan operations against the kernel (store.ts). Each
 * call opens the pins it needs and closes them before returning.
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
      return store.writeRecord(op.dir, op.record.name, JSON.stringify(op.record));
    case 'putSocket':
      return store.putSocket(op.dir, op.destId, { pid: op.pid, fd: op.fd });
    case 'resetCounters':
      return op.bindingIds.forEach((id) => store.resetCounter(op.dir, id));
    case 'upsertBindings':
      return store.upsertBindings(op.dir, op.entries);
    case 'deleteBindings':
      return store.deleteBindings(op.dir, op.keys);
    case 'deleteSocket':
      return store.deleteSocket(op.dir, op.destId);
    case 'deleteRecord':
      return store.deleteRecord(op.dir, op.name);
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
