/**
 * Byte layout of the syscall counter's maps (bpf/syscall_counter.h), the
 * paths of its compiled objects, and the names of its pins. Pure encoding:
 * no fds here, so the pure plan can use it.
 */
import { join } from 'node:path';
import { decodeFixedString, mapRecordCodec } from '../../common/map-records.js';
import { builtBpfObject } from '../../common/package-paths.js';
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
export const KEY_SIZE = 32;
export const POLICY_SIZE = 16;
export const CONFIG_SIZE = 16;

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
  v.writeUInt32LE(c.inUse ? 1 : 0, 0);
  v.writeUInt32LE(c.groupBy, 4);
  v.writeUInt32LE(c.cgroup ? 1 : 0, 8);
  v.writeUInt32LE(c.all ? 1 : 0, 12);
  return v;
}

/** Decodes struct sc_policy. */
export function decodeSlotConfig(v: Buffer): SlotConfig {
  return { inUse: v.readUInt32LE(0) === 1, groupBy: v.readUInt32LE(4), cgroup: v.readUInt32LE(8) === 1, all: v.readUInt32LE(12) === 1 };
}

/** Encodes struct sc_config. */
export function encodeConfig(c: { allMask: bigint; nSlots: number }): Buffer {
  const v = Buffer.alloc(CONFIG_SIZE);
  v.writeBigUInt64LE(c.allMask, 0);
  v.writeUInt32LE(c.nSlots, 8);
  return v;
}

/** Decodes struct sc_config. */
export function decodeConfig(v: Buffer): { allMask: bigint; nSlots: number } {
  return { allMask: v.readBigUInt64LE(0), nSlots: v.readUInt32LE(8) };
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
  return { syscall: k.readUInt32LE(0), pid: k.readUInt32LE(4), cgroupId: k.readBigUInt64LE(8), comm: decodeFixedString(k, 16, COMM_LEN) };
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
