/**
 * The syscall counter under a pin root, seen and changed as plain data: the
 * reconciler's door to the kernel for SyscallCounter policies. Observation
 * returns plain objects; each mutation opens what it needs, does one thing,
 * and closes it again before returning.
 *
 * Pin layout (one counter for every policy):
 *   ROOT/syscalls/program        count_syscalls (bpf/syscall_counter.c)
 *   ROOT/syscalls/link           its raw tracepoint link on sys_enter
 *   ROOT/syscalls/map_<name>     the maps of bpf/syscall_counter.c
 *   ROOT/syscalls/program_next, link_next   only during an upgrade
 * Each policy owns a slot (0..31); its record in map_records names the slot
 * and what was written there. The per-slot count tables are not pinned: the
 * outer map `counts` holds them.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { failpoint } from '../../common/failpoint.js';
import { parseVersionedJson } from '../../common/length-prefixed.js';
import { removePinTree, unpin } from '../../bpf/bpffs.js';
import { MapType } from '../../bpf/constants.js';
import { Features, require as requireFeature } from '../../bpf/features.js';
import { tryOpen } from '../../bpf/kernel-object.js';
import { mapPinPath, openPinnedMaps, withPinnedMaps } from '../../bpf/pinned-maps.js';
import { Link } from '../../bpf/link.js';
import { BpfMap, possibleCpus } from '../../bpf/map.js';
import { loadObject } from '../../bpf/object.js';
import { Program } from '../../bpf/program.js';
import { observePrograms, swapPinnedProgram, type PinnedProgram } from '../../bpf/program-swap.js';
import { openCgroupDir } from '../../bpf/cgroup.js';
import type { GroupByField } from './document.js';
import {
  CONFIG_SIZE,
  COUNTER_MAPS,
  COUNTER_PROGRAM,
  COUNTER_TRACEPOINT,
  KEY_SIZE,
  MAX_POLICIES,
  MAX_SYSCALLS,
  NAME_LEN,
  POLICY_SIZE,
  RECORD_LEN,
  decodeConfig,
  decodeCountKey,
  decodeRecord,
  decodeRecordKey,
  decodeSlotConfig,
  encodeConfig,
  encodeRecord,
  encodeRecordKey,
  encodeSlotConfig,
  u32,
  u64,
  type CountKey,
  type CounterMapName,
  type SlotConfig,
} from './layout.js';

/** What the counter remembers of each policy (key: the policy name). */
export interface CounterPolicyRecord {
  v: 1;
  name: string;
  sourceFile: string;
  specHash: string;
  slot: number;
  /** What was written to the slot: syscall numbers ('all' for "*"), groupBy, cgroup, table size. */
  syscalls: number[] | 'all';
  groupBy: GroupByField[];
  cgroupPath: string | null;
  cgroupId: string | null;
  maxKeys: number;
}

/** One policy slot as the kernel holds it. */
export interface ObservedSlot {
  slot: number;
  config: SlotConfig;
  /** The slot's count table (id, and the size it was created with). */
  table?: { id: number; maxEntries: number };
  /** Syscall numbers whose `wanted` bit for this slot is set. */
  syscalls: number[];
}

/** The counter, as the kernel reports it. */
export interface ObservedCounter {
  dir: string;
  program?: PinnedProgram;
  /** The new program of an upgrade a crash interrupted (pinned as program_next). */
  programNext?: PinnedProgram;
  link?: { id: number; progId: number };
  missingMaps: string[];
  layoutMismatch: string[];
  config?: { allMask: bigint; nSlots: number };
  /** Slots that hold anything (a config in use, a table, a wanted bit). */
  slots: ObservedSlot[];
  policies: CounterPolicyRecord[];
  badRecords: Array<{ name: string; reason: string }>;
  stray: string[];
  /** Reading failed with an error other than ENOENT: nothing else is known, and nothing may be changed. */
  error?: string;
}

