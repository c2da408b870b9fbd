/**
 * `ebpf-policy test` as users run it, in a child process: the shipped
 * examples' PolicyTest documents pass (the PortSteering target, a server on
 * 127.0.0.1:8080, runs in the test's namespace, where the command runs too;
 * the ConnectPolicy cases are real connects from a throwaway cgroup);
 * a wrong expectation fails naming the case with the verdict and rule the
 * program gave; an unknown policy, a kind without test support, a packet
 * for a ConnectPolicy and a target that does not exist are errors; and a run
 * changes nothing live: the bpffs tree, the kernel's links and the cgroups
 * are the same before and after, and no program stays loaded. The engine
 * plans nothing for PolicyTest documents.
 */
import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KINDS, loadPolicies, reconcileOnce } from '../../src/manager.js';
import type { PolicyTestPolicy } from '../../src/policy/policy-test.js';
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import type { NetnsSandbox } from '../../src/sandbox/netns-sandbox.js';
import { cgroup2Mount } from '../../src/bpf/cgroup.js';
import { bpftoolIds, eventually, kernelTest } from './harness.js';
import { PolicyDir, startHttpServer } from './reconcile-helpers.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const POLICIES = fileURLToPath(new URL('../../../policies/', import.meta.url));

type Run = { status: number | null; stdout: string; stderr: string };

/**
 * The CLI in the sandbox's network namespace: "the namespace ebpf-policy runs in" is the sandbox's.
 * nsenter, not `ip netns exec`: that one mounts a fresh /sys, without the cgroup2 mount the ConnectPolicy cases need.
 */
function runIn(sandbox: NetnsSandbox, ...args: string[]): Run {
  const r = runBounded('nsenter', [`--net=${sandbox.path}`, '--', process.execPath, cli, ...args]);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function run(...args: string[]): Run {
  const r = runBounded(process.execPath, [cli, ...args]);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every path under /sys/fs/bpf (files and directories), sorted. */
function bpffsTree(dir = '/sys/fs/bpf'): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    out.push(path);
    if (statSync(path).isDirectory()) out.push(...bpffsTree(path));
  }
  return out.sort();
}

/** The cgroup directories directly under the cgroup2 mount, sorted (the test's throwaway cgroups are made there). */
function cgroupDirs(): string[] {
  const root = cgroup2Mount();
  return readdirSync(root)
    .filter((n) => statSync(join(root, n)).isDirectory())
    .sort();
}

/** A copy of the shipped examples with `edit` applied to one file's text. */
function examplesWith(dir: PolicyDir, file: string, edit: (text: string) => string): void {
  cpSync(POLICIES, dir.path, { recursive: true });
  dir.writeRaw(file, edit(readFileSync(join(POLICIES, file), 'utf8')));
}

