/**
 * The compatibility suite every kernel of the matrix runs (npm run
 * test:kernels; natively on the host too): every shipped object through the
 * verifier, the feature probes, and each kind end to end with real traffic in
 * one process — PortSteering steering a real TCP and a real UDP connection,
 * PacketFilter on XDP, tc ingress and tc egress over a veth pair (below
 * Linux 6.6 tc runs through cls_bpf, for real: nothing is forced),
 * ConnectPolicy denying a real process's connects and UDP sends from a
 * cgroup with a sampled event, SyscallCounter finding exactly the execve
 * calls of a real process, Program running the shipped example XDP counter
 * (examples/xdp-counter) on a veth, counting real packets per tuple and
 * keeping its counts across an object upgrade — and nothing left behind. Lean on purpose: under emulation every process start
 * costs seconds; the full suite runs natively in `npm test`.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { Features, hasFeature, listPins, loadObject } from '../../src/bpf/index.js';
import { builtBpfObject, PACKAGE_ROOT } from '../../src/common/package-paths.js';
import { changes, computeStatuses, reconcileExitCode, reconcileOnce, type ReconcileOptions } from '../../src/manager.js';
import { NetnsSandbox } from '../../src/sandbox/netns-sandbox.js';
import { kernelTest } from '../kernel/harness.js';
import { assertNothingLeaked, kernelObjects } from '../kernel/leaks.js';
import { NET, tcpConnect, udpExchange, vethPair, writeFilter } from '../kernel/packet-filter-helpers.js';
import { PolicyDir, curl, filtersOf, startHttpServer } from '../kernel/reconcile-helpers.js';
import { TestCgroup, tryConnects, writeConnectPolicy } from '../kernel/connect-policy-helpers.js';
import { GuardEventStream } from '../../src/kinds/connect-policy/events.js';
import { eventually } from '../kernel/harness.js';
import { EXECS, SCRIPT, counterStatuses, inCgroup, keyed, writeCounter } from '../kernel/syscall-counter-helpers.js';
import { OBJECT as EXAMPLE_OBJECT, countsOf, writePolicy } from '../kernel/program-helpers.js';
import { sha256Of } from '../../src/kinds/program/object-file.js';

/** The objects the package ships (what the tool loads); build/bpf also holds test objects and variants. */
const SHIPPED = ['dispatcher.o', 'packet_filter.o', 'connect_policy.o', 'syscall_counter.o'];

async function converge(opts: ReconcileOptions): Promise<void> {
  const r = await reconcileOnce({ ...opts, reportDir: null });
  assert.equal(reconcileExitCode(r), 0, JSON.stringify([...(r.result?.failed.map((f) => `${f.action.object}: ${f.error.message}`) ?? []), ...r.plan.problems.map((p) => p.message)]));
  const again = await reconcileOnce({ ...opts, dryRun: true, reportDir: null });
  assert.deepEqual(changes(again.plan).map((a) => `${a.kind} ${a.object}: ${a.reason}`), [], 'a second plan is empty');
}

/** The recorded verifier figures (bpf/verifier-budget.json): a reviewed change updates them. */
interface VerifierBudget {
  /** A program may take at most this share of the kernel's 1,000,000-instruction limit. */
  maxShareOfLimit: number;
  /** …and grow at most this much over its recorded figure. */
  maxGrowth: number;
  /** Recorded verified instructions by kernel series (e.g. "6.1") and `object/program`. */
  kernels: Record<string, Record<string, number>>;
}

const VERIFIER_LIMIT = 1_000_000;

