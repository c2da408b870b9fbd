/**
 * The daemon with ConnectPolicy (default flags): a guard link detached with
 * bpftool is repaired by the drift probe within 2 s; the guarded cgroup
 * removed makes the policy Degraded and its guard go; the cgroup created
 * again is guarded again without any policy change; /metrics exports the
 * connect counters.
 */
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { listPins } from '../../src/bpf/bpffs.js';
import type { ObservedGuards } from '../../src/kinds/connect-policy/store.js';
import { kindState, reconcileOnce } from '../../src/manager.js';
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import { TestCgroup, tryConnects, writeConnectPolicy } from './connect-policy-helpers.js';
import { DaemonProcess, httpGet } from './daemon-helpers.js';
import { eventually, kernelTest } from './harness.js';
import { PolicyDir } from './reconcile-helpers.js';

/** The daemon's repair deadline with default flags (a 1 s drift probe). */
const REPAIR_MS = 2000;

async function guards(pinDir: string, dir: PolicyDir): Promise<ObservedGuards> {
  const r = await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, reportDir: null });
  return kindState(r, 'ConnectPolicy')!.observed as ObservedGuards;
}

kernelTest('daemon (default flags): a detached guard link is repaired within 2 s; a removed cgroup degrades the policy and drops its guard; created again, it is guarded again; /metrics counts connects', async ({ pinDir, sandbox }) => {
  const cg = new TestCgroup('daemon');
  using dir = new PolicyDir();
  const deny7000 = () => tryConnects(sandbox, cg, [{ op: 'tcp', host: '127.0.0.1', port: 7000 }]).results;
  writeConnectPolicy(dir, 'guard', { cgroup: cg.name, rules: [{ name: 'no-7000', action: 'deny', protocol: 'tcp', ports: [7000] }] });
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, ['--metrics-address', '127.0.0.1:9891']);
  try {
    assert.equal((await d.nextPass()).ready, 1, d.dump());
    assert.deepEqual(deny7000(), ['EPERM']);

    // A link detached by another tool: the probe sees it, a pass attaches a new one.
    const link = (await guards(pinDir, dir)).guards[0]!.hooks.connect4.link!;
    let mark = d.lines.length;
    const detachedAt = Date.now();
    runBounded('bpftool', ['link', 'detach', 'id', String(link.id)]);
    const repaired = await d.waitFor('the detached guard link repaired', (l) => l.msg === 'drift repaired', mark, REPAIR_MS + 1000);
    const took = Date.now() - detachedAt;
    assert.ok(took <= REPAIR_MS, `repaired after ${took} ms (bound ${REPAIR_MS} ms)\n${d.dump()}`);
    assert.ok((repaired.repairs as string[]).some((x) => /connect4 link: its link \d+ was detached/.test(x)), JSON.stringify(repaired));
    assert.deepEqual(deny7000(), ['EPERM'], 'denied again');

    const metrics = httpGet(sandbox, 9891, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, new RegExp(`^ebpf_policy_connects_total\\{policy="guard",rule="no-7000",verdict="deny",cgroup="${cg.path}"\\} 2$`, 'm'), metrics.body);
    assert.match(metrics.body, new RegExp(`^ebpf_policy_connect_guard_attached\\{cgroup="${cg.path}",hook="connect4"\\} 1$`, 'm'));

    // The cgroup removed: the links go defunct, the probe notices, the guard is removed and the policy waits, Degraded.
    mark = d.lines.length;
    await cg.remove();
    const degraded = await d.waitFor('a pass with the policy Degraded', (l) => l.msg === 'reconcile pass' && l.degraded === 1, mark, 10_000);
    assert.equal(degraded.failed, 0, d.dump());
    assert.ok(await eventually(() => listPins(pinDir).length === 0, 5000), `the guard's pins are gone: ${listPins(pinDir).join(', ')}`);

    // Created again (a new cgroup at the same path): guarded again with no policy change.
    mark = d.lines.length;
    cg.create();
    const back = await d.waitFor('a pass with the policy Ready again', (l) => l.msg === 'reconcile pass' && l.ready === 1, mark, 10_000);
    assert.equal(back.failed, 0, d.dump());
    assert.ok(d.lines.slice(mark).some((l) => l.msg === 'a waiting policy can make progress'), d.dump());
    assert.deepEqual(deny7000(), ['EPERM'], 'the new cgroup is guarded');

    for (const e of readdirSync(dir.path)) rmSync(join(dir.path, e), { force: true });
    assert.ok(await eventually(() => listPins(pinDir).length === 0, 5000), `the daemon did not remove its pins: ${listPins(pinDir).join(', ')}\n${d.dump()}`);
    assert.equal(await d.stop(), 0, d.dump());
  } finally {
    await d.kill();
    await cg.remove();
  }
});
