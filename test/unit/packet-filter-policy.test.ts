/**
 * The PacketFilter kind: the shipped example normalizes as documented,
 * defaults, port strings, interface patterns (matching and overlap, checked
 * against brute force), and the byte layout shared with bpf/packet_filter.h.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeConfig, decodeEvent, encodeAddrKey, encodeConfig, encodeDecisionKey, encodeDecisionValue, encodePortSlices, encodeClass, portClassIndex, ADDR_KEY_SIZE, EVENT_SIZE } from '../../src/kinds/packet-filter/layout.js';
import { parseIpLinks } from '../../src/bpf/interfaces.js';
import type { PacketFilterPolicy } from '../../src/kinds/packet-filter/document.js';
import { loadPolicies } from '../../src/manager.js';
import { explainInterfacePattern, matchesInterface, patternsOverlap } from '../../src/policy/net/interface-pattern.js';
import { REPO_ROOT, validateText } from './policy-test-helpers.js';

test('the example policies/packet-filter.yaml is valid and normalizes as documented', () => {
  const result = loadPolicies({ paths: ['policies/packet-filter.yaml'], cwd: REPO_ROOT, insecurePermissions: true });
  assert.deepEqual(result.problems, []);
  assert.deepEqual(result.policies, [
    {
      kind: 'PacketFilter',
      name: 'edge-guard',
      labels: { team: 'net' },
      source: { file: 'policies/packet-filter.yaml', documentIndex: 0, line: 12, column: 1 },
      netns: undefined,
      interfaces: ['lo', 'veth*'],
      hook: 'xdp',
      mode: 'enforce',
      defaultAction: 'pass',
      rules: [
        { name: 'block-telnet', protocol: 'tcp', srcPrefixes: undefined, dstPrefixes: undefined, srcPorts: undefined, dstPorts: [{ start: 23, end: 23 }], action: 'drop', mode: 'enforce' },
        { name: 'bad-net', protocol: undefined, srcPrefixes: ['203.0.113.0/24', '2001:db8::/32'], dstPrefixes: undefined, srcPorts: undefined, dstPorts: undefined, action: 'drop', mode: 'enforce' },
        { name: 'count-dns', protocol: 'udp', srcPrefixes: undefined, dstPrefixes: undefined, srcPorts: undefined, dstPorts: [{ start: 53, end: 53 }], action: 'pass', mode: 'enforce' },
        { name: 'audit-smb', protocol: 'tcp', srcPrefixes: undefined, dstPrefixes: undefined, srcPorts: undefined, dstPorts: [{ start: 445, end: 445 }], action: 'drop', mode: 'audit' },
      ],
      sampleRate: 100,
    },
  ]);
});

test('defaults, port numbers and port strings, prefix aggregation', () => {
  const doc = `apiVersion: ebpf-policy/v1
kind: PacketFilter
metadata: {name: minimal}
spec:
  interfaces: [eth0]
  hook: tc-egress
  rules:
    - {name: a, protocol: udp, srcPorts: [53, "53", "100-200", "150-300"], dstCidrs: ["10.0.0.0/9", "10.128.0.0/9"], action: drop}
`;
  const { policies, problems } = validateText(doc);
  assert.deepEqual(problems.filter((p) => p.severity === 'error'), []);
  const p = policies[0] as PacketFilterPolicy;
  assert.equal(p.defaultAction, 'pass');
  assert.equal(p.sampleRate, 0);
  assert.equal(p.netns, undefined);
  assert.deepEqual(p.rules[0]?.srcPorts, [{ start: 53, end: 53 }, { start: 100, end: 300 }]);
  assert.deepEqual(p.rules[0]?.dstPrefixes, ['10.0.0.0/8']);
});

test('audit mode: spec.mode is the default of every rule, the mode of a rule overrides it; a mode on a pass rule is a warning', () => {
  const doc = `apiVersion: ebpf-policy/v1
kind: PacketFilter
metadata: {name: staged}
spec:
  interfaces: [eth0]
  hook: xdp
  mode: audit
  defaultAction: drop
  rules:
    - {name: a, protocol: udp, dstPorts: [53], action: drop}
    - {name: b, protocol: tcp, dstPorts: [23], action: drop, mode: enforce}
    - {name: c, protocol: tcp, dstPorts: [22], action: pass, mode: audit}
`;
  const { policies, problems } = validateText(doc);
  assert.deepEqual(problems.filter((p) => p.severity === 'error'), []);
  assert.deepEqual(
    problems.map((p) => [p.path, p.message]),
    [['spec.rules[2].mode', 'a pass rule has nothing to audit: mode only changes what a drop rule does']],
  );
  const p = policies[0] as PacketFilterPolicy;
  assert.equal(p.mode, 'audit');
  assert.deepEqual(p.rules.map((r) => `${r.name} ${r.action} ${r.mode}`), ['a drop audit', 'b drop enforce', 'c pass audit']);
  const enforced = validateText(doc.replace('  mode: audit\n', '')).policies[0] as PacketFilterPolicy;
  assert.equal(enforced.mode, 'enforce', 'enforce is the default');
  assert.deepEqual(enforced.rules.map((r) => r.mode), ['enforce', 'enforce', 'audit']);
});

test('policies on one interface must agree on the verdict of the same packets: a drop and an audited drop of them conflict, and so do default drops in different modes', () => {
  const doc = (name: string, mode: string, rule: string) => `apiVersion: ebpf-policy/v1
kind: PacketFilter
metadata: {name: ${name}}
spec:
  interfaces: [eth0]
  hook: xdp
  mode: ${mode}
  defaultAction: drop
  rules:
    - ${rule}
`;
  const both = (a: string, b: string) => validateText(`${a}---\n${b}`).problems.filter((p) => p.severity === 'error').map((p) => p.message);
  const telnet = '{name: telnet, protocol: tcp, dstPorts: [23], action: drop}';
  const audited = both(doc('a', 'enforce', telnet), doc('b', 'enforce', '{name: t, protocol: tcp, dstPorts: [23], action: drop, mode: audit}'));
  assert.equal(audited.length, 1, JSON.stringify(audited));
  assert.match(audited[0]!, /rule "t" of policy "b" audits \(would drop\) tcp to port 23, but rule "telnet" of policy "a" .* drops the same packets/);
  const defaults = both(doc('a', 'enforce', telnet), doc('b', 'audit', '{name: t, protocol: tcp, dstPorts: [23], action: drop, mode: enforce}'));
  assert.equal(defaults.length, 1, JSON.stringify(defaults));
  assert.match(defaults[0]!, /policy "b" \(mode audit\) and policy "a" .*mode enforce\) .* disagree on its mode/);
  assert.deepEqual(both(doc('a', 'audit', telnet), doc('b', 'audit', '{name: t, protocol: tcp, dstPorts: [23], action: drop}')), [], 'the same verdicts agree');
});

test('interface names and patterns', () => {
  assert.equal(matchesInterface('veth*', 'veth12ab'), true);
  assert.equal(matchesInterface('veth*', 'eth0'), false);
  assert.equal(matchesInterface('eth?', 'eth0'), true);
  assert.equal(matchesInterface('eth?', 'eth10'), false);
  assert.equal(matchesInterface('eth0.100', 'eth0.100'), true, 'dots are literal');
  assert.equal(matchesInterface('eth0.100', 'eth0x100'), false);
  assert.equal(explainInterfacePattern('eth0'), undefined);
  assert.match(explainInterfacePattern('a/b') ?? '', /"\/" is not allowed/);
  assert.match(explainInterfacePattern('..') ?? '', /not interface names/);
});

test('property: two patterns overlap exactly when some name matches both', () => {
  const names: string[] = [''];
  for (let len = 1; len <= 4; len++) for (const n of names.filter((x) => x.length === len - 1)) for (const c of 'ab') names.push(n + c);
  const pattern = fc.string({ unit: fc.constantFrom('a', 'b', '*', '?'), minLength: 1, maxLength: 3 });
  fc.assert(
    fc.property(pattern, pattern, (x, y) => {
      const brute = names.some((n) => matchesInterface(x, n) && matchesInterface(y, n));
      // Names up to 4 characters witness every overlap of patterns up to 3 characters.
      assert.equal(patternsOverlap(x, y), brute, `${x} vs ${y}`);
    }),
    { numRuns: 2000 },
  );
});

test('the byte layout matches struct sizes and offsets of bpf/packet_filter.h', () => {
  const k = encodeAddrKey({ dim: 1, family: 4, address: 0x0a010203n, length: 24 });
  assert.equal(k.length, ADDR_KEY_SIZE);
  assert.deepEqual([...k], [40, 0, 0, 0, 1, 4, 10, 1, 2, 3, ...Array(12).fill(0)]);
  const k6 = encodeAddrKey({ dim: 0, family: 6, address: 0x20010db8n << 96n, length: 32 });
  assert.deepEqual([...k6.subarray(0, 10)], [48, 0, 0, 0, 0, 6, 0x20, 0x01, 0x0d, 0xb8]);
  // port_classes: index gen << 17 | dim << 16 | port; a /8 block covers 256 ports of its dimension's slice.
  assert.equal(portClassIndex(1, 1, 0x1f00), 0x31f00);
  // struct pf_port_class: cls@0, first[TCP]@4, first[UDP]@6 (0xffff: no rule).
  const slices = encodePortSlices([{ dim: 1, port: 0x1f00, bits: 8, cls: 3, first: [7, 0xffff] }], 16);
  assert.equal(slices.values.length, 65536 * 8);
  assert.deepEqual([...slices.values.subarray(0x1eff * 8, 0x1f00 * 8)], [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
  assert.deepEqual([...slices.values.subarray(0x1f00 * 8, 0x1f01 * 8)], [3, 0, 0, 0, 7, 0, 0xff, 0xff]);
  assert.deepEqual([...slices.values.subarray(0x1fff * 8, 0x2000 * 8)], [3, 0, 0, 0, 7, 0, 0xff, 0xff]);
  assert.equal(slices.values.readUInt32LE(0x2000 * 8), 0);
  // struct pf_class: cls@0, first[other, icmp, tcp, udp]@4.
  assert.deepEqual([...encodeClass({ cls: 2, first: [1, 0xffff, 3, 4] })], [2, 0, 0, 0, 1, 0, 0xff, 0xff, 3, 0, 4, 0]);
  assert.equal(encodeDecisionKey({ pattern: 17, proto: 6, src: 1, dst: 0, sport: 0, dport: 2 }).length, 20);
  const c = { first: [0xffff, 2, 0xffff, 5], patterns: 0x10003, lookups: 18, defaultAction: 1 as const, defaultAudit: false, defaultSample: 7 };
  assert.deepEqual(decodeConfig(encodeConfig(c)), c);
  const audited = { ...c, defaultAudit: true };
  assert.deepEqual(decodeConfig(encodeConfig(audited)), audited);
  // struct pf_config: default_action@8 (u8), default_audit@9 (u8), default_sample@12.
  assert.deepEqual([...encodeConfig(audited).subarray(8, 16)], [1, 1, 0, 0, 7, 0, 0, 0]);
  // Patterns 0, 1 and 16 constrain at most one field: no decision lookups (n_patterns@16 = 0). first@52, n_rules@60.
  assert.equal(encodeConfig(c).readUInt32LE(16), 0);
  assert.deepEqual([...encodeConfig(c, 9).subarray(52, 64)], [0xff, 0xff, 2, 0, 0xff, 0xff, 5, 0, 9, 0, 0, 0]);
  // Pattern 6 (source and destination address) is looked up.
  const multi = encodeConfig({ ...c, patterns: (1 << 6) | 1 });
  assert.deepEqual([multi.readUInt32LE(16), multi.readUInt8(20)], [1, 6]);
  // struct pf_decision: order@0 slot@4 sample@8 action@12 (u8) audit@13 (u8).
  assert.deepEqual([...encodeDecisionValue({ order: 3, slot: 5, sample: 2, action: 1, audit: true })], [3, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 1, 1, 0, 0]);
  assert.deepEqual([...encodeDecisionValue({ order: 3, slot: 5, sample: 2, action: 1, audit: false }).subarray(12)], [1, 0, 0, 0]);
  const ev = Buffer.alloc(EVENT_SIZE);
  ev.writeBigUInt64LE(123n, 0);
  ev.writeUInt32LE(4, 8);
  ev.writeUInt32LE(9, 12);
  ev.writeUInt32LE(62, 16);
  ev.writeUInt8(6, 20);
  ev.writeUInt8(17, 21);
  ev.writeUInt8(1, 22);
  ev.writeUInt16LE(5353, 24);
  ev.writeUInt16LE(53, 26);
  ev.writeUInt8(2, 60); // PF_VERDICT_WOULD_DROP
  Buffer.from([0xfd, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).copy(ev, 28);
  Buffer.from([0xfd, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]).copy(ev, 44);
  assert.deepEqual(decodeEvent(ev), {
    timeNs: 123n,
    ifindex: 4,
    slot: 9,
    length: 62,
    family: 6,
    protocol: 17,
    action: 1,
    verdict: 'would-drop',
    noPorts: false,
    srcPort: 5353,
    dstPort: 53,
    src: 'fd00:20::1',
    dst: 'fd00:20::2',
  });
});

test('ip -json -details link show is read into interfaces with their XDP programs', () => {
  const json = JSON.stringify([
    { ifindex: 1, ifname: 'lo', link_type: 'loopback' },
    { ifindex: 2, ifname: 'vb', link_type: 'ether', xdp: { mode: 1, prog: { id: 42 }, attached: [{ mode: 1, prog: { id: 42 } }] } },
    { ifindex: 3, ifname: 'vc', link_type: 'ether', xdp: { mode: 4, attached: [{ mode: 1, prog: { id: 7 } }, { mode: 2, prog: { id: 8 } }] } },
  ]);
  assert.deepEqual(parseIpLinks(json), [
    { ifindex: 1, name: 'lo', linkType: 'loopback', xdp: [] },
    { ifindex: 2, name: 'vb', linkType: 'ether', xdp: [{ mode: 'native', progId: 42 }] },
    { ifindex: 3, name: 'vc', linkType: 'ether', xdp: [{ mode: 'native', progId: 7 }, { mode: 'generic', progId: 8 }] },
  ]);
});
