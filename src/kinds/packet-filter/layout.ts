/**
 * Byte layout of the packet filter's maps (bpf/packet_filter.h), the paths
 * of its compiled objects, and the names of its pins. Pure encoding: no fds
 * here, so the reconciler's pure plan can use it.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { builtBpfObject } from '../../common/package-paths.js';
import { mapRecordCodec } from '../../common/map-records.js';
import { packEntries, type PackedEntries } from '../../common/batch-entries.js';
import { addressBytesText } from '../../policy/net/address-bytes.js';
import { cStruct, type CStruct } from '../../common/c-struct.js';

import { splitEntries } from '../../common/batch-entries.js';

export { splitEntries };

/** Compiled object of bpf/packet_filter.c. */
export const FILTER_OBJECT = builtBpfObject('packet_filter.o');
/** The filter built with -DVARIANT: same behaviour, other bytecode (upgrade tests). */
export const FILTER_VARIANT_OBJECT = builtBpfObject('packet_filter_variant.o');

/** Top-level directory of the filters under the pin root (ROOT/filters/<netns key>/<hook>-<ifindex>/). */
export const FILTERS_DIR = 'filters';

/** Where a filter runs. */
export type FilterHookName = 'xdp' | 'tc-ingress' | 'tc-egress';
/** How a filter is attached: an XDP link, a tcx link, or (before Linux 6.6) a cls_bpf filter. */
export type FilterAttachMethod = 'xdp' | 'tcx' | 'cls_bpf';

/** Directory of the filter of `hook` on interface `ifindex` of namespace `netnsKey`. */
export function filterDir(root: string, netnsKey: string, hook: FilterHookName, ifindex: number): string {
  return join(root, FILTERS_DIR, netnsKey, `${hook}-${ifindex}`);
}

/** Parses a filter directory name (`xdp-3`, `tc-ingress-12`). */
export function parseFilterDirName(name: string): { hook: FilterHookName; ifindex: number } | undefined {
  const m = /^(xdp|tc-ingress|tc-egress)-([1-9][0-9]*)$/.exec(name);
  return m ? { hook: m[1] as FilterHookName, ifindex: Number(m[2]) } : undefined;
}

/** Program names (C function names) in the object. */
export const FILTER_PROGRAMS = { xdp: 'filter_xdp', tc: 'filter_tc' } as const;

/** Names of the filter's maps, as in bpf/packet_filter.c; each is pinned as map_<name>. */
export const FILTER_MAPS = [
  'addr_tables',
  'port_classes',
  'decision_tables',
  'rules',
  'config',
  'active',
  'rule_stats',
  'stats',
  'events',
  'rule_meta',
  'records',
] as const;
export type FilterMapName = (typeof FILTER_MAPS)[number];

/** The double-buffered tables held as inner maps (ARRAY_OF_MAPS, one inner map per generation). */
export const FILTER_TABLES = ['addr_tables', 'decision_tables'] as const;
export type FilterTableName = (typeof FILTER_TABLES)[number];

/** PF_MATCH_*: the fields a rule constrains; a pattern is an OR of these. */
export const Match = { PROTO: 1, SRC: 2, DST: 4, SPORT: 8, DPORT: 16 } as const;
/** PF_PROTO_*: protocol classes of decision keys. */
export const ProtoClass = { other: 0, icmp: 1, tcp: 6, udp: 17 } as const;
/** PF_PIDX_*: protocol indexes of the `first` arrays of class values and config. */
export const ProtoIndex = { other: 0, icmp: 1, tcp: 2, udp: 3 } as const;
/** PF_NO_RULE: a `first` entry no rule fills. */
export const NO_RULE = 0xffff;
/** PF_MAX_RULES: rules per generation in `rules` (each also needs a counter slot). */
export const MAX_RULES = 16384;
/** PF_ACTION_* */
export const FilterActionCode = { pass: 0, drop: 1 } as const;
/** PF_DIM_* */
export const Dim = { src: 0, dst: 1 } as const;

