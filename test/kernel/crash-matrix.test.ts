/**
 * The crash matrix: for each kind, transitions whose plans have many
 * kernel-changing steps (building from nothing, changing policies with a
 * program upgrade, removing everything) are interrupted by SIGKILL right
 * after step 1, 2, …, N of the apply and at each named point inside
 * multi-step operations (EBPF_POLICY_FAILPOINT). Program runs the shipped
 * XDP counter (examples/xdp-counter) through an upgrade and a replace. After every crash a normal
 * `reconcile --once` must exit 0, a plan must be empty, traffic must behave
 * as the policies say, and bpftool must show no program, map or link of ours
 * that no pin reaches. The daemon is also killed in the middle of a pass and
 * restarted.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { listPins, removePinTree } from '../../src/bpf/bpffs.js';
import { FAILPOINT_ENV, type FailpointName } from '../../src/common/failpoint.js';
import { GUARD_VARIANT_OBJECT } from '../../src/kinds/connect-policy/layout.js';
import { COUNTER_VARIANT_OBJECT } from '../../src/kinds/syscall-counter/layout.js';
import { FILTER_VARIANT_OBJECT } from '../../src/kinds/packet-filter/layout.js';
import { DISPATCHER_VARIANT_OBJECT } from '../../src/kinds/port-steering/layout.js';
import { changes, KINDS, reconcileExitCode, reconcileOnce } from '../../src/manager.js';
import { childClosed, runBounded } from '../../src/sandbox/bounded-wait.js';
import { NetnsSandbox } from '../../src/sandbox/netns-sandbox.js';
import { TestCgroup, tryConnects, writeConnectPolicy } from './connect-policy-helpers.js';
import { DaemonProcess } from './daemon-helpers.js';
import { EXECS, SCRIPT, counterStatuses, inCgroup, keyed, writeCounter } from './syscall-counter-helpers.js';
import { eventually, kernelTest } from './harness.js';
import { assertNothingLeaked, kernelObjects } from './leaks.js';
import { NET, tcpConnect, udpExchange, vethPair, writeFilter } from './packet-filter-helpers.js';
import { OBJECT, compileVariant, countsOf, sha256, writePolicy } from './program-helpers.js';
import { PolicyDir, curl, startHttpServer } from './reconcile-helpers.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
/** Every crash point run in this file, by kind. */
const ran: Record<string, number> = {};
/** The issue's floor: at least this many crash points over all kinds. */
const MIN_CRASH_POINTS = 50;

/** One change of the policies, crashed at every step. */
interface Transition {
  kind: string;
  name: string;
  /** Writes the policy files of the start state (after emptying the directory). */
  from(dir: PolicyDir): void;
  /** Writes the policy files of the end state. */
  to(dir: PolicyDir): void;
  /** --kind-option values of the start and end states (e.g. the upgraded program). */
  fromOptions?: string[];
  toOptions?: string[];
  /** Named failpoints the transition must pass through. */
  named: FailpointName[];
  /** Asserts the traffic of the end state. */
  check(): void | Promise<void>;
  /** Waits until the kernel let go of what the reset unpinned (e.g. an XDP link is detached in deferred work). */
  settle?(): Promise<void>;
}

function kindOptions(values: string[] = []): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const v of values) {
    const [k, rest] = v.split(/\.(.*)/s) as [string, string];
    const [key, value] = rest.split(/=(.*)/s) as [string, string];
    (out[k] ??= {})[key] = value;
  }
  return out;
}

function emptyDir(dir: PolicyDir): void {
  for (const e of readdirSync(dir.path)) rmSync(join(dir.path, e), { recursive: true, force: true });
}

