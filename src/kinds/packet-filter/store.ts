/**
 * The packet filters under a pin root, seen and changed as plain data: the
 * reconciler's door to the kernel for PacketFilter policies. Observation
 * returns plain objects; each mutation opens what it needs, does one thing,
 * and closes it again before returning.
 *
 * Pin layout (one directory per network namespace, interface and hook):
 *   ROOT/filters/<netns key>/<hook>-<ifindex>/program     filter_xdp or filter_tc
 *   ROOT/filters/<netns key>/<hook>-<ifindex>/link        XDP or tcx link (absent with cls_bpf)
 *   ROOT/filters/<netns key>/<hook>-<ifindex>/map_<name>  the maps of bpf/packet_filter.c
 *   ROOT/filters/<netns key>/<hook>-<ifindex>/program_next, link_next   only during an upgrade
 * The inner maps of the rule tables are not pinned: the outer maps hold them.
 */
import { failpoint } from '../../common/failpoint.js';
import { parseVersionedJson } from '../../common/length-prefixed.js';
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, MapType } from '../../bpf/constants.js';
import { tryOpen } from '../../bpf/kernel-object.js';
import { mapPinPath, openPinnedMaps, withPinnedMaps } from '../../bpf/pinned-maps.js';
import { observePrograms, swapPinnedProgram, type PinnedProgram } from '../../bpf/program-swap.js';
import { removePinTree, unpin } from '../../bpf/bpffs.js';
import { attachClsBpf, clsBpfProgramId, detachClsBpf } from '../../bpf/cls-bpf.js';
import {
  ADDR_KEY_SIZE,
  COUNTER,
  CLASS_VALUE_SIZE,
  COUNTER_SIZE,
  CONFIG_SIZE,
  DECISION_KEY_SIZE,
  DECISION_VALUE_SIZE,
  DEFAULT_SLOT,
  FILTER_MAPS,
  FILTER_PROGRAMS,
  FILTER_TABLES,
  FILTERS_DIR,
  NAME_LEN,
  PORTS,
  PORT_CLASS_SIZE,
  MAX_RULES,
  configRuleCount,
  RECORD_LEN,
  RULE_META_SIZE,
  decodeConfig,
  decodeRecord,
  decodeRecordKey,
  decodeRuleMeta,
  encodeRecord,
  encodeRecordKey,
  encodeRuleMeta,
  rulesetFingerprint,
  u32,
  type EncodedRuleset,
  type FilterAttachMethod,
  type FilterHookName,
  type FilterMapName,
  type FilterTableName,
  parseFilterDirName,
  portClassIndex,
  portSliceDims,
} from './layout.js';
import { Link, type TcxDirection } from '../../bpf/link.js';
import { BpfMap, possibleCpus } from '../../bpf/map.js';
import { Netns } from '../../bpf/netns.js';
import { loadObject } from '../../bpf/object.js';
import { Program } from '../../bpf/program.js';
import { attachXdp } from '../../bpf/xdp-attach.js';

export { filterDir, parseFilterDirName, type FilterAttachMethod, type FilterHookName } from './layout.js';

/** The record of the attachment itself (key "@attachment" of map_records): how it was attached. */
export interface AttachmentRecord extends AttachSpec {
  v: 1;
  /** XDP: the mode the link was created in, and why native was refused. */
  xdpMode?: 'native' | 'generic';
  nativeRefused?: string;
}

/** What the filter remembers of each policy it serves (key: the policy name). */
export interface FilterPolicyRecord {
  v: 1;
  name: string;
  sourceFile: string;
  specHash: string;
}

/** The attachment key in records. */
export const ATTACHMENT_RECORD = '@attachment';

