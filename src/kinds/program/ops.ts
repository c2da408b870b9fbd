/** Runs the Program kind's plan operations against the kernel (store.ts). */
import { removePinPath } from '../../bpf/bpffs.js';
import { finishPinnedSwap } from '../../bpf/program-swap.js';
import type { KindEnv } from '../../reconciler/kind.js';
import type { Operation } from '../../reconciler/model.js';
import type { ProgramOperation } from './model.js';
import * as store from './store.js';

/** Runs one operation. Throws what the kernel layer throws (ErrnoError, LoadError with the verifier log, XdpConflictError), or Error on a digest mismatch. */
export function executeProgram(operation: Operation, _env: KindEnv): void {
  const op = operation as ProgramOperation;
  switch (op.type) {
    case 'createProgram':
      return store.createProgram(op.desired);
    case 'upgradeProgram':
      return store.upgradeProgram(op.desired, op.expectedProgId);
    case 'writeEntries':
      return store.writeEntries(op.desired, op.deleteKeys);
    case 'recordSource':
      return store.recordSource(op.dir, op.sourceFile, op.object);
    case 'attachTarget':
      return store.attachTarget(op.desired, op.target);
    case 'detachTarget':
      return store.detachTarget(op.dir, op.pin);
    case 'finishUpgrade':
      return finishPinnedSwap(op.dir);
    case 'removeStray':
      return void removePinPath(op.path);
    case 'removeProgram':
      return void store.removeProgram(op.dir);
    case 'none':
      return;
    default:
      throw new Error(`Program has no operation ${(op as Operation).type}`);
  }
}