/** Everything under ROOT/syscalls (absent: no counter). */
export interface ObservedCounters {
  counter?: ObservedCounter;
}

const LAYOUT: Partial<Record<CounterMapName, { key: number; value: number }>> = {
  wanted: { key: 4, value: 8 },
  config: { key: 4, value: CONFIG_SIZE },
  policies: { key: 4, value: POLICY_SIZE },
  records: { key: NAME_LEN, value: RECORD_LEN },
};

/** Reads the counter directory. Never throws for missing pieces: they are reported as missing. */
export function observeCounter(dir: string): ObservedCounter {
  const obs: ObservedCounter = { dir, missingMaps: [], layoutMismatch: [], slots: [], policies: [], badRecords: [], stray: [] };
  const known = new Set(['program', 'link', ...COUNTER_MAPS.map((m) => `map_${m}`)]);
  for (const e of readdirSync(dir).sort()) if (!known.has(e)) obs.stray.push(join(dir, e));
  Object.assign(obs, observePrograms(dir));
  {
    using link = tryOpen(() => Link.fromPin(join(dir, 'link')));
    if (link) {
      const i = link.info();
      obs.link = { id: i.id, progId: i.progId };
    }
  }
  const opened = openPinnedMaps(dir, COUNTER_MAPS, LAYOUT);
  const maps = opened.maps;
  obs.missingMaps.push(...opened.missing);
  obs.layoutMismatch.push(...opened.mismatched);
  try {
    if (obs.layoutMismatch.length > 0) return obs;
    maps.records?.forEachEntry((k, v) => {
      const name = decodeRecordKey(k);
      const r = parseVersionedJson<CounterPolicyRecord>(decodeRecord(v));
      if (typeof r === 'string' || r.name !== name) obs.badRecords.push({ name, reason: typeof r === 'string' ? r : 'name mismatch' });
      else obs.policies.push(r);
    });
    obs.policies.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const c = maps.config?.lookup(u32(0));
    if (c) obs.config = decodeConfig(c);
    const bits = new Map<number, number[]>();
    maps.wanted?.forEachEntry((k, v) => {
      const word = v.readBigUInt64LE(0);
      if (word === 0n) return;
      const nr = k.readUInt32LE(0);
      for (let s = 0; s < MAX_POLICIES; s++) if (word & (1n << BigInt(s))) bits.set(s, [...(bits.get(s) ?? []), nr]);
    });
    for (let slot = 0; slot < MAX_POLICIES; slot++) {
      const cfg = maps.policies?.lookup(u32(slot));
      const config = cfg ? decodeSlotConfig(cfg) : { inUse: false, groupBy: 0, cgroup: false, all: false };
      const id = maps.counts?.lookup(u32(slot))?.readUInt32LE(0);
      let table: ObservedSlot['table'];
      if (id !== undefined) {
        using inner = tryOpen(() => BpfMap.fromId(id));
        if (inner) table = { id, maxEntries: inner.info().maxEntries };
      }
      const syscalls = (bits.get(slot) ?? []).sort((a, b) => a - b);
      if (config.inUse || table || syscalls.length > 0) obs.slots.push({ slot, config, ...(table ? { table } : {}), syscalls });
    }
  } finally {
    opened.close();
  }
  return obs;
}

/** Reads ROOT/syscalls. An absent or empty directory reads as no counter. */
export function observeCounters(root: string): ObservedCounters {
  const dir = join(root, 'syscalls');
  if (!existsSync(dir)) return {};
  try {
    // An empty directory holds nothing of a counter: no counter (createCounter builds one in it).
    if (readdirSync(dir).length === 0) return {};
    return { counter: observeCounter(dir) };
  } catch (err) {
    return { counter: { dir, missingMaps: [], layoutMismatch: [], slots: [], policies: [], badRecords: [], stray: [], error: (err as Error).message } };
  }
}

