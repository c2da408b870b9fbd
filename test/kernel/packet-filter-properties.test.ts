/**
 * Property test of the real packet filter program (bpf/packet_filter.c):
 * random rule sets, compiled and written into the maps as the reconciler
 * does, and random frames run through `filter_xdp` with BPF_PROG_TEST_RUN.
 * The verdict and the counter slot that moved must equal a plain first-match
 * walk over the rules (written here, independently of compile.ts and of
 * test/unit/filter-model-helpers.ts), on the packet as this file built it.
 * Rules and the default may be audited drops (audit mode): the packet
 * passes, and the matched slot's would-drop counter moves with it.
 *
 * Set PF_PROP_SEED to replay a run; the seed is logged.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { loadObject, removePinTree } from '../../src/bpf/index.js';
import { buildFrame, type FramePacket as Packet } from '../../src/common/frame.js';
import { compileRules, type CompileRule } from '../../src/kinds/packet-filter/compile.js';
import { FILTER_MAPS, FILTER_OBJECT, encodeRuleset } from '../../src/kinds/packet-filter/layout.js';
import { readFilterCounters, readFilterStats, writeFilterRules, type RulesetWrite } from '../../src/kinds/packet-filter/store.js';
import { kernelTest } from './harness.js';
import { portArbitrary, prefixArbitrary, prefixText, type Prefix } from './property-generators.js';

// ---------------------------------------------------------------- model

type Family = 4 | 6;
interface Range {
  start: number;
  end: number;
}
interface Rule {
  protocol?: 'tcp' | 'udp' | 'icmp';
  src?: Prefix[];
  dst?: Prefix[];
  sport?: Range[];
  dport?: Range[];
  action: 'pass' | 'drop';
  /** A drop in audit mode: passed, counted as would-drop. */
  audit?: boolean;
}
interface RuleSet {
  rules: Rule[];
  defaultAction: 'pass' | 'drop';
  defaultAudit: boolean;
}

/** What the filter sees: the fields rules look at; `ports` undefined without a readable TCP/UDP header. */
interface Parsed {
  family: Family;
  proto: number;
  src: number[];
  dst: number[];
  ports?: { sport: number; dport: number };
  /** The C's "no ports" statistic: a fragment tail (any protocol) or a cut TCP/UDP header. */
  noPorts: boolean;
}

function parsed(p: Packet): Parsed | undefined {
  if (p.arp) return undefined;
  const proto = p.proto;
  const fragmentTail = p.family === 4 ? p.v4frag === 'later' : p.ext.some((e) => e.type === 44 && e.fragOffset > 0);
  const l4 = proto === 6 || proto === 17;
  const truncated = l4 && p.truncate >= 0 && p.truncate < (proto === 6 ? 20 : 8);
  const ports = l4 && !fragmentTail && !truncated ? { sport: p.sport, dport: p.dport } : undefined;
  return { family: p.family, proto, src: p.src, dst: p.dst, ports, noPorts: fragmentTail || truncated };
}

function inPrefix(pf: Prefix, family: Family, addr: number[]): boolean {
  if (pf.family !== family) return false;
  for (let bit = 0; bit < pf.len; bit++) {
    const m = 0x80 >> bit % 8;
    if ((pf.addr[bit >> 3]! & m) !== (addr[bit >> 3]! & m)) return false;
  }
  return true;
}

const inRanges = (rs: Range[], port: number) => rs.some((r) => r.start <= port && port <= r.end);

function ruleMatches(r: Rule, p: Parsed): boolean {
  if (r.protocol === 'tcp' && p.proto !== 6) return false;
  if (r.protocol === 'udp' && p.proto !== 17) return false;
  if (r.protocol === 'icmp' && p.proto !== (p.family === 4 ? 1 : 58)) return false;
  if (r.src && !r.src.some((pf) => inPrefix(pf, p.family, p.src))) return false;
  if (r.dst && !r.dst.some((pf) => inPrefix(pf, p.family, p.dst))) return false;
  if ((r.sport || r.dport) && !p.ports) return false; // no readable TCP/UDP header: rules with ports never match
  if (r.sport && !inRanges(r.sport, p.ports!.sport)) return false;
  if (r.dport && !inRanges(r.dport, p.ports!.dport)) return false;
  return true;
}

/**
 * First match: slot i+1 for rule i, slot 0 for the default; undefined for non-IP frames (passed, uncounted).
 * An audited drop passes the packet and counts it as would-drop.
 */
