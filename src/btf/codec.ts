/**
 * JSON codecs for map keys, values and ring buffer records, driven by BTF:
 * `codecFor(btf, typeId)` encodes a JSON value into the bytes of that C type
 * and decodes bytes back. The rules (network byte order, addresses, ports,
 * strings, what is refused) are in docs/btf-codec.md.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Btf, BtfType } from './btf.js';
import { BtfError } from './errors.js';

/** A value that does not fit its type: `path` names the field ("value.addr[2]", "key.sport"). */
export class CodecError extends Error {
  readonly path: string;
  constructor(path: string, message: string, options?: ErrorOptions) {
    super(path === '' ? message : `${path}: ${message}`, options);
    this.name = 'CodecError';
    this.path = path;
  }
}

/** Encodes JSON values into the bytes of one C type and back. */
export interface Codec {
  /** Size in bytes of the encoded value. */
  readonly size: number;
  /** The C type, e.g. "struct tuple", or "bytes[12]" for a raw codec. */
  readonly typeName: string;
  /**
   * Encodes `value` into `size` bytes.
   * @param path the name of the value in error messages (default "value").
   * @throws CodecError naming the path of the field that does not fit.
   */
  encode(value: unknown, path?: string): Uint8Array;
  /**
   * Decodes bytes (at least `size`; more are ignored) into a JSON-able value.
   * @throws CodecError when there are fewer than `size` bytes.
   */
  decode(bytes: Uint8Array): unknown;
}

/** A field of a struct or union shape (anonymous members are lifted into their parent). */
export interface ShapeField {
  name: string;
  shape: Shape;
  /** Offset in bits from the start of the enclosing struct. */
  bitOffset: number;
  /** Bits of a bitfield; 0 for a plain member. */
  bitSize: number;
  /** Fields lifted from one anonymous union share a group: at most one of them may be given. */
  group?: number;
  /** Lifted from an anonymous union but not its decoded member: encoded, never decoded. */
  encodeOnly?: boolean;
}

/** How the codec reads one C type: the classification docs/btf-codec.md describes. */
export type Shape =
  | { k: 'int'; size: number; signed: boolean; bigEndian: boolean }
  | { k: 'bool'; size: number }
  | { k: 'enum'; size: number; signed: boolean; name: string; values: { name: string; value: bigint }[] }
  | { k: 'float'; size: number }
  | { k: 'ipv4' }
  | { k: 'ipv6' }
  | { k: 'string'; size: number }
  | { k: 'array'; size: number; n: number; elem: Shape; elemSize: number }
  | { k: 'struct'; size: number; name: string; fields: ShapeField[] }
  | { k: 'union'; size: number; name: string; fields: ShapeField[]; decodeAs: number };

/** Field names read as IPv4 addresses (4 bytes) or IPv6 addresses (16 bytes). */
export const ADDRESS_NAME = /^(addr|saddr|daddr|ip|ip4|.+_addr|.+_ip)$/;
/** Field names read as IPv6 addresses only (16 bytes). */
export const ADDRESS6_NAME = /^(ip6|addr6|saddr6|daddr6|.+_ip6|.+_addr6)$/;
/** Field names of 2-byte integers read as ports in network byte order. */
export const PORT_NAME = /^(port|sport|dport|.+_port)$/;
/** Typedef names that mean network byte order. */
const BIG_ENDIAN_TYPEDEFS = new Set(['__be16', '__be32', '__be64']);

function typedefNames(btf: Btf, typeId: number): string[] {
  const names: string[] = [];
  let t: BtfType = btf.get(typeId);
  for (let hops = 0; hops < 64 && ['typedef', 'const', 'volatile', 'restrict', 'type_tag'].includes(t.kind); hops++) {
    if (t.kind === 'typedef') names.push(t.name);
    t = btf.get(t.type ?? 0);
  }
  return names;
}

function isIntArray(btf: Btf, t: BtfType): boolean {
  return t.kind === 'array' && btf.resolve(t.array!.elemType).kind === 'int' && btf.resolve(t.array!.elemType).encoding !== undefined;
}

/**
 * The shape of type `typeId` as a field named `fieldName` (names matter for
 * addresses and ports: see docs/btf-codec.md).
 * @throws CodecError (at `path`) for a type the codec cannot hold: void, a function, a forward declaration.
 */