/** One count read from a slot's table: the key and the sum over CPUs. */
export interface CountEntry {
  key: CountKey;
  count: bigint;
}

/** Every count of the table `tableId` (summed over CPUs); [] when it is gone. */
export function readCounts(tableId: number): CountEntry[] {
  using m = tryOpen(() => BpfMap.fromId(tableId));
  if (!m) return [];
  const stride = m.valueSize / possibleCpus();
  const out: CountEntry[] = [];
  m.forEachEntry((k, v) => {
    let count = 0n;
    for (let off = 0; off + 8 <= v.length; off += stride) count += v.readBigUInt64LE(off);
    out.push({ key: decodeCountKey(k), count });
  });
  return out;
}

/** What a slot write puts in place. */
export interface SlotWrite {
  slot: number;
  config: SlotConfig;
  syscalls: number[];
  /** Create a fresh count table of this many keys (counts restart); undefined keeps the table. */
  newTable?: number;
  /** The cgroup to count in (its path and id), or null for every process. Not `path`: a `path` of an operation is a pin path. */
  cgroup: { cgroupPath: string; cgroupId: string } | null;
  record: CounterPolicyRecord;
  /** The config after the write: slots counting every syscall, and 1 + the highest slot in use. */
  allMask: string;
  nSlots: number;
}

/** Sets or clears `slot`'s bit in every `wanted` word so that exactly `syscalls` have it. */
function writeWantedBits(wanted: BpfMap, slot: number, syscalls: readonly number[]): void {
  const bit = 1n << BigInt(slot);
  const want = new Set(syscalls);
  const have = new Map<number, bigint>();
  wanted.forEachEntry((k, v) => have.set(k.readUInt32LE(0), v.readBigUInt64LE(0)));
  for (let nr = 0; nr < MAX_SYSCALLS; nr++) {
    const old = have.get(nr) ?? 0n;
    const next = want.has(nr) ? old | bit : old & ~bit;
    if (next !== old) wanted.update(u32(nr), u64(next));
  }
}

/**
 * Writes a policy's slot: a fresh count table when asked, the cgroup filter,
 * the slot config, the `wanted` bits, the config and the record. Each write is
 * idempotent, so a crash part way leaves a state the next plan rewrites.
 * Throws ErrnoError (ESTALE when the cgroup was created again).
 */
export function writeSlot(dir: string, w: SlotWrite): void {
  withPinnedMaps(dir, ['wanted', 'config', 'policies', 'cgroups', 'counts', 'records'], (m) => {
    if (w.newTable !== undefined) {
      using table = BpfMap.create({ type: MapType.LRU_PERCPU_HASH, name: `sc_counts_${w.slot}`, keySize: KEY_SIZE, valueSize: 8, maxEntries: w.newTable });
      m.counts!.update(u32(w.slot), u32(table.fd));
    }
    if (w.cgroup) {
      using cg = openCgroupDir(w.cgroup.cgroupPath, BigInt(w.cgroup.cgroupId));
      m.cgroups!.update(u32(w.slot), u32(cg.fd));
    } else m.cgroups!.delete(u32(w.slot));
    m.policies!.update(u32(w.slot), encodeSlotConfig(w.config));
    failpoint('rules-after-generation');
    writeWantedBits(m.wanted!, w.slot, w.syscalls);
    m.config!.update(u32(0), encodeConfig({ allMask: BigInt(w.allMask), nSlots: w.nSlots }));
    m.records!.update(encodeRecordKey(w.record.name), encodeRecord(JSON.stringify(w.record)));
  });
}