function expected(set: RuleSet, pkt: Packet): { action: 'pass' | 'drop'; slot: number; wouldDrop: boolean } | undefined {
  const p = parsed(pkt);
  if (!p) return undefined;
  const i = set.rules.findIndex((r) => ruleMatches(r, p));
  const [action, audit] = i < 0 ? [set.defaultAction, set.defaultAudit] : [set.rules[i]!.action, set.rules[i]!.audit === true];
  const wouldDrop = action === 'drop' && audit;
  return { action: wouldDrop ? 'pass' : action, slot: i + 1, wouldDrop };
}

// ---------------------------------------------------------------- generators

const V4_POOL = [
  [10, 1, 2, 3],
  [10, 1, 200, 7],
  [192, 168, 5, 9],
  [10, 129, 0, 1],
];
const V6_POOL = [
  [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
  [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5],
  [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd],
  [0x20, 0x01, 0x0d, 0xb8, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
];
const PORT_POOL = [1, 22, 53, 80, 443, 1023, 1024, 8080, 65535];

const arbPrefix = prefixArbitrary(V4_POOL, V6_POOL);
const arbPort = portArbitrary(PORT_POOL);
const arbRange: fc.Arbitrary<Range> = fc.tuple(arbPort, arbPort).map(([a, b]) => ({ start: Math.min(a, b), end: Math.max(a, b) }));

const arbRule: fc.Arbitrary<Rule> = fc
  .record(
    {
      protocol: fc.constantFrom(undefined, 'tcp', 'udp', 'icmp'),
      src: fc.option(fc.array(arbPrefix, { minLength: 1, maxLength: 3 }), { nil: undefined, freq: 2 }),
      dst: fc.option(fc.array(arbPrefix, { minLength: 1, maxLength: 3 }), { nil: undefined, freq: 2 }),
      sport: fc.option(fc.array(arbRange, { minLength: 1, maxLength: 3 }), { nil: undefined, freq: 2 }),
      dport: fc.option(fc.array(arbRange, { minLength: 1, maxLength: 3 }), { nil: undefined, freq: 2 }),
      action: fc.constantFrom<'pass' | 'drop'>('pass', 'drop'),
      audit: fc.boolean(),
    },
    { requiredKeys: ['action', 'audit'] },
  )
  .map((r) => {
    const out: Rule = { action: r.action };
    if (r.action === 'drop' && r.audit) out.audit = true;
    if (r.protocol) out.protocol = r.protocol;
    if (r.src) out.src = r.src;
    if (r.dst) out.dst = r.dst;
    if (r.protocol === 'tcp' || r.protocol === 'udp') {
      if (r.sport) out.sport = r.sport;
      if (r.dport) out.dport = r.dport;
    }
    return out;
  });

/** An address biased to the pool: exact, one bit flipped, or random. */
function arbAddr(family: Family): fc.Arbitrary<number[]> {
  const pool = family === 4 ? V4_POOL : V6_POOL;
  const n = family === 4 ? 4 : 16;
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...pool) },
    { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...pool), fc.integer({ min: 0, max: n * 8 - 1 })).map(([a, bit]) => a.map((x, i) => (i === bit >> 3 ? x ^ (0x80 >> bit % 8) : x))) },
    { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: n, maxLength: n }) },
  );
}

const arbExt = fc.array(
  fc.oneof(
    fc.constantFrom(0, 43, 60, 51).map((type) => ({ type: type as 0 | 43 | 60 | 51, fragOffset: 0 })),
    fc.constantFrom(0, 0, 1, 8191).map((fragOffset) => ({ type: 44 as const, fragOffset })),
  ),
  { maxLength: 3 },
);

