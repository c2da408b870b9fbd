/**
 * The connect guards under a pin root, seen and changed as plain data: the
 * reconciler's door to the kernel for ConnectPolicy policies. Observation
 * returns plain objects; each mutation opens what it needs, does one thing,
 * and closes it again before returning.
 *
 * Pin layout (one directory per cgroup, named by the cgroup's id):
 *   ROOT/connect/cg-<cgroup id>/map_<name>          the maps of bpf/connect_policy.c
 *   ROOT/connect/cg-<cgroup id>/<hook>/program      guard_<hook>, hook = connect4|connect6|sendmsg4|sendmsg6
 *   ROOT/connect/cg-<cgroup id>/<hook>/link         its cgroup link
 *   ROOT/connect/cg-<cgroup id>/<hook>/program_next, link_next   only during an upgrade or attach
 * The record "@guard" of map_records names the cgroup's path; one record per
 * policy names the policies the guard serves.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { failpoint } from '../../common/failpoint.js';
import { parseVersionedJson } from '../../common/length-prefixed.js';
import { removePinTree, unpin } from '../../bpf/bpffs.js';
import { attachToCgroup, cgroupIdAt } from '../../bpf/cgroup.js';
import { Features, require as requireFeature } from '../../bpf/features.js';
import { tryOpen } from '../../bpf/kernel-object.js';
import { mapPinPath, openPinnedMaps, withPinnedMaps } from '../../bpf/pinned-maps.js';
import { Link } from '../../bpf/link.js';
import { BpfMap, possibleCpus } from '../../bpf/map.js';
import { loadObject } from '../../bpf/object.js';
import { Program } from '../../bpf/program.js';
import { observePrograms, swapPinnedProgram, type PinnedProgram } from '../../bpf/program-swap.js';
import {
  ADDR_KEY_SIZE,
  CONFIG_SIZE,
  COUNTER,
  COUNTER_SIZE,
  DECISION_KEY_SIZE,
  DECISION_VALUE_SIZE,
  GUARD_ATTACH_TYPES,
  GUARD_HOOKS,
  GUARD_MAPS,
  GUARD_PROGRAMS,
  GUARDS_DIR,
  NAME_LEN,
  NO_GENERATION,
  PORT_KEY_SIZE,
  RECORD_LEN,
  RULE_META_SIZE,
  decodeRecord,
  decodeRecordKey,
  decodeRuleMeta,
  encodeRecord,
  encodeRecordKey,
  encodeRuleMeta,
  generationFingerprint,
  generationOf,
  parseGuardKey,
  u32,
  type EncodedGeneration,
  type GuardHook,
  type GuardMapName,
} from './layout.js';

/** The record of the guard itself (key "@guard"): the cgroup it serves. */
export interface GuardRecord {
  v: 1;
  cgroupPath: string;
  /** The cgroup's id, decimal. */
  cgroupId: string;
}

/** What the guard remembers of each policy it serves (key: the policy name). */
export interface GuardPolicyRecord {
  v: 1;
  name: string;
  sourceFile: string;
  specHash: string;
}

/** The guard key in records. */
export const GUARD_RECORD = '@guard';

/** One hook of a guard as the kernel reports it. */
export interface ObservedHook {
  program?: PinnedProgram;
  /** The new program of an upgrade a crash interrupted (pinned as program_next). */
  programNext?: PinnedProgram;
  /** The cgroup link: attached is false once the cgroup is gone or the link was detached. */
  link?: { id: number; progId: number; cgroupId: string; attached: boolean };
}