/** One filter directory, as the kernel reports it. */
export interface ObservedFilter {
  /** `<netns key>/<hook>-<ifindex>` */
  key: string;
  netnsKey: string;
  dir: string;
  hook: FilterHookName;
  ifindex: number;
  program?: PinnedProgram;
  /** The new program of an upgrade a crash interrupted (pinned as program_next; also listed in `stray`). */
  programNext?: PinnedProgram;
  /** The attachment: a link (xdp, tcx) or our cls_bpf filter. */
  link?: { method: FilterAttachMethod; id: number; progId: number; ifindex: number; attached: boolean };
  missingMaps: string[];
  /** Maps whose key or value size is not what this version expects (pinned by an older layout). */
  layoutMismatch: string[];
  attachment?: AttachmentRecord;
  policies: FilterPolicyRecord[];
  /** Records that could not be parsed. */
  badRecords: Array<{ name: string; reason: string }>;
  /** The generation in use, and the fingerprint of its tables (undefined: no tables yet). */
  activeGen: number;
  fingerprint?: string;
  /** Counter slots in use and the rule each belongs to. */
  slots: Array<{ slot: number; policy: string; rule: string }>;
  stray: string[];
  /** Reading the directory failed with an error other than ENOENT: nothing else is known, and nothing may be changed. */
  error?: string;
}

/** Everything under ROOT/filters. */
export interface ObservedFilters {
  filters: ObservedFilter[];
  /** Entries under ROOT/filters that are not part of the layout. */
  stray: string[];
}

/** Reads the inner map of `table` for generation `gen` and returns its entries (copies). */
function innerEntries(outer: BpfMap, gen: number): Array<[Buffer, Buffer]> | undefined {
  const id = outer.lookup(u32(gen));
  if (!id) return undefined;
  using inner = tryOpen(() => BpfMap.fromId(id.readUInt32LE(0)));
  return inner?.entries();
}

/** The `port_classes` values of generation `gen` for the dimensions in `lookups` (Match bits), as PortSlices.values: copies out of a read-only mapping. Throws ErrnoError. */
function portSlices(map: BpfMap, gen: number, lookups: number): Buffer {
  using mapped = map.mmap({ readOnly: true });
  return Buffer.concat(portSliceDims(lookups).map((dim) => mapped.read(portClassIndex(gen, dim, 0), PORTS)));
}

/** The first `n` `rules` values of generation `gen`, as EncodedRuleset.rules: a copy out of a read-only mapping. Throws ErrnoError. */
function ruleSlice(map: BpfMap, gen: number, n: number): Buffer {
  using mapped = map.mmap({ readOnly: true });
  return mapped.read(gen * MAX_RULES, Math.min(n, MAX_RULES));
}

/** A filter directory as observed before anything in it is read. */
function blankFilter(root: string, netnsKey: string, name: string): ObservedFilter {
  const parsed = parseFilterDirName(name)!;
  return {
    key: `${netnsKey}/${name}`,
    netnsKey,
    dir: join(root, FILTERS_DIR, netnsKey, name),
    hook: parsed.hook,
    ifindex: parsed.ifindex,
    missingMaps: [],
    layoutMismatch: [],
    policies: [],
    badRecords: [],
    activeGen: 0,
    slots: [],
    stray: [],
  };
}

