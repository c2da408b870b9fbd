/**
 * From a policy's ports and prefixes to dispatcher entries (pure).
 *
 * A policy's bindings are its port ranges on its prefixes. When a policy
 * covers every address of both families, each range becomes a handful of
 * port-block entries; otherwise every port of a range gets one entry per
 * prefix.
 */
import { BINDING_KEY, BINDING_KEY_SIZE, BINDING_V6_ONLY, BINDING_VALUE_SIZE, encodeBindingKey, encodePortBlockKey, isV6OnlyPrefix } from './layout.js';
import type { PackedEntries } from '../../common/batch-entries.js';
import { portRangeBlocks } from '../../policy/net/ports.js';
import type { DesiredSteering, Range, RecordedBinding } from './model.js';

/** Prefix text of a binding that covers every address of both families. */
export const EVERY_ADDRESS = '*';

/** The (range, prefix) pairs a policy binds, before ids are given. */
export function bindingShapes(p: Pick<DesiredSteering, 'ports' | 'prefixes'>): Array<{ start: number; end: number; prefix: string }> {
  const all = p.prefixes.includes('0.0.0.0/0') && p.prefixes.includes('::/0');
  const prefixes = all ? [EVERY_ADDRESS] : p.prefixes;
  return p.ports.flatMap((r: Range) => prefixes.map((prefix) => ({ start: r.start, end: r.end, prefix })));
}

/** How many LPM entries {@link bindingEntries} makes for a binding (without making them). */
export function bindingEntryCount(b: { start: number; end: number; prefix: string }): number {
  return b.prefix === EVERY_ADDRESS ? portRangeBlocks(b.start, b.end).length : b.end - b.start + 1;
}

/**
 * LPM entries of one binding, keys as latin1 strings (one char per key byte).
 * `bindingId` is the value's second word: the binding's counter index, with
 * BINDING_V6_ONLY for an IPv6 prefix (not IPv4-mapped), which the
 * dispatcher never applies to an IPv4 connection.
 */
export function bindingEntries(
  protocol: 'tcp' | 'udp',
  b: RecordedBinding,
  destId: number,
): Array<{ key: string; destId: number; bindingId: number }> {
  const out: Array<{ key: string; destId: number; bindingId: number }> = [];
  if (b.prefix === EVERY_ADDRESS) {
    for (const block of portRangeBlocks(b.start, b.end))
      out.push({ key: encodePortBlockKey({ protocol, port: block.port, bits: block.bits }).toString('latin1'), destId, bindingId: b.id });
    return out;
  }
  const [address, len] = b.prefix.split('/');
  const prefixLength = Number(len);
  const word = (isV6OnlyPrefix(address!, prefixLength) ? b.id | BINDING_V6_ONLY : b.id) >>> 0;
  // Encode once, then patch the port bytes (offset 5, big-endian): 65,535 ports stay cheap.
  const key = encodeBindingKey({ protocol, address: address!, prefixLength, port: b.start });
  for (let port = b.start; port <= b.end; port++) {
    key.writeUInt16BE(port, 5);
    out.push({ key: key.toString('latin1'), destId, bindingId: word });
  }
  return out;
}

/**
 * Binding entries packed as the batch calls take them: keys
 * (BINDING_KEY_SIZE bytes each) and values (BINDING_VALUE_SIZE bytes: the
 * destination, then the binding id word) back to back. A plan's upserts
 * carry these, so that writing a million entries builds no string or object
 * per entry. Iterating yields each entry as {@link bindingEntries} would
 * (for tests and fakes; it builds a string per entry).
 */
export class PackedBindings implements PackedEntries {
  constructor(
    readonly keys: Buffer,
    readonly values: Buffer,
    readonly count: number,
  ) {}

  /** How many entries (as for the arrays of entries this replaces). */
  get length(): number {
    return this.count;
  }

  /** Key `i` as a latin1 string (one char per key byte), as observed entries carry it. */
  keyAt(i: number): string {
    return this.keys.toString('latin1', i * BINDING_KEY_SIZE, (i + 1) * BINDING_KEY_SIZE);
  }

  /** Whether key `i` has the bytes of `key` (a latin1 string), without building a string. */
  keyEquals(i: number, key: string): boolean {
    if (key.length !== BINDING_KEY_SIZE) return false;
    const k = this.keys;
    const o = i * BINDING_KEY_SIZE;
    for (let j = 0; j < BINDING_KEY_SIZE; j++) if (k[o + j] !== key.charCodeAt(j)) return false;
    return true;
  }

  destIdAt(i: number): number {
    return this.values.readUInt32LE(i * BINDING_VALUE_SIZE);
  }

  bindingIdAt(i: number): number {
    return this.values.readUInt32LE(i * BINDING_VALUE_SIZE + 4);
  }