/** Runs `transition` once per crash point; returns how many crash points it ran. */
async function crashEverywhere(t: Transition, pinDir: string, dir: PolicyDir): Promise<number> {
  const before = kernelObjects();
  const points: string[] = [];
  for (const n of t.named) points.push(`${n}:1`);
  for (let step = 1; step <= 60; step++) points.push(`apply-step:${step}`);
  let crashes = 0;
  for (const point of points) {
    // The start state, from nothing.
    for (const k of KINDS) k.teardown?.(pinDir);
    removePinTree(pinDir);
    await t.settle?.();
    emptyDir(dir);
    t.from(dir);
    const start = await reconcileOnce({ root: pinDir, policyPaths: [dir.path], kindOptions: kindOptions(t.fromOptions), reportDir: null });
    assert.equal(
      reconcileExitCode(start),
      0,
      `${t.name}: the start state converges: ${JSON.stringify([...(start.result?.failed.map((f) => f.error.message) ?? []), ...start.plan.problems.map((p) => p.message)])}`,
    );

    // The transition, killed at the point.
    emptyDir(dir);
    t.to(dir);
    const opts = (t.toOptions ?? []).flatMap((o) => ['--kind-option', o]);
    const args = ['reconcile', '--once', '--bpffs-root', pinDir, '--policies', dir.path, ...opts];
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, [FAILPOINT_ENV]: point } });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const end = await childClosed(child, `${t.name} with ${FAILPOINT_ENV}=${point}`, 60_000);
    if (end.signal !== 'SIGKILL') {
      assert.ok(point.startsWith('apply-step:'), `${t.name}: the named point ${point} was never reached (exit ${end.code}): ${stderr}`);
      assert.equal(end.code, 0, `${t.name}: the run with ${point} neither crashed nor converged: ${stderr}`);
      break; // the apply has fewer steps than this
    }
    crashes++;
    const where = `${t.kind} ${t.name}, killed at ${point}`;

    // Recovery: a normal run converges, a plan is then empty.
    const rerun = runBounded(process.execPath, [cli, ...args], {}, 60_000);
    assert.equal(rerun.status, 0, `${where}: reconcile --once after the crash\n${rerun.stdout}${rerun.stderr}`);
    const plan = await reconcileOnce({ root: pinDir, policyPaths: [dir.path], kindOptions: kindOptions(t.toOptions), dryRun: true, reportDir: null });
    assert.deepEqual(changes(plan.plan).map((a) => `${a.kind} ${a.object}: ${a.reason}`), [], `${where}: the plan after the rerun is empty`);
    await t.check();
    await assertNothingLeaked(before, pinDir, where);
  }
  assert.ok(crashes > t.named.length, `${t.name}: the apply had kernel-changing steps to crash after (${crashes} crashes)`);
  ran[t.kind] = (ran[t.kind] ?? 0) + crashes;
  console.log(`# crash matrix: ${t.kind} ${t.name}: ${crashes} crash points`);
  // Leave nothing for the harness.
  emptyDir(dir);
  assert.equal(reconcileExitCode(await reconcileOnce({ root: pinDir, policyPaths: [dir.path], reportDir: null })), 0);
  return crashes;
}

// ---- PortSteering: a server on 127.0.0.1:8080 in the sandbox; policies give it extra ports.

function steeringA(dir: PolicyDir, netns: string): void {
  dir.writeSteering('p1', { netns, ports: [8081, 8082], listen: '127.0.0.1:8080' });
  dir.writeSteering('p2', { netns, ports: ['9001-9003'], listen: '127.0.0.1:8080' });
}

function steeringB(dir: PolicyDir, netns: string): void {
  dir.writeSteering('p1', { netns, ports: [8081, 8083], listen: '127.0.0.1:8080' });
  dir.writeSteering('p4', { netns, ports: ['9100-9102'], listen: '127.0.0.1:8080' });
}

function expectPorts(sandbox: NetnsSandbox, open: number[], closed: number[]): void {
  for (const p of open) assert.equal(curl(sandbox, '127.0.0.1', p), 200, `port ${p} reaches the server`);
  for (const p of closed) assert.equal(curl(sandbox, '127.0.0.1', p), 0, `port ${p} is refused`);
}

const SECOND = 1000;
const LONG = 900 * SECOND;

kernelTest(
  'crash matrix, PortSteering: building from nothing, a change with a dispatcher upgrade, removing everything',
  async ({ pinDir, sandbox }) => {
    await startHttpServer(sandbox, '127.0.0.1', 8080);
    using dir = new PolicyDir();
    const ns = sandbox.path;
    const upgrade = [`PortSteering.objectPath=${DISPATCHER_VARIANT_OBJECT}`];
    const transitions: Transition[] = [
      { kind: 'PortSteering', name: 'nothing -> A', from: () => undefined, to: (d) => steeringA(d, ns), named: ['create-after-maps'], check: () => expectPorts(sandbox, [8081, 8082, 9001, 9003], [8083, 9100]) },
      {
        kind: 'PortSteering',
        name: 'A -> B with a dispatcher upgrade',
        from: (d) => steeringA(d, ns),
        to: (d) => steeringB(d, ns),
        toOptions: upgrade,
        named: ['swap-after-pin-next', 'swap-after-update'],
        check: () => expectPorts(sandbox, [8081, 8083, 9100, 9102], [8082, 9001]),
      },
      {
        kind: 'PortSteering',
        name: 'B -> A with a dispatcher downgrade',
        from: (d) => steeringB(d, ns),
        fromOptions: upgrade,
        to: (d) => steeringA(d, ns),
        named: ['swap-after-pin-next', 'swap-after-update'],
        check: () => expectPorts(sandbox, [8081, 8082, 9001, 9003], [8083, 9100]),
      },
      { kind: 'PortSteering', name: 'A -> nothing', from: (d) => steeringA(d, ns), to: () => undefined, named: [], check: () => expectPorts(sandbox, [], [8081, 8082, 9001]) },
    ];
    for (const t of transitions) await crashEverywhere(t, pinDir, dir);
  },
  LONG,
);