/** Reads one filter directory. Never throws for missing pieces: they are reported as missing. */
export function observeFilter(root: string, netnsKey: string, name: string): ObservedFilter {
  const obs = blankFilter(root, netnsKey, name);
  const dir = obs.dir;
  const known = new Set(['program', 'link', ...FILTER_MAPS.map((m) => `map_${m}`)]);
  for (const e of readdirSync(dir)) if (!known.has(e)) obs.stray.push(join(dir, e));
  Object.assign(obs, observePrograms(dir));
  const opened = openPinnedMaps(dir, FILTER_MAPS, LAYOUT);
  const maps = opened.maps;
  obs.missingMaps.push(...opened.missing);
  obs.layoutMismatch.push(...opened.mismatched);
  try {
    // Maps of another layout cannot be read with this one: the plan rebuilds the filter.
    if (obs.layoutMismatch.length === 0) {
      maps.records?.forEachEntry((k, v) => {
        const key = decodeRecordKey(k);
        const json = decodeRecord(v);
        if (key === ATTACHMENT_RECORD) {
          const r = parseVersionedJson<AttachmentRecord>(json);
          if (typeof r === 'string') obs.badRecords.push({ name: key, reason: r });
          else obs.attachment = r;
        } else {
          const r = parseVersionedJson<FilterPolicyRecord>(json);
          if (typeof r === 'string' || r.name !== key) obs.badRecords.push({ name: key, reason: typeof r === 'string' ? r : 'name mismatch' });
          else obs.policies.push(r);
        }
      });
      obs.policies.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      maps.rule_meta?.forEachEntry((k, v) => obs.slots.push({ slot: k.readUInt32LE(0), ...decodeRuleMeta(v) }));
      obs.slots.sort((a, b) => a.slot - b.slot);
      const gen = maps.active?.lookup(u32(0))?.readUInt32LE(0);
      obs.activeGen = (gen ?? 0) & 1;
      const config = maps.config?.lookup(u32(obs.activeGen));
      const tables = FILTER_TABLES.map((t) => (maps[t] ? innerEntries(maps[t], obs.activeGen) : undefined));
      if (config && maps.port_classes && maps.rules && tables.every((t) => t !== undefined)) {
        const port = portSlices(maps.port_classes, obs.activeGen, decodeConfig(config).lookups);
        const rules = ruleSlice(maps.rules, obs.activeGen, configRuleCount(config));
        obs.fingerprint = rulesetFingerprint({ addr: tables[0]!, port, rules, decision: tables[1]!, config });
      }
    }
  } finally {
    opened.close();
  }
  const method = obs.attachment?.method;
  if (method === 'cls_bpf') {
    const a = obs.attachment!;
    const progId = clsBpfProgramId(a.netnsPath, a.ifname, a.hook === 'tc-egress' ? 'egress' : 'ingress');
    if (progId !== undefined) obs.link = { method, id: 0, progId, ifindex: a.ifindex, attached: true };
  } else {
    using link = tryOpen(() => Link.fromPin(join(dir, 'link')));
    if (link) {
      const i = link.info();
      const t = i.target;
      const kind = t.kind === 'xdp' ? 'xdp' : t.kind === 'tcx' ? 'tcx' : undefined;
      if (kind) obs.link = { method: kind, id: i.id, progId: i.progId, ifindex: t.kind === 'xdp' || t.kind === 'tcx' ? t.ifindex : 0, attached: t.attached };
      else obs.stray.push(join(dir, 'link'));
    }
  }
  return obs;
}

/** Reads every filter under `root`. An absent directory reads as empty. */
export function observeFilters(root: string): ObservedFilters {
  const out: ObservedFilters = { filters: [], stray: [] };
  const top = join(root, FILTERS_DIR);
  if (!existsSync(top)) return out;
  for (const ns of readdirSync(top).sort()) {
    const nsDir = join(top, ns);
    if (!statSync(nsDir).isDirectory() || !/^ino-[0-9]+$/.test(ns)) {
      out.stray.push(nsDir);
      continue;
    }
    for (const name of readdirSync(nsDir).sort()) {
      const path = join(nsDir, name);
      if (!statSync(path).isDirectory() || !parseFilterDirName(name)) out.stray.push(path);
      else {
        try {
          out.filters.push(observeFilter(root, ns, name));
        } catch (err) {
          out.filters.push({ ...blankFilter(root, ns, name), error: (err as Error).message });
        }
      }
    }
  }
  return out;
}

/** The counters of one slot (struct pf_counter summed over CPUs): every packet it decided, and of them the would-drops (audit mode). */
export interface FilterCounters {
  packets: bigint;
  bytes: bigint;
  wouldDropPackets: bigint;
  wouldDropBytes: bigint;
}