export function shapeOf(btf: Btf, typeId: number, fieldName = '', path = ''): Shape {
  const t = btf.resolve(typeId);
  const names = typedefNames(btf, typeId);
  const bigEndian = names.some((n) => BIG_ENDIAN_TYPEDEFS.has(n));
  const size = t.kind === 'int' && !t.encoding ? 0 : btf.sizeOf(t.id);
  if (size === 4 && ADDRESS_NAME.test(fieldName) && ((t.kind === 'int' && t.encoding) || isIntArray(btf, t))) return { k: 'ipv4' };
  if (
    size === 16 &&
    (ADDRESS_NAME.test(fieldName) || ADDRESS6_NAME.test(fieldName)) &&
    (isIntArray(btf, t) || (t.kind === 'struct' && t.name === 'in6_addr'))
  )
    return { k: 'ipv6' };
  switch (t.kind) {
    case 'int': {
      if (!t.encoding) throw new CodecError(path, 'void has no value');
      if (t.encoding.bool) return { k: 'bool', size };
      if (![1, 2, 4, 8].includes(size)) throw new CodecError(path, `${btf.typeName(typeId)}: integers of ${size} bytes are not supported`);
      const port = size === 2 && PORT_NAME.test(fieldName);
      return { k: 'int', size, signed: t.encoding.signed && !port && !bigEndian, bigEndian: bigEndian || port };
    }
    case 'ptr':
      return { k: 'int', size: 8, signed: false, bigEndian: false };
    case 'enum':
    case 'enum64':
      return { k: 'enum', size, signed: t.signed ?? false, name: t.name, values: t.enumValues ?? [] };
    case 'float':
      if (size !== 4 && size !== 8) throw new CodecError(path, `${btf.typeName(typeId)}: floats of ${size} bytes are not supported`);
      return { k: 'float', size };
    case 'array': {
      const elemT = btf.resolve(t.array!.elemType);
      if (elemT.kind === 'int' && elemT.encoding && btf.sizeOf(elemT.id) === 1 && (elemT.name === 'char' || elemT.encoding.char))
        return { k: 'string', size };
      const elemSize = btf.sizeOf(t.array!.elemType);
      return { k: 'array', size, n: t.array!.nelems, elemSize, elem: shapeOf(btf, t.array!.elemType, '', `${path}[]`) };
    }
    case 'struct':
    case 'union': {
      const fields: ShapeField[] = [];
      let group = 0;
      const lift = (members: readonly NonNullable<BtfType['members']>[number][], base: number, inGroup: number | undefined, encodeOnly: boolean, where: string) => {
        for (const m of members) {
          const mt = btf.resolve(m.type);
          if (m.name === '' && (mt.kind === 'struct' || mt.kind === 'union')) {
            const sub = mt.kind === 'union' ? ++group : inGroup;
            const decodeIdx = mt.kind === 'union' ? largestMember(btf, mt) : -1;
            mt.members!.forEach((sm, i) =>
              lift([sm], base + m.bitOffset, sub, encodeOnly || (mt.kind === 'union' && i !== decodeIdx), where),
            );
            continue;
          }
          const p = `${where}.${m.name}`;
          fields.push({
            name: m.name,
            shape: shapeOf(btf, m.type, m.name, p),
            bitOffset: base + m.bitOffset,
            bitSize: m.bitSize,
            ...(inGroup !== undefined ? { group: inGroup } : {}),
            ...(encodeOnly ? { encodeOnly } : {}),
          });
        }
      };
      lift(t.members ?? [], 0, undefined, false, path);
      if (t.kind === 'struct') return { k: 'struct', size, name: t.name, fields };
      return { k: 'union', size, name: t.name, fields, decodeAs: largestMember(btf, t) };
    }
    default:
      throw new CodecError(path, `${btf.typeName(typeId)} (${t.kind}) cannot be encoded`);
  }
}

/** Index of the first largest member of a union: the one decode shows (it covers every byte of the union). */
function largestMember(btf: Btf, t: BtfType): number {
  let best = 0;
  let bestSize = -1;
  (t.members ?? []).forEach((m, i) => {
    const s = m.bitSize > 0 ? Math.ceil(m.bitSize / 8) : btf.sizeOf(m.type);
    if (s > bestSize) [best, bestSize] = [i, s];
  });
  return best;
}

// ---------------------------------------------------------------------------------------------------------------
// Integers

function intRange(bits: number, signed: boolean): [bigint, bigint] {
  return signed ? [-(1n << BigInt(bits - 1)), (1n << BigInt(bits - 1)) - 1n] : [0n, (1n << BigInt(bits)) - 1n];
}

