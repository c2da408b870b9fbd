/**
 * Observed state from the pins under the root: dispatchers, their parsed
 * policy records, and the sockets their destinations hold; and the packet
 * filters under ROOT/filters.
 */
import { observeRoot, observeSockets } from './store.js';
import { observeFilters } from '../packet-filter/store.js';
import type { ObservedDispatcherState, ObservedState, PolicyRecord } from '../../reconciler/model.js';

function parseRecord(name: string, json: string): PolicyRecord | string {
  try {
    const r = JSON.parse(json) as PolicyRecord;
    if (r.v !== 1 || r.name !== name || typeof r.destId !== 'number' || !Array.isArray(r.bindings)) return 'unknown record format';
    return r;
  } catch (err) {
    return `not JSON: ${(err as Error).message}`;
  }
}

/** Reads everything under `root`. An absent root is an empty state. */
export function observe(root: string): ObservedState {
  const raw = observeRoot(root);
  const dispatchers: ObservedDispatcherState[] = raw.dispatchers.map((d) => {
    const records: PolicyRecord[] = [];
    const badRecords: Array<{ name: string; reason: string }> = [];
    for (const { name, json } of d.records) {
      const r = parseRecord(name, json);
      if (typeof r === 'string') badRecords.push({ name, reason: r });
      else records.push(r);
    }
    const sockets = Object.fromEntries(observeSockets(d.dir, records.map((r) => r.destId)));
    return { ...d, records, badRecords, sockets };
  });
  return { dispatchers, stray: raw.stray, filters: observeFilters(root) };
}