/** Counters per counter slot (summed over CPUs); absent slots read as zero. */
export function readFilterCounters(dir: string, slots: number[]): Map<number, FilterCounters> {
  const out = new Map<number, FilterCounters>();
  using m = tryOpen(() => BpfMap.fromPin(mapPinPath(dir, 'rule_stats')));
  const stride = m ? m.valueSize / possibleCpus() : COUNTER.size;
  const F = COUNTER.fields;
  for (const slot of slots) {
    const v = m?.lookup(u32(slot));
    const c: FilterCounters = { packets: 0n, bytes: 0n, wouldDropPackets: 0n, wouldDropBytes: 0n };
    for (let off = 0; v && off + COUNTER.size <= v.length; off += stride) {
      c.packets += v.readBigUInt64LE(off + F.packets.offset);
      c.bytes += v.readBigUInt64LE(off + F.bytes.offset);
      c.wouldDropPackets += v.readBigUInt64LE(off + F.would_drop_packets.offset);
      c.wouldDropBytes += v.readBigUInt64LE(off + F.would_drop_bytes.offset);
    }
    out.set(slot, c);
  }
  return out;
}

/** The filter's own statistics (not IP, no ruleset, no ports, events lost), summed over CPUs. */
export function readFilterStats(dir: string): bigint[] {
  using m = tryOpen(() => BpfMap.fromPin(mapPinPath(dir, 'stats')));
  return [0, 1, 2, 3].map((i) => {
    const v = m?.lookup(u32(i));
    let sum = 0n;
    for (let off = 0; v && off + 8 <= v.length; off += 8) sum += v.readBigUInt64LE(off);
    return sum;
  });
}

/** A generation's tables with the slot bookkeeping that goes with them. */
export interface RulesetWrite {
  encoded: EncodedRuleset;
  /** Slots (new or reassigned) whose rule_meta is written and whose counters start at zero. */
  newSlots: Array<{ slot: number; policy: string; rule: string }>;
  /** Slots no rule uses any more: deleted after the switch. */
  staleSlots: number[];
}

/**
 * Key and value sizes of the pinned maps with a fixed layout (bpf/packet_filter.h),
 * and the flags of the arrays user space maps: a `port_classes` or `rules`
 * pinned before they were mmapable (2026-12-02) cannot be mapped, nor reused
 * by today's object (libbpf compares map flags), so it is another layout.
 */
const LAYOUT: Partial<Record<FilterMapName, { key: number; value: number; flags?: number }>> = {
  config: { key: 4, value: CONFIG_SIZE },
  port_classes: { key: 4, value: PORT_CLASS_SIZE, flags: BPF_F_MMAPABLE },
  rules: { key: 4, value: DECISION_VALUE_SIZE, flags: BPF_F_MMAPABLE },
  active: { key: 4, value: 4 },
  rule_stats: { key: 4, value: COUNTER_SIZE },
  rule_meta: { key: 4, value: RULE_META_SIZE },
  records: { key: NAME_LEN, value: RECORD_LEN },
};

const INNER: Record<FilterTableName, { type: number; keySize: number; valueSize: number }> = {
  addr_tables: { type: MapType.LPM_TRIE, keySize: ADDR_KEY_SIZE, valueSize: CLASS_VALUE_SIZE },
  decision_tables: { type: MapType.HASH, keySize: DECISION_KEY_SIZE, valueSize: DECISION_VALUE_SIZE },
};

/**
 * Writes a rule set into generation `gen` (fresh inner maps sized to it,
 * filled with batch updates, then put into the outer maps) and switches the
 * filter to it with one write of `active`. Packets see the old rules or the
 * new ones, never a mix. The previous generation's maps stay referenced
 * until the next write replaces them, so packets still using them are safe.
 * Throws ErrnoError.
 */
export function writeFilterRules(dir: string, gen: number, write: RulesetWrite): void {
  withPinnedMaps(dir, [...FILTER_TABLES, 'port_classes', 'rules', 'config', 'active', 'rule_stats', 'rule_meta'], (m) => fillRuleset((name) => m[name]!, gen, write));
}

