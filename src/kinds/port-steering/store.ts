/**
 * The dispatchers under a pin root, seen and changed as plain data. This is
 * the reconciler's only door to the kernel: observation returns plain
 * objects, and each mutation opens what it needs, does one thing, and closes
 * it again before returning, unless the caller hands it a {@link MapUse}
 * that keeps maps open for the rest of an apply ({@link keptIn}).
 *
 * Pin layout (see docs/pin-layout.md; the kind owns ROOT/netns):
 *   ROOT/netns/<key>/program        the sk_lookup dispatcher program
 *   ROOT/netns/<key>/link           its sk_lookup link on the namespace
 *   ROOT/netns/<key>/map_<name>     bindings, sockets, binding_hits, stats, policies
 *   ROOT/netns/<key>/program_next   only during an upgrade
 */
import { failpoint } from '../../common/failpoint.js';
import { existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tryOpen } from '../../bpf/kernel-object.js';
import { observePrograms, swapPinnedProgram, type PinnedProgram } from '../../bpf/program-swap.js';
import { BpfMap, sumPerCpuU64 } from '../../bpf/map.js';
import { Link } from '../../bpf/link.js';
import { Netns } from '../../bpf/netns.js';
import { loadObject, objectProgramTags } from '../../bpf/object.js';
import { Program } from '../../bpf/program.js';
import { duplicateSocket } from '../../bpf/sockets.js';
import { removePinTree, unpin } from '../../bpf/bpffs.js';
import type { PackedEntries } from '../../common/batch-entries.js';
import { EntryBytes } from '../../common/entry-bytes.js';
import { decodeReusing, type EntryRun } from '../../common/entry-reuse.js';
import { BINDING_KEY_SIZE, BINDING_VALUE_SIZE, decodePolicyKey, decodePolicyRecord, encodePolicyRecord, policyKey, u32Key } from './layout.js';
import { compareCodeUnits } from '../../common/compare.js';
import type { ApplyScope } from '../../reconciler/kind.js';

/** Names of the dispatcher's maps, as in bpf/dispatcher.c. */
export const DISPATCHER_MAPS = ['bindings', 'sockets', 'binding_hits', 'stats', 'policies'] as const;
export type DispatcherMapName = (typeof DISPATCHER_MAPS)[number];
const PROGRAM_NAME = 'dispatcher';

/** Directory of the dispatcher for namespace `key` under `root`. */
export function dispatcherDir(root: string, key: string): string {
  return join(root, NETNS_DIR, key);
}

/** What one dispatcher directory holds, as the kernel reports it. */
export interface ObservedDispatcher {
  key: string;
  dir: string;
  program?: PinnedProgram;
  /** The new program of an upgrade a crash interrupted (pinned as program_next; also listed in `stray`). */
  programNext?: PinnedProgram;
  link?: { id: number; progId: number; netnsIno: number; attached: boolean };
  /** Maps whose pins are missing or unreadable (the dispatcher is broken). */
  missingMaps: string[];
  /** LPM entries, in the order the map returned them: key bytes as a latin1 string (one char per byte), and what they point to. */
  bindings: ReadonlyArray<{ key: string; destId: number; bindingId: number }>;
  /** Policy records: name and JSON text. */
  records: Array<{ name: string; json: string }>;
  /** Pins we did not expect (left by a crash, e.g. program_next). */
  stray: string[];
  /** Reading the directory failed with an error other than ENOENT: nothing else is known, and nothing may be changed. */
  error?: string;
}

/** Everything under ROOT/netns. */
export interface ObservedDispatchers {
  dispatchers: ObservedDispatcher[];
  /** Entries under ROOT/netns that are not part of the layout. */
  stray: string[];
}