function describeType(s: Shape, bits: number): string {
  if (s.k === 'int') return `${s.signed ? 's' : 'u'}${bits}${s.bigEndian ? ' (network byte order)' : ''}`;
  return s.k;
}

/** A JSON integer (number, decimal string or bigint) as a bigint in [min, max]. */
function toBigInt(value: unknown, bits: number, signed: boolean, path: string, what: string): bigint {
  let n: bigint;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new CodecError(path, `${what} takes an integer, got ${value}`);
    if (!Number.isSafeInteger(value)) throw new CodecError(path, `${value} is beyond 2^53: give it as a decimal string`);
    n = BigInt(value);
  } else if (typeof value === 'bigint') n = value;
  else if (typeof value === 'string' && /^-?[0-9]+$/.test(value)) n = BigInt(value);
  else throw new CodecError(path, `${what} takes an integer (a number, or a decimal string), got ${JSON.stringify(value)}`);
  const [min, max] = intRange(bits, signed);
  if (n < min || n > max) throw new CodecError(path, `${n} is out of range for ${what} (${min}..${max})`);
  return n;
}

/** A bigint as JSON: a number when exact, else a decimal string. */
function fromBigInt(n: bigint): number | string {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
}

function writeInt(dv: DataView, off: number, size: number, n: bigint, bigEndian: boolean): void {
  const le = !bigEndian;
  const u = BigInt.asUintN(size * 8, n);
  if (size === 1) dv.setUint8(off, Number(u));
  else if (size === 2) dv.setUint16(off, Number(u), le);
  else if (size === 4) dv.setUint32(off, Number(u), le);
  else dv.setBigUint64(off, u, le);
}

function readInt(dv: DataView, off: number, size: number, signed: boolean, bigEndian: boolean): bigint {
  const le = !bigEndian;
  let u: bigint;
  if (size === 1) u = BigInt(dv.getUint8(off));
  else if (size === 2) u = BigInt(dv.getUint16(off, le));
  else if (size === 4) u = BigInt(dv.getUint32(off, le));
  else u = dv.getBigUint64(off, le);
  return signed ? BigInt.asIntN(size * 8, u) : u;
}

/** Bitfields: bit i of a struct is bit (i % 8) of byte i / 8 (little-endian BPF). */
function writeBits(dv: DataView, bitOffset: number, bitSize: number, n: bigint): void {
  const u = BigInt.asUintN(bitSize, n);
  for (let i = 0; i < bitSize; i++) {
    const bit = bitOffset + i;
    const byte = dv.getUint8(bit >> 3);
    const mask = 1 << (bit & 7);
    dv.setUint8(bit >> 3, (u >> BigInt(i)) & 1n ? byte | mask : byte & ~mask);
  }
}

function readBits(dv: DataView, bitOffset: number, bitSize: number, signed: boolean): bigint {
  let u = 0n;
  for (let i = 0; i < bitSize; i++) {
    const bit = bitOffset + i;
    if (dv.getUint8(bit >> 3) & (1 << (bit & 7))) u |= 1n << BigInt(i);
  }
  return signed ? BigInt.asIntN(bitSize, u) : u;
}

// ---------------------------------------------------------------------------------------------------------------
// Addresses