// ---- PacketFilter: a veth pair vb (sandbox) / va (peer) carries the traffic; vc / vd only holds filters.

function filterA(dir: PolicyDir, netns: string): void {
  writeFilter(dir, 'f1', { netns, interfaces: ['vb'], hook: 'xdp', rules: ['{name: block, protocol: tcp, dstPorts: [7001], action: drop}'] });
  writeFilter(dir, 'f2', { netns, interfaces: ['vb'], hook: 'tc-ingress', rules: ['{name: block, protocol: tcp, dstPorts: [7002], action: drop}'] });
  writeFilter(dir, 'f3', { netns, interfaces: ['vb'], hook: 'tc-egress', rules: ['{name: block, protocol: udp, dstPorts: [9], action: drop}'] });
}

function filterB(dir: PolicyDir, netns: string): void {
  writeFilter(dir, 'f1', { netns, interfaces: ['vb'], hook: 'xdp', rules: ['{name: block, protocol: tcp, dstPorts: [7003], action: drop}'] });
  writeFilter(dir, 'f2', { netns, interfaces: ['vb'], hook: 'tc-ingress', rules: ['{name: block, protocol: tcp, dstPorts: [7004], action: drop}'] });
  writeFilter(dir, 'f4', { netns, interfaces: ['vc'], hook: 'xdp', rules: ['{name: block, protocol: tcp, dstPorts: [7001], action: drop}'] });
  writeFilter(dir, 'f5', { netns, interfaces: ['vc'], hook: 'tc-ingress', rules: ['{name: block, protocol: udp, dstPorts: [53], action: drop}'] });
  writeFilter(dir, 'f6', { netns, interfaces: ['vc'], hook: 'tc-egress', rules: ['{name: block, protocol: udp, dstPorts: [9], action: drop}'] });
}

/** Waits until no interface of the sandbox runs an XDP program (a link's detach after its last reference went is deferred). */
async function noXdp(sandbox: NetnsSandbox): Promise<void> {
  const attached = () => (JSON.parse(runBounded('ip', ['-n', sandbox.name, '-j', 'link', 'show']).stdout) as Array<{ ifname: string; xdp?: unknown }>).filter((l) => l.xdp).map((l) => l.ifname);
  assert.ok(await eventually(() => attached().length === 0, 5000), `XDP programs stay attached after their links were unpinned: ${attached().join(', ')}`);
}

function expectTcp(peer: NetnsSandbox, dropped: number[], refused: number[]): void {
  for (const p of dropped) assert.equal(tcpConnect(peer, NET.local4, p), 'dropped', `TCP port ${p} is dropped`);
  for (const p of refused) assert.equal(tcpConnect(peer, NET.local4, p), 'refused', `TCP port ${p} passes (and is refused: nothing listens)`);
}

kernelTest(
  'crash matrix, PacketFilter: building three hooks from nothing, rule changes with a program upgrade and new filters, removing everything',
  async ({ pinDir, sandbox }) => {
    await using peer = NetnsSandbox.create('peer');
    vethPair(sandbox, peer);
    runBounded('ip', ['-n', sandbox.name, 'link', 'add', 'vc', 'type', 'veth', 'peer', 'name', 'vd', 'netns', peer.name]);
    runBounded('ip', ['-n', sandbox.name, 'link', 'set', 'vc', 'up']);
    runBounded('ip', ['-n', peer.name, 'link', 'set', 'vd', 'up']);
    using dir = new PolicyDir();
    const ns = sandbox.path;
    const upgrade = [`PacketFilter.objectPath=${FILTER_VARIANT_OBJECT}`];
    const settle = () => noXdp(sandbox);
    const transitions: Transition[] = [
      { kind: 'PacketFilter', name: 'nothing -> A', from: () => undefined, to: (d) => filterA(d, ns), named: ['create-after-maps', 'rules-after-generation'], check: () => expectTcp(peer, [7001, 7002], [7003]), settle },
      {
        kind: 'PacketFilter',
        name: 'A -> B with a program upgrade',
        from: (d) => filterA(d, ns),
        to: (d) => filterB(d, ns),
        toOptions: upgrade,
        named: ['swap-after-pin-next', 'swap-after-update', 'rules-after-generation', 'create-after-maps'],
        check: () => expectTcp(peer, [7003, 7004], [7001, 7002]),
        settle,
      },
      { kind: 'PacketFilter', name: 'A -> nothing', from: (d) => filterA(d, ns), to: () => undefined, named: [], check: () => expectTcp(peer, [], [7001, 7002]), settle },
    ];
    for (const t of transitions) await crashEverywhere(t, pinDir, dir);
  },
  LONG,
);