/** Slot 0 of rule_stats counts packets no rule matched. */
export const DEFAULT_SLOT = 0;
/** PF_MAX_SLOTS: counter slots per filter, the default slot included. */
export const MAX_SLOTS = 16384;
/** Most decision entries one generation may hold (sizes the inner hash). */
export const MAX_DECISIONS = 1 << 20;
/** PF_NAME_LEN */
export const NAME_LEN = 64;
/** PF_RECORD_LEN */
export const RECORD_LEN = 4096;

/** `struct pf_addr_key` (packed: the LPM prefix covers dim, family and address). */
export const ADDR_KEY = cStruct(FILTER_OBJECT, 'pf_addr_key', 22, { prefixlen: [0, 4], dim: [4, 1], family: [5, 1], addr: [6, 16] }, { mapKey: true });
/** `struct pf_decision_key`. */
export const DECISION_KEY = cStruct(
  FILTER_OBJECT,
  'pf_decision_key',
  20,
  { pattern: [0, 1], proto: [1, 1], pad: [2, 2], src: [4, 4], dst: [8, 4], sport: [12, 4], dport: [16, 4] },
  { mapKey: true },
);
/** `struct pf_class` (value of the address tries). */
export const CLASS = cStruct(FILTER_OBJECT, 'pf_class', 12, { cls: [0, 4], first: [4, 8] });
/** `struct pf_port_class` (value of port_classes: `first` for TCP and UDP). */
export const PORT_CLASS = cStruct(FILTER_OBJECT, 'pf_port_class', 8, { cls: [0, 4], first: [4, 4] });
/** `struct pf_decision`. */
export const DECISION = cStruct(FILTER_OBJECT, 'pf_decision', 16, { order: [0, 4], slot: [4, 4], sample: [8, 4], action: [12, 1], audit: [13, 1], pad: [14, 2] });
/** `struct pf_config`. */
export const CONFIG = cStruct(FILTER_OBJECT, 'pf_config', 64, {
  patterns: [0, 4],
  lookups: [4, 4],
  default_action: [8, 1],
  default_audit: [9, 1],
  pad: [10, 2],
  default_sample: [12, 4],
  n_patterns: [16, 4],
  pattern_list: [20, 32],
  first: [52, 8],
  n_rules: [60, 4],
});
/** `struct pf_counter` (one per CPU in rule_stats). */
export const COUNTER = cStruct(FILTER_OBJECT, 'pf_counter', 32, { packets: [0, 8], bytes: [8, 8], would_drop_packets: [16, 8], would_drop_bytes: [24, 8] });
/** `struct pf_rule_meta`, `struct pf_record_key` and `struct pf_record`, as mapRecordCodec writes them. */
export const RULE_META = cStruct(FILTER_OBJECT, 'pf_rule_meta', 2 * NAME_LEN, { policy: [0, NAME_LEN], rule: [NAME_LEN, NAME_LEN] });
export const RECORD_KEY = cStruct(FILTER_OBJECT, 'pf_record_key', NAME_LEN, { name: [0, NAME_LEN] }, { mapKey: true });
export const RECORD = cStruct(FILTER_OBJECT, 'pf_record', RECORD_LEN, { len: [0, 4], json: [4, RECORD_LEN - 4] });
/**
 * Every C struct this module encodes that the object's BTF declares, for the layout guard
 * (test/unit/bpf-layouts.test.ts). `struct pf_event` is not in the BTF (only a ring buffer holds it).
 */
export const C_STRUCTS: readonly CStruct[] = [ADDR_KEY, CLASS, PORT_CLASS, DECISION_KEY, DECISION, CONFIG, COUNTER, RULE_META, RECORD_KEY, RECORD];

