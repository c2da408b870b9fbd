/**
 * Runs SyscallCounter's plan operations against the kernel (store.ts). Each
 * call opens the pins it needs and closes them before returning.
 */
import { removePinPath } from '../../bpf/bpffs.js';
import { finishPinnedSwap } from '../../bpf/program-swap.js';
import type { KindEnv } from '../../reconciler/kind.js';
import type { Operation } from '../../reconciler/model.js';
import { COUNTER_OBJECT } from './layout.js';
import type { CounterOperation } from './model.js';
import * as store from './store.js';

/** SyscallCounter's options (`kindOptions.SyscallCounter`). */
export interface CounterOptions {
  /** Compiled counter object (default build/bpf/syscall_counter.o). */
  objectPath?: string;
}

/** The counter options of a pass. */
export function counterOptionsOf(env: Pick<KindEnv, 'options'>): CounterOptions {
  return env.options as CounterOptions;
}

/** Runs one operation. Throws what the kernel layer throws. */
export function executeCounter(operation: Operation, env: KindEnv): void {
  const op = operation as CounterOperation;
  const objectPath = counterOptionsOf(env).objectPath ?? COUNTER_OBJECT;
  switch (op.type) {
    case 'createCounter':
      return store.createCounter(op.dir, objectPath);
    case 'attachCounter':
      return store.attachCounter(op.dir);
    case 'replaceCounterProgram':
      return store.replaceCounterProgram(op.dir, objectPath);
    case 'finishUpgrade':
      return finishPinnedSwap(op.dir);
    case 'writeSlot':
      return store.writeSlot(op.dir, op.write);
    case 'clearSlot':
      return store.clearSlot(op.dir, op.slot, op.allMask, op.nSlots, op.deleteRecords);
    case 'writeCounterConfig':
      return store.writeCounterConfig(op.dir, op.allMask, op.nSlots);
    case 'deleteRecords':
      return store.deleteRecords(op.dir, op.names);
    case 'removeCounter':
      return void store.removeCounter(op.dir);
    case 'removeStray':
      return void removePinPath(op.path);
    case 'none':
      return;
    default:
      throw new Error(`SyscallCounter has no operation ${(op as Operation).type}`);
  }
}