function parseIPv6(text: string, path: string): Uint8Array {
  if (typeof text !== 'string' || !isIPv6(text)) throw new CodecError(path, `expected an IPv6 address, got ${JSON.stringify(text)}`);
  const out = new Uint8Array(16);
  let s = text;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  const words: number[] = [];
  if (v4?.[1]) {
    const b = v4[1].split('.').map(Number);
    s = s.slice(0, -v4[1].length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  words.push(...headParts.map((g) => parseInt(g, 16)));
  for (let i = headParts.length + tailParts.length; i < 8; i++) words.push(0);
  words.push(...tailParts.map((g) => parseInt(g, 16)));
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** RFC 5952 text of 16 address bytes (IPv4-mapped addresses as ::ffff:a.b.c.d). */
function formatIPv6(b: Uint8Array): string {
  const words = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [bestAt, bestLen] = [i, j - i];
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Encode and decode by shape

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function encodeShape(s: Shape, dv: DataView, off: number, v: unknown, path: string): void {
  switch (s.k) {
    case 'int':
      writeInt(dv, off, s.size, toBigInt(v, s.size * 8, s.signed, path, describeType(s, s.size * 8)), s.bigEndian);
      return;
    case 'bool':
      if (typeof v !== 'boolean') throw new CodecError(path, `expected true or false, got ${JSON.stringify(v)}`);
      writeInt(dv, off, s.size, v ? 1n : 0n, false);
      return;
    case 'enum': {
      let n: bigint;
      if (typeof v === 'string' && !/^-?[0-9]+$/.test(v)) {
        const found = s.values.find((e) => e.name === v);
        if (!found) throw new CodecError(path, `unknown value ${JSON.stringify(v)} of enum ${s.name || '(anon)'}; known: ${s.values.map((e) => e.name).join(', ')}`);
        n = found.value;
      } else n = toBigInt(v, s.size * 8, s.signed, path, `enum ${s.name || '(anon)'}`);
      writeInt(dv, off, s.size, n, false);
      return;
    }
    case 'float':
      if (typeof v !== 'number') throw new CodecError(path, `expected a number, got ${JSON.stringify(v)}`);
      if (s.size === 4) dv.setFloat32(off, v, true);
      else dv.setFloat64(off, v, true);
      return;
    case 'ipv4': {
      if (typeof v !== 'string' || !isIPv4(v)) throw new CodecError(path, `expected an IPv4 address (a.b.c.d), got ${JSON.stringify(v)}`);
      v.split('.').forEach((part, i) => dv.setUint8(off + i, Number(part)));
      return;
    }
    case 'ipv6':
      parseIPv6(v as string, path).forEach((b, i) => dv.setUint8(off + i, b));
      return;
    case 'string': {
      if (typeof v !== 'string') throw new CodecError(path, `expected a string, got ${JSON.stringify(v)}`);
      const bytes = Buffer.from(v, 'utf8');
      if (bytes.length >= s.size) throw new CodecError(path, `string of ${bytes.length} bytes is too long for char[${s.size}] (at most ${s.size - 1} bytes and the NUL)`);
      bytes.forEach((b, i) => dv.setUint8(off + i, b));
      return;
    }
    case 'array':
      if (!Array.isArray(v)) throw new CodecError(path, `expected an array of at most ${s.n} elements, got ${JSON.stringify(v)}`);
      if (v.length > s.n) throw new CodecError(path, `${v.length} elements, the array holds ${s.n}`);
      v.forEach((e, i) => encodeShape(s.elem, dv, off + i * s.elemSize, e, `${path}[${i}]`));
      return;
    case 'struct':
    case 'union': {
      if (!isPlainObject(v)) throw new CodecError(path, `expected an object (${s.k} ${s.name || '(anon)'}), got ${JSON.stringify(v)}`);
      const keys = Object.keys(v);
      if (s.k === 'union' && keys.length !== 1)
        throw new CodecError(path, `union ${s.name || '(anon)'} takes exactly one of ${s.fields.map((f) => f.name).join(', ')}; got ${keys.length === 0 ? 'none' : keys.join(', ')}`);
      const groups = new Map<number, string>();
      for (const key of keys) {
        const f = s.fields.find((x) => x.name === key);
        const p = `${path}.${key}`;
        if (!f) throw new CodecError(p, `unknown field of ${s.k} ${s.name || '(anon)'}; its fields: ${s.fields.map((x) => x.name).join(', ')}`);
        if (f.group !== undefined) {
          const other = groups.get(f.group);
          if (other !== undefined) throw new CodecError(p, `${other} and ${key} share an anonymous union: give one of them`);
          groups.set(f.group, key);
        }
        if (f.bitSize > 0) {
          const sh = f.shape;
          const signed = sh.k === 'int' ? sh.signed : sh.k === 'enum' ? sh.signed : false;
          let n: bigint;
          if (sh.k === 'bool') {
            if (typeof v[key] !== 'boolean') throw new CodecError(p, `expected true or false, got ${JSON.stringify(v[key])}`);
            n = v[key] ? 1n : 0n;
          } else if (sh.k === 'enum' && typeof v[key] === 'string' && !/^-?[0-9]+$/.test(v[key])) {
            const found = sh.values.find((e) => e.name === v[key]);
            if (!found) throw new CodecError(p, `unknown value ${JSON.stringify(v[key])} of enum ${sh.name || '(anon)'}`);
            n = found.value;
          } else n = toBigInt(v[key], f.bitSize, signed, p, `a ${f.bitSize}-bit ${signed ? 'signed' : 'unsigned'} bitfield`);
          const view = new DataView(dv.buffer, dv.byteOffset + off, Math.ceil((f.bitOffset + f.bitSize) / 8));
          writeBits(view, f.bitOffset, f.bitSize, n);
        } else encodeShape(f.shape, dv, off + f.bitOffset / 8, v[key], p);
      }
      return;
    }
  }
}

function decodeShape(s: Shape, dv: DataView, off: number): unknown {
  switch (s.k) {
    case 'int':
      return fromBigInt(readInt(dv, off, s.size, s.signed, s.bigEndian));
    case 'bool':
      return readInt(dv, off, s.size, false, false) !== 0n;
    case 'enum': {
      const n = readInt(dv, off, s.size, s.signed, false);
      return s.values.find((e) => e.value === n)?.name ?? fromBigInt(n);
    }
    case 'float':
      return s.size === 4 ? dv.getFloat32(off, true) : dv.getFloat64(off, true);
    case 'ipv4':
      return [0, 1, 2, 3].map((i) => dv.getUint8(off + i)).join('.');
    case 'ipv6':
      return formatIPv6(new Uint8Array(dv.buffer, dv.byteOffset + off, 16));
    case 'string': {
      const bytes = new Uint8Array(dv.buffer, dv.byteOffset + off, s.size);
      const end = bytes.indexOf(0);
      return Buffer.from(bytes.subarray(0, end < 0 ? s.size : end)).toString('utf8');
    }
    case 'array':
      return Array.from({ length: s.n }, (_, i) => decodeShape(s.elem, dv, off + i * s.elemSize));
    case 'struct':
    case 'union': {
      const out: Record<string, unknown> = {};
      const fields = s.k === 'union' ? [s.fields[s.decodeAs]!] : s.fields.filter((f) => !f.encodeOnly);
      for (const f of fields) {
        if (f.bitSize > 0) {
          const sh = f.shape;
          const signed = sh.k === 'int' ? sh.signed : sh.k === 'enum' ? sh.signed : false;
          const view = new DataView(dv.buffer, dv.byteOffset + off, Math.ceil((f.bitOffset + f.bitSize) / 8));
          const n = readBits(view, f.bitOffset, f.bitSize, signed);
          out[f.name] = sh.k === 'bool' ? n !== 0n : sh.k === 'enum' ? (sh.values.find((e) => e.value === n)?.name ?? fromBigInt(n)) : fromBigInt(n);
        } else out[f.name] = decodeShape(f.shape, dv, off + f.bitOffset / 8);
      }
      return out;
    }
  }
}

/**
 * The codec of BTF type `typeId` (a map key or value, a ring buffer record).
 * @throws CodecError for a type that cannot be encoded (void, a function,
 *   a forward declaration, an integer of an odd size); BtfError for an unknown id.
 */
export function codecFor(btf: Btf, typeId: number): Codec {
  const typeName = btf.typeName(typeId);
  const shape = shapeOf(btf, typeId, '', '');
  const size = btf.sizeOf(typeId);
  return {
    size,
    typeName,
    encode(value: unknown, path = 'value'): Uint8Array {
      const out = new Uint8Array(size);
      const dv = new DataView(out.buffer);
      encodeShape(shape, dv, 0, value, path);
      return out;
    },
    decode(bytes: Uint8Array): unknown {
      if (bytes.length < size) throw new CodecError('', `${typeName} takes ${size} bytes, got ${bytes.length}`);
      return decodeShape(shape, new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0);
    },
  };
}

/**
 * A codec for a map without BTF types: a hex string of exactly `size`
 * bytes (two digits a byte, any case, no prefix) and back (lowercase).
 * @throws BtfError for a negative or fractional size.
 */
export function rawCodec(size: number): Codec {
  if (!Number.isInteger(size) || size < 0) throw new BtfError(`raw codec of ${size} bytes`);
  return {
    size,
    typeName: `bytes[${size}]`,
    encode(value: unknown, path = 'value'): Uint8Array {
      if (typeof value !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(value) || value.length !== 2 * size)
        throw new CodecError(path, `expected ${size} bytes as ${2 * size} hex digits, got ${JSON.stringify(value)}`);
      return new Uint8Array(Buffer.from(value, 'hex'));
    },
    decode(bytes: Uint8Array): unknown {
      if (bytes.length < size) throw new CodecError('', `bytes[${size}] takes ${size} bytes, got ${bytes.length}`);
      return Buffer.from(bytes.subarray(0, size)).toString('hex');
    },
  };
}
