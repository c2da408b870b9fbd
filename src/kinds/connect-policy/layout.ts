/**
 * Byte layout of the connect guard's maps (bpf/connect_policy.h), the paths
 * of its compiled objects, and the names of its pins. Pure encoding: no fds
 * here, so the pure plan can use it.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { builtBpfObject } from '../../common/package-paths.js';
import { decodeFixedString, mapRecordCodec } from '../../common/map-records.js';
import { packEntries, type PackedEntries } from '../../common/batch-entries.js';
import { addressBytesText } from '../../policy/net/address-bytes.js';
import { cStruct, type CStruct } from '../../common/c-struct.js';

export { splitEntries } from '../../common/batch-entries.js';
import { AttachType } from '../../bpf/constants.js';

/** Compiled object of bpf/connect_policy.c. */
export const GUARD_OBJECT = builtBpfObject('connect_policy.o');
/** The guard built with -DVARIANT: same behaviour, other bytecode (upgrade tests). */
export const GUARD_VARIANT_OBJECT = builtBpfObject('connect_policy_variant.o');

/** Top-level directory of the guards under the pin root (ROOT/connect/cg-<cgroup id>/). */
export const GUARDS_DIR = 'connect';

/** The hooks a guard attaches to, each a program and a link in its own subdirectory. */
export const GUARD_HOOKS = ['connect4', 'connect6', 'sendmsg4', 'sendmsg6'] as const;
export type GuardHook = (typeof GUARD_HOOKS)[number];

/** Program names (C function names) per hook. */
export const GUARD_PROGRAMS: Record<GuardHook, string> = {
  connect4: 'guard_connect4',
  connect6: 'guard_connect6',
  sendmsg4: 'guard_sendmsg4',
  sendmsg6: 'guard_sendmsg6',
};

/** Attach types per hook (linux/bpf.h: BPF_CGROUP_INET4_CONNECT, ...). */
export const GUARD_ATTACH_TYPES: Record<GuardHook, number> = {
  connect4: AttachType.CGROUP_INET4_CONNECT,
  connect6: AttachType.CGROUP_INET6_CONNECT,
  sendmsg4: AttachType.CGROUP_UDP4_SENDMSG,
  sendmsg6: AttachType.CGROUP_UDP6_SENDMSG,
};

/** Name of a guard directory: `cg-<cgroup id>`. */
export function guardKey(cgroupId: bigint | string): string {
  return `cg-${cgroupId}`;
}

/** Parses a guard directory name back into its cgroup id. */
export function parseGuardKey(name: string): bigint | undefined {
  const m = /^cg-([1-9][0-9]*)$/.exec(name);
  return m ? BigInt(m[1]!) : undefined;
}

/** Directory of the guard of cgroup `cgroupId`. */
export function guardDir(root: string, cgroupId: bigint | string): string {
  return join(root, GUARDS_DIR, guardKey(cgroupId));
}

/** Names of the guard's maps, as in bpf/connect_policy.c; each is pinned as map_<name>. */
export const GUARD_MAPS = ['addrs', 'ports', 'decisions', 'config', 'active', 'rule_stats', 'stats', 'events', 'rule_meta', 'records'] as const;
export type GuardMapName = (typeof GUARD_MAPS)[number];

/** CP_MATCH_* */
export const Match = { PROTO: 1, DST: 2, PORT: 4 } as const;
/** CP_PATTERN_END */
export const PATTERN_END = 0xff;
/** CP_PROTO_* */
export const ProtoClass = { any: 0, tcp: 6, udp: 17 } as const;
/** CP_ACTION_* */
export const ActionCode = { allow: 0, deny: 1 } as const;
/** CP_VERDICT_* */
export const Verdict = { deny: 1, wouldDeny: 2 } as const;
/** CP_HOOK_* in events, by value. */
export const EVENT_HOOKS: readonly GuardHook[] = ['connect4', 'connect6', 'sendmsg4', 'sendmsg6'];
/** CP_STAT_* */
export const GuardStat = { noRuleset: 0, eventsLost: 1 } as const;

export const MAX_POLICIES = 16;
export const MAX_SCAN = MAX_POLICIES * 9;
export const MAX_SLOTS = 65536;
export const MAX_ADDRS = 262144;
export const MAX_PORTS = 65536;
export const MAX_DECISIONS = 1 << 20;
export const NAME_LEN = 64;
export const RECORD_LEN = 4096;
/** `active` before the first rule set: no generation. */
export const NO_GENERATION = 0xff;

