/**
 * Runs PacketFilter's plan operations against the kernel (store.ts). Each
 * call opens the pins it needs and closes them before returning.
 */
import type { KindEnv } from '../../reconciler/kind.js';
import type { Operation } from '../../reconciler/model.js';
import { FILTER_OBJECT } from './layout.js';
import type { FilterOperation } from './model.js';
import * as store from './store.js';
import { removePinPath } from '../../bpf/bpffs.js';
import { finishPinnedSwap } from '../../bpf/program-swap.js';

/** PacketFilter's options (`kindOptions.PacketFilter`). */
export interface FilterOptions {
  /** Compiled filter object (default build/bpf/packet_filter.o). */
  objectPath?: string;
  /** Force how tc hooks attach (default: tcx where the kernel has it, else cls_bpf). For tests of the fallback. */
  tcMethod?: 'tcx' | 'cls_bpf';
}

/** The filter options of a pass. */
export function filterOptionsOf(env: Pick<KindEnv, 'options'>): FilterOptions {
  return env.options as FilterOptions;
}

/** Runs one operation. Throws what the kernel layer throws (ErrnoError, LoadError, XdpConflictError). */
export function executeFilter(operation: Operation, env: KindEnv): void {
  const op = operation as FilterOperation;
  const objectPath = filterOptionsOf(env).objectPath ?? FILTER_OBJECT;
  switch (op.type) {
    case 'createFilter':
      return store.createFilter(op.dir, op.spec, objectPath, op.rules, op.policies);
    case 'writeFilterRules':
      return store.writeFilterRules(op.dir, op.gen, op.rules);
    case 'writeFilterRecords':
      return store.writeFilterRecords(op.dir, op.upserts, op.deletes);
    case 'replaceFilterProgram':
      return store.replaceFilterProgram(op.dir, objectPath, op.expectedProgId);
    case 'finishUpgrade':
      return finishPinnedSwap(op.dir);
    case 'attachFilter':
      return void store.attachFilter(op.dir, op.spec, op.previous);
    case 'removeFilter':
      return void store.removeFilter(op.dir);
    case 'removeStray':
      return void removePinPath(op.path);
    case 'none':
      return;
    default:
      throw new Error(`PacketFilter has no operation ${(op as Operation).type}`);
  }
}