export const ADDR_KEY_SIZE = ADDR_KEY.size;
export const DECISION_KEY_SIZE = DECISION_KEY.size;
export const DECISION_VALUE_SIZE = DECISION.size;
/** struct pf_class: value of the address tries. */
export const CLASS_VALUE_SIZE = CLASS.size;
/** struct pf_port_class: value of port_classes. */
export const PORT_CLASS_SIZE = PORT_CLASS.size;
export const CONFIG_SIZE = CONFIG.size;
/** struct pf_counter: packets, bytes, would-drop packets, would-drop bytes (u64 each, per CPU). */
export const COUNTER_SIZE = COUNTER.size;
export const RULE_META_SIZE = RULE_META.size;
export const EVENT_SIZE = 64;
const AK = ADDR_KEY.fields;
const DK = DECISION_KEY.fields;
const DV = DECISION.fields;
const CF = CONFIG.fields;

/** PF_VERDICT_*: what a sampled event's packet got. */
export const Verdict = { drop: 1, wouldDrop: 2 } as const;

/** PF_STAT_* */
export const FilterStat = { notIp: 0, noRuleset: 1, noPorts: 2, eventsLost: 3 } as const;

/** One entry of an address class trie. */
export interface AddrEntry {
  dim: 0 | 1;
  family: 4 | 6;
  /** Network address as an unsigned integer (32 or 128 bits). */
  address: bigint;
  length: number;
  cls: number;
  /** Per PF_PIDX_*: the order of the first rule constraining only this field that matches the class (NO_RULE: none). */
  first: number[];
}

/** A block of ports sharing their top `bits` bits, all in one class (the port_classes entries of those ports). */
export interface PortEntry {
  dim: 0 | 1;
  port: number;
  bits: number;
  cls: number;
  /** For TCP and UDP: the order of the first rule constraining only this field that matches the class (NO_RULE: none). */
  first: number[];
}

/** What a rule does: the value of its entry in `rules`. */
export interface RuleEntry {
  order: number;
  slot: number;
  sample: number;
  action: 0 | 1;
  /** A drop is audited: the packet passes, counted as would-drop. */
  audit: boolean;
}

/** One decision: for a pattern and the class ids of its fields, the first rule that matches. */
export interface DecisionEntry {
  pattern: number;
  proto: number;
  src: number;
  dst: number;
  sport: number;
  dport: number;
  order: number;
  slot: number;
  sample: number;
  action: 0 | 1;
  /** A drop is audited: the packet passes, counted as would-drop. */
  audit: boolean;
}

/** One generation's config. */
export interface FilterConfig {
  /** Per PF_PIDX_*: the order of the first rule constraining no field but maybe the protocol (NO_RULE: none). */
  first: number[];
  /** Bit p: some rule has pattern p (only the multi-field ones are looked up). */
  patterns: number;
  lookups: number;
  defaultAction: 0 | 1;
  /** The default's drops are audited. */
  defaultAudit: boolean;
  defaultSample: number;
}

/** Encodes an address trie key. */
export function encodeAddrKey(e: Pick<AddrEntry, 'dim' | 'family' | 'address' | 'length'>): Buffer {
  const k = Buffer.alloc(ADDR_KEY_SIZE);
  const bits = e.family === 4 ? 32 : 128;
  if (!Number.isInteger(e.length) || e.length < 0 || e.length > bits) throw new RangeError(`prefix length ${e.length} out of range`);
  k.writeUInt32LE(16 + e.length, AK.prefixlen.offset);
  k.writeUInt8(e.dim, AK.dim.offset);
  k.writeUInt8(e.family, AK.family.offset);
  if (e.family === 4) k.writeUInt32BE(Number(e.address), AK.addr.offset);
  else {
    k.writeBigUInt64BE(e.address >> 64n, AK.addr.offset);
    k.writeBigUInt64BE(e.address & 0xffffffffffffffffn, AK.addr.offset + 8);
  }
  return k;
}

/** Ports per dimension and generation in `port_classes`. */
export const PORTS = 65536;
/** PF_PORT_CLASS_ENTRIES: entries of `port_classes` (2 generations x 2 dimensions x 65,536 ports). */
export const PORT_CLASS_ENTRIES = 2 * 2 * PORTS;

