/**
 * From a policy's ports and prefixes to dispatcher entries (pure).
 *
 * A policy's bindings are its port ranges on its prefixes. When a policy
 * covers every address of both families, each range becomes a handful of
 * port-block entries; otherwise every port of a range gets one entry per
 * prefix.
 */
import { BINDING_V6_ONLY, encodeBindingKey, encodePortBlockKey, isV6OnlyPrefix } from './layout.js';
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