/** One guard directory, as the kernel reports it. */
export interface ObservedGuard {
  /** `cg-<cgroup id>` */
  key: string;
  dir: string;
  cgroupId: string;
  hooks: Record<GuardHook, ObservedHook>;
  missingMaps: string[];
  /** Maps whose key or value size is not what this version expects (pinned by an older layout). */
  layoutMismatch: string[];
  guard?: GuardRecord;
  /** Whether the recorded cgroup path is still this guard's cgroup (false: removed, or removed and created again). Undefined without a guard record. */
  cgroupPresent?: boolean;
  policies: GuardPolicyRecord[];
  badRecords: Array<{ name: string; reason: string }>;
  /** The generation in use (undefined: no rule set written yet), and the fingerprint of its tables. */
  activeGen?: number;
  fingerprint?: string;
  /** Counter slots in use and the rule each belongs to (rule "" = the policy's default). */
  slots: Array<{ slot: number; policy: string; rule: string }>;
  stray: string[];
  /** Reading the directory failed with an error other than ENOENT: nothing else is known, and nothing may be changed. */
  error?: string;
}

/** Everything under ROOT/connect. */
export interface ObservedGuards {
  guards: ObservedGuard[];
  /** Entries under ROOT/connect that are not part of the layout. */
  stray: string[];
}

/** Key and value sizes of the pinned maps (bpf/connect_policy.h). */
const LAYOUT: Partial<Record<GuardMapName, { key: number; value: number }>> = {
  addrs: { key: ADDR_KEY_SIZE, value: 4 },
  ports: { key: PORT_KEY_SIZE, value: 4 },
  decisions: { key: DECISION_KEY_SIZE, value: DECISION_VALUE_SIZE },
  config: { key: 4, value: CONFIG_SIZE },
  active: { key: 4, value: 4 },
  rule_stats: { key: 4, value: COUNTER_SIZE },
  rule_meta: { key: 4, value: RULE_META_SIZE },
  records: { key: NAME_LEN, value: RECORD_LEN },
};

const TABLES = ['addrs', 'ports', 'decisions'] as const;

function blankGuard(root: string, key: string): ObservedGuard {
  const hooks = Object.fromEntries(GUARD_HOOKS.map((h) => [h, {}])) as Record<GuardHook, ObservedHook>;
  return {
    key,
    dir: join(root, GUARDS_DIR, key),
    cgroupId: String(parseGuardKey(key)),
    hooks,
    missingMaps: [],
    layoutMismatch: [],
    policies: [],
    badRecords: [],
    slots: [],
    stray: [],
  };
}

function observeHook(dir: string, stray: string[]): ObservedHook {
  const out: ObservedHook = {};
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir)) if (e !== 'program' && e !== 'link') stray.push(join(dir, e));
  Object.assign(out, observePrograms(dir));
  using link = tryOpen(() => Link.fromPin(join(dir, 'link')));
  if (link) {
    const i = link.info();
    const t = i.target;
    if (t.kind === 'cgroup') out.link = { id: i.id, progId: i.progId, cgroupId: String(t.cgroupId), attached: t.attached };
    else stray.push(join(dir, 'link'));
  }
  return out;
}

