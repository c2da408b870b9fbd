/**
 * Byte layout of the sk_lookup dispatcher's maps (bpf/dispatcher.h), and
 * the path of its compiled object. Pure encoding: no fds here.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { builtBpfObject } from '../../common/package-paths.js';
import { decodeLengthPrefixed, encodeLengthPrefixed } from '../../common/length-prefixed.js';
import { cStruct, type CStruct } from '../../common/c-struct.js';

/** Compiled object of bpf/dispatcher.c. */
export const DISPATCHER_OBJECT = builtBpfObject('dispatcher.o');
/** The dispatcher built with -DVARIANT: same behaviour, other bytecode (upgrade tests and benchmarks). */
/**
 * What one dispatcher holds (bpf/dispatcher.h): LPM entries (MAX_BINDINGS),
 * binding ids 0..65535 (MAX_BINDING_IDS, one hit counter each) and
 * destinations 1..65535 (MAX_DESTINATIONS: sockmap slots, 0 unused).
 */
export const DISPATCHER_LIMITS = { entries: 1_048_576, bindings: 65_536, destinations: 65_535 } as const;

export const DISPATCHER_VARIANT_OBJECT = builtBpfObject('dispatcher_variant.o');
/** Compiled object of bpf/test_counter.c (a second sk_lookup program, for upgrade tests). */
export const TEST_COUNTER_OBJECT = builtBpfObject('test_counter.o');

/** Size of `struct policy_key` and `struct policy_record`. */
export const POLICY_NAME_LEN = 64;
export const POLICY_RECORD_LEN = 8192;

/** `struct binding_key` (packed: the LPM prefix covers protocol, port and address). */
export const BINDING_KEY = cStruct(DISPATCHER_OBJECT, 'binding_key', 23, { prefixlen: [0, 4], protocol: [4, 1], port: [5, 2], addr: [7, 16] }, { mapKey: true });
/** `struct binding_value`. */
export const BINDING_VALUE = cStruct(DISPATCHER_OBJECT, 'binding_value', 8, { dest_id: [0, 4], binding_id: [4, 4] });
/** `struct policy_key`. */
export const POLICY_KEY = cStruct(DISPATCHER_OBJECT, 'policy_key', POLICY_NAME_LEN, { name: [0, POLICY_NAME_LEN] }, { mapKey: true });
/** `struct policy_record`, as encodeLengthPrefixed writes it. */
export const POLICY_RECORD = cStruct(DISPATCHER_OBJECT, 'policy_record', POLICY_RECORD_LEN, { len: [0, 4], json: [4, POLICY_RECORD_LEN - 4] });
/** Every C struct this module encodes, for the layout guard (test/unit/bpf-layouts.test.ts). */
export const C_STRUCTS: readonly CStruct[] = [BINDING_KEY, BINDING_VALUE, POLICY_KEY, POLICY_RECORD];

/** Size of `struct binding_key`. */
export const BINDING_KEY_SIZE = BINDING_KEY.size;
/** Size of `struct binding_value`. */
export const BINDING_VALUE_SIZE = BINDING_VALUE.size;
/** Bits of protocol and port in the LPM prefix. */
const FIXED_BITS = 8 + 16;
const BK = BINDING_KEY.fields;
const BV = BINDING_VALUE.fields;

/** IP protocol numbers. */
export const IPPROTO = { tcp: 6, udp: 17 } as const;
export type Protocol = keyof typeof IPPROTO;

/** One dispatcher binding of a single port: protocol, destination prefix and port. */
export interface Binding {
  protocol: Protocol;
  /** Destination address, IPv4 or IPv6. */
  address: string;
  /** Prefix length in bits of the address's own family (0..32 or 0..128). */
  prefixLength: number;
  port: number;
}

/** A block of ports sharing their top `bits` bits, bound for every address of both families. */
export interface PortBlock {
  protocol: Protocol;
  /** First port of the block (its low 16 - bits bits are zero). */
  port: number;
  /** How many leading port bits are fixed (0 = every port, 16 = one port). */
  bits: number;
}

/** Encodes a port block (every address) as an LPM trie key. */
export function encodePortBlockKey(b: PortBlock): Buffer {
  if (!Number.isInteger(b.bits) || b.bits < 0 || b.bits > 16) throw new RangeError(`port block bits ${b.bits} out of range`);
  if (!Number.isInteger(b.port) || b.port < 0 || b.port > 65535 || b.port % 2 ** (16 - b.bits) !== 0)
    throw new RangeError(`port ${b.port} is not the start of a /${b.bits} port block`);
  const key = Buffer.alloc(BINDING_KEY_SIZE);
  key.writeUInt32LE(8 + b.bits, BK.prefixlen.offset);
  key.writeUInt8(IPPROTO[b.protocol], BK.protocol.offset);
  key.writeUInt16BE(b.port, BK.port.offset);
  return key;
}