// ---- ConnectPolicy: two throwaway cgroups; a client in each tries TCP ports on loopback (EPERM: denied, ECONNREFUSED: allowed).

function guardsA(dir: PolicyDir, one: TestCgroup, two: TestCgroup): void {
  writeConnectPolicy(dir, 'g1', { cgroup: one.name, rules: [{ name: 'no-7001', action: 'deny', protocol: 'tcp', ports: [7001] }] });
  writeConnectPolicy(dir, 'g2', { cgroup: one.path, rules: [{ name: 'no-7002', action: 'deny', protocol: 'tcp', destinations: ['127.0.0.0/8'], ports: [7002] }] });
  writeConnectPolicy(dir, 'g3', { cgroup: two.name, defaultAction: 'deny', rules: [{ name: 'ok-7003', action: 'allow', protocol: 'tcp', ports: [7003] }] });
}

function guardsB(dir: PolicyDir, one: TestCgroup, two: TestCgroup): void {
  writeConnectPolicy(dir, 'g1', { cgroup: one.name, rules: [{ name: 'no-7001', action: 'deny', protocol: 'tcp', ports: [7001, 7004] }] });
  writeConnectPolicy(dir, 'g3', { cgroup: two.name, rules: [{ name: 'no-7003', action: 'deny', protocol: 'tcp', ports: [7003] }] });
  writeConnectPolicy(dir, 'g4', { cgroup: two.name, mode: 'audit', rules: [{ name: 'no-7005', action: 'deny', protocol: 'tcp', ports: [7005] }] });
}

function expectConnects(sandbox: NetnsSandbox, cg: TestCgroup, denied: number[], allowed: number[]): void {
  const ports = [...denied, ...allowed];
  const got = tryConnects(sandbox, cg, ports.map((port) => ({ op: 'tcp' as const, host: '127.0.0.1', port }))).results;
  assert.deepEqual(got, [...denied.map(() => 'EPERM'), ...allowed.map(() => 'ECONNREFUSED')], `from ${cg.name}: ${denied.join(',')} denied, ${allowed.join(',')} allowed`);
}

kernelTest(
  'crash matrix, ConnectPolicy: guarding two cgroups from nothing, rule changes and policies moving with a program upgrade, removing everything',
  async ({ pinDir, sandbox }) => {
    await using one = new TestCgroup('one');
    await using two = new TestCgroup('two');
    using dir = new PolicyDir();
    const upgrade = [`ConnectPolicy.objectPath=${GUARD_VARIANT_OBJECT}`];
    const checkA = () => {
      expectConnects(sandbox, one, [7001, 7002], [7003, 7004]);
      expectConnects(sandbox, two, [7001, 7002, 7004], [7003]);
    };
    const transitions: Transition[] = [
      { kind: 'ConnectPolicy', name: 'nothing -> A', from: () => undefined, to: (d) => guardsA(d, one, two), named: ['create-after-maps', 'rules-after-generation'], check: checkA },
      {
        kind: 'ConnectPolicy',
        name: 'A -> B with a program upgrade',
        from: (d) => guardsA(d, one, two),
        to: (d) => guardsB(d, one, two),
        toOptions: upgrade,
        named: ['swap-after-pin-next', 'swap-after-update', 'rules-after-generation'],
        check: () => {
          expectConnects(sandbox, one, [7001, 7004], [7002, 7003]);
          expectConnects(sandbox, two, [7003], [7001, 7005]);
        },
      },
      { kind: 'ConnectPolicy', name: 'A -> nothing', from: (d) => guardsA(d, one, two), to: () => undefined, named: [], check: () => expectConnects(sandbox, two, [], [7001, 7004]) },
    ];
    for (const t of transitions) await crashEverywhere(t, pinDir, dir);
  },
  LONG,
);

