/**
 * Generators shared by the property tests of the real programs
 * (packet-filter-properties, dispatcher-properties): address prefixes drawn
 * around a few addresses (so random prefixes nest and overlap), and ports
 * around a few boundaries.
 */
import fc from 'fast-check';

/** An IPv4 or IPv6 prefix as bytes, host bits zero. */
export interface Prefix {
  family: 4 | 6;
  addr: number[]; // 4 or 16 bytes, host bits zero
  len: number;
}

/** `addr` with the bits beyond `len` cleared. */
export function masked(addr: number[], len: number): number[] {
  return addr.map((byte, i) => (i * 8 >= len ? 0 : i * 8 + 8 <= len ? byte : byte & (0xff << (8 - (len - i * 8)))));
}

/** A prefix as a policy writes it ("10.1.0.0/16", "2001:db8:0:0:0:0:0:0/32"). */
export function prefixText(pf: Prefix): string {
  if (pf.family === 4) return `${pf.addr.join('.')}/${pf.len}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((pf.addr[i]! << 8) | pf.addr[i + 1]!).toString(16));
  return `${groups.join(':')}/${pf.len}`;
}

/** Prefixes of every length of the pools' addresses. */
export function prefixArbitrary(v4Pool: number[][], v6Pool: number[][]): fc.Arbitrary<Prefix> {
  return fc.oneof(
    fc.tuple(fc.constantFrom(...v4Pool), fc.integer({ min: 0, max: 32 })).map(([a, len]) => ({ family: 4 as const, addr: masked(a, len), len })),
    fc.tuple(fc.constantFrom(...v6Pool), fc.integer({ min: 0, max: 128 })).map(([a, len]) => ({ family: 6 as const, addr: masked(a, len), len })),
  );
}

/** Ports of the pool, next to them, or anywhere. */
export function portArbitrary(pool: number[]): fc.Arbitrary<number> {
  return fc.oneof(
    fc.constantFrom(...pool),
    fc.tuple(fc.constantFrom(...pool), fc.constantFrom(-1, 1)).map(([p, d]) => Math.min(65535, Math.max(1, p + d))),
    fc.integer({ min: 1, max: 65535 }),
  );
}
