/**
 * The connect guard's rule compilation (src/kinds/connect-policy/compile.ts):
 * for random policies and random connects, a model of the BPF lookups over
 * the compiled tables decides exactly as a plain walk over each policy's
 * rules (first match, else the default; a deny of any policy wins, audit
 * only reports); and the byte layout of keys, decisions, config and events
 * matches bpf/connect_policy.h.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { compileGuard, decideCompiled, GuardCompileError, type GuardPolicy, type GuardRule } from '../../src/kinds/connect-policy/compile.js';
import {
  ActionCode,
  ADDR_KEY_SIZE,
  CONFIG_SIZE,
  DECISION_KEY_SIZE,
  DECISION_VALUE_SIZE,
  decodeGuardEvent,
  encodeAddrKey,
  encodeConfig,
  encodeDecision,
  encodeDecisionKey,
  encodePortKey,
  EVENT_HOOKS,
  EVENT_SIZE,
  Match,
  MAX_POLICIES,
  MAX_SCAN,
  NAME_LEN,
  PATTERN_END,
  PORT_KEY_SIZE,
  ProtoClass,
  RECORD_LEN,
  Verdict,
} from '../../src/kinds/connect-policy/layout.js';
import { parseCidr } from '../../src/policy/net/cidr.js';
import type { PortRange } from '../../src/policy/net/ports.js';
import { REPO_ROOT } from './policy-test-helpers.js';

type Protocol = 'tcp' | 'udp' | 'other';
interface Connect {
  family: 4 | 6;
  address: bigint;
  port: number;
  protocol: Protocol;
}
type Verdicts = Array<{ policy: number; slot: number; verdict: 'allow' | 'deny' | 'would-deny' }>;

// Nested prefixes of both families, and addresses inside, on the edge of and outside them.
const V4 = ['0.0.0.0/0', '10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '10.1.2.3/32', '10.1.2.128/25', '192.0.2.0/24', '198.51.100.7/32'];
const V6 = ['::/0', '2001:db8::/32', '2001:db8:1::/48', '2001:db8:1::1/128', '2001:db8:1:8000::/49', 'fe80::/10'];
const V4_ADDRS = ['10.1.2.3', '10.1.2.4', '10.1.2.200', '10.1.3.1', '10.2.0.1', '192.0.2.1', '198.51.100.7', '8.8.8.8', '0.0.0.0', '255.255.255.255'];
const V6_ADDRS = ['2001:db8:1::1', '2001:db8:1::2', '2001:db8:1:8000::1', '2001:db8:2::1', '2001:db9::1', 'fe80::1', '::1', 'ffff::'];
const PORT_RANGES: PortRange[] = [
  { start: 53, end: 53 },
  { start: 80, end: 80 },
  { start: 443, end: 443 },
  { start: 1, end: 1023 },
  { start: 1000, end: 2000 },
  { start: 8000, end: 8100 },
  { start: 65535, end: 65535 },
  { start: 0, end: 65535 },
];
const PORTS = [0, 1, 52, 53, 54, 80, 443, 999, 1000, 1023, 1024, 2000, 2001, 7999, 8000, 8100, 8101, 65534, 65535];

function addressOf(text: string): { family: 4 | 6; address: bigint } {
  const parsed = parseCidr(`${text}/${text.includes(':') ? 128 : 32}`);
  if (!parsed.ok) throw new Error(parsed.reason);
  return { family: parsed.prefix.family, address: parsed.prefix.address };
}

function contains(prefix: string, c: Connect): boolean {
  const parsed = parseCidr(prefix);
  if (!parsed.ok) throw new Error(parsed.reason);
  const p = parsed.prefix;
  if (p.family !== c.family) return false;
  const shift = BigInt((p.family === 4 ? 32 : 128) - p.length);
  return c.address >> shift === p.address >> shift;
}

type RawRule = Omit<GuardRule, 'slot'>;

const arbRule: fc.Arbitrary<RawRule> = fc
  .record({
    protocol: fc.constantFrom('tcp' as const, 'udp' as const, undefined),
    destinations: fc.option(fc.uniqueArray(fc.constantFrom(...V4, ...V6), { minLength: 1, maxLength: 3 }), { nil: undefined }),
    ports: fc.option(fc.uniqueArray(fc.constantFrom(...PORT_RANGES), { minLength: 1, maxLength: 2 }), { nil: undefined }),
    action: fc.constantFrom('allow' as const, 'deny' as const),
    audit: fc.boolean(),
  })
  .map(({ protocol, destinations, ports, action, audit }) => ({
    action,
    audit,
    ...(protocol ? { protocol } : {}),
    ...(destinations ? { destinations } : {}),
    // Ports only with a protocol, as validation demands.
    ...(protocol && ports ? { ports: ports.map((r) => ({ ...r })) } : {}),
  }));

const arbPolicies: fc.Arbitrary<GuardPolicy[]> = fc
  .array(
    fc.record({
      rules: fc.array(arbRule, { maxLength: 6 }),
      defaultAction: fc.constantFrom('allow' as const, 'deny' as const),
      defaultAudit: fc.boolean(),
      sample: fc.constantFrom(0, 1, 10),
    }),
    { minLength: 1, maxLength: 4 },
  )
  .map((raw) => {
    // Distinct counter slots: the default's, then the rules'.
    let slot = 1;
    return raw.map((p) => ({ ...p, defaultSlot: slot++, rules: p.rules.map((r) => ({ ...r, slot: slot++ })) }));
  });

const arbConnect: fc.Arbitrary<Connect> = fc
  .record({
    address: fc.oneof(
      fc.constantFrom(...V4_ADDRS, ...V6_ADDRS).map(addressOf),
      fc.nat({ max: 0xffffffff }).map((n) => ({ family: 4 as const, address: BigInt(n) })),
      fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }).map((address) => ({ family: 6 as const, address })),
    ),
    port: fc.oneof(fc.constantFrom(...PORTS), fc.nat({ max: 65535 })),
    protocol: fc.constantFrom<Protocol>('tcp', 'udp', 'other'),
  })
  .map(({ address, port, protocol }) => ({ ...address, port, protocol }));

/** The decision of one policy, by walking its rules in order. */
function referenceVerdicts(policies: readonly GuardPolicy[], c: Connect): { allowed: boolean; decided: Verdicts } {
  const decided = policies.map((p, policy) => {
    const r = p.rules.find(
      (r) =>
        (r.protocol === undefined || r.protocol === c.protocol) &&
        (r.destinations === undefined || r.destinations.some((d) => contains(d, c))) &&
        // No port rule matches a connect of another protocol (it has no ports).
        (r.ports === undefined || (c.protocol !== 'other' && r.ports.some((x) => x.start <= c.port && c.port <= x.end))),
    );
    const [action, audit, slot] = r ? [r.action, r.audit, r.slot] : [p.defaultAction, p.defaultAudit, p.defaultSlot];
    const verdict = action === 'allow' ? ('allow' as const) : audit ? ('would-deny' as const) : ('deny' as const);
    return { policy, slot, verdict };
  });
  return { allowed: decided.every((d) => d.verdict !== 'deny'), decided };
}