/** Empties `slot` (no bits, no config, no table, no cgroup), writes the config and deletes the records named. */
export function clearSlot(dir: string, slot: number, allMask: string, nSlots: number, deleteRecords: string[]): void {
  withPinnedMaps(dir, ['wanted', 'config', 'policies', 'cgroups', 'counts', 'records'], (m) => {
    writeWantedBits(m.wanted!, slot, []);
    m.policies!.update(u32(slot), encodeSlotConfig({ inUse: false, groupBy: 0, cgroup: false, all: false }));
    m.config!.update(u32(0), encodeConfig({ allMask: BigInt(allMask), nSlots }));
    m.counts!.delete(u32(slot));
    m.cgroups!.delete(u32(slot));
    for (const name of deleteRecords) m.records!.delete(encodeRecordKey(name));
  });
}

/** Writes the config alone (slots counting every syscall, 1 + the highest slot in use). */
export function writeCounterConfig(dir: string, allMask: string, nSlots: number): void {
  withPinnedMaps(dir, ['config'], (m) => m.config!.update(u32(0), encodeConfig({ allMask: BigInt(allMask), nSlots })));
}

/** Deletes records (of policies without a slot, or unreadable ones). */
export function deleteRecords(dir: string, names: string[]): void {
  withPinnedMaps(dir, ['records'], (m) => {
    for (const name of names) m.records!.delete(encodeRecordKey(name));
  });
}

/** Attaches the pinned program (or `next`) to raw_syscalls/sys_enter and pins the link atomically (link_next, renamed over link). */
function attachAndPin(dir: string, prog: Program): void {
  using link = Link.attachRawTracepoint(prog, COUNTER_TRACEPOINT);
  const pin = join(dir, 'link');
  unpin(`${pin}_next`);
  link.pin(`${pin}_next`);
  renameSync(`${pin}_next`, pin);
}

/** Attaches the pinned program again (its link pin was removed). Throws ErrnoError. */
export function attachCounter(dir: string): void {
  using prog = Program.fromPin(join(dir, 'program'));
  attachAndPin(dir, prog);
}

/**
 * Builds the counter in `dir`: loads the object, pins its maps and program,
 * writes an empty config, attaches it. Whatever a crashed run left in `dir`
 * is removed first; on failure nothing new stays. Throws NotSupportedError
 * (no raw tracepoints), ErrnoError, LoadError.
 */
export function createCounter(dir: string, objectPath: string): void {
  requireFeature(Features.rawTracepoint);
  if (existsSync(dir)) removePinTree(dir);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  try {
    using obj = loadObject(objectPath);
    for (const name of COUNTER_MAPS) obj.map(name).pin(mapPinPath(dir, name));
    obj.program(COUNTER_PROGRAM).pin(join(dir, 'program'));
    withPinnedMaps(dir, ['config'], (m) => m.config!.update(u32(0), encodeConfig({ allMask: 0n, nSlots: 0 })));
    failpoint('create-after-maps');
    attachAndPin(dir, obj.program(COUNTER_PROGRAM));
  } catch (err) {
    removeCounter(dir);
    throw err;
  }
}

/**
 * Replaces the program: the new one (loaded with the pinned maps, so counts
 * stay) is attached with a new link that replaces the pinned one. A raw
 * tracepoint link cannot swap its program, so for a moment both programs run
 * and a syscall may be counted twice. Throws ErrnoError, LoadError.
 */
export function replaceCounterProgram(dir: string, objectPath: string): void {
  const reuse: Record<string, BpfMap> = {};
  try {
    for (const name of COUNTER_MAPS) reuse[name] = BpfMap.fromPin(mapPinPath(dir, name));
    using obj = loadObject(objectPath, { reuseMaps: reuse });
    const next = obj.program(COUNTER_PROGRAM);
    swapPinnedProgram(dir, next, () => attachAndPin(dir, next));
  } finally {
    for (const m of Object.values(reuse)) m.close();
  }
}

/** Removes the counter: unpins everything (the link detaches, the kernel frees the rest). Returns the pins removed. */
export function removeCounter(dir: string): string[] {
  const pins = existsSync(dir) ? removePinTree(dir) : [];
  try {
    rmdirSync(dir);
  } catch {
    // gone already, or not empty (raced with another writer): leave it
  }
  return pins;
}
