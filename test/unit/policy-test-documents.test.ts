/**
 * PolicyTest documents (src/policy/policy-test.ts): schema, offline checks
 * (impossible packets, unknown spec.policy, expectations that do not fit the
 * tested kind), located by file and line; and that the engine plans nothing
 * for them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parsePolicyText } from '../../src/policy/parse.js';
import { formatProblem } from '../../src/policy/problem.js';
import type { PolicyTestPolicy } from '../../src/policy/policy-test.js';
import { validatePolicyDocuments } from '../../src/manager.js';
import { REPO_ROOT, validateText } from './policy-test-helpers.js';

const FILTER = `apiVersion: ebpf-policy/v1
kind: PacketFilter
metadata: {name: edge}
spec:
  interfaces: [lo]
  hook: xdp
  rules:
    - {name: block-telnet, protocol: tcp, dstPorts: ["23"], action: drop}
`;
const STEERING = `apiVersion: ebpf-policy/v1
kind: PortSteering
metadata: {name: web}
spec:
  protocol: tcp
  ports: [8081]
  target: {listen: "127.0.0.1:8080"}
`;
const GUARD = `apiVersion: ebpf-policy/v1
kind: ConnectPolicy
metadata: {name: guard}
spec:
  cgroup: x
  rules:
    - {name: no, action: deny, destinations: ["10.0.0.0/8"]}
`;

const COUNTER = `apiVersion: ebpf-policy/v1
kind: SyscallCounter
metadata: {name: counter}
spec:
  syscalls: [execve]
  groupBy: [syscall]
`;

/** A PolicyTest of \`policy\` with one connect case (ConnectPolicy). */
function connectDoc(policy: string, connect: string, expect: string): string {
  return `apiVersion: ebpf-policy/v1\nkind: PolicyTest\nmetadata: {name: cases}\nspec:\n  policy: ${policy}\n  cases:\n    - name: one\n      connect: ${connect}\n      expect: ${expect}\n`;
}

/** A PolicyTest of \`policy\` with one case (flow-style packet and expect). */
function testDoc(policy: string, packet: string, expect: string, name = 'cases'): string {
  return `apiVersion: ebpf-policy/v1\nkind: PolicyTest\nmetadata: {name: ${name}}\nspec:\n  policy: ${policy}\n  cases:\n    - name: one\n      packet: ${packet}\n      expect: ${expect}\n`;
}

function problems(...docs: string[]): string[] {
  return validateText(docs.join('---\n')).problems.map(formatProblem);
}

const TCP = '{protocol: tcp, src: "10.0.0.1", dst: "10.0.0.2", dstPort: 23}';

test('a valid PolicyTest of a PacketFilter policy: no problems, normalized cases', () => {
  const r = validateText([FILTER, testDoc('edge', TCP, '{verdict: drop, rule: block-telnet}')].join('---\n'));
  assert.deepEqual(r.problems.map(formatProblem), []);
  const t = r.policies.find((p) => p.kind === 'PolicyTest') as PolicyTestPolicy;
  assert.equal(t.policy, 'edge');
  assert.deepEqual(t.cases, [{ name: 'one', index: 0, packet: { protocol: 'tcp', family: 4, src: '10.0.0.1', dst: '10.0.0.2', srcPort: 40000, dstPort: 23 }, expect: { verdict: 'drop', rule: 'block-telnet' } }]);
});

test('unknown spec.policy: an error at spec.policy naming the known policies (and the closest one)', () => {
  assert.deepEqual(problems(FILTER, STEERING, testDoc('egde', TCP, '{verdict: drop}')), [
    'test.yaml:22:11: error: spec.policy: unknown policy "egde" in spec.policy (known policies: edge, web; did you mean "edge"?)',
  ]);
});

test('spec.policy naming a policy with errors, or another PolicyTest, says so', () => {
  const broken = FILTER.replace('hook: xdp', 'hook: nope');
  assert.match(problems(broken, testDoc('edge', TCP, '{verdict: drop}')).at(-1)!, /spec\.policy: spec\.policy "edge" names a policy that has errors/);
  assert.match(problems(FILTER, testDoc('edge', TCP, '{verdict: drop}', 'a'), testDoc('a', TCP, '{verdict: drop}', 'b')).join('\n'), /names a PolicyTest document/);
});

test('impossible packets: mixed families, ports with icmp', () => {
  assert.deepEqual(problems(FILTER, testDoc('edge', '{protocol: icmp, src: "10.0.0.1", dst: "2001:db8::1", srcPort: 5}', '{verdict: pass}')), [
    'test.yaml:17:54: error: spec.cases[0].packet.dst: an IPv4 source (10.0.0.1) cannot send to an IPv6 destination (2001:db8::1): use addresses of one family',
    'test.yaml:17:78: error: spec.cases[0].packet.srcPort: ICMP has no ports: remove srcPort or use protocol tcp or udp',
  ]);
  assert.match(problems(FILTER, testDoc('edge', '{protocol: tcp, src: "10.0.0.0/8", dst: "10.0.0.1"}', '{verdict: pass}')).join('\n'), /packet\.src: .*IP address.*without a prefix length/);
});

test('PacketFilter expectations: steeredTo does not fit, the rule must exist', () => {
  assert.deepEqual(problems(FILTER, testDoc('edge', TCP, '{steeredTo: none, rule: block-telnett}')), [
    'test.yaml:18:27: error: spec.cases[0].expect.steeredTo: steeredTo applies to PortSteering policies; "edge" is a PacketFilter: expect a verdict (pass, drop) and a rule',
    'test.yaml:18:39: error: spec.cases[0].expect.rule: policy "edge" has no rule "block-telnett" (its rules: block-telnet; "default" for the default action)',
  ]);
  assert.deepEqual(problems(FILTER, testDoc('edge', TCP, '{rule: default}')), []);
});

