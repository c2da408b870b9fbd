/**
 * Observed state from the pins under ROOT/netns: dispatchers, their parsed
 * policy records, and the sockets their destinations hold.
 */
import { observeDispatchers, observeSockets, type ObservedDispatcher } from './store.js';
import type { ObservedDispatcherState, SteeringObserved, PolicyRecord } from './model.js';

/** Records parsed in the last pass, by name and JSON text (records are never mutated once parsed). */
type ParsedRecords = Map<string, PolicyRecord | string>;

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
 *
 * Everything is read on every call. When what was read equals what the last
 * call read (the same bytes in the maps, the same ids, pins and cookies),
 * the last call's objects are returned again, so that what is computed from
 * them (the plan) can be reused too: a changed byte anywhere gives new objects.
 */
export function observe(root: string): SteeringObserved {
  const raw = observeDispatchers(root);
  const next: typeof lastStates = new Map();
  const dispatchers: ObservedDispatcherState[] = raw.dispatchers.map((d) => {
    const previous = lastStates.get(d.dir);
    if (d.error) return { ...d, records: [], badRecords: [], sockets: {} };
    const { records, badRecords, parsed } = parseRecords(d.records, previous);
    try {
      const cookies = observeSockets(d.dir, destIdsOf(records));
      const same = previous !== undefined && sameCookies(previous.cookies, cookies) && sameState(previous.state, d, records, badRecords);
      const state: ObservedDispatcherState = same ? previous.state : { ...d, records, badRecords, sockets: Object.fromEntries(cookies) };
      next.set(d.dir, { raw: d.records, parsed, cookies, state });
      return state;
    } catch (err) {
      return { ...d, records: [], badRecords: [], bindings: [], sockets: {}, error: (err as Error).message };
    }
  });
  lastStates = next;
  const last = lastObserved;
  const now: SteeringObserved =
    last !== undefined && sameList(last.dispatchers, dispatchers) && sameStrings(last.stray, raw.stray) ? last : { dispatchers, stray: raw.stray };
  lastObserved = now;
  return now;
}

/** The last call's state of each dispatcher read without error, with the raw records it was parsed from and their parses. */
interface LastState {
  raw: ReadonlyArray<{ name: string; json: string }>;
  parsed: ParsedRecords;
  /** The cookies `state.sockets` holds, as read. */
  cookies: ReadonlyMap<number, string | null>;
  state: ObservedDispatcherState;
}
let lastStates = new Map<string, LastState>();
let lastObserved: SteeringObserved | undefined;

/**
 * Records parsed: the last call's when the store handed back the same raw
 * records (it does when their bytes did not change); otherwise each record
 * whose name and text the last call parsed is not parsed again.
 */
function parseRecords(raw: ReadonlyArray<{ name: string; json: string }>, previous: LastState | undefined): { records: PolicyRecord[]; badRecords: Array<{ name: string; reason: string }>; parsed: ParsedRecords } {
  if (previous !== undefined && previous.raw === raw) return { records: previous.state.records, badRecords: previous.state.badRecords, parsed: previous.parsed };
  const parsed: ParsedRecords = new Map();
  const records: PolicyRecord[] = [];
  const badRecords: Array<{ name: string; reason: string }> = [];
  for (const { name, json } of raw) {
    const key = `${name}\u0000${json}`;
    const r = previous?.parsed.get(key) ?? parseRecordText(name, json);
    parsed.set(key, r);
    if (typeof r === 'string') badRecords.push({ name, reason: r });
    else records.push(r);
  }
  return { records, badRecords, parsed };
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameProgram(a: { id: number; tag: string } | undefined, b: { id: number; tag: string } | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.id === b.id && a.tag === b.tag);
}

/** Destination ids of parsed records, kept by records array (the same array for unchanged records). */
function destIdsOf(records: readonly PolicyRecord[]): readonly number[] {
  let ids = destIds.get(records);
  if (ids === undefined) {
    ids = records.map((r) => r.destId);
    destIds.set(records, ids);
  }
  return ids;
}
const destIds = new WeakMap<readonly PolicyRecord[], readonly number[]>();

function sameCookies(a: ReadonlyMap<number, string | null>, b: ReadonlyMap<number, string | null>): boolean {
  if (a.size !== b.size) return false;
  let same = true;
  b.forEach((v, k) => {
    if (same && a.get(k) !== v) same = false;
  });
  return same;
}

/**
 * True when a dispatcher read now (`d`, its parsed records) found what the
 * last state holds (records and bindings: the same objects, which the store
 * and the parse above hand back for the same bytes).
 */
function sameState(a: ObservedDispatcherState, d: ObservedDispatcher, records: readonly PolicyRecord[], badRecords: ReadonlyArray<{ name: string }>): boolean {
  if (a.key !== d.key || a.dir !== d.dir || a.error !== undefined || d.error !== undefined) return false;
  if (a.records !== records || a.badRecords !== badRecords || a.bindings !== d.bindings) return false;
  if (!sameProgram(a.program, d.program) || !sameProgram(a.programNext, d.programNext)) return false;
  const la = a.link;
  const lb = d.link;
  if (la !== lb && (la === undefined || lb === undefined || la.id !== lb.id || la.progId !== lb.progId || la.netnsIno !== lb.netnsIno || la.attached !== lb.attached)) return false;
  return sameStrings(a.missingMaps, d.missingMaps) && sameStrings(a.stray, d.stray);
}
