/**
 * Byte layout of the syscall counter's maps (bpf/syscall_counter.h), the
 * paths of its compiled objects, and the names of its pins. Pure encoding:
 * no fds here, so the pure plan can use it.
 */
import { join } from 'node:path';
import { decodeFixedString, mapRecordCodec } from '../../common/map-records.js';
import { builtBpfObject } from '../../common/package-paths.js';
import { cStruct, type CStruct } from '../../common/c-struct.js';
import type { GroupByField } from './document.js';

/** Compiled object of bpf/syscall_counter.c. */
export const COUNTER_OBJECT = builtBpfObject('syscall_counter.o');
/** The counter built with -DVARIANT: same behaviour, other bytecode (upgrade tests). */
export const COUNTER_VARIANT_OBJECT = builtBpfObject('syscall_counter_variant.o');
/** The program (C function name) and the raw tracepoint it attaches to. */
export const COUNTER_PROGRAM = 'count_syscalls';
export const COUNTER_TRACEPOINT = 'sys_enter';

/** The directory of the counter under the pin root: ROOT/syscalls/. */
export const COUNTER_DIR = 'syscalls';

/** The counter's directory under `root`. */
export function counterDir(root: string): string {
  return join(root, COUNTER_DIR);
}

/** Names of the counter's maps, as in bpf/syscall_counter.c; each is pinned as map_<name>. */
export const COUNTER_MAPS = ['wanted', 'config', 'policies', 'cgroups', 'counts', 'stats', 'records'] as const;
export type CounterMapName = (typeof COUNTER_MAPS)[number];

export const MAX_POLICIES = 32;
export const MAX_SYSCALLS = 1024;
export const COMM_LEN = 16;
export const NAME_LEN = 64;
export const RECORD_LEN = 4096;

/** `struct sc_key`: the key of every count table (no padding: a hole would split equal keys). */
export const COUNT_KEY = cStruct(COUNTER_OBJECT, 'sc_key', 32, { syscall: [0, 4], pid: [4, 4], cgroup_id: [8, 8], comm: [16, COMM_LEN] }, { mapKey: true });
/** `struct sc_policy`. */
export const SLOT_POLICY = cStruct(COUNTER_OBJECT, 'sc_policy', 16, { in_use: [0, 4], group_by: [4, 4], cgroup: [8, 4], all: [12, 4] });
/** `struct sc_config`. */
export const COUNTER_CONFIG = cStruct(COUNTER_OBJECT, 'sc_config', 16, { all_mask: [0, 8], n_slots: [8, 4], pad: [12, 4] });
/** `struct sc_record_key` and `struct sc_record`, as mapRecordCodec writes them. */
export const RECORD_KEY = cStruct(COUNTER_OBJECT, 'sc_record_key', NAME_LEN, { name: [0, NAME_LEN] }, { mapKey: true });
export const RECORD = cStruct(COUNTER_OBJECT, 'sc_record', RECORD_LEN, { len: [0, 4], json: [4, RECORD_LEN - 4] });
/** Every C struct this module encodes, for the layout guard (test/unit/bpf-layouts.test.ts). */
export const C_STRUCTS: readonly CStruct[] = [COUNT_KEY, SLOT_POLICY, COUNTER_CONFIG, RECORD_KEY, RECORD];

export const KEY_SIZE = COUNT_KEY.size;
export const POLICY_SIZE = SLOT_POLICY.size;
export const CONFIG_SIZE = COUNTER_CONFIG.size;
const K = COUNT_KEY.fields;
const P = SLOT_POLICY.fields;
const C = COUNTER_CONFIG.fields;

/** SC_BY_* bits. */
export const GroupBit: Record<GroupByField, number> = { syscall: 1, comm: 2, cgroup: 4, pid: 8 };
/** SC_STAT_* */
export const CounterStat = { noMap: 0, updateFailed: 1 } as const;

/** What a policy slot holds (struct sc_policy). */
export interface SlotConfig {
  inUse: boolean;
  groupBy: number;
  cgroup: boolean;
  all: boolean;
}

/** The groupBy bits of a policy. */
export function groupBits(groupBy: readonly GroupByField[]): number {
  return groupBy.reduce((b, f) => b | GroupBit[f], 0);
}

/** Encodes struct sc_policy. */
export function encodeSlotConfig(c: SlotConfig): Buffer {
  const v = Buffer.alloc(POLICY_SIZE);
  v.writeUInt32LE(c.inUse ? 1 : 0, P.in_use.offset);
  v.writeUInt32LE(c.groupBy, P.group_by.offset);
  v.writeUInt32LE(c.cgroup ? 1 : 0, P.cgroup.offset);
  v.writeUInt32LE(c.all ? 1 : 0, P.all.offset);
  return v;
}

/** Decodes struct sc_policy. */
export function decodeSlotConfig(v: Buffer): SlotConfig {
  return {
    inUse: v.readUInt32LE(P.in_use.offset) === 1,
    groupBy: v.readUInt32LE(P.group_by.offset),
    cgroup: v.readUInt32LE(P.cgroup.offset) === 1,
    all: v.readUInt32LE(P.all.offset) === 1,
  };
}

/** Encodes struct sc_config. */
export function encodeConfig(c: { allMask: bigint; nSlots: number }): Buffer {
  const v = Buffer.alloc(CONFIG_SIZE);
  v.writeBigUInt64LE(c.allMask, C.all_mask.offset);
  v.writeUInt32LE(c.nSlots, C.n_slots.offset);
  return v;
}

/** Decodes struct sc_config. */
export function decodeConfig(v: Buffer): { allMask: bigint; nSlots: number } {
  return { allMask: v.readBigUInt64LE(C.all_mask.offset), nSlots: v.readUInt32LE(C.n_slots.offset) };
}

/** One count's key (struct sc_key), decoded; fields the policy does not group by are 0 or "". */
export interface CountKey {
  syscall: number;
  pid: number;
  cgroupId: bigint;
  comm: string;
}

/** Decodes struct sc_key. */
export function decodeCountKey(k: Buffer): CountKey {
  return {
    syscall: k.readUInt32LE(K.syscall.offset),
    pid: k.readUInt32LE(K.pid.offset),
    cgroupId: k.readBigUInt64LE(K.cgroup_id.offset),
    comm: decodeFixedString(k, K.comm.offset, K.comm.size),
  };
}

/** Encodes a u32 key or value. */
export function u32(n: number): Buffer {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(n);
  return k;
}

/** Encodes a u64 value. */
export function u64(n: bigint): Buffer {
  const v = Buffer.alloc(8);
  v.writeBigUInt64LE(n);
  return v;
}

/** Record keys and records (sc_record_key, sc_record). */
export const { encodeRecordKey, decodeRecordKey, encodeRecord, decodeRecord } = mapRecordCodec(NAME_LEN, RECORD_LEN, 'syscall counter record');