/** The maps of a filter that {@link fillRuleset} writes, by name. */
export type RulesetMapName = FilterTableName | 'port_classes' | 'rules' | 'config' | 'active' | 'rule_stats' | 'rule_meta';

/**
 * Writes generation `gen` of a rule set into a filter's maps, opened by the
 * caller (the pinned ones, or a private load's for `ebpf-policy test`): zeroed
 * counters and rule names for the new slots, fresh inner tables, the config,
 * then the switch of `active`, then the stale slots cleared. Throws ErrnoError.
 */
export function fillRuleset(map: (name: RulesetMapName) => BpfMap, gen: number, write: RulesetWrite): void {
  const stats = map('rule_stats');
  const meta = map('rule_meta');
  const zero = Buffer.alloc(stats.valueSize);
  for (const s of write.newSlots) {
    stats.update(u32(s.slot), zero);
    meta.update(u32(s.slot), encodeRuleMeta(s));
  }
  const parts: Record<FilterTableName, EncodedRuleset['addr']> = {
    addr_tables: write.encoded.addr,
    decision_tables: write.encoded.decision,
  };
  for (const table of FILTER_TABLES) {
    const part = parts[table];
    using inner = BpfMap.create({
      ...INNER[table],
      name: `pf_${table.split('_')[0]}_g${gen}`,
      maxEntries: Math.max(1, part.count),
      flags: BPF_F_NO_PREALLOC,
    });
    if (part.count > 0) inner.updateBatch(part.keys, part.values);
    map(table).update(u32(gen), u32(inner.fd));
  }
  writePortSlices(map('port_classes'), gen, write.encoded.port);
  writeRuleSlice(map('rules'), gen, write.encoded.rules);
  map('config').update(u32(gen), write.encoded.config);
  failpoint('rules-after-generation');
  map('active').update(u32(0), u32(gen));
  for (const slot of write.staleSlots) {
    if (slot === DEFAULT_SLOT) continue;
    // A per-CPU array (today's object) cannot delete: the slot is zeroed. A per-CPU hash pinned by an older object loses the entry.
    if (stats.info().type === MapType.PERCPU_ARRAY) stats.update(u32(slot), zero);
    else stats.delete(u32(slot));
    meta.delete(u32(slot));
  }
}

/**
 * Writes the port class slices of generation `gen` (the dimensions in use,
 * every port of each) through a shared mapping of `port_classes`: a copy per
 * slice. The generation is not the active one, so no packet reads it while
 * it is written. Throws ErrnoError.
 */
function writePortSlices(map: BpfMap, gen: number, port: EncodedRuleset['port']): void {
  const dims = portSliceDims(port.dims);
  if (dims.length === 0) return;
  const bytes = PORTS * PORT_CLASS_SIZE;
  using mapped = map.mmap();
  dims.forEach((dim, at) => mapped.write(portClassIndex(gen, dim, 0), port.values.subarray(at * bytes, (at + 1) * bytes)));
}

/** Writes the `rules` slice of generation `gen` (entries 0..n-1; the ones after are stale and never read) through a shared mapping of `rules`. Throws ErrnoError. */
function writeRuleSlice(map: BpfMap, gen: number, values: Buffer): void {
  if (values.length === 0) return;
  if (values.length > MAX_RULES * DECISION_VALUE_SIZE) throw new RangeError(`${values.length / DECISION_VALUE_SIZE} rules, more than ${MAX_RULES}`);
  using mapped = map.mmap();
  mapped.write(gen * MAX_RULES, values);
}

/** Writes and deletes policy records (and the attachment record). */
export function writeFilterRecords(dir: string, upserts: Array<FilterPolicyRecord | AttachmentRecord>, deletes: string[]): void {
  withPinnedMaps(dir, ['records'], (m) => {
    for (const r of upserts) {
      const name = 'name' in r ? r.name : ATTACHMENT_RECORD;
      m.records!.update(encodeRecordKey(name), encodeRecord(JSON.stringify(r)));
    }
    for (const name of deletes) m.records!.delete(encodeRecordKey(name));
  });
}