test('a kind without test support is a warning at spec.policy naming the kind', () => {
  assert.deepEqual(problems(COUNTER, testDoc('counter', TCP, '{verdict: drop}')), [
    'test.yaml:12:11: warning: spec.policy: policy "counter" is a SyscallCounter: ebpf-policy test cannot run SyscallCounter cases yet',
  ]);
});

test('ConnectPolicy cases: a connect (src unused: a warning), verdict allow/deny/would-deny and/or a rule it has; normalized', () => {
  const r = validateText([GUARD, connectDoc('guard', '{protocol: udp, dst: "2001:DB8::1", dstPort: 53}', '{verdict: would-deny, rule: default}')].join('---\n'));
  assert.deepEqual(r.problems.map(formatProblem), []);
  const t = r.policies.find((p) => p.kind === 'PolicyTest') as PolicyTestPolicy;
  assert.deepEqual(t.cases, [{ name: 'one', index: 0, connect: { protocol: 'udp', family: 6, dst: '2001:db8::1', dstPort: 53, srcGiven: false }, expect: { verdict: 'would-deny', rule: 'default' } }]);
  assert.deepEqual(problems(GUARD, connectDoc('guard', '{protocol: tcp, src: "10.0.0.1", dst: "10.0.0.2", dstPort: 80}', '{verdict: drop, rule: nope}')), [
    'test.yaml:16:37: warning: spec.cases[0].connect.src: src is not used: ConnectPolicy rules match destinations only, and the connect is made from a throwaway network namespace',
    'test.yaml:17:25: error: spec.cases[0].expect.verdict: verdict drop applies to PacketFilter policies; "guard" is a ConnectPolicy: a case is a connect {protocol, dst, dstPort} and expects a verdict (allow, deny, would-deny) and/or a rule',
    'test.yaml:17:37: error: spec.cases[0].expect.rule: policy "guard" has no rule "nope" (its rules: no; "default" for the default action)',
  ]);
  assert.match(problems(GUARD, testDoc('guard', TCP, '{verdict: deny}')).join('\n'), /spec\.cases\[0\]\.packet: packet applies to PacketFilter and PortSteering policies; "guard" is a ConnectPolicy/);
  assert.match(problems(FILTER, connectDoc('edge', '{protocol: tcp, dst: "10.0.0.2", dstPort: 80}', '{verdict: deny}')).join('\n'), /spec\.cases\[0\]\.connect: connect applies to ConnectPolicy policies; "edge" is a PacketFilter[\s\S]*verdict deny applies to ConnectPolicy policies/);
  assert.match(problems(STEERING, connectDoc('web', '{protocol: tcp, dst: "10.0.0.2", dstPort: 80}', '{steeredTo: none}')).join('\n'), /spec\.cases\[0\]\.connect: connect applies to ConnectPolicy policies/);
  const both = testDoc('guard', TCP, '{verdict: deny}').replace('      expect:', '      connect: {protocol: tcp, dst: "10.0.0.2", dstPort: 80}\n      expect:');
  assert.match(problems(GUARD, both).join('\n'), /spec\.cases\[0\]: a case gives exactly one of packet \(PacketFilter, PortSteering\) and connect \(ConnectPolicy\); this one gives both/);
});

test('duplicate case names are an error', () => {
  const doc = testDoc('edge', TCP, '{verdict: drop}') + `    - name: one\n      packet: ${TCP}\n      expect: {verdict: pass}\n`;
  assert.match(problems(FILTER, doc).join('\n'), /spec\.cases\[1\]\.name: duplicate case name "one"/);
});

test('the shipped examples and their tests validate without problems', () => {
  const docs = ['packet-filter.yaml', 'edge-guard-tests.yaml', 'port-steering.yaml', 'connect-policy.yaml', 'connect-policy-tests.yaml'].flatMap((f) => {
    const file = join(REPO_ROOT, 'policies', f);
    return parsePolicyText(file, readFileSync(file, 'utf8'), 'yaml').documents;
  });
  const r = validatePolicyDocuments(docs);
  assert.deepEqual(r.problems.map(formatProblem), []);
  assert.ok(r.policies.some((p) => p.kind === 'PolicyTest'));
});

test('PortSteering expectations: steeredTo only (a listen address or none), a TCP/UDP packet with a destination port', () => {
  assert.deepEqual(problems(STEERING, testDoc('web', '{protocol: tcp, src: "10.0.0.1", dst: "10.0.0.2", dstPort: 8081}', '{steeredTo: "[::1]:8080"}')), []);
  assert.deepEqual(problems(STEERING, testDoc('web', '{protocol: tcp, src: "10.0.0.1", dst: "10.0.0.2"}', '{verdict: pass, steeredTo: "localhost:80"}')), [
    'test.yaml:17:25: error: spec.cases[0].expect.verdict: verdict applies to PacketFilter policies; "web" is a PortSteering policy: a case is a new tcp connection (or datagram) and expects steeredTo',
    'test.yaml:17:42: error: spec.cases[0].expect.steeredTo: "localhost:80" is neither "none" nor a listen address ("localhost" is not an IPv4 address; host names are not resolved)',
    'test.yaml:16:15: error: spec.cases[0].packet: missing dstPort: a PortSteering case needs the destination port of the connection',
  ]);
  assert.match(problems(STEERING, testDoc('web', '{protocol: icmp, src: "10.0.0.1", dst: "10.0.0.2"}', '{steeredTo: none}')).join('\n'), /packet\.protocol: ICMP is never steered/);
});