/** Parses an IPv4 or IPv6 address into 16 bytes (IPv4 mapped to ::ffff:a.b.c.d). Throws TypeError. */
export function addressBytes(address: string): Buffer {
  const out = Buffer.alloc(16);
  if (isIPv4(address)) {
    out[10] = 0xff;
    out[11] = 0xff;
    address.split('.').forEach((part, i) => (out[12 + i] = Number(part)));
    return out;
  }
  if (!isIPv6(address)) throw new TypeError(`not an IP address: ${address}`);
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const b = addressBytes(v4[1]).subarray(12);
    text = text.slice(0, -v4[1].length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = [...headParts, ...Array(8 - headParts.length - tailParts.length).fill('0'), ...tailParts];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g as string, 16), i * 2));
  return out;
}

/** Encodes a binding as an LPM trie key. Throws TypeError/RangeError on bad input. */
export function encodeBindingKey(b: Binding): Buffer {
  const v4 = isIPv4(b.address);
  const max = v4 ? 32 : 128;
  if (!Number.isInteger(b.prefixLength) || b.prefixLength < 0 || b.prefixLength > max)
    throw new RangeError(`prefix length ${b.prefixLength} out of range for ${b.address}`);
  if (!Number.isInteger(b.port) || b.port < 0 || b.port > 65535) throw new RangeError(`port ${b.port} out of range`);
  const key = Buffer.alloc(BINDING_KEY_SIZE);
  key.writeUInt32LE(FIXED_BITS + (v4 ? 96 : 0) + b.prefixLength, BK.prefixlen.offset);
  key.writeUInt8(IPPROTO[b.protocol], BK.protocol.offset);
  key.writeUInt16BE(b.port, BK.port.offset);
  addressBytes(b.address).copy(key, BK.addr.offset);
  return key;
}

/**
 * BINDING_V6_ONLY (bpf/dispatcher.h): set in the binding id word of the
 * entries of an IPv6 prefix other than an IPv4-mapped one, so that the
 * dispatcher never steers an IPv4 connection by it (IPv4 addresses are
 * looked up IPv4-mapped, and ::/0 holds them too).
 */
export const BINDING_V6_ONLY = 0x80000000;

/** Whether a binding of `address`/`prefixLength` is IPv6 only: an IPv6 prefix not inside ::ffff:0:0/96. */
export function isV6OnlyPrefix(address: string, prefixLength: number): boolean {
  if (isIPv4(address)) return false;
  const b = addressBytes(address);
  const mapped = prefixLength >= 96 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  return !mapped;
}

/** Encodes a binding value: the destination (sockmap key) and the binding's counter index. */
export function encodeBindingValue(destId: number, bindingId: number): Buffer {
  const v = Buffer.alloc(BINDING_VALUE_SIZE);
  v.writeUInt32LE(destId, BV.dest_id.offset);
  v.writeUInt32LE(bindingId, BV.binding_id.offset);
  return v;
}

/** Decodes a binding value. */
export function decodeBindingValue(v: Buffer): { destId: number; bindingId: number } {
  return { destId: v.readUInt32LE(BV.dest_id.offset), bindingId: v.readUInt32LE(BV.binding_id.offset) };
}

/** Encodes a u32 map key (sockets, counters). */
export function u32Key(n: number): Buffer {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(n);
  return k;
}

/** Encodes a policy name as a `policies` map key. Throws RangeError when it does not fit. */
export function policyKey(name: string): Buffer {
  const k = Buffer.alloc(POLICY_NAME_LEN);
  const n = k.write(name, 'utf8');
  if (Buffer.byteLength(name) >= POLICY_NAME_LEN || n !== Buffer.byteLength(name))
    throw new RangeError(`policy name "${name}" is longer than ${POLICY_NAME_LEN - 1} bytes`);
  return k;
}

/** Decodes a `policies` map key. */
export function decodePolicyKey(k: Buffer): string {
  const end = k.indexOf(0);
  return k.toString('utf8', 0, end < 0 ? k.length : end);
}

/** Encodes a policy record (JSON text, length-prefixed). Throws RangeError when it is too large. */
export function encodePolicyRecord(json: string): Buffer {
  return encodeLengthPrefixed(json, POLICY_RECORD_LEN, 'policy record');
}

/** Decodes a policy record into its JSON text. */
export function decodePolicyRecord(v: Buffer): string {
  return decodeLengthPrefixed(v);
}