/** Everything needed to attach a filter to its interface. */
export interface AttachSpec {
  netns: string | null;
  netnsPath: string;
  ifname: string;
  ifindex: number;
  hook: FilterHookName;
  /** For tc hooks: tcx, or cls_bpf where the kernel lacks tcx. */
  method: FilterAttachMethod;
}

function tcDirection(hook: FilterHookName): TcxDirection {
  return hook === 'tc-egress' ? 'egress' : 'ingress';
}

/**
 * Attaches the pinned program of `dir` to its interface, pins the link
 * (atomically, through link_next) and records how; a `previous` cls_bpf
 * attachment is removed once the new one runs. XDP tries native mode
 * and falls back to generic mode when the driver refuses; an interface that
 * already runs another XDP program is an XdpConflictError. Returns the mode.
 */
export function attachFilter(dir: string, spec: AttachSpec, previous?: AttachmentRecord): Pick<AttachmentRecord, 'method' | 'xdpMode' | 'nativeRefused'> {
  using prog = Program.fromPin(join(dir, 'program'));
  let result: Pick<AttachmentRecord, 'method' | 'xdpMode' | 'nativeRefused'>;
  if (spec.method === 'cls_bpf') {
    attachClsBpf(spec.netnsPath, spec.ifname, tcDirection(spec.hook), join(dir, 'program'));
    unpin(join(dir, 'link'));
    result = { method: 'cls_bpf' };
  } else {
    const label = `${spec.hook} link on ${spec.ifname} (ifindex ${spec.ifindex})`;
    let link: Link;
    let nativeRefused: string | undefined;
    if (spec.hook === 'xdp') {
      const attached = attachXdp(prog, spec.netnsPath, spec.ifindex, spec.ifname, 'auto', label);
      link = attached.link;
      nativeRefused = attached.nativeRefused;
    } else {
      // In front of other tools' programs: our drops hold whatever they return; what we pass continues to them (TCX_NEXT).
      using ns = Netns.open(spec.netnsPath);
      link = ns.enter(() => Link.attachTcx(prog, spec.ifindex, tcDirection(spec.hook), label, true));
    }
    using owned = link;
    const pin = join(dir, 'link');
    unpin(`${pin}_next`);
    owned.pin(`${pin}_next`);
    renameSync(`${pin}_next`, pin);
    result = spec.hook === 'xdp' ? { method: 'xdp', xdpMode: nativeRefused ? 'generic' : 'native', ...(nativeRefused ? { nativeRefused } : {}) } : { method: 'tcx' };
  }
  // Moving off cls_bpf (e.g. after a kernel upgrade): the new attachment runs, now drop the old one.
  if (previous?.method === 'cls_bpf' && spec.method !== 'cls_bpf') detachClsBpf(previous.netnsPath, previous.ifname, tcDirection(previous.hook));
  const record: AttachmentRecord = { v: 1, netns: spec.netns, netnsPath: spec.netnsPath, ifname: spec.ifname, ifindex: spec.ifindex, hook: spec.hook, ...result };
  writeFilterRecords(dir, [record], []);
  return result;
}

/**
 * Builds a filter in `dir`: loads the object, pins its maps and the program
 * for the hook, writes the first rule set and the policy records, then
 * attaches. Whatever a crashed run left in `dir` is removed first; on
 * failure nothing new stays pinned or attached. Throws ErrnoError,
 * LoadError, XdpConflictError.
 */