kernelTest('compat: every shipped object loads through this kernel\'s verifier within its budget; the feature probes answer', () => {
  const budget = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'bpf', 'verifier-budget.json'), 'utf8')) as VerifierBudget;
  const series = release().split('.').slice(0, 2).join('.');
  const recorded = budget.kernels[series];
  const over: string[] = [];
  for (const file of SHIPPED) {
    const t0 = performance.now();
    using obj = loadObject(builtBpfObject(file));
    const loadMs = performance.now() - t0;
    assert.ok(obj.programs.size > 0, `${file} has programs`);
    for (const [name, prog] of obj.programs) {
      const i = prog.info();
      const key = `${file}/${name}`;
      // One JSON line per program: the kernel matrix gathers them into the verifier report.
      console.log(`# verifier-report ${JSON.stringify({ kernel: release(), series, program: key, verifiedInsns: i.verifiedInsns, xlatedBytes: i.xlatedBytes, jitedBytes: i.jitedBytes, objectLoadMs: Math.round(loadMs) })}`);
      assert.ok(i.verifiedInsns > 0, `${key}: the kernel reports verified_insns`);
      if (i.verifiedInsns > VERIFIER_LIMIT * budget.maxShareOfLimit)
        over.push(`${key}: ${i.verifiedInsns} verified instructions, more than ${budget.maxShareOfLimit * 100} % of the kernel's ${VERIFIER_LIMIT}`);
      const was = recorded?.[key];
      if (was !== undefined && i.verifiedInsns > was * (1 + budget.maxGrowth))
        over.push(`${key}: ${i.verifiedInsns} verified instructions on ${series}, more than ${budget.maxGrowth * 100} % over the recorded ${was} (bpf/verifier-budget.json: raise it in a reviewed change)`);
      if (was === undefined) console.log(`# no recorded verifier figure for ${key} on ${series}`);
    }
  }
  assert.deepEqual(over, [], 'every program within its verifier budget');
  const report = Object.entries(Features).map(([key, f]) => `${key}=${hasFeature(f) ? 'yes' : `no (needs ${f.minimumKernel})`}`);
  console.log(`# features: ${report.join(' ')}`);
  for (const must of [Features.skLookup, Features.xdp, Features.lpmTrie, Features.sockmap, Features.ringbuf]) assert.ok(hasFeature(must), `${must.name} is supported`);
  assert.ok(existsSync(join(PACKAGE_ROOT, 'schemas')), 'the schemas ship');
});

const UDP_ECHO_PY = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(b"echo " + data, peer)
`;

const UDP_ASK_PY = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(float(sys.argv[2]))
s.sendto(b"hello", ("127.0.0.1", int(sys.argv[1])))
try:
    print(s.recv(2048).decode())
except socket.timeout:
    print("no answer")
`;

kernelTest('compat: PortSteering steers a real TCP and a real UDP connection, and removing the policies leaves nothing', async ({ pinDir, sandbox }) => {
  const before = kernelObjects();
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  const echo = sandbox.spawn(['python3', '-c', UDP_ECHO_PY, '5353']);
  await new Promise<void>((resolve, reject) => {
    echo.stdout!.once('data', () => resolve());
    echo.once('exit', () => reject(new Error('the UDP echo server exited')));
  });
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081, '9000-9001'], listen: '127.0.0.1:8080' });
  dir.writeSteering('dns', { netns: sandbox.path, protocol: 'udp', ports: [5354], listen: '127.0.0.1:5353' });
  const ask = (port: number) => sandbox.exec(['python3', '-c', UDP_ASK_PY, String(port), '3']).trim();
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 0, 'nothing on 8081 before');
  assert.equal(ask(5354), 'no answer', 'nothing on 5354 before');
  const opts = { root: pinDir, policyPaths: [dir.path] };
  await converge(opts);
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200, 'TCP 8081 reaches the server on 8080');
  assert.equal(curl(sandbox, '127.0.0.1', 9001), 200);
  assert.equal(ask(5354), 'echo hello', 'UDP 5354 reaches the echo server on 5353');
  for (const e of readdirSync(dir.path)) rmSync(join(dir.path, e));
  await converge(opts);
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 0);
  assert.deepEqual(listPins(pinDir), []);
  await assertNothingLeaked(before, pinDir, 'after PortSteering');
});

