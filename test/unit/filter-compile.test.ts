/**
 * Property tests of the packet filter's rule compilation: for random rule
 * lists and random packets, a model of the BPF lookups over the compiled
 * tables decides exactly as a plain first-match walk over the rules.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeRuleset, Match, NO_RULE } from '../../src/kinds/packet-filter/layout.js';
import { classify, firstMatch, type TestPacket } from './filter-model-helpers.js';
import { compileRules, CompileError, type CompileRule } from '../../src/kinds/packet-filter/compile.js';
import { parseIPv6 } from '../../src/policy/net/ip.js';

const V4 = ['0.0.0.0/0', '10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '10.1.2.3/32', '192.168.0.0/16', '203.0.113.0/24'];
const V6 = ['::/0', '2001:db8::/32', '2001:db8:1::/48', '2001:db8:1::5/128'];
const V4_ADDRS = ['10.1.2.3', '10.1.2.4', '10.1.9.9', '10.9.9.9', '192.168.1.1', '203.0.113.7', '8.8.8.8'];
const V6_ADDRS = ['2001:db8:1::5', '2001:db8:1::6', '2001:db8:2::1', '2001:db9::1'];

const arbRange = fc
  .tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 10 }))
  .map(([start, len]) => ({ start, end: Math.min(65535, start + len) }));
const arbRule: fc.Arbitrary<Omit<CompileRule, 'slot'>> = fc
  .record(
    {
      action: fc.constantFrom('pass' as const, 'drop' as const),
      protocol: fc.constantFrom('tcp' as const, 'udp' as const, 'icmp' as const),
      srcPrefixes: fc.uniqueArray(fc.constantFrom(...V4, ...V6), { minLength: 1, maxLength: 3 }),
      dstPrefixes: fc.uniqueArray(fc.constantFrom(...V4, ...V6), { minLength: 1, maxLength: 3 }),
      srcPorts: fc.array(arbRange, { minLength: 1, maxLength: 2 }),
      dstPorts: fc.array(arbRange, { minLength: 1, maxLength: 3 }),
    },
    { requiredKeys: ['action'] },
  )
  .map((r) => {
    // Ports only with tcp or udp, as validation demands.
    if (r.protocol !== 'tcp' && r.protocol !== 'udp') {
      const { srcPorts: _s, dstPorts: _d, ...rest } = r;
      return { ...rest, sample: 0 };
    }
    return { ...r, sample: 0 };
  });

function bigAddr(text: string): { family: 4 | 6; value: bigint } {
  if (text.includes(':')) return { family: 6, value: parseIPv6(text)! };
  return { family: 4, value: BigInt(text.split('.').reduce((n, o) => n * 256 + Number(o), 0)) };
}

const arbPacket: fc.Arbitrary<TestPacket> = fc
  .record({
    v6: fc.boolean(),
    src: fc.nat(),
    dst: fc.nat(),
    proto: fc.constantFrom(6, 17, 1, 58, 47),
    sport: fc.integer({ min: 0, max: 60 }),
    dport: fc.integer({ min: 0, max: 60 }),
    noPorts: fc.boolean(),
  })
  .map(({ v6, src, dst, proto, sport, dport, noPorts }) => {
    const pool = v6 ? V6_ADDRS : V4_ADDRS;
    return {
      family: v6 ? 6 : 4,
      proto,
      src: bigAddr(pool[src % pool.length]!).value,
      dst: bigAddr(pool[dst % pool.length]!).value,
      sport,
      dport,
      noPorts,
    };
  });

test('compiled tables decide like a first-match walk over the rules', () => {
  fc.assert(
    fc.property(fc.array(arbRule, { maxLength: 12 }), fc.constantFrom('pass' as const, 'drop' as const), fc.array(arbPacket, { minLength: 1, maxLength: 30 }), (raw, def, packets) => {
      const rules: CompileRule[] = raw.map((r, i) => ({ ...r, slot: 100 + i }));
      const compiled = compileRules(rules, { action: def, sample: 0 });
      for (const p of packets) {
        const want = firstMatch(rules, p);
        const got = classify(compiled, p);
        assert.deepEqual(got, want === undefined ? { slot: 0, action: def } : { slot: rules[want]!.slot, action: rules[want]!.action }, JSON.stringify({ rules, p }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v)));
      }
    }),
    { numRuns: 400 },
  );
});

test('the number of patterns, not of rules, bounds the lookups per packet; one-field rules need no decision lookup', () => {
  // 8,000 source blocks and 8,000 destination ports (a filter holds 16,383 rules): two patterns, each of one field (plus protocol).
  const rules: CompileRule[] = [];
  for (let i = 0; i < 8000; i++) rules.push({ slot: i + 1, action: 'drop', sample: 0, srcPrefixes: [`10.${(i >> 8) & 255}.${i & 255}.0/24`] });
  for (let i = 0; i < 8000; i++) rules.push({ slot: 8001 + i, action: 'drop', sample: 0, protocol: 'tcp', dstPorts: [{ start: i + 1, end: i + 1 }] });
  const compiled = compileRules(rules, { action: 'pass', sample: 0 });
  const patterns = [...Array(32).keys()].filter((p) => compiled.config.patterns & (1 << p));
  assert.deepEqual(patterns, [Match.SRC, Match.PROTO | Match.DPORT]);
  assert.equal(compiled.decisions.length, 0, 'one-field rules are folded into the class values: no decision entries');
  assert.equal(encodeRuleset(compiled).config.readUInt32LE(16), 0, 'n_patterns: no decision lookup per packet');
  assert.equal(compiled.addr.length, 8000);
  // Each source block names its rule for every protocol; each port its rule for TCP only.
  assert.deepEqual(
    compiled.addr.slice(0, 2).map((e) => e.first),
    [
      [0, 0, 0, 0],
      [1, 1, 1, 1],
    ],
  );
  const port1 = compiled.port.find((e) => e.dim === 1 && e.port === 1 && e.bits === 16)!;
  assert.deepEqual(port1.first, [8000, NO_RULE]);
  assert.equal(compiled.rules.length, 16000);
  assert.deepEqual(compiled.rules[8000], { order: 8000, slot: 8001, sample: 0, action: 1, audit: false });
  assert.throws(
    () => compileRules([...rules, ...rules.slice(0, 400)], { action: 'pass', sample: 0 }),
    (e: unknown) => e instanceof CompileError && /16400 rules, more than the 16384/.test(e.message),
  );
});

test('multi-field rules keep one decision per class combination (no cross product between the patterns)', () => {
  const rules: CompileRule[] = [];
  for (let i = 0; i < 1000; i++) rules.push({ slot: i + 1, action: 'drop', sample: 0, srcPrefixes: [`10.${(i >> 8) & 255}.${i & 255}.0/24`], dstPorts: [{ start: 80, end: 80 }] });
  for (let i = 0; i < 1000; i++) rules.push({ slot: 1001 + i, action: 'drop', sample: 0, protocol: 'tcp', dstPrefixes: ['192.0.2.0/24'], dstPorts: [{ start: i + 1, end: i + 1 }] });
  const compiled = compileRules(rules, { action: 'pass', sample: 0 });
  assert.equal(compiled.decisions.length, 2000, 'one decision per rule');
  const config = encodeRuleset(compiled).config;
  assert.deepEqual([config.readUInt32LE(16), config.readUInt8(20), config.readUInt8(21)], [2, Match.SRC | Match.DPORT, Match.PROTO | Match.DST | Match.DPORT]);
});

test('nested prefixes need entries only where the rules change', () => {
  const compiled = compileRules(
    [
      { slot: 1, action: 'drop', sample: 0, srcPrefixes: ['10.0.0.0/8', '10.1.0.0/16'] },
      { slot: 2, action: 'pass', sample: 0, srcPrefixes: ['10.1.2.0/24'] },
    ],
    { action: 'pass', sample: 0 },
  );
  // 10.1.0.0/16 adds nothing to 10.0.0.0/8 (same rule): no entry of its own.
  assert.deepEqual(
    compiled.addr.map((e) => `${e.length}:${e.cls}`),
    ['8:1', '24:2'],
  );
  // One-field rules: the class values name the first rule (class 2, 10.1.2.0/24, is in both: rule 0 comes first).
  assert.deepEqual(
    compiled.addr.map((e) => `${e.cls}->${e.first.join(',')}`),
    ['1->0,0,0,0', '2->0,0,0,0'],
  );
  assert.deepEqual(compiled.decisions, []);
});

test('a rule set that multiplies beyond the decision table is refused with a reason', () => {
  const many = Array.from({ length: 1100 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
  const ports = Array.from({ length: 1000 }, (_, i) => ({ start: 2 * i + 1, end: 2 * i + 1 }));
  // Each prefix and each port is its own class, because single-prefix and single-port rules split them.
  const splitters: CompileRule[] = [
    ...many.map((p, i) => ({ slot: i + 2, action: 'pass' as const, sample: 0, srcPrefixes: [p] })),
    ...ports.map((r, i) => ({ slot: 2000 + i, action: 'pass' as const, sample: 0, protocol: 'tcp' as const, dstPorts: [r] })),
  ];
  assert.throws(
    () => compileRules([{ slot: 1, action: 'drop', sample: 0, protocol: 'tcp', srcPrefixes: many, dstPorts: ports }, ...splitters], { action: 'pass', sample: 0 }),
    (e: unknown) => e instanceof CompileError && /more than 1048576 decision entries/.test(e.message),
  );
});

test('a rule constraining all five fields (pattern 31, the top bit of the mask) compiles and encodes (found by the real-program property test)', () => {
  const rule: CompileRule = { slot: 1, action: 'drop', sample: 0, protocol: 'tcp', srcPrefixes: ['10.0.0.0/8'], dstPrefixes: ['192.0.2.0/24'], srcPorts: [{ start: 1000, end: 1000 }], dstPorts: [{ start: 22, end: 22 }] };
  const compiled = compileRules([rule], { action: 'pass', sample: 0 });
  assert.equal(compiled.config.patterns, 2 ** 31, 'bit 31 set, as an unsigned mask');
  assert.doesNotThrow(() => encodeRuleset(compiled));
});
