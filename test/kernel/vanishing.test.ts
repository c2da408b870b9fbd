/**
 * Resources that vanish under a running daemon: a steered network namespace
 * (its dispatcher becomes garbage and is collected, with a log line), an
 * interface deleted and created again with the same name (the filter follows
 * the new ifindex), bpffs unmounted (a clear error; the daemon keeps running
 * and recovers when it is back), the policy directory deleted (everything is
 * kept) and created again.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listPins } from '../../src/bpf/bpffs.js';
import { reconcileOnce, changes } from '../../src/manager.js';
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import { NetnsSandbox } from '../../src/sandbox/netns-sandbox.js';
import { DaemonProcess, httpGet } from './daemon-helpers.js';
import { eventually, kernelTest } from './harness.js';
import { assertNothingLeaked, kernelObjects } from './leaks.js';
import { NET, ifindexIn, tcpConnect, vethPair, writeFilter } from './packet-filter-helpers.js';
import { PolicyDir, curl, filtersOf, startHttpServer } from './reconcile-helpers.js';

const FAST = ['--resync-interval', '2s', '--drift-probe-interval', '200ms'];

async function stopClean(d: DaemonProcess, dir: PolicyDir, pinDir: string): Promise<void> {
  for (const e of readdirSync(dir.path)) rmSync(join(dir.path, e), { recursive: true, force: true });
  assert.ok(await eventually(() => listPins(pinDir).length === 0, 5000), `the daemon did not remove its pins: ${listPins(pinDir).join(', ')}\n${d.dump()}`);
  assert.equal(await d.stop(), 0, d.dump());
}

kernelTest('a steered network namespace that goes away: its dispatcher is collected, with a log line; the other namespace keeps steering', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  const other = NetnsSandbox.create('gone');
  try {
    await startHttpServer(other, '127.0.0.1', 8080);
    using dir = new PolicyDir();
    dir.writeSteering('stays', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
    dir.writeSteering('goes', { netns: other.path, ports: [8082], listen: '127.0.0.1:8080' });
    const d = DaemonProcess.start(sandbox, pinDir, dir.path, FAST);
    try {
      assert.equal((await d.nextPass()).ready, 2, d.dump());
      assert.equal(curl(other, '127.0.0.1', 8082), 200);
      const dispatchers = () => readdirSync(join(pinDir, 'netns'));
      assert.equal(dispatchers().length, 2);
      const mark = d.lines.length;
      await other.destroy(); // its processes die and its file /run/netns/NAME is deleted: the namespace is gone
      const gc = await d.waitFor(
        'the dead namespace collected',
        (l) => l.msg === 'applied' && l.kind === 'delete' && /^dispatcher ino-\d+$/.test(String(l.object)) && /network namespace is gone/.test(String(l.reason)),
        mark,
        10_000,
      );
      assert.ok(gc, d.dump());
      assert.ok(await eventually(() => dispatchers().length === 1, 5000), `one dispatcher is left: ${dispatchers().join(', ')}`);
      const status = await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, reportDir: null });
      assert.ok(status.plan.problems.some((p) => p.policy === 'goes' && p.reason === 'NetnsNotFound'), 'the policy says its namespace is missing');
      assert.equal(curl(sandbox, '127.0.0.1', 8081), 200, 'the other namespace still steers');
      await stopClean(d, dir, pinDir);
    } finally {
      await d.kill();
    }
  } finally {
    await other.destroy();
  }
});

kernelTest('an interface deleted and created again with the same name: the filter follows the new ifindex, the old one is removed', async ({ pinDir, sandbox }) => {
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  using dir = new PolicyDir();
  writeFilter(dir, 'guard', { netns: sandbox.path, interfaces: ['vb'], hook: 'xdp', rules: ['{name: block, protocol: tcp, dstPorts: [7001], action: drop}'] });
  const before = kernelObjects();
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, FAST);
  try {
    assert.equal((await d.nextPass()).ready, 1, d.dump());
    const oldIndex = ifindexIn(sandbox.name, 'vb');
    assert.equal(tcpConnect(peer, NET.local4, 7001), 'dropped');
    runBounded('ip', ['-n', sandbox.name, 'link', 'del', 'vb']);
    vethPair(sandbox, peer);
    const newIndex = ifindexIn(sandbox.name, 'vb');
    assert.notEqual(newIndex, oldIndex, 'the kernel gave the new interface another ifindex');
    const follows = async () => {
      const f = filtersOf(await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, reportDir: null })).filters;
      return f.length === 1 && f[0]!.ifindex === newIndex && f[0]!.link?.attached === true;
    };
    let ok = false;
    for (let i = 0; i < 50 && !(ok = await follows()); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(ok, `the filter moved to ifindex ${newIndex}\n${d.dump()}`);
    assert.equal(tcpConnect(peer, NET.local4, 7001), 'dropped', 'and drops on the new interface');
    await assertNothingLeaked(before, pinDir, 'after the interface came back');
    await stopClean(d, dir, pinDir);
  } finally {
    await d.kill();
  }
});

kernelTest('bpffs unmounted under the daemon: a clear error, the daemon keeps running, and recovers once bpffs is back', async ({ sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  // A bpffs of its own, so unmounting it disturbs nothing else on the machine.
  const mnt = mkdtempSync(join(tmpdir(), 'ebpf-policy-bpffs-'));
  const mount = () => runBounded('mount', ['-t', 'bpf', 'bpf', mnt]);
  // Lazily, as an admin or a container runtime would: the daemon watches the root, which keeps the old mount busy.
  const umount = () => runBounded('umount', ['-l', mnt]);
  assert.equal(mount().status, 0);
  const root = join(mnt, 'ebpf-policy');
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  const before = kernelObjects();
  const d = DaemonProcess.start(sandbox, root, dir.path, [...FAST, '--metrics-address', '127.0.0.1:9890']);
  try {
    assert.equal((await d.nextPass()).ready, 1, d.dump());
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);
    const mark = d.lines.length;
    const u = umount();
    assert.equal(u.status, 0, `bpffs unmounted: ${u.stderr}`);
    const failed = await d.waitFor('a pass failing on the missing bpffs', (l) => l.msg === 'pass failed', mark, 10_000);
    assert.match(String(failed.error), new RegExp(`pin root ${root} is not on a bpffs: .*mount -t bpf bpf`));
    assert.ok(!d.exited, 'the daemon keeps running');
    assert.equal(httpGet(sandbox, 9890, '/healthz').status, 503);
    assert.match(httpGet(sandbox, 9890, '/healthz').body, /not on a bpffs/);

    assert.equal(mount().status, 0, 'bpffs back');
    assert.ok(await eventually(() => curl(sandbox, '127.0.0.1', 8081) === 200, 20_000), `the daemon rebuilt everything once bpffs was back\n${d.dump()}`);
    assert.ok(await eventually(() => httpGet(sandbox, 9890, '/healthz').status === 200, 10_000), d.dump());
    // What the old mount held is released once nothing refers to it (the daemon's watch of the old root is replaced).
    await assertNothingLeaked(before, root, 'after bpffs came back');
    await stopClean(d, dir, root);
  } finally {
    await d.kill();
    runBounded('umount', ['-l', mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
});

kernelTest('the policy directory deleted under the daemon: everything is kept and reported; created again, it converges', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  const parent = mkdtempSync(join(tmpdir(), 'ebpf-policy-test-'));
  const policies = join(parent, 'policies');
  mkdirSync(policies, { mode: 0o755 });
  const write = (name: string, ports: number[]) => new PolicyDir(policies).writeSteering(name, { netns: sandbox.path, ports, listen: '127.0.0.1:8080' });
  write('web', [8081]);
  const d = DaemonProcess.start(sandbox, pinDir, policies, FAST);
  try {
    assert.equal((await d.nextPass()).ready, 1, d.dump());
    const pins = listPins(pinDir);
    const mark = d.lines.length;
    rmSync(policies, { recursive: true });
    const pass = await d.nextPass(mark, 10_000);
    assert.equal(pass.changes, 0, `nothing is torn down\n${d.dump()}`);
    assert.ok(d.lines.slice(mark).some((l) => l.msg === 'policy file problem' && /does not exist|cannot read/.test(String(l.problem))), d.dump());
    assert.deepEqual(listPins(pinDir), pins);
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 200, 'steering goes on');

    mkdirSync(policies, { mode: 0o755 });
    write('web', [8082]);
    assert.ok(await eventually(() => curl(sandbox, '127.0.0.1', 8082) === 200, 10_000), `the re-created directory is applied\n${d.dump()}`);
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 0);
    const plan = await reconcileOnce({ root: pinDir, policyPaths: [policies], dryRun: true, reportDir: null });
    assert.deepEqual(changes(plan.plan), []);
    rmSync(join(policies, 'web.yaml'));
    assert.ok(await eventually(() => listPins(pinDir).length === 0, 5000), d.dump());
    assert.equal(await d.stop(), 0, d.dump());
  } finally {
    await d.kill();
    rmSync(parent, { recursive: true, force: true });
  }
});