kernelTest('compat: PacketFilter filters real traffic on XDP, tc ingress and tc egress (cls_bpf below Linux 6.6), and removing it leaves nothing', async ({ pinDir, sandbox }) => {
  const before = kernelObjects();
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  using dir = new PolicyDir();
  writeFilter(dir, 'in-xdp', { netns: sandbox.path, interfaces: ['vb'], hook: 'xdp', rules: ['{name: block, protocol: tcp, dstPorts: [7001], action: drop}'] });
  writeFilter(dir, 'in-tc', { netns: sandbox.path, interfaces: ['vb'], hook: 'tc-ingress', rules: ['{name: block, protocol: tcp, dstPorts: [7002], action: drop}'] });
  writeFilter(dir, 'out-tc', { netns: sandbox.path, interfaces: ['vb'], hook: 'tc-egress', rules: ['{name: block, protocol: udp, dstPorts: [7003], action: drop}'] });
  const opts = { root: pinDir, policyPaths: [dir.path] };
  assert.equal(tcpConnect(peer, NET.local4, 7001), 'refused', 'passes before');
  await converge(opts);
  const methods = filtersOf(await reconcileOnce({ ...opts, dryRun: true, reportDir: null })).filters.map((f) => `${f.hook}:${f.link?.method}`).sort();
  const tc = hasFeature(Features.tcx) ? 'tcx' : 'cls_bpf';
  assert.deepEqual(methods, [`tc-egress:${tc}`, `tc-ingress:${tc}`, 'xdp:xdp']);
  console.log(`# filters attached: ${methods.join(' ')}`);
  assert.equal(tcpConnect(peer, NET.local4, 7001), 'dropped', 'XDP drops TCP 7001');
  assert.equal(tcpConnect(peer, NET.local4, 7002), 'dropped', 'tc ingress drops TCP 7002');
  assert.equal(tcpConnect(peer, NET.local4, 7004), 'refused', 'other ports pass');
  assert.deepEqual(await udpExchange(peer, sandbox, [{ dst: NET.peer4, port: 7003, count: 3 }, { dst: NET.peer4, port: 7005, count: 2 }]), { 7003: 0, 7005: 2 }, 'tc egress drops UDP 7003');
  for (const e of readdirSync(dir.path)) rmSync(join(dir.path, e));
  await converge(opts);
  assert.equal(tcpConnect(peer, NET.local4, 7001), 'refused', 'passes again');
  assert.deepEqual(listPins(pinDir), []);
  await assertNothingLeaked(before, pinDir, 'after PacketFilter');
});

kernelTest('compat: ConnectPolicy denies a real process\'s TCP connects and UDP sends from its cgroup (IPv4, IPv6, IPv4-mapped), audits, reports an event, and removing it leaves nothing', async ({ pinDir, sandbox }) => {
  const before = kernelObjects();
  await using cg = new TestCgroup('compat');
  using dir = new PolicyDir();
  writeConnectPolicy(dir, 'guard', {
    cgroup: cg.name,
    rules: [
      { name: 'no-7001', action: 'deny', protocol: 'tcp', ports: [7001] },
      { name: 'no-dns', action: 'deny', protocol: 'udp', ports: [53] },
      { name: 'audit-7002', action: 'deny', protocol: 'tcp', ports: [7002], mode: 'audit' },
    ],
    sampleRate: 1,
  });
  const opts = { root: pinDir, policyPaths: [dir.path], insecurePermissions: true };
  await converge(opts);
  using stream = GuardEventStream.open(pinDir);
  const attempts = [
    { op: 'tcp' as const, host: '127.0.0.1', port: 7001 },
    { op: 'tcp' as const, host: '::1', port: 7001 },
    { op: 'tcp' as const, host: '::ffff:127.0.0.1', port: 7001 },
    { op: 'udp-sendto' as const, host: '127.0.0.1', port: 53 },
    { op: 'udp-sendto' as const, host: '::1', port: 53 },
    { op: 'tcp' as const, host: '127.0.0.1', port: 7002 },
    { op: 'tcp' as const, host: '127.0.0.1', port: 7003 },
  ];
  const inside = tryConnects(sandbox, cg, attempts);
  assert.deepEqual(inside.results, ['EPERM', 'EPERM', 'EPERM', 'EPERM', 'EPERM', 'ECONNREFUSED', 'ECONNREFUSED']);
  assert.ok(!tryConnects(sandbox, undefined, attempts).results.includes('EPERM'), 'outside the cgroup nothing is denied');
  const events: string[] = [];
  await eventually(() => {
    events.push(...stream.poll().map((e) => `${e.verdict} ${e.hook} ${e.port} ${e.comm} ${e.pid === inside.pid}`));
    return events.length >= 6;
  }, 10_000);
  assert.deepEqual(events, [
    'deny connect4 7001 python3 true',
    'deny connect6 7001 python3 true',
    'deny connect6 7001 python3 true',
    'deny sendmsg4 53 python3 true',
    'deny sendmsg6 53 python3 true',
    'would-deny connect4 7002 python3 true',
  ]);
  stream.close();
  for (const e of readdirSync(dir.path)) rmSync(join(dir.path, e));
  await converge(opts);
  assert.deepEqual(tryConnects(sandbox, cg, attempts.slice(0, 1)).results, ['ECONNREFUSED']);
  assert.deepEqual(listPins(pinDir), []);
  await assertNothingLeaked(before, pinDir, 'after ConnectPolicy');
});

