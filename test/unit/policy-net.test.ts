/**
 * Addresses, prefixes and port ranges: examples and fast-check properties.
 */
import assert from 'node:assert/strict';
import { isIPv4, isIPv6 } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  aggregatePrefixes,
  formatPrefix,
  intersectPrefixes,
  parseCidr,
  prefixContains,
  prefixMask,
  type IpPrefix,
} from '../../src/policy/net/cidr.js';
import { formatIPv6, parseIPv4, parseIPv6 } from '../../src/policy/net/ip.js';
import { intersectPortRanges, mergePortRanges, parsePortRange, type PortRange } from '../../src/policy/net/ports.js';

test('IPv4 parsing is strict', () => {
  assert.equal(parseIPv4('192.0.2.1'), 0xc0000201);
  for (const bad of ['1.2.3', '1.2.3.4.5', '256.0.0.0', '01.2.3.4', '1.2.3.-4', ' 1.2.3.4', '1.2.3.4 ', '', '1..3.4']) {
    assert.equal(parseIPv4(bad), undefined, bad);
  }
});

test('IPv6 parsing and RFC 5952 formatting', () => {
  const cases: [string, string][] = [
    ['::', '::'],
    ['::1', '::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0001:0001:0001:0001:0001', '2001:db8:0:1:1:1:1:1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['::ffff:c000:0201', '::ffff:192.0.2.1'],
    ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
    ['1::', '1::'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
  ];
  for (const [input, canonical] of cases) {
    const value = parseIPv6(input);
    assert.notEqual(value, undefined, input);
    assert.equal(formatIPv6(value as bigint), canonical, input);
  }
  for (const bad of ['', ':', ':::', '1:::2', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'g::', '::1.2.3', '1.2.3.4', 'fe80::1%eth0', '::1.2.3.4:5']) {
    assert.equal(parseIPv6(bad), undefined, bad);
  }
});

const ipv6Value = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });

test('property: formatted IPv6 addresses parse back to the same value and Node agrees they are IPv6', () => {
  fc.assert(
    fc.property(ipv6Value, (value) => {
      const text = formatIPv6(value);
      assert.ok(isIPv6(text), text);
      assert.equal(parseIPv6(text), value);
    }),
  );
});