/** pf_port_index(): the `port_classes` index of a port of a dimension in a generation. */
export function portClassIndex(gen: number, dim: number, port: number): number {
  return ((gen & 1) << 17) | ((dim & 1) << 16) | (port & 0xffff);
}

/**
 * The `port_classes` values of one generation: for each dimension in use
 * (bit Match.SPORT or Match.DPORT of `dims`; source first), 65,536 class
 * values indexed by port. Dimensions not in use are neither written nor
 * read (the program does not look them up).
 */
export interface PortSlices {
  dims: number;
  values: Buffer;
}

/** The dimensions of `port_classes` a generation uses, in slice order. */
export function portSliceDims(lookups: number): Array<0 | 1> {
  return [...(lookups & Match.SPORT ? [Dim.src] : []), ...(lookups & Match.DPORT ? [Dim.dst] : [])];
}

/** Encodes the port class blocks as the `port_classes` slices of the dimensions in `lookups` (Match bits). */
export function encodePortSlices(entries: readonly PortEntry[], lookups: number): PortSlices {
  const dims = portSliceDims(lookups);
  const values = Buffer.alloc(dims.length * PORTS * PORT_CLASS_SIZE);
  // Ports no entry covers: class 0, no rule.
  for (let off = 0; off < values.length; off += PORT_CLASS_SIZE) values.writeUInt32LE(NO_RULE * 0x10001, off + PORT_CLASS.fields.first.offset);
  const one = Buffer.alloc(PORT_CLASS_SIZE);
  for (const e of entries) {
    if (!Number.isInteger(e.bits) || e.bits < 0 || e.bits > 16) throw new RangeError(`port bits ${e.bits} out of range`);
    const at = dims.indexOf(e.dim);
    if (at < 0) throw new RangeError(`port entry of dimension ${e.dim}, which the config does not look up`);
    one.writeUInt32LE(e.cls, PORT_CLASS.fields.cls.offset);
    one.writeUInt16LE(e.first[0] ?? NO_RULE, PORT_CLASS.fields.first.offset);
    one.writeUInt16LE(e.first[1] ?? NO_RULE, PORT_CLASS.fields.first.offset + 2);
    const start = e.port & ~((1 << (16 - e.bits)) - 1) & 0xffff;
    const n = 1 << (16 - e.bits);
    for (let p = start; p < start + n; p++) one.copy(values, (at * PORTS + p) * PORT_CLASS_SIZE);
  }
  return { dims: lookups & (Match.SPORT | Match.DPORT), values };
}

/** Encodes an address trie value (struct pf_class). */
export function encodeClass(e: Pick<AddrEntry, 'cls' | 'first'>): Buffer {
  const v = Buffer.alloc(CLASS_VALUE_SIZE);
  v.writeUInt32LE(e.cls, CLASS.fields.cls.offset);
  for (let i = 0; i < 4; i++) v.writeUInt16LE(e.first[i] ?? NO_RULE, CLASS.fields.first.offset + 2 * i);
  return v;
}

/** Encodes a decision key. */
export function encodeDecisionKey(d: Pick<DecisionEntry, 'pattern' | 'proto' | 'src' | 'dst' | 'sport' | 'dport'>): Buffer {
  const k = Buffer.alloc(DECISION_KEY_SIZE);
  k.writeUInt8(d.pattern, DK.pattern.offset);
  k.writeUInt8(d.proto, DK.proto.offset);
  k.writeUInt32LE(d.src, DK.src.offset);
  k.writeUInt32LE(d.dst, DK.dst.offset);
  k.writeUInt32LE(d.sport, DK.sport.offset);
  k.writeUInt32LE(d.dport, DK.dport.offset);
  return k;
}