/** `struct cp_addr_key` (packed: the LPM prefix covers the generation, family and address). */
export const ADDR_KEY = cStruct(GUARD_OBJECT, 'cp_addr_key', 22, { prefixlen: [0, 4], gen: [4, 1], family: [5, 1], addr: [6, 16] }, { mapKey: true });
/** `struct cp_port_key` (packed). */
export const PORT_KEY = cStruct(GUARD_OBJECT, 'cp_port_key', 7, { prefixlen: [0, 4], gen: [4, 1], port: [5, 2] }, { mapKey: true });
/** `struct cp_decision_key`. */
export const DECISION_KEY = cStruct(
  GUARD_OBJECT,
  'cp_decision_key',
  12,
  { gen: [0, 1], policy: [1, 1], pattern: [2, 1], proto: [3, 1], dst: [4, 4], port: [8, 4] },
  { mapKey: true },
);
/** `struct cp_decision`. */
export const DECISION = cStruct(GUARD_OBJECT, 'cp_decision', 16, { order: [0, 4], slot: [4, 4], sample: [8, 4], action: [12, 1], audit: [13, 1], pad: [14, 2] });
/** `struct cp_scan_entry`. */
export const SCAN_ENTRY = cStruct(GUARD_OBJECT, 'cp_scan_entry', 2, { policy: [0, 1], pattern: [1, 1] });
/** `struct cp_config`. */
export const CONFIG = cStruct(GUARD_OBJECT, 'cp_config', 8 + SCAN_ENTRY.size * MAX_SCAN + DECISION.size * MAX_POLICIES, {
  lookups: [0, 4],
  n_scan: [4, 4],
  scan: [8, SCAN_ENTRY.size * MAX_SCAN],
  defaults: [8 + SCAN_ENTRY.size * MAX_SCAN, DECISION.size * MAX_POLICIES],
});
/** `struct cp_counter` (one per CPU in rule_stats). */
export const COUNTER = cStruct(GUARD_OBJECT, 'cp_counter', 24, { connects: [0, 8], denies: [8, 8], would_deny: [16, 8] });
/** `struct cp_rule_meta`, `struct cp_record_key` and `struct cp_record`, as mapRecordCodec writes them. */
export const RULE_META = cStruct(GUARD_OBJECT, 'cp_rule_meta', 2 * NAME_LEN, { policy: [0, NAME_LEN], rule: [NAME_LEN, NAME_LEN] });
export const RECORD_KEY = cStruct(GUARD_OBJECT, 'cp_record_key', NAME_LEN, { name: [0, NAME_LEN] }, { mapKey: true });
export const RECORD = cStruct(GUARD_OBJECT, 'cp_record', RECORD_LEN, { len: [0, 4], json: [4, RECORD_LEN - 4] });
/**
 * Every C struct this module encodes that the object's BTF declares, for the layout guard
 * (test/unit/bpf-layouts.test.ts). `struct cp_event` is not in the BTF (only a ring buffer holds it).
 */
export const C_STRUCTS: readonly CStruct[] = [ADDR_KEY, PORT_KEY, DECISION_KEY, DECISION, SCAN_ENTRY, CONFIG, COUNTER, RULE_META, RECORD_KEY, RECORD];

export const ADDR_KEY_SIZE = ADDR_KEY.size;
export const PORT_KEY_SIZE = PORT_KEY.size;
export const DECISION_KEY_SIZE = DECISION_KEY.size;
export const DECISION_VALUE_SIZE = DECISION.size;
export const CONFIG_SIZE = CONFIG.size;
export const COUNTER_SIZE = COUNTER.size;
export const RULE_META_SIZE = RULE_META.size;
export const EVENT_SIZE = 64;
const AK = ADDR_KEY.fields;
const PK = PORT_KEY.fields;
const DK = DECISION_KEY.fields;
const DV = DECISION.fields;
const SE = SCAN_ENTRY.fields;
const CF = CONFIG.fields;

/** One entry of the address trie of a generation. */
export interface AddrEntry {
  family: 4 | 6;
  address: bigint;
  length: number;
  cls: number;
}

/** One entry of the port trie of a generation. */
export interface PortEntry {
  port: number;
  bits: number;
  cls: number;
}

/** What a rule or a policy default decides. */
export interface DecisionValue {
  order: number;
  slot: number;
  sample: number;
  action: 0 | 1;
  audit: boolean;
}