test('property: our IPv4/IPv6 parsers accept what Node accepts (no zones, no leading zeros)', () => {
  const v4 = fc.tuple(fc.nat(300), fc.nat(300), fc.nat(300), fc.nat(300)).map((o) => o.join('.'));
  const v6 = fc.oneof(fc.ipV6(), fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.'), maxLength: 45 }));
  fc.assert(fc.property(v4, (text) => assert.equal(parseIPv4(text) !== undefined, isIPv4(text), text)));
  fc.assert(fc.property(v6, (text) => assert.equal(parseIPv6(text) !== undefined, isIPv6(text), text)));
});

const prefixArb: fc.Arbitrary<IpPrefix> = fc.oneof(
  fc.tuple(fc.nat(32), fc.bigInt({ min: 0n, max: (1n << 32n) - 1n })).map(([length, address]) => ({
    family: 4 as const,
    length,
    address: address & prefixMask(4, length),
  })),
  fc.tuple(fc.nat(128), ipv6Value).map(([length, address]) => ({ family: 6 as const, length, address: address & prefixMask(6, length) })),
);

/** Small prefixes in a narrow space, so that containment and siblings are frequent. */
const clusteredPrefixArb: fc.Arbitrary<IpPrefix> = fc
  .tuple(fc.integer({ min: 24, max: 32 }), fc.nat(1023))
  .map(([length, low]) => ({ family: 4 as const, length, address: (0x0a000000n + BigInt(low)) & prefixMask(4, length) }));

test('property: CIDR text round-trips through parse and format', () => {
  fc.assert(
    fc.property(prefixArb, (prefix) => {
      const parsed = parseCidr(formatPrefix(prefix));
      assert.ok(parsed.ok);
      assert.deepEqual(parsed.prefix, prefix);
      assert.equal(parsed.hostBitsSet, false);
    }),
  );
});

test('property: aggregation covers exactly the same addresses with a minimal sorted list', () => {
  const contains = (list: readonly IpPrefix[], family: 4 | 6, address: bigint): boolean =>
    list.some((p) => prefixContains(p, { family, address, length: family === 4 ? 32 : 128 }));
  fc.assert(
    fc.property(fc.array(fc.oneof(clusteredPrefixArb, prefixArb), { maxLength: 12 }), fc.nat(2047), (prefixes, probe) => {
      const aggregated = aggregatePrefixes(prefixes);
      const address = 0x0a000000n + BigInt(probe);
      assert.equal(contains(aggregated, 4, address), contains(prefixes, 4, address));
      for (const p of prefixes) assert.ok(aggregated.some((a) => prefixContains(a, p)));
      for (const [i, a] of aggregated.entries()) {
        for (const [j, b] of aggregated.entries()) if (i !== j) assert.ok(!prefixContains(a, b), 'redundant prefix');
      }
      assert.deepEqual(aggregatePrefixes(aggregated), aggregated, 'not idempotent');
    }),
  );
});

test('property: prefix intersection holds exactly the addresses in both lists', () => {
  fc.assert(
    fc.property(fc.array(clusteredPrefixArb, { maxLength: 5 }), fc.array(clusteredPrefixArb, { maxLength: 5 }), fc.nat(2047), (a, b, probe) => {
      const host = { family: 4 as const, address: 0x0a000000n + BigInt(probe), length: 32 };
      const inBoth = a.some((p) => prefixContains(p, host)) && b.some((p) => prefixContains(p, host));
      assert.equal(intersectPrefixes(a, b).some((p) => prefixContains(p, host)), inBoth);
    }),
  );
});

test('port range parsing', () => {
  assert.deepEqual(parsePortRange('9000-9100'), { ok: true, range: { start: 9000, end: 9100 } });
  assert.deepEqual(parsePortRange('80-80'), { ok: true, range: { start: 80, end: 80 } });
  assert.deepEqual(parsePortRange('9000-8000'), { ok: false, reason: 'start > end' });
  assert.deepEqual(parsePortRange('0-10'), { ok: false, reason: 'start port 0 is out of range 1..65535' });
  assert.deepEqual(parsePortRange('8081'), { ok: false, reason: 'write a single port as a number, without quotes: 8081' });
  assert.equal(parsePortRange('1 - 2').ok, false);
});

const rangeArb: fc.Arbitrary<PortRange> = fc
  .tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }))
  .map(([a, b]) => ({ start: Math.min(a, b), end: Math.max(a, b) }));
const smallRangeArb: fc.Arbitrary<PortRange> = fc
  .tuple(fc.integer({ min: 1, max: 200 }), fc.nat(20))
  .map(([start, length]) => ({ start, end: start + length }));

test('property: merged port ranges are sorted, disjoint, non-adjacent and cover the same ports', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(smallRangeArb, rangeArb), { maxLength: 20 }), fc.integer({ min: 1, max: 65535 }), (ranges, port) => {
      const merged = mergePortRanges(ranges);
      for (let i = 1; i < merged.length; i++) {
        assert.ok((merged[i] as PortRange).start > (merged[i - 1] as PortRange).end + 1, 'not sorted/disjoint/non-adjacent');
      }
      for (const r of merged) assert.ok(r.start <= r.end);
      const inside = (list: readonly PortRange[], p: number) => list.some((r) => r.start <= p && p <= r.end);
      assert.equal(inside(merged, port), inside(ranges, port));
      for (const r of ranges) assert.ok(inside(merged, r.start) && inside(merged, r.end));
      assert.deepEqual(mergePortRanges(merged), merged, 'not idempotent');
      assert.deepEqual(mergePortRanges([...ranges].reverse()), merged, 'depends on order');
    }),
  );
});

test('property: port range intersection holds exactly the ports in both lists', () => {
  fc.assert(
    fc.property(fc.array(smallRangeArb, { maxLength: 6 }), fc.array(smallRangeArb, { maxLength: 6 }), fc.integer({ min: 1, max: 240 }), (a, b, port) => {
      const inside = (list: readonly PortRange[]) => list.some((r) => r.start <= port && port <= r.end);
      const common = intersectPortRanges(mergePortRanges(a), mergePortRanges(b));
      assert.equal(inside(common), inside(a) && inside(b));
    }),
  );
});