/** Reads one guard directory. Never throws for missing pieces: they are reported as missing. */
export function observeGuard(root: string, key: string): ObservedGuard {
  const obs = blankGuard(root, key);
  const dir = obs.dir;
  const known = new Set<string>([...GUARD_HOOKS, ...GUARD_MAPS.map((m) => `map_${m}`)]);
  for (const e of readdirSync(dir)) if (!known.has(e)) obs.stray.push(join(dir, e));
  for (const h of GUARD_HOOKS) obs.hooks[h] = observeHook(join(dir, h), obs.stray);
  const opened = openPinnedMaps(dir, GUARD_MAPS, LAYOUT);
  const maps = opened.maps;
  obs.missingMaps.push(...opened.missing);
  obs.layoutMismatch.push(...opened.mismatched);
  try {
    // Maps of another layout cannot be read with this one: the plan rebuilds the guard.
    if (obs.layoutMismatch.length > 0) return obs;
    maps.records?.forEachEntry((k, v) => {
      const name = decodeRecordKey(k);
      const r = parseVersionedJson<GuardRecord & GuardPolicyRecord>(decodeRecord(v));
      if (typeof r === 'string') obs.badRecords.push({ name, reason: r });
      else if (name === GUARD_RECORD) obs.guard = { v: 1, cgroupPath: r.cgroupPath, cgroupId: r.cgroupId };
      else if (r.name !== name) obs.badRecords.push({ name, reason: 'name mismatch' });
      else obs.policies.push({ v: 1, name: r.name, sourceFile: r.sourceFile, specHash: r.specHash });
    });
    obs.policies.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    if (obs.guard) obs.cgroupPresent = cgroupIdAt(obs.guard.cgroupPath) === BigInt(obs.cgroupId);
    maps.rule_meta?.forEachEntry((k, v) => obs.slots.push({ slot: k.readUInt32LE(0), ...decodeRuleMeta(v) }));
    obs.slots.sort((a, b) => a.slot - b.slot);
    const gen = maps.active?.lookup(u32(0))?.readUInt32LE(0);
    if (gen === 0 || gen === 1) {
      obs.activeGen = gen;
      const config = maps.config?.lookup(u32(gen));
      if (config && TABLES.every((t) => maps[t])) {
        const of = (t: (typeof TABLES)[number]) => maps[t]!.entries().filter(([k]) => generationOf(t, k) === gen);
        obs.fingerprint = generationFingerprint({ addr: of('addrs'), port: of('ports'), decision: of('decisions'), config });
      }
    }
  } finally {
    opened.close();
  }
  return obs;
}

/** Reads every guard under `root`. An absent directory reads as empty. */
export function observeGuards(root: string): ObservedGuards {
  const out: ObservedGuards = { guards: [], stray: [] };
  const top = join(root, GUARDS_DIR);
  if (!existsSync(top)) return out;
  for (const name of readdirSync(top).sort()) {
    const path = join(top, name);
    if (!statSync(path).isDirectory() || parseGuardKey(name) === undefined) {
      out.stray.push(path);
      continue;
    }
    try {
      out.guards.push(observeGuard(root, name));
    } catch (err) {
      out.guards.push({ ...blankGuard(root, name), error: (err as Error).message });
    }
  }
  return out;
}

/** Per-slot counters (summed over CPUs); absent slots read as zero. */
export interface GuardCounters {
  connects: bigint;
  denies: bigint;
  wouldDeny: bigint;
}

/** Reads the counters of `slots`. */
export function readGuardCounters(dir: string, slots: readonly number[]): Map<number, GuardCounters> {
  using m = tryOpen(() => BpfMap.fromPin(mapPinPath(dir, 'rule_stats')));
  return countersOf(m, slots);
}

/** Reads the counters of `slots` from an opened rule_stats map (absent: all zero). */
export function countersOf(m: BpfMap | undefined, slots: readonly number[]): Map<number, GuardCounters> {
  const out = new Map<number, GuardCounters>();
  const stride = m ? m.valueSize / possibleCpus() : COUNTER_SIZE;
  for (const slot of slots) {
    const v = m?.lookup(u32(slot));
    const c: GuardCounters = { connects: 0n, denies: 0n, wouldDeny: 0n };
    for (let off = 0; v && off + COUNTER_SIZE <= v.length; off += stride) {
      c.connects += v.readBigUInt64LE(off + COUNTER.fields.connects.offset);
      c.denies += v.readBigUInt64LE(off + COUNTER.fields.denies.offset);
      c.wouldDeny += v.readBigUInt64LE(off + COUNTER.fields.would_deny.offset);
    }
    out.set(slot, c);
  }
  return out;
}

/** A generation's tables with the slot bookkeeping that goes with them. */
export interface GenerationWrite {
  encoded: EncodedGeneration;
  /** Slots (new or reassigned) whose rule_meta is written and whose counters start at zero. */
  newSlots: Array<{ slot: number; policy: string; rule: string }>;
  /** Slots no rule uses any more: deleted after the switch. */
  staleSlots: number[];
}

