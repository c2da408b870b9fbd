/**
 * The reconciler's KernelPort backed by the real kernel (dispatcher-store.ts).
 * Each call opens the pins it needs and closes them before returning.
 */
import type { KernelPort } from '../reconciler/apply.js';
import * as store from './dispatcher-store.js';

/** A KernelPort that builds dispatchers from the compiled object at `objectPath`. */
export function kernelPort(objectPath: string): KernelPort {
  return {
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