const show = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString(16) : x));

test('the compiled tables decide like a first-match walk over each policy, a deny of any policy wins, audit only reports', () => {
  fc.assert(
    fc.property(arbPolicies, fc.array(arbConnect, { minLength: 1, maxLength: 30 }), (policies, connects) => {
      const compiled = compileGuard(policies);
      for (const c of connects) assert.deepEqual(decideCompiled(compiled, c), referenceVerdicts(policies, c), show({ policies, c }));
    }),
    { numRuns: 500, includeErrorInReport: true },
  );
});

test('the compiled config scans each policy once, patterns in increasing order, each policy closed by the end marker', () => {
  fc.assert(
    fc.property(arbPolicies, (policies) => {
      const { config } = compileGuard(policies);
      assert.ok(config.scan.length <= MAX_SCAN);
      assert.equal(config.defaults.length, policies.length);
      const ends = config.scan.filter((e) => e.pattern === PATTERN_END).map((e) => e.policy);
      assert.deepEqual(ends, policies.map((_, i) => i));
      for (let i = 1; i < config.scan.length; i++) {
        const [a, b] = [config.scan[i - 1]!, config.scan[i]!];
        assert.ok(a.policy < b.policy || (a.policy === b.policy && a.pattern < b.pattern), show(config.scan));
      }
      // A table is looked up only when some rule constrains its field.
      const all = policies.flatMap((p) => p.rules);
      assert.equal(Boolean(config.lookups & Match.DST), all.some((r) => r.destinations));
      assert.equal(Boolean(config.lookups & Match.PORT), all.some((r) => r.ports));
    }),
    { numRuns: 200 },
  );
});

test('more policies than a guard serves are refused', () => {
  const p: GuardPolicy = { rules: [], defaultAction: 'allow', defaultAudit: false, defaultSlot: 1, sample: 0 };
  assert.throws(() => compileGuard(Array.from({ length: MAX_POLICIES + 1 }, () => p)), GuardCompileError);
});