/** Reads one dispatcher directory. Never throws for missing pieces: they are reported as missing. */
export function observeDispatcher(root: string, key: string): ObservedDispatcher {
  const dir = dispatcherDir(root, key);
  const obs: ObservedDispatcher = { key, dir, missingMaps: [], bindings: [], records: [], stray: [] };
  const known = new Set(['program', 'link', ...DISPATCHER_MAPS.map((m) => `map_${m}`)]);
  for (const e of readdirSync(dir)) if (!known.has(e)) obs.stray.push(join(dir, e));
  Object.assign(obs, observePrograms(dir));
  {
    using link = tryOpen(() => Link.fromPin(join(dir, 'link')));
    if (link) {
      const i = link.info();
      const t = i.target;
      obs.link = { id: i.id, progId: i.progId, netnsIno: t.kind === 'netns' ? t.netnsIno : 0, attached: t.attached && t.kind === 'netns' };
    }
  }
  const last = lastReads.get(dir);
  const read: LastRead = { bindingRun: undefined, bindings: obs.bindings, recordBytes: undefined, records: obs.records };
  for (const name of DISPATCHER_MAPS) {
    using m = tryOpen(() => BpfMap.fromPin(join(dir, `map_${name}`)));
    if (!m) {
      obs.missingMaps.push(name);
      continue;
    }
    if (name === 'bindings') {
      // Every entry is read, into two flat buffers; entries whose bytes the last read had at the same
      // place from either end keep the objects decoded then (all of them when nothing changed).
      const now = m.readAll(last?.bindingRun?.count ?? 0);
      const ks = m.keySize;
      const vs = m.valueSize;
      obs.bindings = decodeReusing(now, last?.bindingRun, last?.bindings, ks, vs, (i) => ({
        key: now.keys.toString('latin1', i * ks, (i + 1) * ks),
        destId: now.values.readUInt32LE(i * vs),
        bindingId: now.values.readUInt32LE(i * vs + 4),
      }));
      read.bindingRun = now;
      read.bindings = obs.bindings;
    } else if (name === 'policies') {
      // Records are compared by their length-prefixed bytes (not the unused rest of the fixed-size value).
      const bytes = new EntryBytes(Math.max(4096, last?.recordBytes?.length ?? 0));
      m.forEachEntry((k, v) => {
        bytes.add(k);
        bytes.addSized(v.subarray(0, Math.min(v.length, 4 + v.readUInt32LE(0))));
      });
      read.recordBytes = bytes;
      if (bytes.equals(last?.recordBytes)) obs.records = last!.records;
      else {
        const all = bytes.view();
        const ks = m.keySize;
        for (let at = 0; at < all.length; ) {
          const size = all.readUInt32LE(at + ks);
          obs.records.push({ name: decodePolicyKey(all.subarray(at, at + ks)), json: decodePolicyRecord(all.subarray(at + ks + 4, at + ks + 4 + size)) });
          at += ks + 4 + size;
        }
        obs.records.sort((a, b) => compareCodeUnits(a.name, b.name));
      }
      read.records = obs.records;
    }
  }
  lastReads.set(dir, read);
  return obs;
}

/** What the last read of a dispatcher's bindings and records returned: their bytes, and what was decoded from them (never mutated). */
interface LastRead {
  bindingRun: EntryRun | undefined;
  bindings: ObservedDispatcher['bindings'];
  recordBytes: EntryBytes | undefined;
  records: ObservedDispatcher['records'];
}
const lastReads = new Map<string, LastRead>();

/** The directory under the pin root that the dispatchers live in. */
export const NETNS_DIR = 'netns';

/**
 * Reads every dispatcher under ROOT/netns. An absent directory reads as
 * empty. A dispatcher that cannot be read (any error but ENOENT) is returned
 * with `error` set.
 */
export function observeDispatchers(root: string): ObservedDispatchers {
  const out: ObservedDispatchers = { dispatchers: [], stray: [] };
  const nsDir = join(root, NETNS_DIR);
  if (!existsSync(nsDir)) return out;
  const seen = new Set<string>();
  for (const key of readdirSync(nsDir).sort()) {
    if (!statSync(join(nsDir, key)).isDirectory() || !/^ino-[0-9]+$/.test(key)) {
      out.stray.push(join(nsDir, key));
      continue;
    }
    seen.add(dispatcherDir(root, key));
    try {
      out.dispatchers.push(observeDispatcher(root, key));
    } catch (err) {
      out.dispatchers.push({ key, dir: dispatcherDir(root, key), missingMaps: [], bindings: [], records: [], stray: [], error: (err as Error).message });
    }
  }
  for (const dir of lastReads.keys()) if (dir.startsWith(`${nsDir}/`) && !seen.has(dir)) lastReads.delete(dir);
  return out;
}

/**
 * Socket cookies stored in a dispatcher's sockmap for `destIds`
 * (null where the slot is empty: never filled, or its socket closed).
 */
export function observeSockets(dir: string, destIds: readonly number[]): Map<number, string | null> {
  const out = new Map<number, string | null>();
  using m = tryOpen(() => BpfMap.fromPin(join(dir, 'map_sockets')));
  if (!m) {
    for (const id of destIds) out.set(id, null);
    return out;
  }
  // Every slot is looked up; one key and one value buffer serve all lookups, and a cookie read before keeps its text.
  const key = Buffer.alloc(4);
  const value = Buffer.alloc(m.valueSize);
  for (const id of destIds) {
    key.writeUInt32LE(id);
    out.set(id, m.lookupInto(key, value) ? cookieText(value) : null);
  }
  return out;
}