/** Encodes a decision value (struct pf_decision: the value of decision_tables and of `rules`). */
export function encodeDecisionValue(d: Pick<DecisionEntry, 'order' | 'slot' | 'sample' | 'action' | 'audit'>): Buffer {
  const v = Buffer.alloc(DECISION_VALUE_SIZE);
  v.writeUInt32LE(d.order, DV.order.offset);
  v.writeUInt32LE(d.slot, DV.slot.offset);
  v.writeUInt32LE(d.sample, DV.sample.offset);
  v.writeUInt8(d.action, DV.action.offset);
  v.writeUInt8(d.audit ? 1 : 0, DV.audit.offset);
  return v;
}

/** Whether rules of `pattern` need a decision lookup (two fields or more): the patterns of pf_config.pattern_list. */
export function isMultiField(pattern: number): boolean {
  let n = 0;
  for (const m of [Match.SRC, Match.DST, Match.SPORT, Match.DPORT]) if (pattern & m) n++;
  return n >= 2;
}

/** Encodes a generation's config: the multi-field patterns of the bitmask also as the list of patterns to look up. */
export function encodeConfig(c: FilterConfig, nRules = 0): Buffer {
  const v = Buffer.alloc(CONFIG_SIZE);
  v.writeUInt32LE(c.patterns, CF.patterns.offset);
  v.writeUInt32LE(c.lookups, CF.lookups.offset);
  v.writeUInt8(c.defaultAction, CF.default_action.offset);
  v.writeUInt8(c.defaultAudit ? 1 : 0, CF.default_audit.offset);
  v.writeUInt32LE(c.defaultSample, CF.default_sample.offset);
  let n = 0;
  for (let p = 0; p < 32; p++) if (c.patterns & (1 << p) && isMultiField(p)) v.writeUInt8(p, CF.pattern_list.offset + n++);
  v.writeUInt32LE(n, CF.n_patterns.offset);
  for (let i = 0; i < 4; i++) v.writeUInt16LE(c.first[i] ?? NO_RULE, CF.first.offset + 2 * i);
  v.writeUInt32LE(nRules, CF.n_rules.offset);
  return v;
}

/** The n_rules of an encoded config: entries of the generation's `rules` slice. */
export function configRuleCount(v: Buffer): number {
  return v.readUInt32LE(CF.n_rules.offset);
}

/** Decodes a generation's config. */
export function decodeConfig(v: Buffer): FilterConfig {
  return {
    first: [0, 1, 2, 3].map((i) => v.readUInt16LE(CF.first.offset + 2 * i)),
    patterns: v.readUInt32LE(CF.patterns.offset),
    lookups: v.readUInt32LE(CF.lookups.offset),
    defaultAction: v.readUInt8(CF.default_action.offset) === 1 ? 1 : 0,
    defaultAudit: v.readUInt8(CF.default_audit.offset) === 1,
    defaultSample: v.readUInt32LE(CF.default_sample.offset),
  };
}

/** Encodes a u32 key (generation, slot, stat index). */
export function u32(n: number): Buffer {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(n);
  return k;
}

/** Record keys, records and counter slot names (pf_record_key, pf_record, pf_rule_meta). */
export const { encodeRecordKey, decodeRecordKey, encodeRecord, decodeRecord, encodeRuleMeta, decodeRuleMeta } = mapRecordCodec(NAME_LEN, RECORD_LEN, 'filter record');

/** A sampled drop or would-drop as the BPF program reports it. */
export interface RawFilterEvent {
  timeNs: bigint;
  ifindex: number;
  slot: number;
  length: number;
  family: 4 | 6;
  protocol: number;
  action: 0 | 1;
  /** What the packet got: dropped, or passed in audit mode (would-drop). */
  verdict: 'drop' | 'would-drop';
  /** The packet had no readable TCP/UDP header (a fragment): ports are 0. */
  noPorts: boolean;
  srcPort: number;
  dstPort: number;
  src: string;
  dst: string;
}