  /** The entries at `indices` (ascending or not), copied into new buffers. */
  pick(indices: readonly number[]): PackedBindings {
    const n = indices.length;
    const keys = Buffer.alloc(n * BINDING_KEY_SIZE);
    const values = Buffer.alloc(n * BINDING_VALUE_SIZE);
    for (let j = 0; j < n; j++) {
      const i = indices[j]!;
      this.keys.copy(keys, j * BINDING_KEY_SIZE, i * BINDING_KEY_SIZE, (i + 1) * BINDING_KEY_SIZE);
      this.values.copy(values, j * BINDING_VALUE_SIZE, i * BINDING_VALUE_SIZE, (i + 1) * BINDING_VALUE_SIZE);
    }
    return new PackedBindings(keys, values, n);
  }

  *[Symbol.iterator](): Generator<{ key: string; destId: number; bindingId: number }> {
    for (let i = 0; i < this.count; i++) yield { key: this.keyAt(i), destId: this.destIdAt(i), bindingId: this.bindingIdAt(i) };
  }

  /** A plan printed as JSON says how many entries, not every byte. */
  toJSON(): { count: number } {
    return { count: this.count };
  }
}

const PORT_OFFSET = BINDING_KEY.fields.port.offset;

/** Repeats the `unit` bytes at `buf[start..start+unit)` `n` times in all (doubling copies: log2(n) calls). */
function repeatUnit(buf: Buffer, start: number, unit: number, n: number): void {
  let have = 1;
  while (have < n) {
    const copy = Math.min(have, n - have);
    buf.copyWithin(start + have * unit, start, start + copy * unit);
    have += copy;
  }
}

/**
 * The LPM entries of `bindings` (all of one destination), packed: the same
 * entries in the same order as {@link bindingEntries} of each binding in
 * turn, written straight into the batch buffers. Each /prefix binding's key
 * is encoded once and repeated; only the port bytes differ per entry.
 */
export function packBindingEntries(protocol: 'tcp' | 'udp', bindings: readonly RecordedBinding[], destId: number): PackedBindings {
  let count = 0;
  for (const b of bindings) count += bindingEntryCount(b);
  // Every byte is written below (whole keys and values are copied in), so the buffers need no zeroing.
  const keys = Buffer.allocUnsafe(count * BINDING_KEY_SIZE);
  const values = Buffer.allocUnsafe(count * BINDING_VALUE_SIZE);
  let i = 0;
  const putValue = (at: number, word: number) => {
    values.writeUInt32LE(destId, at * BINDING_VALUE_SIZE);
    values.writeUInt32LE(word >>> 0, at * BINDING_VALUE_SIZE + 4);
  };
  for (const b of bindings) {
    if (b.prefix === EVERY_ADDRESS) {
      for (const block of portRangeBlocks(b.start, b.end)) {
        encodePortBlockKey({ protocol, port: block.port, bits: block.bits }).copy(keys, i * BINDING_KEY_SIZE);
        putValue(i++, b.id);
      }
      continue;
    }
    const [address, len] = b.prefix.split('/');
    const prefixLength = Number(len);
    const word = isV6OnlyPrefix(address!, prefixLength) ? b.id | BINDING_V6_ONLY : b.id;
    const n = b.end - b.start + 1;
    encodeBindingKey({ protocol, address: address!, prefixLength, port: b.start }).copy(keys, i * BINDING_KEY_SIZE);
    repeatUnit(keys, i * BINDING_KEY_SIZE, BINDING_KEY_SIZE, n);
    putValue(i, word);
    repeatUnit(values, i * BINDING_VALUE_SIZE, BINDING_VALUE_SIZE, n);
    // The port (big-endian) is all that differs.
    for (let j = 0, o = i * BINDING_KEY_SIZE + PORT_OFFSET; j < n; j++, o += BINDING_KEY_SIZE) {
      const port = b.start + j;
      keys[o] = port >> 8;
      keys[o + 1] = port & 0xff;
    }
    i += n;
  }
  if (i !== count) throw new Error(`packed ${i} binding entries, counted ${count}`);
  return new PackedBindings(keys, values, count);
}

/**
 * Hands out one id at a time, each the lowest integer >= `from` not in
 * `used` (what `allocate(used, 1, from, max)` returns), and adds it to
 * `used`. Every id from `from` up to the last one handed out is then in
 * `used`, so the next search starts after it: n ids cost O(n + gaps), not
 * O(n²) (a thousand new policies made half a million set lookups). Only
 * valid while nothing is removed from `used`.
 * @throws RangeError when no id <= `max` is left.
 */
export function idAllocator(used: Set<number>, from: number, max: number): () => number {
  let next = from;
  return () => {
    const id = allocate(used, 1, next, max)[0]!;
    next = id + 1;
    return id;
  };
}

/** Lowest integers >= `from` not in `used`, `count` of them; adds them to `used`. */
export function allocate(used: Set<number>, count: number, from: number, max: number): number[] {
  const out: number[] = [];
  for (let id = from; out.length < count; id++) {
    if (id > max) throw new RangeError(`no free id left below ${max + 1}`);
    if (!used.has(id)) {
      used.add(id);
      out.push(id);
    }
  }
  return out;
}
