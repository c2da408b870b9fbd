/**
 * Runs ConnectPolicy's plan operations against the kernel (store.ts). Each
 * call opens the pins it needs and closes them before returning.
 */
import { removePinPath } from '../../bpf/bpffs.js';
import { finishPinnedSwap } from '../../bpf/program-swap.js';
import type { KindEnv } from '../../reconciler/kind.js';
import type { Operation } from '../../reconciler/model.js';
import { GUARD_OBJECT } from './layout.js';
import type { GuardOperation } from './model.js';
import * as store from './store.js';

/** ConnectPolicy's options (`kindOptions.ConnectPolicy`). */
export interface GuardOptions {
  /** Compiled guard object (default build/bpf/connect_policy.o). */
  objectPath?: string;
}

/** The guard options of a pass. */
export function guardOptionsOf(env: Pick<KindEnv, 'options'>): GuardOptions {
  return env.options as GuardOptions;
}

/** Runs one operation. Throws what the kernel layer throws (ErrnoError, LoadError). */
export function executeGuard(operation: Operation, env: KindEnv): void {
  const op = operation as GuardOperation;
  const objectPath = guardOptionsOf(env).objectPath ?? GUARD_OBJECT;
  switch (op.type) {
    case 'createGuard':
      return store.createGuard(op.dir, op.guard, objectPath, op.rules, op.policies);
    case 'writeGuardRules':
      return store.writeGuardRules(op.dir, op.rules);
    case 'writeGuardRecords':
      return store.writeGuardRecords(op.dir, op.upserts, op.deletes);
    case 'attachGuardHook':
      return store.attachGuardHook(op.dir, op.hook, op.guard);
    case 'replaceGuardProgram':
      return store.replaceGuardProgram(op.dir, op.hook, objectPath, op.expectedProgId);
    case 'finishUpgrade':
      return finishPinnedSwap(op.dir);
    case 'removeGuard':
      return void store.removeGuard(op.dir);
    case 'removeStray':
      return void removePinPath(op.path);
    case 'none':
      return;
    default:
      throw new Error(`ConnectPolicy has no operation ${(op as Operation).type}`);
  }
}