const arbPacket: fc.Arbitrary<Packet> = fc
  .record({
    arpDie: fc.integer({ min: 0, max: 19 }),
    vlans: fc.constantFrom(0, 0, 0, 1, 2),
    family: fc.constantFrom<Family>(4, 6),
    proto: fc.constantFrom('tcp', 'tcp', 'udp', 'udp', 'icmp', 'icmp-other-family', 'other'),
    src4: arbAddr(4),
    dst4: arbAddr(4),
    src6: arbAddr(6),
    dst6: arbAddr(6),
    sport: arbPort,
    dport: arbPort,
    ipOptions: fc.boolean(),
    v4frag: fc.constantFrom<Packet['v4frag']>('none', 'none', 'none', 'first', 'later'),
    ext: arbExt,
    truncDie: fc.integer({ min: 0, max: 9 }),
    truncate: fc.integer({ min: 0, max: 19 }),
  })
  .map((r) => {
    const v4 = r.family === 4;
    const proto = { tcp: 6, udp: 17, icmp: v4 ? 1 : 58, 'icmp-other-family': v4 ? 58 : 1, other: 47 }[r.proto];
    const l4len = proto === 6 ? 20 : proto === 17 ? 8 : 8;
    return {
      arp: r.arpDie === 0,
      vlans: r.vlans,
      family: r.family,
      proto,
      src: v4 ? r.src4 : r.src6,
      dst: v4 ? r.dst4 : r.dst6,
      sport: r.sport,
      dport: r.dport,
      ipOptions: v4 && r.ipOptions,
      v4frag: v4 ? r.v4frag : 'none',
      ext: v4 ? [] : r.ext,
      truncate: r.truncDie === 0 ? r.truncate % l4len : -1,
    };
  });

const arbRuleSet: fc.Arbitrary<RuleSet> = fc.record({
  rules: fc.array(arbRule, { minLength: 1, maxLength: 40 }),
  defaultAction: fc.constantFrom<'pass' | 'drop'>('pass', 'drop'),
  defaultAudit: fc.boolean(),
});

// ---------------------------------------------------------------- the kernel side

function toCompileRule(r: Rule, i: number): CompileRule {
  const c: CompileRule = { slot: i + 1, action: r.action, sample: 0 };
  if (r.audit) c.audit = true;
  if (r.protocol) c.protocol = r.protocol;
  if (r.src) c.srcPrefixes = r.src.map(prefixText);
  if (r.dst) c.dstPrefixes = r.dst.map(prefixText);
  if (r.sport) c.srcPorts = r.sport;
  if (r.dport) c.dstPorts = r.dport;
  return c;
}

const describe = (x: unknown) =>
  JSON.stringify(x, (_k, v: unknown) => (Array.isArray(v) && v.length > 0 && v.every((n) => typeof n === 'number') && (v.length === 4 || v.length === 16) ? `[${v.join(',')}]` : v));

/** Regression cases found by the property (kept explicit). */
const BASE: Packet = { arp: false, vlans: 0, family: 4, proto: 6, src: V4_POOL[0]!, dst: V4_POOL[1]!, sport: 22, dport: 80, ipOptions: false, v4frag: 'none', ext: [], truncate: -1 };
const REGRESSIONS: Array<{ name: string; set: RuleSet; packets: Packet[] }> = [
  {
    // A rule constraining all five fields has pattern 31: compile.ts set bit 31 of the
    // config's pattern mask with a signed shift, and encodeConfig threw RangeError.
    name: 'pattern 31 (protocol, both prefixes, both ports)',
    set: {
      defaultAction: 'pass',
      defaultAudit: false,
      rules: [{ action: 'drop', protocol: 'tcp', src: [{ family: 4, addr: [10, 1, 0, 0], len: 16 }], dst: [{ family: 4, addr: [10, 1, 200, 0], len: 24 }], sport: [{ start: 22, end: 22 }], dport: [{ start: 80, end: 443 }] }],
    },
    packets: [BASE, { ...BASE, dport: 444 }, { ...BASE, v4frag: 'later' }, { ...BASE, proto: 17 }],
  },
  {
    // Audit mode: an audited drop rule passes what it matches (would-drop), an enforced one still drops,
    // and an audited default drop passes the rest.
    name: 'audited and enforced drops side by side, audited default drop',
    set: {
      defaultAction: 'drop',
      defaultAudit: true,
      rules: [
        { action: 'drop', audit: true, protocol: 'tcp', dport: [{ start: 80, end: 80 }] },
        { action: 'drop', protocol: 'tcp', dport: [{ start: 81, end: 81 }] },
        { action: 'pass', protocol: 'udp' },
      ],
    },
    packets: [BASE, { ...BASE, dport: 81 }, { ...BASE, proto: 17 }, { ...BASE, dport: 82 }, { ...BASE, v4frag: 'later' }],
  },
];