kernelTest('compat: SyscallCounter counts exactly the execve and getppid calls of a real process in a cgroup, by syscall and comm, and removing it leaves nothing', async ({ pinDir }) => {
  const before = kernelObjects();
  await using cg = new TestCgroup('compat-sc');
  using dir = new PolicyDir();
  writeCounter(dir, 'count', { syscalls: ['execve', 'getppid'], groupBy: ['syscall', 'comm'], cgroup: cg.name });
  const opts = { root: pinDir, policyPaths: [dir.path], insecurePermissions: true };
  await converge(opts);
  inCgroup(cg, SCRIPT);
  const s = (await counterStatuses(pinDir, dir)).get('count')!;
  assert.deepEqual(keyed(s.top), { 'execve sh': 1, 'execve python3': EXECS, 'getppid python3': 25 });
  for (const e of readdirSync(dir.path)) rmSync(join(dir.path, e));
  await converge(opts);
  assert.deepEqual(listPins(pinDir), []);
  await assertNothingLeaked(before, pinDir, 'after SyscallCounter');
});

kernelTest('compat: Program runs the example XDP counter on a veth, counts real packets per tuple, keeps the counts across an object upgrade, and removing it leaves nothing', async ({ pinDir, sandbox }) => {
  const before = kernelObjects();
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  using dir = new PolicyDir();
  const objects = [EXAMPLE_OBJECT, builtBpfObject('xdp_counter_variant.o')].map((path) => ({ path, sha: sha256Of(readFileSync(path)) }));
  const [base, variant] = objects as [(typeof objects)[0], (typeof objects)[0]];
  assert.notEqual(base.sha, variant.sha, 'the variant has other bytecode');
  writePolicy(dir, sandbox.path, base.path, base.sha);
  const opts = { root: pinDir, policyPaths: [dir.path] };
  await converge(opts);
  const counts = async () => countsOf(opts, await reconcileOnce({ ...opts, dryRun: true, reportDir: null }));
  const tuple = `${NET.peer4}:40001/17`;
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 7000, count: 3, sport: 40001 }]), { 7000: 3 }, 'the packets pass');
  assert.equal((await counts())[tuple]?.packets, 3, 'the XDP counter counted the 3 packets of the tuple');
  const status = async () => computeStatuses(await reconcileOnce({ ...opts, dryRun: true, reportDir: null }), true).find((x) => x.kind === 'Program')!;
  const first = await status();

  // An object with the same maps: one update, the counts kept.
  writePolicy(dir, sandbox.path, variant.path, variant.sha);
  const planned = await reconcileOnce({ ...opts, dryRun: true, reportDir: null });
  assert.deepEqual(changes(planned.plan).map((a) => `${a.kind} ${a.code}`), ['update ObjectChanged']);
  await converge(opts);
  const upgraded = await status();
  assert.notEqual(upgraded.programId, first.programId, 'a new program runs');
  assert.deepEqual((upgraded.links as { id: number }[]).map((l) => l.id), (first.links as { id: number }[]).map((l) => l.id), 'in the same link');
  assert.equal((await counts())[tuple]?.packets, 3, 'the counts survived the upgrade');
  await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 7000, count: 2, sport: 40001 }]);
  assert.equal((await counts())[tuple]?.packets, 5, 'the upgraded program keeps counting in the same map');

  for (const e of readdirSync(dir.path)) rmSync(join(dir.path, e));
  await converge(opts);
  assert.deepEqual(listPins(pinDir), []);
  await assertNothingLeaked(before, pinDir, 'after Program');
});