/** Decodes one ring buffer record. Throws RangeError when it is too short. */
export function decodeEvent(b: Buffer): RawFilterEvent {
  if (b.length < EVENT_SIZE) throw new RangeError(`filter event of ${b.length} bytes, expected ${EVENT_SIZE}`);
  // struct pf_event: time_ns@0 ifindex@8 slot@12 length@16 family@20 protocol@21 action@22 flags@23 sport@24 dport@26 src@28 dst@44 verdict@60
  const family = b.readUInt8(20) === 6 ? 6 : 4;
  return {
    timeNs: b.readBigUInt64LE(0),
    ifindex: b.readUInt32LE(8),
    slot: b.readUInt32LE(12),
    length: b.readUInt32LE(16),
    family,
    protocol: b.readUInt8(21),
    action: b.readUInt8(22) === 1 ? 1 : 0,
    verdict: b.readUInt8(60) === Verdict.wouldDrop ? 'would-drop' : 'drop',
    noPorts: (b.readUInt8(23) & 1) === 1,
    srcPort: b.readUInt16LE(24),
    dstPort: b.readUInt16LE(26),
    src: addressBytesText(b.subarray(28, 44), family),
    dst: addressBytesText(b.subarray(44, 60), family),
  };
}

/** The encoded entries of one generation, ready for batch updates. */
export interface EncodedRuleset {
  addr: PackedEntries;
  port: PortSlices;
  /** The generation's `rules` values (struct pf_decision), by order: config n_rules of them. */
  rules: Buffer;
  decision: PackedEntries;
  config: Buffer;
}

/** Encodes a generation's tables. Throws RangeError on out-of-range fields. */
export function encodeRuleset(r: { addr: AddrEntry[]; port: PortEntry[]; decisions: DecisionEntry[]; rules: RuleEntry[]; config: FilterConfig }): EncodedRuleset {
  const pack = packEntries;
  if (r.rules.length > MAX_RULES) throw new RangeError(`${r.rules.length} rules, more than ${MAX_RULES}`);
  return {
    addr: pack(r.addr, encodeAddrKey, encodeClass),
    port: encodePortSlices(r.port, r.config.lookups),
    rules: Buffer.concat(r.rules.map(encodeDecisionValue)),
    decision: pack(r.decisions, encodeDecisionKey, encodeDecisionValue),
    config: encodeConfig(r.config, r.rules.length),
  };
}

/**
 * Fingerprint of one generation's content: the entries of the two inner
 * tables (in any order), the port slices in use, the rules slice and the
 * config. Observed maps and desired tables with equal fingerprints hold the
 * same rules.
 */
export function rulesetFingerprint(parts: {
  addr: Iterable<[Buffer, Buffer]>;
  /** The `port_classes` values of the dimensions in use (PortSlices.values). */
  port: Buffer;
  /** The generation's `rules` values, config n_rules of them (EncodedRuleset.rules). */
  rules: Buffer;
  decision: Iterable<[Buffer, Buffer]>;
  config: Buffer;
}): string {
  const h = createHash('sha256');
  h.update(`port:${parts.port.length}\n`);
  h.update(parts.port);
  h.update(`rules:${parts.rules.length}\n`);
  h.update(parts.rules);
  for (const [name, entries] of [
    ['addr', parts.addr],
    ['decision', parts.decision],
  ] as const) {
    const lines: string[] = [];
    for (const [k, v] of entries) lines.push(k.toString('latin1') + v.toString('latin1'));
    lines.sort();
    h.update(`${name}:${lines.length}\n`);
    for (const l of lines) h.update(l, 'latin1');
  }
  h.update(parts.config);
  return h.digest('hex').slice(0, 32);
}

/** The fingerprint of an encoded generation: what observation computes from the maps once it is written. */
export function encodedFingerprint(e: EncodedRuleset): string {
  return rulesetFingerprint({ addr: splitEntries(e.addr), port: e.port.values, rules: e.rules, decision: splitEntries(e.decision), config: e.config });
}