kernelTest(
  'packet filter: the real program agrees with a first-match walk over random rules and packets',
  ({ pinDir }) => {
    const seed = process.env.PF_PROP_SEED ? Number(process.env.PF_PROP_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
    const numRuns = Number(process.env.PF_PROP_RUNS ?? 300);
    console.log(`packet-filter properties: seed ${seed} (PF_PROP_SEED=${seed} to replay), ${numRuns} rule sets`);
    const dir = join(pinDir, 'pf');
    mkdirSync(dir);
    using obj = loadObject(FILTER_OBJECT);
    for (const name of FILTER_MAPS) obj.map(name).pin(join(dir, `map_${name}`));
    const prog = obj.program('filter_xdp');
    let gen = 0;
    let slotsInUse = 0;
    let packetsRun = 0;
    const hits = { rule: 0, default: 0, notIp: 0, noPorts: 0, drop: 0, wouldDrop: 0 };

    const check = (set: RuleSet, packets: Packet[]) => {
      gen ^= 1;
      const n = set.rules.length;
      const compiled = compileRules(set.rules.map(toCompileRule), { action: set.defaultAction, audit: set.defaultAudit, sample: 0 });
      const write: RulesetWrite = {
        encoded: encodeRuleset(compiled),
        newSlots: Array.from({ length: n + 1 }, (_, slot) => ({ slot, policy: 'prop', rule: `r${slot}` })),
        staleSlots: Array.from({ length: Math.max(0, slotsInUse - n) }, (_, i) => n + 1 + i),
      };
      writeFilterRules(dir, gen, write);
      slotsInUse = n;
      const slots = Array.from({ length: n + 1 }, (_, i) => i);
      let before = readFilterCounters(dir, slots);
      let statsBefore = readFilterStats(dir);
      for (const pkt of packets) {
        const data = buildFrame(pkt);
        const { retval } = prog.testRun(data);
        packetsRun++;
        const after = readFilterCounters(dir, slots);
        const statsAfter = readFilterStats(dir);
        const moved = slots.filter((s) => after.get(s)!.packets !== before.get(s)!.packets);
        const wouldDrop = slots.filter((s) => after.get(s)!.wouldDropPackets !== before.get(s)!.wouldDropPackets);
        const want = expected(set, pkt);
        const p = parsed(pkt);
        const got = { action: retval === 1 ? 'drop' : retval === 2 ? 'pass' : `retval ${retval}`, slots: moved, wouldDrop, notIp: statsAfter[0]! - statsBefore[0]!, noPorts: statsAfter[2]! - statsBefore[2]! };
        const exp = want
          ? { action: want.action, slots: [want.slot], wouldDrop: want.wouldDrop ? [want.slot] : [], notIp: 0n, noPorts: p!.noPorts ? 1n : 0n }
          : { action: 'pass', slots: [], wouldDrop: [], notIp: 1n, noPorts: 0n };
        assert.deepEqual(
          got,
          exp,
          `mismatch\n  rules (default ${set.defaultAction}): ${describe(set.rules)}\n  packet: ${describe(pkt)}\n  parsed: ${describe(p)}\n  frame: ${data.toString('hex')}`,
        );
        hits[want ? (want.slot ? 'rule' : 'default') : 'notIp']++;
        if (p?.noPorts) hits.noPorts++;
        if (want?.action === 'drop') hits.drop++;
        if (want?.wouldDrop) hits.wouldDrop++;
        if (want) {
          const bytes = after.get(want.slot)!.bytes - before.get(want.slot)!.bytes;
          assert.equal(bytes, BigInt(data.length), 'bytes counted: the frame length');
          const wouldDropBytes = after.get(want.slot)!.wouldDropBytes - before.get(want.slot)!.wouldDropBytes;
          assert.equal(wouldDropBytes, want.wouldDrop ? BigInt(data.length) : 0n, 'would-drop bytes counted: the frame length of an audited drop');
        }
        before = after;
        statsBefore = statsAfter;
      }
    };

    try {
      for (const r of REGRESSIONS) {
        console.log(`packet-filter properties: regression case: ${r.name}`);
        check(r.set, r.packets);
      }
      const t0 = performance.now();
      try {
        fc.assert(
          fc.property(arbRuleSet, fc.array(arbPacket, { minLength: 20, maxLength: 20 }), (set, packets) => check(set, packets)),
          { seed, numRuns },
        );
      } catch (err) {
        // fast-check v4 keeps the failed assertion (rule set, packet, frame) as the cause.
        const cause = (err as Error).cause;
        console.log(`packet-filter properties: seed ${seed} failed; last assertion: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}`);
        throw err;
      }
      console.log(`packet-filter properties: ${numRuns} rule sets, ${packetsRun} packets in ${((performance.now() - t0) / 1000).toFixed(1)} s; ${JSON.stringify(hits)}`);
    } finally {
      removePinTree(dir);
    }
  },
  300_000,
);
