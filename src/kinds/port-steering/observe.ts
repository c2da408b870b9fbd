/**
 * Observed state from the pins under ROOT/netns: dispatchers, their parsed
 * policy records, and the sockets their destinations hold.
 */
import { observeDispatchers, observeSockets } from './store.js';
import type { ObservedDispatcherState, SteeringObserved, PolicyRecord } from './model.js';

/**
 * Records parsed in the last pass, by name and JSON text: a record whose
 * bytes in the map did not change is not parsed again (records are never
 * mutated once parsed). Only the last pass's records are kept.
 */
let parsedRecords = new Map<string, PolicyRecord | string>();
let parsingRecords = new Map<string, PolicyRecord | string>();

function parseRecord(name: string, json: string): PolicyRecord | string {
  const key = `${name}\u0000${json}`;
  const known = parsedRecords.get(key) ?? parseRecordText(name, json);
  parsingRecords.set(key, known);
  return known;
}

function parseRecordText(name: string, json: string): PolicyRecord | string {
  try {
    const r = JSON.parse(json) as PolicyRecord;
    if (r.v !== 1 || r.name !== name || typeof r.destId !== 'number' || !Array.isArray(r.bindings)) return 'unknown record format';
    return r;
  } catch (err) {
    return `not JSON: ${(err as Error).message}`;
  }
}

/**
 * Reads every dispatcher under ROOT/netns. An absent directory is an empty
 * state. A dispatcher whose pins cannot be read (an error other than ENOENT)
 * is returned with `error` set and nothing else: the plan leaves it alone.
 */
export function observe(root: string): SteeringObserved {
  const raw = observeDispatchers(root);
  const dispatchers: ObservedDispatcherState[] = raw.dispatchers.map((d) => {
    const records: PolicyRecord[] = [];
    const badRecords: Array<{ name: string; reason: string }> = [];
    if (d.error) return { ...d, records, badRecords, sockets: {} };
    for (const { name, json } of d.records) {
      const r = parseRecord(name, json);
      if (typeof r === 'string') badRecords.push({ name, reason: r });
      else records.push(r);
    }
    try {
      const sockets = Object.fromEntries(observeSockets(d.dir, records.map((r) => r.destId)));
      return { ...d, records, badRecords, sockets };
    } catch (err) {
      return { ...d, records: [], badRecords: [], bindings: [], sockets: {}, error: (err as Error).message };
    }
  });
  parsedRecords = parsingRecords;
  parsingRecords = new Map();
  return { dispatchers, stray: raw.stray };
}