export function createFilter(
  dir: string,
  spec: AttachSpec,
  objectPath: string,
  rules: RulesetWrite,
  policies: FilterPolicyRecord[],
): void {
  if (existsSync(dir)) removePinTree(dir);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  try {
    {
      using obj = loadObject(objectPath);
      for (const name of FILTER_MAPS) obj.map(name).pin(mapPinPath(dir, name));
      obj.program(spec.hook === 'xdp' ? FILTER_PROGRAMS.xdp : FILTER_PROGRAMS.tc).pin(join(dir, 'program'));
    }
    withPinnedMaps(dir, ['rule_stats'], (m) => m.rule_stats!.update(u32(DEFAULT_SLOT), Buffer.alloc(m.rule_stats!.valueSize)));
    writeFilterRules(dir, 1, rules);
    writeFilterRecords(dir, policies, []);
    failpoint('create-after-maps');
    attachFilter(dir, spec);
  } catch (err) {
    if (spec.method === 'cls_bpf') detachClsBpf(spec.netnsPath, spec.ifname, tcDirection(spec.hook));
    removeFilter(dir);
    throw err;
  }
}

/**
 * Replaces the filter's program atomically: the new program is loaded with
 * the pinned maps, pinned as program_next, swapped into the XDP or tcx link
 * with BPF_F_REPLACE (the kernel refuses if the link no longer runs
 * `expectedProgId`) or into the cls_bpf filter with `tc filter replace`, then
 * renamed over the old pin. Rules and counters stay. Throws ErrnoError.
 */
export function replaceFilterProgram(dir: string, objectPath: string, expectedProgId: number): void {
  const reuse: Record<string, BpfMap> = {};
  try {
    for (const name of FILTER_MAPS) reuse[name] = BpfMap.fromPin(mapPinPath(dir, name));
    const record = observeAttachmentRecord(reuse.records!);
    using obj = loadObject(objectPath, { reuseMaps: reuse });
    const next = obj.program(record?.hook === 'xdp' ? FILTER_PROGRAMS.xdp : FILTER_PROGRAMS.tc);
    swapPinnedProgram(dir, next, (nextPin) => {
      if (record?.method === 'cls_bpf') attachClsBpf(record.netnsPath, record.ifname, tcDirection(record.hook), nextPin);
      else {
        using link = Link.fromPin(join(dir, 'link'));
        using old = Program.fromId(expectedProgId);
        link.update(next, old);
      }
    });
  } finally {
    for (const m of Object.values(reuse)) m.close();
  }
}

function observeAttachmentRecord(records: BpfMap): AttachmentRecord | undefined {
  const v = records.lookup(encodeRecordKey(ATTACHMENT_RECORD));
  if (!v) return undefined;
  const r = parseVersionedJson<AttachmentRecord>(decodeRecord(v));
  return typeof r === 'string' ? undefined : r;
}

/**
 * Removes every filter under `root` (see {@link removeFilter}): for `destroy`,
 * whose removal of the pin tree alone would leave cls_bpf filters attached.
 * Returns the pins removed.
 */
export function removeAllFilters(root: string): string[] {
  const top = join(root, FILTERS_DIR);
  if (!existsSync(top)) return [];
  const removed: string[] = [];
  for (const ns of readdirSync(top))
    for (const name of statSync(join(top, ns)).isDirectory() ? readdirSync(join(top, ns)) : [])
      if (parseFilterDirName(name)) removed.push(...removeFilter(join(top, ns, name)));
  return removed;
}

/**
 * Removes a filter: detaches our cls_bpf filter if there is one, unpins
 * everything (the link detaches, the kernel frees the rest) and removes the
 * directory and empty parents up to ROOT/filters. Returns the pins removed.
 */
export function removeFilter(dir: string): string[] {
  if (existsSync(dir)) {
    const record = tryOpen(() => {
      using m = BpfMap.fromPin(mapPinPath(dir, 'records'));
      return observeAttachmentRecord(m);
    });
    if (record?.method === 'cls_bpf') detachClsBpf(record.netnsPath, record.ifname, tcDirection(record.hook));
  }
  const pins = existsSync(dir) ? removePinTree(dir) : [];
  for (const parent of [dirname(dir), dirname(dirname(dir))]) {
    try {
      if (readdirSync(parent).length === 0) rmdirSync(parent);
    } catch {
      // not empty, or raced with another writer: leave it
    }
  }
  return pins;
}