/** Keys of `map` whose generation byte is `gen`, back to back. */
function keysOfGeneration(map: BpfMap, table: (typeof TABLES)[number], gen: number): Buffer {
  const keys: Buffer[] = [];
  map.forEachEntry((k) => {
    if (generationOf(table, k) === gen) keys.push(Buffer.from(k));
  });
  return Buffer.concat(keys);
}

/**
 * Writes a rule set into its generation and switches the guard to it with
 * one write of `active`: connects see the old rules or the new ones, never a
 * mix. Entries a previous use of that generation left are deleted first; the
 * previous generation stays until the next write, so a connect still using
 * it is decided by it. Throws ErrnoError.
 */
export function writeGuardRules(dir: string, write: GenerationWrite): void {
  withPinnedMaps(dir, [...RULE_MAPS], (m) => writeGuardRulesTo(m, write));
}

/** The maps {@link writeGuardRulesTo} writes. */
export const RULE_MAPS = [...TABLES, 'config', 'active', 'rule_stats', 'rule_meta'] as const;

/** Opened maps of a guard, by name (pinned ones, or a private load's). */
export type GuardMaps = Readonly<Record<string, BpfMap>>;

/**
 * {@link writeGuardRules} on opened maps (at least {@link RULE_MAPS}): also
 * what `ebpf-policy test` writes into a private load. Throws ErrnoError.
 */
export function writeGuardRulesTo(m: GuardMaps, write: GenerationWrite): void {
  const { gen } = write.encoded;
  const zero = Buffer.alloc(m.rule_stats!.valueSize);
  for (const s of write.newSlots) {
    m.rule_stats!.update(u32(s.slot), zero);
    m.rule_meta!.update(u32(s.slot), encodeRuleMeta(s));
  }
  const parts = { addrs: write.encoded.addr, ports: write.encoded.port, decisions: write.encoded.decision };
  for (const t of TABLES) {
    const old = keysOfGeneration(m[t]!, t, gen);
    if (old.length > 0) m[t]!.deleteBatch(old);
    if (parts[t].count > 0) m[t]!.updateBatch(parts[t].keys, parts[t].values);
  }
  m.config!.update(u32(gen), write.encoded.config);
  failpoint('rules-after-generation');
  m.active!.update(u32(0), u32(gen));
  for (const slot of write.staleSlots) {
    m.rule_stats!.delete(u32(slot));
    m.rule_meta!.delete(u32(slot));
  }
}

/** Writes and deletes policy records (and the guard record). */
export function writeGuardRecords(dir: string, upserts: Array<GuardPolicyRecord | GuardRecord>, deletes: string[]): void {
  withPinnedMaps(dir, ['records'], (m) => writeGuardRecordsTo(m, upserts, deletes));
}

/** {@link writeGuardRecords} on opened maps (at least `records`). Throws ErrnoError. */
export function writeGuardRecordsTo(m: GuardMaps, upserts: Array<GuardPolicyRecord | GuardRecord>, deletes: string[]): void {
  for (const r of upserts) m.records!.update(encodeRecordKey('name' in r ? r.name : GUARD_RECORD), encodeRecord(JSON.stringify(r)));
  for (const name of deletes) m.records!.delete(encodeRecordKey(name));
}

/**
 * Fills the maps of a freshly loaded guard as {@link createGuard} does before
 * attaching: no generation, then the first rule set, then the records. Used
 * by createGuard on the pinned maps and by `ebpf-policy test` on a private
 * load's. Throws ErrnoError.
 */
export function fillNewGuardMaps(m: GuardMaps, guard: GuardRecord, rules: GenerationWrite, policies: GuardPolicyRecord[]): void {
  m.active!.update(u32(0), u32(NO_GENERATION));
  writeGuardRulesTo(m, rules);
  writeGuardRecordsTo(m, [guard, ...policies], []);
}