/** One decision: for a policy, a pattern and the class ids of its fields, the policy's first rule that matches. */
export interface DecisionEntry extends DecisionValue {
  policy: number;
  pattern: number;
  proto: number;
  dst: number;
  port: number;
}

/** One generation's config. */
export interface GuardConfig {
  lookups: number;
  /** (policy, pattern) pairs in scan order; PATTERN_END closes each policy. */
  scan: Array<{ policy: number; pattern: number }>;
  /** Per policy index: its default decision. */
  defaults: DecisionValue[];
}

/** Encodes an address trie key of generation `gen`. */
export function encodeAddrKey(gen: number, e: Pick<AddrEntry, 'family' | 'address' | 'length'>): Buffer {
  const k = Buffer.alloc(ADDR_KEY_SIZE);
  const bits = e.family === 4 ? 32 : 128;
  if (!Number.isInteger(e.length) || e.length < 0 || e.length > bits) throw new RangeError(`prefix length ${e.length} out of range`);
  k.writeUInt32LE(16 + e.length, AK.prefixlen.offset);
  k.writeUInt8(gen, AK.gen.offset);
  k.writeUInt8(e.family, AK.family.offset);
  if (e.family === 4) k.writeUInt32BE(Number(e.address), AK.addr.offset);
  else {
    k.writeBigUInt64BE(e.address >> 64n, AK.addr.offset);
    k.writeBigUInt64BE(e.address & 0xffffffffffffffffn, AK.addr.offset + 8);
  }
  return k;
}

/** Encodes a port trie key of generation `gen`. */
export function encodePortKey(gen: number, e: Pick<PortEntry, 'port' | 'bits'>): Buffer {
  if (!Number.isInteger(e.bits) || e.bits < 0 || e.bits > 16) throw new RangeError(`port bits ${e.bits} out of range`);
  const k = Buffer.alloc(PORT_KEY_SIZE);
  k.writeUInt32LE(8 + e.bits, PK.prefixlen.offset);
  k.writeUInt8(gen, PK.gen.offset);
  k.writeUInt16BE(e.port, PK.port.offset);
  return k;
}

/** Encodes a decision key of generation `gen`. */
export function encodeDecisionKey(gen: number, d: Pick<DecisionEntry, 'policy' | 'pattern' | 'proto' | 'dst' | 'port'>): Buffer {
  const k = Buffer.alloc(DECISION_KEY_SIZE);
  k.writeUInt8(gen, DK.gen.offset);
  k.writeUInt8(d.policy, DK.policy.offset);
  k.writeUInt8(d.pattern, DK.pattern.offset);
  k.writeUInt8(d.proto, DK.proto.offset);
  k.writeUInt32LE(d.dst, DK.dst.offset);
  k.writeUInt32LE(d.port, DK.port.offset);
  return k;
}

/** Encodes a decision (a rule's or a default's). */
export function encodeDecision(d: DecisionValue): Buffer {
  const v = Buffer.alloc(DECISION_VALUE_SIZE);
  v.writeUInt32LE(d.order, DV.order.offset);
  v.writeUInt32LE(d.slot, DV.slot.offset);
  v.writeUInt32LE(d.sample, DV.sample.offset);
  v.writeUInt8(d.action, DV.action.offset);
  v.writeUInt8(d.audit ? 1 : 0, DV.audit.offset);
  return v;
}

/** Encodes a generation's config. Throws RangeError when it does not fit. */
export function encodeConfig(c: GuardConfig): Buffer {
  if (c.scan.length > MAX_SCAN) throw new RangeError(`${c.scan.length} scan entries, at most ${MAX_SCAN}`);
  if (c.defaults.length > MAX_POLICIES) throw new RangeError(`${c.defaults.length} policies, at most ${MAX_POLICIES}`);
  const v = Buffer.alloc(CONFIG_SIZE);
  v.writeUInt32LE(c.lookups, CF.lookups.offset);
  v.writeUInt32LE(c.scan.length, CF.n_scan.offset);
  c.scan.forEach((e, i) => {
    v.writeUInt8(e.policy, CF.scan.offset + SCAN_ENTRY.size * i + SE.policy.offset);
    v.writeUInt8(e.pattern, CF.scan.offset + SCAN_ENTRY.size * i + SE.pattern.offset);
  });
  c.defaults.forEach((d, i) => encodeDecision(d).copy(v, CF.defaults.offset + DECISION.size * i));
  return v;
}

