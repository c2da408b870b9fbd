/**
 * The reconciler's KernelPort backed by the real kernel (dispatcher-store.ts).
 * Each call opens the pins it needs and closes them before returning.
 */
import type { KernelPort } from '../reconciler/apply.js';
import * as store from './port-steering/store.js';
import { FILTER_OBJECT } from './packet-filter/layout.js';
import * as filters from './packet-filter/store.js';

/** Where packet filters come from. */
export interface FilterOptions {
  /** Compiled filter object (default build/bpf/packet_filter.o). */
  objectPath?: string;
  /** Force how tc hooks attach (default: tcx where the kernel has it, else cls_bpf). For tests of the fallback. */
  tcMethod?: 'tcx' | 'cls_bpf';
}

/**
 * A KernelPort that builds dispatchers from the compiled object at
 * `objectPath`, and packet filters from `filterOptions.objectPath`.
 */
export function kernelPort(objectPath: string, filterOptions: FilterOptions = {}): KernelPort {
  const filterObject = filterOptions.objectPath ?? FILTER_OBJECT;
  return {
    createFilter: (op) => filters.createFilter(op.dir, op.spec, filterObject, op.rules, op.policies),
    writeFilterRules: (op) => filters.writeFilterRules(op.dir, op.gen, op.rules),
    writeFilterRecords: (op) => filters.writeFilterRecords(op.dir, op.upserts, op.deletes),
    replaceFilterProgram: (op) => filters.replaceFilterProgram(op.dir, filterObject, op.expectedProgId),
    attachFilter: (op) => void filters.attachFilter(op.dir, op.spec, op.previous),
    removeFilter: (op) => void filters.removeFilter(op.dir),
    createDispatcher: (dir, netnsPath) => void store.createDispatcher(dir, netnsPath, objectPath),
    replaceProgram: (dir, expectedProgId) => void store.replaceDispatcherProgram(dir, objectPath, expectedProgId),
    relink: (dir, netnsPath) => void store.relinkDispatcher(dir, netnsPath),
    writeRecord: (dir, record) => store.writeRecord(dir, record.name, JSON.stringify(record)),
    putSocket: (dir, destId, target) => store.putSocket(dir, destId, target),
    resetCounters: (dir, ids) => ids.forEach((id) => store.resetCounter(dir, id)),
    upsertBindings: (dir, entries) => store.upsertBindings(dir, entries),
    deleteBindings: (dir, keys) => store.deleteBindings(dir, keys),
    deleteSocket: (dir, destId) => store.deleteSocket(dir, destId),
    deleteRecord: (dir, name) => store.deleteRecord(dir, name),
    removeDispatcher: (dir) => void store.removeDispatcher(dir),
    removeStray: (path) => store.removeStray(path),
  };
}