/** Decimal text of the u64 cookie in `v`, from a small cache by its two words (a no-op pass reads the same cookies). */
function cookieText(v: Buffer): string {
  const lo = v.readUInt32LE(0);
  const hi = v.readUInt32LE(4);
  const k = hi * 2 ** 32 + lo; // exact below 2^53; the text is checked against the words below anyway
  const known = cookieTexts.get(k);
  if (known !== undefined && known.lo === lo && known.hi === hi) return known.text;
  const text = v.readBigUInt64LE(0).toString();
  if (cookieTexts.size >= 65536) cookieTexts.clear();
  cookieTexts.set(k, { lo, hi, text });
  return text;
}
const cookieTexts = new Map<number, { lo: number; hi: number; text: string }>();

/** Hit counters (summed over CPUs) of `bindingIds`, and the dispatcher's stats. */
export function readCounters(dir: string, bindingIds: number[]): { hits: Map<number, bigint>; stats: bigint[] } {
  const hits = new Map<number, bigint>();
  using h = tryOpen(() => BpfMap.fromPin(join(dir, 'map_binding_hits')));
  for (const id of bindingIds) {
    const v = h?.lookup(u32Key(id));
    hits.set(id, v ? sumPerCpuU64(v) : 0n);
  }
  using s = tryOpen(() => BpfMap.fromPin(join(dir, 'map_stats')));
  const stats = [0, 1, 2].map((i) => {
    const v = s?.lookup(u32Key(i));
    return v ? sumPerCpuU64(v) : 0n;
  });
  return { hits, stats };
}

/** Tag of the dispatcher program in `objectPath` (see objectProgramTags: loaded once per file version). */
export function dispatcherObjectTag(objectPath: string): string {
  const tag = objectProgramTags(objectPath)[PROGRAM_NAME];
  if (!tag) throw new Error(`${objectPath} has no program "${PROGRAM_NAME}"`);
  return tag;
}

/**
 * Builds a dispatcher in `dir` in full — maps, program, link, each pinned —
 * for the namespace at `netnsPath`. Whatever a crashed run left in `dir` is
 * removed first. Returns the new program and link ids. Throws ErrnoError,
 * LoadError; on failure nothing new stays pinned.
 */
export function createDispatcher(dir: string, netnsPath: string, objectPath: string): { progId: number; linkId: number } {
  if (existsSync(dir)) removePinTree(dir);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  try {
    using obj = loadObject(objectPath);
    for (const name of DISPATCHER_MAPS) obj.map(name).pin(join(dir, `map_${name}`));
    const prog = obj.program(PROGRAM_NAME);
    prog.pin(join(dir, 'program'));
    failpoint('create-after-maps');
    using ns = Netns.open(netnsPath);
    using link = Link.attachSkLookup(prog, ns.fd, `sk_lookup link on ${netnsPath}`);
    link.pin(join(dir, 'link'));
    return { progId: prog.info().id, linkId: link.info().id };
  } catch (err) {
    removePinTree(dir);
    throw err;
  }
}

/**
 * Replaces the dispatcher program atomically: the new program is loaded with
 * the pinned maps, pinned as program_next, swapped into the link with
 * BPF_F_REPLACE (the kernel refuses if the link no longer runs
 * `expectedProgId`), then renamed over the old pin. Connections are steered
 * throughout. Returns the new program id.
 */
export function replaceDispatcherProgram(dir: string, objectPath: string, expectedProgId: number): { progId: number } {
  const reuse: Record<string, BpfMap> = {};
  try {
    for (const name of DISPATCHER_MAPS) reuse[name] = BpfMap.fromPin(join(dir, `map_${name}`));
    using obj = loadObject(objectPath, { reuseMaps: reuse });
    const next = obj.program(PROGRAM_NAME);
    swapPinnedProgram(dir, next, () => {
      using link = Link.fromPin(join(dir, 'link'));
      using old = Program.fromId(expectedProgId);
      link.update(next, old);
    });
    return { progId: next.info().id };
  } finally {
    for (const m of Object.values(reuse)) m.close();
  }
}

/** Attaches the pinned program to `netnsPath` with a new link, replacing a defunct or missing link pin. */
export function relinkDispatcher(dir: string, netnsPath: string): { linkId: number } {
  using prog = Program.fromPin(join(dir, 'program'));
  using ns = Netns.open(netnsPath);
  using link = Link.attachSkLookup(prog, ns.fd, `sk_lookup link on ${netnsPath}`);
  const linkPin = join(dir, 'link');
  const tmp = `${linkPin}_next`;
  unpin(tmp);
  link.pin(tmp);
  renameSync(tmp, linkPin);
  return { linkId: link.info().id };
}

/**
 * How a mutation gets the dispatcher map it changes: `fn` runs with the map
 * pinned at `path`. Throws what opening the pin throws.
 */