// ---- SyscallCounter: two throwaway cgroups; a real process in one of them makes a known number of calls.

function countersA(dir: PolicyDir, one: TestCgroup): void {
  writeCounter(dir, 'c1', { syscalls: ['execve'], groupBy: ['syscall', 'comm'], cgroup: one.name });
  writeCounter(dir, 'c2', { syscalls: ['getppid'], cgroup: one.name });
}

function countersB(dir: PolicyDir, one: TestCgroup, two: TestCgroup): void {
  writeCounter(dir, 'c1', { syscalls: ['execve', 'getppid'], groupBy: ['syscall', 'comm'], cgroup: one.name });
  writeCounter(dir, 'c3', { syscalls: ['*'], cgroup: two.name, maxKeys: 512 });
}

/** Runs SCRIPT in `cg` and checks what each named policy counted meanwhile (by key). */
async function expectCounted(pinDir: string, dir: PolicyDir, cg: TestCgroup, want: Record<string, Record<string, number>>): Promise<void> {
  const before = await counterStatuses(pinDir, dir);
  inCgroup(cg, SCRIPT);
  const after = await counterStatuses(pinDir, dir);
  for (const [policy, keys] of Object.entries(want)) {
    const was = keyed(before.get(policy)?.top ?? []);
    const now = keyed(after.get(policy)?.top ?? []);
    for (const [key, n] of Object.entries(keys)) assert.equal((now[key] ?? 0) - (was[key] ?? 0), n, `${policy} counted ${n} of ${key} from ${cg.name}`);
  }
}

kernelTest(
  'crash matrix, SyscallCounter: counting from nothing, an edit, a removal and a new policy with a program upgrade, removing everything',
  async ({ pinDir }) => {
    await using one = new TestCgroup('one');
    await using two = new TestCgroup('two');
    using dir = new PolicyDir();
    const upgrade = [`SyscallCounter.objectPath=${COUNTER_VARIANT_OBJECT}`];
    const transitions: Transition[] = [
      {
        kind: 'SyscallCounter',
        name: 'nothing -> A',
        from: () => undefined,
        to: (d) => countersA(d, one),
        named: ['create-after-maps', 'rules-after-generation'],
        check: () => expectCounted(pinDir, dir, one, { c1: { 'execve sh': 1, 'execve python3': EXECS }, c2: { getppid: 25 } }),
      },
      {
        kind: 'SyscallCounter',
        name: 'A -> B with a program upgrade',
        from: (d) => countersA(d, one),
        to: (d) => countersB(d, one, two),
        toOptions: upgrade,
        named: ['swap-after-pin-next', 'swap-after-update', 'rules-after-generation'],
        check: async () => {
          await expectCounted(pinDir, dir, one, { c1: { 'getppid python3': 25, 'execve python3': EXECS } });
          await expectCounted(pinDir, dir, two, { c3: { getppid: 25, execve: EXECS + 1 }, c1: { 'getppid python3': 0 } });
        },
      },
      { kind: 'SyscallCounter', name: 'A -> nothing', from: (d) => countersA(d, one), to: () => undefined, named: [], check: () => undefined },
    ];
    for (const t of transitions) await crashEverywhere(t, pinDir, dir);
  },
  LONG,
);

// ---- Program: the example XDP counter on vb (sandbox), packets from the peer (va); its objects live outside the policy directory.