kernelTest('ebpf-policy test: the shipped examples pass, wrong expectations fail naming the case, and nothing live changes', async ({ sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  const before = { tree: bpffsTree(), link: bpftoolIds('link'), prog: bpftoolIds('prog'), cgroups: cgroupDirs() };

  const ok = runIn(sandbox, 'test', '--policies', POLICIES);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /^edge-guard-cases \(.*edge-guard-tests\.yaml\): PacketFilter edge-guard$/m);
  assert.match(ok.stdout, /^ {2}PASS {2}telnet from outside is dropped$/m);
  assert.match(ok.stdout, /^legacy-http-cases \(.*legacy-http-tests\.yaml\): PortSteering legacy-http$/m);
  assert.match(ok.stdout, /^ {2}PASS {2}port 8081 reaches the server$/m);
  assert.match(ok.stdout, /^no-metadata-service-cases \(.*connect-policy-tests\.yaml\): ConnectPolicy no-metadata-service$/m);
  assert.match(ok.stdout, /^ {2}PASS {2}the metadata service is denied over tcp$/m);
  assert.match(ok.stdout, /^ {2}PASS {2}smtp is only audited$/m);
  assert.doesNotMatch(ok.stdout, /FAIL|ERROR/);
  assert.match(ok.stderr, /ebpf-policy test: 17 cases: 17 passed, 0 failed, 0 errors/);

  // Wrong expectations, one per kind: exit 1, the case named with what the program did.
  {
    using dir = new PolicyDir();
    examplesWith(dir, 'edge-guard-tests.yaml', (t) =>
      t.replace('expect: {verdict: pass, rule: count-dns}', 'expect: {verdict: drop, rule: count-dns}').replace('expect: {verdict: would-drop, rule: audit-smb}', 'expect: {verdict: drop, rule: audit-smb}'),
    );
    dir.writeRaw('legacy-http-tests.yaml', readFileSync(join(POLICIES, 'legacy-http-tests.yaml'), 'utf8').replace('dstPort: 9011}\n      expect: {steeredTo: none}', 'dstPort: 9011}\n      expect: {steeredTo: "127.0.0.1:8080"}'));
    dir.writeRaw(
      'connect-policy-tests.yaml',
      readFileSync(join(POLICIES, 'connect-policy-tests.yaml'), 'utf8')
        .replace('dstPort: 80}\n      expect: {verdict: deny, rule: block-imds}', 'dstPort: 80}\n      expect: {verdict: allow, rule: default}')
        .replace('expect: {verdict: would-deny, rule: audit-smtp}', 'expect: {verdict: deny, rule: audit-smtp}'),
    );
    const bad = runIn(sandbox, 'test', '--policies', dir.path, '--insecure-policy-perms');
    assert.equal(bad.status, 1, bad.stdout + bad.stderr);
    assert.match(bad.stdout, /^ {2}FAIL {2}dns passes and is counted: expected verdict drop, rule count-dns; the program gave verdict pass, rule count-dns$/m);
    assert.match(bad.stdout, /^ {2}FAIL {2}the port after the range is left to the regular lookup: expected steered to 127\.0\.0\.1:8080; the program gave steered to none$/m);
    assert.match(bad.stdout, /^ {2}FAIL {2}smb is audited, not dropped yet: expected verdict drop, rule audit-smb; the program gave verdict would-drop, rule audit-smb$/m, 'an audited drop is told apart from a drop');
    assert.match(bad.stdout, /^ {2}FAIL {2}the metadata service is denied over tcp: expected verdict allow, rule default; the program gave verdict deny, rule block-imds$/m);
    assert.match(bad.stdout, /^ {2}FAIL {2}smtp is only audited: expected verdict deny, rule audit-smtp; the program gave verdict would-deny, rule audit-smtp$/m, 'an audited deny is told apart from a deny');
    assert.match(bad.stdout, /^ {2}PASS {2}telnet from outside is dropped$/m, 'the other cases still pass');
    assert.match(bad.stdout, /^ {2}PASS {2}the metadata service is denied over udp and ipv6$/m, 'the other ConnectPolicy cases still pass');
    assert.match(bad.stderr, /17 cases: 12 passed, 5 failed, 0 errors/);
    const json = JSON.parse(runIn(sandbox, 'test', '--policies', dir.path, '--insecure-policy-perms', '--output', 'json').stdout) as {
      ok: boolean;
      tests: Array<{ test: string; results: Array<{ name: string; status: string; actual?: Record<string, string> }> }>;
    };
    assert.equal(json.ok, false);
    const dns = json.tests.find((t) => t.test === 'edge-guard-cases')!.results.find((c) => c.name === 'dns passes and is counted')!;
    assert.deepEqual([dns.status, dns.actual], ['fail', { verdict: 'pass', rule: 'count-dns' }]);
    const imds = json.tests.find((t) => t.test === 'no-metadata-service-cases')!.results.find((c) => c.name === 'the metadata service is denied over tcp')!;
    assert.deepEqual([imds.status, imds.actual], ['fail', { verdict: 'deny', rule: 'block-imds' }]);
  }

  // The target does not exist where the test runs: every case of that policy is an error naming it (exit 2).
  {
    using dir = new PolicyDir();
    examplesWith(dir, 'port-steering.yaml', (t) => t.replace('listen: "127.0.0.1:8080"', 'listen: "127.0.0.1:8099"'));
    dir.writeRaw('legacy-http-tests.yaml', readFileSync(join(POLICIES, 'legacy-http-tests.yaml'), 'utf8').replaceAll('127.0.0.1:8080', '127.0.0.1:8099'));
    const missing = runIn(sandbox, 'test', '--policies', dir.path, '--insecure-policy-perms');
    assert.equal(missing.status, 2, missing.stdout + missing.stderr);
    assert.match(missing.stdout, /^ {2}ERROR port 8081 reaches the server: the target 127\.0\.0\.1:8099 does not exist on this machine \(nothing listens on 127\.0\.0\.1:8099/m);
    assert.match(missing.stdout, /^ {2}PASS {2}telnet from outside is dropped$/m, 'the PacketFilter cases still run');
  }

  // An unknown policy: validate names the file, line and field; test refuses to run anything (exit 2).
  {
    using dir = new PolicyDir();
    examplesWith(dir, 'edge-guard-tests.yaml', (t) => t.replace('policy: edge-guard', 'policy: edge-gaurd'));
    const v = run('validate', '--policies', dir.path, '--insecure-policy-perms');
    assert.equal(v.status, 1, v.stdout + v.stderr);
    assert.match(v.stdout, /edge-guard-tests\.yaml:17:\d+: error: spec\.policy: unknown policy "edge-gaurd" in spec\.policy \(known policies: edge-guard, exec-open-connect, legacy-http, no-metadata-service; did you mean "edge-guard"\?\)/);
    const t = runIn(sandbox, 'test', '--policies', dir.path, '--insecure-policy-perms');
    assert.equal(t.status, 2, t.stdout + t.stderr);
    assert.match(t.stderr, /unknown policy "edge-gaurd"/);
    assert.match(t.stderr, /ebpf-policy test: error: the policies have errors/);
    assert.equal(t.stdout, '');
  }

  // A kind without test support: exit 2 naming the kind.
  {
    using dir = new PolicyDir();
    cpSync(join(POLICIES, 'syscall-counter.yaml'), join(dir.path, 'syscall-counter.yaml'));
    dir.writeRaw('counter-tests.yaml', 'apiVersion: ebpf-policy/v1\nkind: PolicyTest\nmetadata: {name: counter-cases}\nspec:\n  policy: exec-open-connect\n  cases:\n    - name: imds\n      connect: {protocol: tcp, dst: "169.254.169.254", dstPort: 80}\n      expect: {verdict: deny}\n');
    const t = runIn(sandbox, 'test', '--policies', dir.path, '--insecure-policy-perms');
    assert.equal(t.status, 2, t.stdout + t.stderr);
    assert.match(t.stdout, /ERROR ebpf-policy test does not support SyscallCounter policies yet \(supported: [A-Za-z, ]*ConnectPolicy/);
  }

  // A packet for a ConnectPolicy, and a src it does not use: validate says so, located; test runs nothing (exit 2).
  {
    using dir = new PolicyDir();
    cpSync(join(POLICIES, 'connect-policy.yaml'), join(dir.path, 'connect-policy.yaml'));
    dir.writeRaw(
      'guard-tests.yaml',
      'apiVersion: ebpf-policy/v1\nkind: PolicyTest\nmetadata: {name: guard-cases}\nspec:\n  policy: no-metadata-service\n  cases:\n    - name: imds\n      packet: {protocol: tcp, src: "10.0.0.1", dst: "169.254.169.254", dstPort: 80}\n      expect: {verdict: deny}\n    - name: with src\n      connect: {protocol: tcp, src: "10.0.0.1", dst: "169.254.169.254", dstPort: 80}\n      expect: {verdict: deny}\n',
    );
    const v = run('validate', '--policies', dir.path, '--insecure-policy-perms');
    assert.equal(v.status, 1, v.stdout + v.stderr);
    assert.match(v.stdout, /guard-tests\.yaml:8:\d+: error: spec\.cases\[0\]\.packet: packet applies to PacketFilter and PortSteering policies; "no-metadata-service" is a ConnectPolicy/);
    assert.match(v.stdout, /guard-tests\.yaml:11:\d+: warning: spec\.cases\[1\]\.connect\.src: src is not used/);
    const t = runIn(sandbox, 'test', '--policies', dir.path, '--insecure-policy-perms');
    assert.equal(t.status, 2, t.stdout + t.stderr);
    assert.equal(t.stdout, '');
  }

  assert.deepEqual(bpffsTree(), before.tree, 'no pin appeared or vanished under /sys/fs/bpf');
  assert.deepEqual([...bpftoolIds('link')].sort(), [...before.link].sort(), 'no link appeared or vanished');
  assert.deepEqual(cgroupDirs(), before.cgroups, 'no cgroup appeared or vanished (the throwaway cgroups are removed)');
  const left = () => [...bpftoolIds('prog')].filter((id) => !before.prog.has(id));
  assert.ok(await eventually(() => left().length === 0, 10_000), `no program stays loaded: ${left().join(', ')}`);
});

kernelTest('the engine plans nothing for PolicyTest documents', async ({ pinDir, sandbox }) => {
  using dir = new PolicyDir();
  dir.writeRaw('pf.yaml', readFileSync(join(POLICIES, 'packet-filter.yaml'), 'utf8').replace('interfaces: ["lo", "veth*"]', `netns: ${sandbox.path}\n  interfaces: ["lo"]`));
  cpSync(join(POLICIES, 'edge-guard-tests.yaml'), join(dir.path, 'edge-guard-tests.yaml'));
  const r = await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, reportDir: null, insecurePermissions: true });
  assert.deepEqual(r.load.problems, []);
  assert.ok(r.load.policies.some((p) => p.kind === 'PolicyTest'), 'the PolicyTest document is loaded');
  assert.ok(r.plan.actions.length > 0, 'the filter is planned');
  assert.deepEqual(r.plan.problems, []);
  assert.deepEqual(
    r.plan.actions.filter((a) => a.owner !== 'PacketFilter' || a.policy === 'edge-guard-cases').map((a) => a.object),
    [],
    'every action is the PacketFilter policy\'s; none is the PolicyTest\'s',
  );
});

kernelTest('the PacketFilter, PortSteering and ConnectPolicy runners, in process: results per case, every fd closed (checked by the harness)', async ({ sandbox }) => {
  using dir = new PolicyDir();
  cpSync(POLICIES, dir.path, { recursive: true });
  dir.writeRaw('port-steering.yaml', readFileSync(join(POLICIES, 'port-steering.yaml'), 'utf8').replace('protocol: tcp', `netns: ${sandbox.path}\n  protocol: tcp`));
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  const load = loadPolicies({ paths: [dir.path], insecurePermissions: true });
  assert.deepEqual(load.problems, []);
  const tests = load.policies.filter((p): p is PolicyTestPolicy => p.kind === 'PolicyTest');
  assert.equal(tests.length, 3);
  for (const t of tests) {
    const target = load.policies.find((p) => p.name === t.policy)!;
    const results = KINDS.find((k) => k.kind === target.kind)!.policyTest!.run(target, t.cases, { options: {} });
    assert.deepEqual(
      results.map((r) => [r.name, r.status]),
      t.cases.map((c) => [c.name, 'pass']),
      JSON.stringify(results),
    );
  }
});