/** Encodes a u32 key or value. */
export function u32(n: number): Buffer {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(n);
  return k;
}

/** Record keys, records and counter slot names (cp_record_key, cp_record, cp_rule_meta). */
export const { encodeRecordKey, decodeRecordKey, encodeRecord, decodeRecord, encodeRuleMeta, decodeRuleMeta } = mapRecordCodec(NAME_LEN, RECORD_LEN, 'connect guard record');

/** A sampled deny or would-deny as the programs report it. */
export interface RawGuardEvent {
  timeNs: bigint;
  cgroupId: bigint;
  pid: number;
  slot: number;
  comm: string;
  port: number;
  family: 4 | 6;
  protocol: number;
  verdict: 'deny' | 'would-deny';
  hook: GuardHook;
  address: string;
}

/** Decodes one ring buffer record (struct cp_event). Throws RangeError when it is too short. */
export function decodeGuardEvent(b: Buffer): RawGuardEvent {
  if (b.length < EVENT_SIZE) throw new RangeError(`connect event of ${b.length} bytes, expected ${EVENT_SIZE}`);
  // time_ns@0 cgroup_id@8 pid@16 slot@20 comm@24 port@40 family@42 protocol@43 verdict@44 hook@45 pad@46 addr@48
  const family = b.readUInt8(42) === 6 ? 6 : 4;
  return {
    timeNs: b.readBigUInt64LE(0),
    cgroupId: b.readBigUInt64LE(8),
    pid: b.readUInt32LE(16),
    slot: b.readUInt32LE(20),
    comm: decodeFixedString(b, 24, 16),
    port: b.readUInt16LE(40),
    family,
    protocol: b.readUInt8(43),
    verdict: b.readUInt8(44) === Verdict.wouldDeny ? 'would-deny' : 'deny',
    hook: EVENT_HOOKS[b.readUInt8(45)] ?? 'connect4',
    address: addressBytesText(b.subarray(48, 64), family),
  };
}

/** A generation's entries, encoded for batch updates. */
export interface EncodedGeneration {
  gen: number;
  addr: PackedEntries;
  port: PackedEntries;
  decision: PackedEntries;
  config: Buffer;
}

/** Encodes the tables of one generation. Throws RangeError on out-of-range fields. */
export function encodeGeneration(gen: number, r: { addr: AddrEntry[]; port: PortEntry[]; decisions: DecisionEntry[]; config: GuardConfig }): EncodedGeneration {
  const pack = packEntries;
  return {
    gen,
    addr: pack(r.addr, (e) => encodeAddrKey(gen, e), (e) => u32(e.cls)),
    port: pack(r.port, (e) => encodePortKey(gen, e), (e) => u32(e.cls)),
    decision: pack(r.decisions, (e) => encodeDecisionKey(gen, e), encodeDecision),
    config: encodeConfig(r.config),
  };
}

/** The generation byte of an address or port trie key, or of a decision key. */
export function generationOf(map: 'addrs' | 'ports' | 'decisions', key: Buffer): number {
  return map === 'decisions' ? key.readUInt8(DK.gen.offset) : key.readUInt8(map === 'addrs' ? AK.gen.offset : PK.gen.offset);
}

/**
 * Fingerprint of one generation's content, whatever its generation number:
 * the entries of the three tables (in any order, generation byte cleared) and
 * the config. Observed maps and desired tables with equal fingerprints hold
 * the same rules.
 */
export function generationFingerprint(parts: {
  addr: Iterable<[Buffer, Buffer]>;
  port: Iterable<[Buffer, Buffer]>;
  decision: Iterable<[Buffer, Buffer]>;
  config: Buffer;
}): string {
  const h = createHash('sha256');
  for (const [name, entries, genAt] of [
    ['addr', parts.addr, AK.gen.offset],
    ['port', parts.port, PK.gen.offset],
    ['decision', parts.decision, DK.gen.offset],
  ] as const) {
    const lines: string[] = [];
    for (const [k, v] of entries) {
      const key = Buffer.from(k);
      key.writeUInt8(0, genAt);
      lines.push(key.toString('latin1') + v.toString('latin1'));
    }
    lines.sort();
    h.update(`${name}:${lines.length}\n`);
    for (const l of lines) h.update(l, 'latin1');
  }
  h.update(parts.config);
  return h.digest('hex').slice(0, 32);
}