/**
 * Attaches the pinned program of `hook` to the cgroup with a new cgroup link,
 * pinned atomically (link_next, then renamed over link). A previous link of
 * the hook is released by the rename. Refuses when the cgroup at the path is
 * not the guard's (created again). Throws ErrnoError.
 */
export function attachGuardHook(dir: string, hook: GuardHook, guard: GuardRecord): void {
  const hookDir = join(dir, hook);
  using prog = Program.fromPin(join(hookDir, 'program'));
  using link = attachToCgroup(prog, guard.cgroupPath, BigInt(guard.cgroupId), GUARD_ATTACH_TYPES[hook], `${hook} link on cgroup ${guard.cgroupPath}`);
  const pin = join(hookDir, 'link');
  unpin(`${pin}_next`);
  link.pin(`${pin}_next`);
  renameSync(`${pin}_next`, pin);
}

/**
 * Builds a guard in `dir`: loads the object, pins its maps and programs,
 * writes the first rule set and the records, then attaches the four hooks.
 * Whatever a crashed run left in `dir` is removed first; on failure nothing
 * new stays pinned or attached. Throws NotSupportedError (a kernel without
 * the hooks or bpf_loop), ErrnoError, LoadError.
 */
export function createGuard(dir: string, guard: GuardRecord, objectPath: string, rules: GenerationWrite, policies: GuardPolicyRecord[]): void {
  requireFeature(Features.cgroupSockAddr);
  requireFeature(Features.sockAddrLoop);
  if (existsSync(dir)) removePinTree(dir);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  try {
    {
      using obj = loadObject(objectPath);
      for (const name of GUARD_MAPS) obj.map(name).pin(mapPinPath(dir, name));
      for (const hook of GUARD_HOOKS) {
        mkdirSync(join(dir, hook), { mode: 0o750 });
        obj.program(GUARD_PROGRAMS[hook]).pin(join(dir, hook, 'program'));
      }
    }
    withPinnedMaps(dir, [...RULE_MAPS, 'records'], (m) => fillNewGuardMaps(m, guard, rules, policies));
    failpoint('create-after-maps');
    for (const hook of GUARD_HOOKS) attachGuardHook(dir, hook, guard);
  } catch (err) {
    removeGuard(dir);
    throw err;
  }
}

/**
 * Replaces the program of `hook` atomically: the new program is loaded with
 * the pinned maps, pinned as program_next, swapped into the hook's link with
 * BPF_F_REPLACE (the kernel refuses if the link no longer runs
 * `expectedProgId`), then renamed over the old pin. Rules and counters stay.
 * Throws ErrnoError.
 */
export function replaceGuardProgram(dir: string, hook: GuardHook, objectPath: string, expectedProgId: number): void {
  const reuse: Record<string, BpfMap> = {};
  try {
    for (const name of GUARD_MAPS) reuse[name] = BpfMap.fromPin(mapPinPath(dir, name));
    using obj = loadObject(objectPath, { reuseMaps: reuse });
    const next = obj.program(GUARD_PROGRAMS[hook]);
    const hookDir = join(dir, hook);
    swapPinnedProgram(hookDir, next, () => {
      using link = Link.fromPin(join(hookDir, 'link'));
      using old = Program.fromId(expectedProgId);
      link.update(next, old);
    });
  } finally {
    for (const m of Object.values(reuse)) m.close();
  }
}

/**
 * Removes a guard: unpins everything (the links detach, the kernel frees the
 * rest) and removes the directory and ROOT/connect when empty. Returns the
 * pins removed.
 */
export function removeGuard(dir: string): string[] {
  const pins = existsSync(dir) ? removePinTree(dir) : [];
  try {
    if (readdirSync(dirname(dir)).length === 0) rmdirSync(dirname(dir));
  } catch {
    // not empty, or raced with another writer: leave it
  }
  return pins;
}
