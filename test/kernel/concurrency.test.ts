/**
 * Runs of the tool at the same time on one pin root: a daemon and
 * `reconcile --once` runs interleave only pass by pass (the root flock);
 * a second daemon refuses, naming the first; `destroy` under a running daemon
 * removes everything between two passes and the daemon builds it again.
 * Nothing is lost or leaked, and the end state is converged.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listPins } from '../../src/bpf/bpffs.js';
import { changes, reconcileOnce } from '../../src/manager.js';
import { childClosed, runBounded } from '../../src/sandbox/bounded-wait.js';
import { DaemonProcess } from './daemon-helpers.js';
import { eventually, kernelTest } from './harness.js';
import { assertNothingLeaked, kernelObjects } from './leaks.js';
import { PolicyDir, curl, startHttpServer } from './reconcile-helpers.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const FAST = ['--resync-interval', '2s', '--drift-probe-interval', '200ms'];

async function converged(pinDir: string, dir: PolicyDir): Promise<boolean> {
  const r = await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, reportDir: null });
  return changes(r.plan).length === 0;
}

async function stopClean(d: DaemonProcess, dir: PolicyDir, pinDir: string): Promise<void> {
  for (const e of readdirSync(dir.path)) rmSync(join(dir.path, e), { force: true });
  assert.ok(await eventually(() => listPins(pinDir).length === 0, 5000), `the daemon did not remove its pins\n${d.dump()}`);
  assert.equal(await d.stop(), 0, d.dump());
}

kernelTest('a daemon and reconcile --once runs at the same time on one root: every run succeeds, the end state is converged, nothing leaks', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  const before = kernelObjects();
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, FAST);
  try {
    await d.nextPass();
    for (let i = 0; i < 5; i++) {
      // An edit the daemon reacts to, and three one-shot runs racing it.
      dir.writeSteering('web', { netns: sandbox.path, ports: [8081 + i, 9000 + i], listen: '127.0.0.1:8080' });
      if (i % 2 === 0) dir.writeSteering(`extra${i}`, { netns: sandbox.path, ports: [7000 + i], listen: '127.0.0.1:8080' });
      else rmSync(join(dir.path, `extra${i - 1}.yaml`));
      const runs = [0, 1, 2].map(() => spawn(process.execPath, [cli, 'reconcile', '--once', '--bpffs-root', pinDir, '--policies', dir.path], { stdio: ['ignore', 'ignore', 'pipe'] }));
      const errs = runs.map((c) => {
        let e = '';
        c.stderr.on('data', (b: Buffer) => (e += b.toString()));
        return () => e;
      });
      const ends = await Promise.all(runs.map((c, k) => childClosed(c, `reconcile --once #${k} of round ${i}`, 60_000)));
      ends.forEach((e, k) => assert.equal(e.code, 0, `round ${i}, run ${k}: ${errs[k]!()}`));
    }
    assert.ok(await eventually(() => curl(sandbox, '127.0.0.1', 8085) === 200, 5000), 'the last edit is in force');
    assert.equal(curl(sandbox, '127.0.0.1', 8084), 0, 'the edit before it is gone');
    assert.equal(curl(sandbox, '127.0.0.1', 7004), 200);
    assert.ok(await converged(pinDir, dir), 'the plan is empty');
    assert.ok(!d.lines.some((l) => l.msg === 'pass failed' || l.msg === 'action failed'), d.dump());
    await assertNothingLeaked(before, pinDir, 'after the concurrent runs');
    await stopClean(d, dir, pinDir);
  } finally {
    await d.kill();
  }
});

kernelTest('a second daemon on the same root refuses to start and names the first; the first goes on', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  const first = DaemonProcess.start(sandbox, pinDir, dir.path, FAST);
  try {
    await first.nextPass();
    const second = DaemonProcess.start(sandbox, pinDir, dir.path, FAST);
    try {
      const end = await second.exit(30_000);
      assert.equal(end.code, 2, second.dump());
      const refused = second.lines.find((l) => l.msg === 'cannot start');
      assert.ok(refused, second.dump());
      assert.match(String(refused.error), new RegExp(`another ebpf-policy daemon \\(pid ${first.pid}\\) already manages ${pinDir}`));
      assert.ok(!second.lines.some((l) => l.msg === 'reconcile pass'), 'it ran no pass');
    } finally {
      await second.kill();
    }
    dir.writeSteering('web', { netns: sandbox.path, ports: [8082], listen: '127.0.0.1:8080' });
    assert.ok(await eventually(() => curl(sandbox, '127.0.0.1', 8082) === 200, 5000), `the first daemon still works\n${first.dump()}`);
    await stopClean(first, dir, pinDir);
    // Once the first stopped, another may start.
    const third = DaemonProcess.start(sandbox, pinDir, dir.path, FAST);
    try {
      await third.nextPass();
      assert.equal(await third.stop(), 0, third.dump());
    } finally {
      await third.kill();
    }
  } finally {
    await first.kill();
  }
});

kernelTest('destroy under a running daemon removes everything between two passes, says the daemon will rebuild, and the daemon converges again', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  const before = kernelObjects();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, FAST);
  try {
    await d.nextPass();
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);
    const destroyed = runBounded(process.execPath, [cli, 'destroy', '--yes', '--bpffs-root', pinDir], {}, 60_000);
    assert.equal(destroyed.status, 0, destroyed.stderr);
    assert.match(destroyed.stderr, new RegExp(`a daemon \\(pid ${d.pid}\\) manages ${pinDir}: it will build again`));
    assert.match(destroyed.stdout, /Removed \d+ pins/);
    assert.ok(await eventually(() => curl(sandbox, '127.0.0.1', 8081) === 200 && listPins(pinDir).length > 0, 5000), `the daemon rebuilt it\n${d.dump()}`);
    assert.ok(!d.lines.some((l) => l.msg === 'pass failed'), d.dump());
    assert.ok(await converged(pinDir, dir));
    await assertNothingLeaked(before, pinDir, 'after destroy and the rebuild');
    await stopClean(d, dir, pinDir);
  } finally {
    await d.kill();
  }
});