export type MapUse = <T>(path: string, fn: (m: BpfMap) => T) => T;

/** Opens the pin for each mutation and closes it right after (the default). */
export const openEachTime: MapUse = (path, fn) => {
  using m = BpfMap.fromPin(path);
  return fn(m);
};

/**
 * Keeps each map open in `scope` once a mutation has opened it, for the
 * rest of the apply (a pass writing a thousand policies opens each map once,
 * not a thousand times); the scope closes them.
 */
export function keptIn(scope: ApplyScope): MapUse {
  return (path, fn) => fn(scope.keep(path, () => BpfMap.fromPin(path)));
}

function withMap<T>(dir: string, name: DispatcherMapName, fn: (m: BpfMap) => T, use: MapUse): T {
  return use(join(dir, `map_${name}`), fn);
}

/**
 * Binding keys (latin1 strings of BINDING_KEY_SIZE characters) back to back,
 * as a batch call takes them: one string joined and encoded at once (a
 * quarter of the time of a write per key, for a million keys).
 * @throws RangeError when a key is not BINDING_KEY_SIZE characters long.
 */
function packKeys(keys: string[]): Buffer {
  const joined = keys.join('');
  if (joined.length !== keys.length * BINDING_KEY_SIZE) {
    const bad = keys.find((k) => k.length !== BINDING_KEY_SIZE)!;
    throw new RangeError(`a binding key of ${bad.length} bytes, not ${BINDING_KEY_SIZE}`);
  }
  return Buffer.from(joined, 'latin1');
}

/**
 * Writes binding entries with batch updates: packed (keys and values back to
 * back, as a plan's upserts carry them: written as they are), or a list with
 * keys as latin1 strings (packed first).
 */
export function upsertBindings(dir: string, entries: PackedEntries | ReadonlyArray<{ key: string; destId: number; bindingId: number }>, use: MapUse = openEachTime): void {
  const packed = isEntryList(entries) ? packEntryList(entries) : entries;
  if (packed.count === 0) return;
  withMap(dir, 'bindings', (m) => m.updateBatch(packed.keys, packed.values), use);
}

function isEntryList(e: PackedEntries | ReadonlyArray<{ key: string }>): e is ReadonlyArray<{ key: string; destId: number; bindingId: number }> {
  return Array.isArray(e);
}

function packEntryList(entries: ReadonlyArray<{ key: string; destId: number; bindingId: number }>): PackedEntries {
  const keys = packKeys(entries.map((e) => e.key));
  const values = Buffer.alloc(entries.length * BINDING_VALUE_SIZE);
  entries.forEach((e, i) => {
    values.writeUInt32LE(e.destId, i * BINDING_VALUE_SIZE);
    values.writeUInt32LE(e.bindingId, i * BINDING_VALUE_SIZE + 4);
  });
  return { keys, values, count: entries.length };
}

/** Deletes binding entries by key (latin1 strings) with batch deletes; absent keys are fine. */
export function deleteBindings(dir: string, keys: string[], use: MapUse = openEachTime): void {
  if (keys.length === 0) return;
  withMap(dir, 'bindings', (m) => m.deleteBatch(packKeys(keys)), use);
}

/** Puts another process's socket into the sockmap at `destId` (taking a duplicate with pidfd_getfd). */
export function putSocket(dir: string, destId: number, target: { pid: number; fd: number }, use: MapUse = openEachTime): void {
  using sock = duplicateSocket(target);
  withMap(dir, 'sockets', (m) => m.updateSocket(u32Key(destId), sock.fd), use);
}

/** Empties sockmap slot `destId`. */
export function deleteSocket(dir: string, destId: number, use: MapUse = openEachTime): void {
  withMap(dir, 'sockets', (m) => m.delete(u32Key(destId)), use);
}

/** Resets the hit counter of `bindingId` to zero (for ids handed to a new binding). */
export function resetCounter(dir: string, bindingId: number, use: MapUse = openEachTime): void {
  withMap(dir, 'binding_hits', (m) => m.update(u32Key(bindingId), Buffer.alloc(m.valueSize)), use);
}

/** Stores a policy record (JSON). Throws RangeError when it is too large. */
export function writeRecord(dir: string, name: string, json: string, use: MapUse = openEachTime): void {
  withMap(dir, 'policies', (m) => m.update(policyKey(name), encodePolicyRecord(json)), use);
}

/** Deletes a policy record. */
export function deleteRecord(dir: string, name: string, use: MapUse = openEachTime): void {
  withMap(dir, 'policies', (m) => m.delete(policyKey(name)), use);
}

/** Unpins everything in a dispatcher directory and removes it: the link detaches, the kernel frees the rest. */
export function removeDispatcher(dir: string): string[] {
  return removePinTree(dir);
}