kernelTest(
  'crash matrix, Program: the example XDP counter from nothing, an upgrade keeping its maps, a replace with other maps, removing everything',
  async ({ pinDir, sandbox }) => {
    await using peer = NetnsSandbox.create('peer');
    vethPair(sandbox, peer);
    // A second interface the counter also attaches to: more steps to crash after.
    runBounded('ip', ['-n', sandbox.name, 'link', 'add', 'vc', 'type', 'veth', 'peer', 'name', 'vd', 'netns', peer.name]);
    runBounded('ip', ['-n', sandbox.name, 'link', 'set', 'vc', 'up']);
    runBounded('ip', ['-n', peer.name, 'link', 'set', 'vd', 'up']);
    using dir = new PolicyDir();
    const objects = mkdtempSync(join(tmpdir(), 'ebpf-policy-crash-program-'));
    try {
      const base = { path: OBJECT, sha: sha256(OBJECT) };
      const variant = { path: join(objects, 'variant.o'), sha: '' };
      variant.sha = compileVariant(variant.path, ['-DVARIANT=1']);
      const smaller = { path: join(objects, 'smaller.o'), sha: '' };
      smaller.sha = compileVariant(smaller.path, ['-DCOUNTS_MAX_ENTRIES=1024', '-DVARIANT=1']);
      const ns = sandbox.path;
      const policy =
        (o: { path: string; sha: string }, countsEntry = false) =>
        (d: PolicyDir) =>
          void writePolicy(d, ns, o.path, o.sha, { interfaces: ['vb', 'vc'], countsEntry });
      // A fresh source port per check: the tuple's count is exactly what this check sent.
      let sport = 41000;
      const counted = async () => {
        const port = sport++;
        assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 7000, count: 3, sport: port }]), { 7000: 3 }, 'the packets pass');
        const counts = countsOf({ root: pinDir, policyPaths: [dir.path] }, await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, reportDir: null }));
        assert.equal(counts[`${NET.peer4}:${port}/17`]?.packets, 3, `the XDP counter counted the 3 packets from port ${port}: ${JSON.stringify(counts)}`);
      };
      const uncounted = async () => {
        await noXdp(sandbox);
        assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 7000, count: 2, sport: sport++ }]), { 7000: 2 }, 'packets pass without the counter');
      };
      const settle = () => noXdp(sandbox);
      const transitions: Transition[] = [
        { kind: 'Program', name: 'nothing -> A', from: () => undefined, to: policy(base), named: ['create-after-maps'], check: counted, settle },
        { kind: 'Program', name: 'A -> A with an upgrade (same maps) and a new declared entry', from: policy(base), to: policy(variant, true), named: ['swap-after-pin-next', 'swap-after-update'], check: counted, settle },
        { kind: 'Program', name: 'A -> B, a replace (other maps)', from: policy(variant, true), to: policy(smaller), named: ['create-after-maps'], check: counted, settle },
        { kind: 'Program', name: 'A -> nothing', from: policy(base), to: () => undefined, named: [], check: uncounted, settle },
      ];
      for (const t of transitions) await crashEverywhere(t, pinDir, dir);
    } finally {
      rmSync(objects, { recursive: true, force: true });
    }
  },
  LONG,
);

kernelTest(
  'the daemon killed in the middle of a pass is restarted and converges with nothing leaked',
  async ({ pinDir, sandbox }) => {
    await startHttpServer(sandbox, '127.0.0.1', 8080);
    using dir = new PolicyDir();
    const before = kernelObjects();
    steeringA(dir, sandbox.path);
    const crashed = DaemonProcess.start(sandbox, pinDir, dir.path, [], { [FAILPOINT_ENV]: 'apply-step:3' });
    try {
      const end = await crashed.exit(30_000);
      assert.equal(end.signal, 'SIGKILL', `the daemon was killed by the failpoint in its first pass\n${crashed.dump()}`);
      assert.ok(!crashed.lines.some((l) => l.msg === 'reconcile pass'), 'it never finished a pass');
    } finally {
      await crashed.kill();
    }
    ran.daemon = 1;
    const d = DaemonProcess.start(sandbox, pinDir, dir.path);
    try {
      const pass = await d.nextPass();
      assert.equal(pass.failed, 0, d.dump());
      assert.equal(pass.ready, 2, d.dump());
      expectPorts(sandbox, [8081, 8082, 9001], [8083]);
      const plan = await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, reportDir: null });
      assert.deepEqual(changes(plan.plan), []);
      await assertNothingLeaked(before, pinDir, 'after the daemon restart');
      emptyDir(dir);
      assert.ok(await eventually(() => listPins(pinDir).length === 0, 5000), d.dump());
      assert.equal(await d.stop(), 0, d.dump());
    } finally {
      await d.kill();
    }
  },
  120 * SECOND,
);

after(() => {
  const total = (ran.PortSteering ?? 0) + (ran.PacketFilter ?? 0) + (ran.ConnectPolicy ?? 0) + (ran.SyscallCounter ?? 0) + (ran.Program ?? 0);
  console.log(`# crash matrix: ${total} crash points over the kinds (${Object.entries(ran).map(([k, n]) => `${k} ${n}`).join(', ')})`);
  if (ran.PortSteering !== undefined && ran.PacketFilter !== undefined)
    assert.ok(total >= MIN_CRASH_POINTS, `the crash matrix ran ${total} crash points, fewer than ${MIN_CRASH_POINTS}`);
});
