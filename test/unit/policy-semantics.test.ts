/**
 * Checks beyond the schema: unique names, overlapping claims between
 * PortSteering policies, total port count, listen addresses, and the
 * normalized desired state.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PortSteeringPolicy } from '../../src/kinds/port-steering/document.js';
import { formatProblem } from '../../src/policy/problem.js';
import { portSteeringYaml, validateText } from './policy-test-helpers.js';

function lines(text: string): string[] {
  return validateText(text).problems.map(formatProblem);
}

function steering(name: string, spec: Record<string, string>): string {
  const fields = { protocol: 'tcp', ports: '[8081]', target: '{listen: "127.0.0.1:8080"}', ...spec };
  return portSteeringYaml(name, Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join('\n  '));
}

test('duplicate metadata.name: reported on the later policy, naming both places', () => {
  const text = `${steering('web', {})}---\n${steering('web', { protocol: 'udp' })}`;
  assert.deepEqual(lines(text), [
    'test.yaml:13:9: error: metadata.name: duplicate policy name "web": also defined at test.yaml:4:9',
  ]);
});

test('duplicate names are found even between kinds and in otherwise invalid documents', () => {
  const text = `${steering('web', {})}---\napiVersion: ebpf-policy/v1\nkind: Other\nmetadata: {name: web}\nspec: {}\n`;
  assert.deepEqual(lines(text), [
    'test.yaml:11:7: error: kind: unknown kind "Other" (known: ConnectPolicy, PacketFilter, PolicyTest, PortSteering, Program, SyscallCounter)',
    'test.yaml:12:18: error: metadata.name: duplicate policy name "web": also defined at test.yaml:4:9',
  ]);
});

test('overlapping claims need the same protocol, netns, a common port and an identical prefix (nested prefixes: the longer wins)', () => {
  const base = steering('a', { ports: '["9000-9100"]', addresses: '["10.0.0.0/8", "2001:db8::/32"]' });
  const cases: [Record<string, string>, boolean][] = [
    [{ ports: '[9100]', addresses: '["10.0.0.0/8"]' }, true],
    [{ ports: '[9101]', addresses: '["10.0.0.0/8"]' }, false],
    [{ ports: '[9050]', protocol: 'udp', addresses: '["10.0.0.0/8"]' }, false],
    [{ ports: '[9050]', netns: '/run/netns/x', addresses: '["10.0.0.0/8"]' }, false],
    [{ ports: '[9100]' }, false],
    [{ ports: '[9050]', addresses: '["10.0.0.0/8"]' }, true],
    [{ ports: '[9050]', addresses: '["2001:db8::/32"]' }, true],
    [{ ports: '[9050]', addresses: '["10.1.2.0/24"]' }, false],
    [{ ports: '[9050]', addresses: '["0.0.0.0/0"]' }, false],
    [{ ports: '[9050]', addresses: '["11.0.0.0/8", "2001:db9::/32"]' }, false],
    [{ ports: '[9050]', addresses: '["2001:db8:1::/48"]' }, false],
  ];
  for (const [spec, overlaps] of cases) {
    const found = lines(`${base}---\n${steering('b', spec)}`);
    assert.equal(found.length, overlaps ? 1 : 0, `${JSON.stringify(spec)}: ${found.join('\n')}`);
  }
});

test('an overlap names both policies, the common ports, prefixes and namespace', () => {
  const text =
    `${steering('a', { netns: '/run/netns/web', ports: '[80, "9000-9100"]', addresses: '["10.0.0.0/8"]' })}---\n` +
    `${steering('b', { netns: '/run/netns//web', ports: '["9050-9200", 80]', addresses: '["10.0.0.0/8", "192.168.0.0/16"]' })}`;
  assert.deepEqual(lines(text), [
    'test.yaml:18:10: error: spec.ports: policy "b" overlaps policy "a" (test.yaml:1:1): both claim tcp ports 80, 9050-9100 for 10.0.0.0/8 in network namespace /run/netns/web',
  ]);
});

test('a policy never overlaps itself, and overlaps are reported once per pair', () => {
  assert.deepEqual(lines(steering('a', { ports: '[80, "80-90", 85]' })).filter((l) => l.includes('error')), []);
  const three = [steering('a', {}), steering('b', {}), steering('c', {})].join('---\n');
  const found = lines(three);
  assert.equal(found.length, 3);
  assert.match(found[0] as string, /policy "b" overlaps policy "a"/);
  assert.match(found[1] as string, /policy "c" overlaps policy "a"/);
  assert.match(found[2] as string, /policy "c" overlaps policy "b"/);
});

test('port entries covering more than 65535 ports in total are an error', () => {
  assert.deepEqual(lines(steering('a', { ports: '["1-65535"]' })), []);
  assert.deepEqual(lines(steering('a', { ports: '["1-65535", 80]' })), [
    'test.yaml:7:10: error: spec.ports: the entries cover 65536 ports in total, more than 65535; remove overlapping entries',
    'test.yaml:7:22: warning: spec.ports[1]: 80 overlaps spec.ports[0] (1-65535)',
  ]);
});

test('target.listen accepts IPv4:PORT and [IPv6]:PORT only', () => {
  const ok = ['127.0.0.1:8080', '0.0.0.0:1', '[::1]:65535', '[::]:80', '[2001:DB8::1]:443', '[::ffff:127.0.0.1]:80'];
  for (const listen of ok) assert.deepEqual(lines(steering('a', { target: `{listen: "${listen}"}` })), [], listen);
  const bad: [string, string][] = [
    ['localhost:8080', '"localhost" is not an IPv4 address; host names are not resolved'],
    ['::1:8080', 'write IPv6 addresses in brackets, e.g. "[::1]:8080"'],
    ['[::1]8080', 'missing ":PORT" after "]", e.g. "[::1]:8080"'],
    ['[::1:8080', 'missing "]" after the IPv6 address'],
    ['127.0.0.1', 'missing ":PORT", e.g. "127.0.0.1:8080"'],
    ['127.0.0.1:', 'port "" is not a number'],
    ['127.0.0.1:080', 'port "080" is not a number'],
    ['127.0.0.1:65536', 'port 65536 is out of range 1..65535'],
    ['256.0.0.1:80', '"256.0.0.1" is not an IPv4 address'],
    ['[fe80::1%eth0]:80', '"fe80::1%eth0" is not an IPv6 address'],
  ];
  for (const [listen, reason] of bad) {
    assert.deepEqual(
      lines(steering('a', { target: `{listen: "${listen}"}` })).map((l) => l.replace(/^test\.yaml:\d+:\d+: /, '')),
      [`error: spec.target.listen: "${listen}" is not a valid listen address (${reason})`],
      listen,
    );
  }
});

test('normalization: merged sorted ports, aggregated canonical prefixes, netns path, target', () => {
  const text = steering('a', {
    netns: '/run/netns/./web',
    protocol: 'udp',
    ports: '[9005, "9000-9004", 53, "9006-9010", 8081, 8080]',
    addresses: '["10.128.0.0/9", "10.0.0.0/9", "10.1.0.0/16", "2001:DB8:0:0:0:0:0:1/32", "::ffff:10.0.0.1/128", "0.0.0.0/32"]',
    target: '{listen: "[2001:db8:0::1]:53"}',
  });
  const { policies, problems } = validateText(text);
  assert.equal(problems.filter((p) => p.severity === 'error').length, 0);
  const policy = policies[0] as PortSteeringPolicy;
  assert.equal(policy.netns, '/run/netns/web');
  assert.equal(policy.protocol, 'udp');
  assert.deepEqual(policy.ports, [
    { start: 53, end: 53 },
    { start: 8080, end: 8081 },
    { start: 9000, end: 9010 },
  ]);
  assert.deepEqual(policy.prefixes, ['0.0.0.0/32', '10.0.0.0/8', '::ffff:10.0.0.1/128', '2001:db8::/32']);
  assert.deepEqual(policy.target, { type: 'listen', family: 6, address: '2001:db8::1', port: 53 });
});

test('normalization: no netns means the own namespace; no addresses means all of IPv4 and IPv6', () => {
  const policy = validateText(steering('a', { target: '{pid: 42, fd: 7}' })).policies[0] as PortSteeringPolicy;
  assert.equal(policy.netns, undefined);
  assert.deepEqual(policy.prefixes, ['0.0.0.0/0', '::/0']);
  assert.deepEqual(policy.target, { type: 'socket', pid: 42, fd: 7 });
  assert.deepEqual(policy.labels, {});
  assert.deepEqual(policy.source, { file: 'test.yaml', documentIndex: 0, line: 1, column: 1 });
});

test('property: the overlap check finds exactly the pairs a comparison of every pair finds, in the same order', async () => {
  const fc = (await import('fast-check')).default;
  const { portSteeringKind } = await import('../../src/kinds/port-steering/document.js');
  const { intersectPortRanges } = await import('../../src/policy/net/ports.js');
  const pool = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.3/32', '0.0.0.0/0', '::/0', '2001:db8::/32'];
  const range = fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 10 })).map(([start, span]) => ({ start, end: start + span }));
  const policy = fc.record({
    protocol: fc.constantFrom('tcp', 'udp'),
    netns: fc.constantFrom(undefined, '/run/netns/a'),
    // Normalized policies carry merged, sorted ranges: disjoint and non-adjacent.
    ports: fc.array(range, { minLength: 1, maxLength: 3 }).map((rs) => {
      const merged: { start: number; end: number }[] = [];
      for (const r of [...rs].sort((a, b) => a.start - b.start)) {
        const last = merged[merged.length - 1];
        if (last !== undefined && r.start <= last.end + 1) last.end = Math.max(last.end, r.end);
        else merged.push({ ...r });
      }
      return merged;
    }),
    prefixes: fc.subarray(pool, { minLength: 1 }),
  });
  fc.assert(
    fc.property(fc.array(policy, { maxLength: 12 }), (specs) => {
      const policies = specs.map(
        (s, i) =>
          ({
            kind: 'PortSteering',
            name: `p${i}`,
            labels: {},
            source: { file: 'x.yaml', line: i + 1, column: 1 },
            ...s,
            target: { type: 'listen', address: '127.0.0.1', port: 8080 },
          }) as unknown as PortSteeringPolicy,
      );
      const expected: string[] = [];
      policies.forEach((later, j) =>
        policies.slice(0, j).forEach((earlier) => {
          const conflict =
            earlier.protocol === later.protocol &&
            earlier.netns === later.netns &&
            earlier.prefixes.some((p) => later.prefixes.includes(p)) &&
            intersectPortRanges(earlier.ports, later.ports).length > 0;
          if (conflict) expected.push(`${earlier.name}<${later.name}`);
        }),
      );
      const key = (e: string) => e.split('<').map((n) => Number(n.slice(1)));
      // The check groups by protocol and netns first (in order of first appearance), then orders pairs by index.
      const groupOf = (n: number) => `${policies[n]!.protocol}/${policies[n]!.netns}`;
      const groupOrder = [...new Set(policies.map((_, i) => groupOf(i)))];
      expected.sort((a, b) => {
        const [ea, la] = key(a) as [number, number];
        const [eb, lb] = key(b) as [number, number];
        return groupOrder.indexOf(groupOf(ea)) - groupOrder.indexOf(groupOf(eb)) || ea - eb || la - lb;
      });
      const found = portSteeringKind.findConflicts!(policies).map((c) => {
        const m = /policy "(\w+)" overlaps policy "(\w+)"/.exec(c.message)!;
        assert.equal(c.policy.name, m[1]);
        return `${m[2]}<${m[1]}`;
      });
      assert.deepEqual(found, expected);
    }),
    { numRuns: 500 },
  );
});