/** The value of `#define NAME value` in the header. */
function defines(header: string): Map<string, string> {
  return new Map([...header.matchAll(/^#define\s+(\w+)\s+(.+?)\s*(?:\/\*.*)?$/gm)].map((m) => [m[1]!, m[2]!]));
}

test('the constants match bpf/connect_policy.h', () => {
  const d = defines(readFileSync(join(REPO_ROOT, 'bpf', 'connect_policy.h'), 'utf8'));
  assert.deepEqual(
    {
      PROTO: Match.PROTO,
      DST: Match.DST,
      PORT: Match.PORT,
      END: PATTERN_END,
      OTHER: ProtoClass.any,
      TCP: ProtoClass.tcp,
      UDP: ProtoClass.udp,
      ALLOW: ActionCode.allow,
      DENY: ActionCode.deny,
      POLICIES: MAX_POLICIES,
      SCAN: MAX_SCAN,
      NAME: NAME_LEN,
      RECORD: RECORD_LEN,
      V_DENY: Verdict.deny,
      V_WOULD: Verdict.wouldDeny,
      HOOKS: EVENT_HOOKS.join(),
    },
    {
      PROTO: 1 << 0,
      DST: 1 << 1,
      PORT: 1 << 2,
      END: Number(d.get('CP_PATTERN_END')),
      OTHER: Number(d.get('CP_PROTO_OTHER')),
      TCP: Number(d.get('CP_PROTO_TCP')),
      UDP: Number(d.get('CP_PROTO_UDP')),
      ALLOW: Number(d.get('CP_ACTION_ALLOW')),
      DENY: Number(d.get('CP_ACTION_DENY')),
      POLICIES: Number(d.get('CP_MAX_POLICIES')),
      SCAN: Number(d.get('CP_MAX_POLICIES')) * 9,
      NAME: Number(d.get('CP_NAME_LEN')),
      RECORD: Number(d.get('CP_RECORD_LEN')),
      V_DENY: Number(d.get('CP_VERDICT_DENY')),
      V_WOULD: Number(d.get('CP_VERDICT_WOULD_DENY')),
      HOOKS: ['CONNECT4', 'CONNECT6', 'SENDMSG4', 'SENDMSG6']
        .sort((a, b) => Number(d.get(`CP_HOOK_${a}`)) - Number(d.get(`CP_HOOK_${b}`)))
        .map((h) => h.toLowerCase())
        .join(),
    },
  );
  assert.equal(d.get('CP_MATCH_PROTO'), '(1u << 0)');
  assert.equal(d.get('CP_MATCH_DST'), '(1u << 1)');
  assert.equal(d.get('CP_MATCH_PORT'), '(1u << 2)');
  assert.equal(d.get('CP_MAX_SCAN'), '(CP_MAX_POLICIES * 9)');
});

test('the byte layout matches the structs of bpf/connect_policy.h', () => {
  // struct cp_addr_key (packed): prefixlen u32 @0 (16 + length), gen @4, family @5, addr[16] @6.
  assert.equal(ADDR_KEY_SIZE, 22);
  assert.deepEqual([...encodeAddrKey(1, { family: 4, address: 0x0a010200n, length: 24 })], [40, 0, 0, 0, 1, 4, 10, 1, 2, 0, ...Array(12).fill(0)]);
  const k6 = encodeAddrKey(0, { family: 6, address: (0x20010db8n << 96n) | 1n, length: 128 });
  assert.deepEqual([...k6], [144, 0, 0, 0, 0, 6, 0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1]);
  // struct cp_port_key (packed): prefixlen u32 @0 (8 + bits), gen @4, port (big-endian) @5.
  assert.equal(PORT_KEY_SIZE, 7);
  assert.deepEqual([...encodePortKey(1, { port: 0x1f00, bits: 8 })], [16, 0, 0, 0, 1, 0x1f, 0x00]);

  // struct cp_decision_key: gen @0, policy @1, pattern @2, proto @3, dst u32 @4, port u32 @8; 12 bytes.
  assert.equal(DECISION_KEY_SIZE, 12);
  const key = encodeDecisionKey(1, { policy: 15, pattern: Match.PROTO | Match.DST | Match.PORT, proto: ProtoClass.udp, dst: 0x01020304, port: 0x0a0b0c0d });
  assert.deepEqual([...key], [1, 15, 7, 17, 0x04, 0x03, 0x02, 0x01, 0x0d, 0x0c, 0x0b, 0x0a]);

  // struct cp_decision: order u32 @0, slot u32 @4, sample u32 @8, action @12, audit @13, pad u16 @14; 16 bytes.
  assert.equal(DECISION_VALUE_SIZE, 16);
  const decision = { order: 0x01020304, slot: 65535, sample: 7, action: ActionCode.deny, audit: true };
  assert.deepEqual([...encodeDecision(decision)], [4, 3, 2, 1, 0xff, 0xff, 0, 0, 7, 0, 0, 0, 1, 1, 0, 0]);

  // struct cp_config: lookups u32 @0, n_scan u32 @4, scan[144] of {policy, pattern} @8, defaults[16] of cp_decision @296; 552 bytes.
  assert.equal(CONFIG_SIZE, 8 + 2 * 144 + 16 * 16);
  const defaults = Array.from({ length: MAX_POLICIES }, (_, i) => ({ order: 0, slot: 100 + i, sample: i, action: (i % 2) as 0 | 1, audit: i % 3 === 0 }));
  const scan = Array.from({ length: MAX_SCAN }, (_, i) => ({ policy: Math.floor(i / 9), pattern: i % 9 === 8 ? PATTERN_END : i % 8 }));
  const config = encodeConfig({ lookups: Match.DST | Match.PORT, scan, defaults });
  assert.equal(config.length, 552);
  assert.equal(config.readUInt32LE(0), 6);
  assert.equal(config.readUInt32LE(4), MAX_SCAN);
  scan.forEach((e, i) => assert.deepEqual([config[8 + 2 * i], config[9 + 2 * i]], [e.policy, e.pattern], `scan[${i}]`));
  defaults.forEach((d, i) => assert.deepEqual(config.subarray(296 + 16 * i, 312 + 16 * i), encodeDecision(d), `defaults[${i}]`));
  // Entries not in use are zero.
  const short = encodeConfig({ lookups: 0, scan: [{ policy: 0, pattern: PATTERN_END }], defaults: [defaults[1]!] });
  assert.deepEqual([...short.subarray(0, 12)], [0, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0, 0]);
  assert.ok(short.subarray(10, 296).every((b) => b === 0));
  assert.deepEqual(short.subarray(296, 312), encodeDecision(defaults[1]!));
  assert.ok(short.subarray(312).every((b) => b === 0));
  assert.throws(() => encodeConfig({ lookups: 0, scan: [...scan, { policy: 0, pattern: PATTERN_END }], defaults: [] }), RangeError);
  assert.throws(() => encodeConfig({ lookups: 0, scan: [], defaults: [...defaults, defaults[0]!] }), RangeError);

  // struct cp_event: time_ns @0, cgroup_id @8, pid @16, slot @20, comm[16] @24, port @40, family @42, protocol @43, verdict @44, hook @45, pad @46, addr[16] @48; 64 bytes.
  assert.equal(EVENT_SIZE, 64);
  const ev = Buffer.alloc(EVENT_SIZE);
  ev.writeBigUInt64LE(123n, 0);
  ev.writeBigUInt64LE(4101n, 8);
  ev.writeUInt32LE(4242, 16);
  ev.writeUInt32LE(9, 20);
  ev.write('curl', 24);
  ev.writeUInt16LE(443, 40);
  ev.writeUInt8(6, 42);
  ev.writeUInt8(6, 43);
  ev.writeUInt8(Verdict.wouldDeny, 44);
  ev.writeUInt8(3, 45);
  Buffer.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).copy(ev, 48);
  assert.deepEqual(decodeGuardEvent(ev), {
    timeNs: 123n,
    cgroupId: 4101n,
    pid: 4242,
    slot: 9,
    comm: 'curl',
    port: 443,
    family: 6,
    protocol: 6,
    verdict: 'would-deny',
    hook: 'sendmsg6',
    address: '2001:db8::1',
  });
  const ev4 = Buffer.from(ev);
  ev4.writeUInt8(4, 42);
  ev4.writeUInt8(Verdict.deny, 44);
  ev4.writeUInt8(0, 45);
  ev4.fill(0, 48);
  Buffer.from([192, 0, 2, 1]).copy(ev4, 48);
  assert.deepEqual([decodeGuardEvent(ev4).address, decodeGuardEvent(ev4).verdict, decodeGuardEvent(ev4).hook], ['192.0.2.1', 'deny', 'connect4']);
  assert.throws(() => decodeGuardEvent(ev.subarray(0, 63)), RangeError);
});
