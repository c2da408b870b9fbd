/**
 * The daemon with SyscallCounter (default flags): a policy on a cgroup that
 * does not exist yet waits (Degraded) and counts as soon as the cgroup
 * appears; the counter's link removed is attached again by the drift probe
 * within 2 s; /metrics exports the counts with the key labels.
 */
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { listPins, unpin } from '../../src/bpf/bpffs.js';
import { TestCgroup } from './connect-policy-helpers.js';
import { DaemonProcess, httpGet } from './daemon-helpers.js';
import { eventually, kernelTest } from './harness.js';
import { PolicyDir } from './reconcile-helpers.js';
import { SCRIPT, inCgroup, writeCounter } from './syscall-counter-helpers.js';

/** The daemon's repair deadline with default flags (a 1 s drift probe). */
const REPAIR_MS = 2000;

kernelTest('daemon (default flags): a counter waiting for its cgroup counts once it appears; a removed counter link is attached again within 2 s; /metrics has the counts', async ({ pinDir, sandbox }) => {
  const cg = new TestCgroup('daemon-sc');
  await cg.remove(); // the policy comes first, the cgroup later
  using dir = new PolicyDir();
  writeCounter(dir, 'ppid', { syscalls: ['getppid'], groupBy: ['syscall', 'comm'], cgroup: cg.name });
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, ['--metrics-address', '127.0.0.1:9892']);
  try {
    const first = await d.nextPass();
    assert.equal(first.degraded, 1, d.dump());
    assert.equal(first.failed, 0, d.dump());

    let mark = d.lines.length;
    cg.create();
    const ready = await d.waitFor('a pass counting for the new cgroup', (l) => l.msg === 'reconcile pass' && l.ready === 1, mark, 10_000);
    assert.equal(ready.failed, 0, d.dump());
    assert.ok(d.lines.slice(mark).some((l) => l.msg === 'a waiting policy can make progress'), d.dump());
    inCgroup(cg, SCRIPT);
    const metrics = () => httpGet(sandbox, 9892, '/metrics').body;
    assert.match(metrics(), /^ebpf_policy_syscalls_total\{policy="ppid",syscall="getppid",comm="python3",cgroup="",pid=""\} 25$/m, metrics());

    // The link pin removed (the link goes with it): the probe notices, a pass attaches a new one.
    mark = d.lines.length;
    const removedAt = Date.now();
    unpin(join(pinDir, 'syscalls', 'link'));
    const repaired = await d.waitFor('the counter link attached again', (l) => l.msg === 'drift repaired', mark, REPAIR_MS + 1000);
    const took = Date.now() - removedAt;
    assert.ok(took <= REPAIR_MS, `repaired after ${took} ms (bound ${REPAIR_MS} ms)\n${d.dump()}`);
    assert.ok((repaired.repairs as string[]).some((x) => /syscall counter: link: it is not attached/.test(x)), JSON.stringify(repaired));
    inCgroup(cg, SCRIPT);
    assert.match(metrics(), /^ebpf_policy_syscalls_total\{policy="ppid",syscall="getppid",comm="python3",cgroup="",pid=""\} 50$/m, 'counting again, counts kept');

    for (const e of readdirSync(dir.path)) rmSync(join(dir.path, e), { force: true });
    assert.ok(await eventually(() => listPins(pinDir).length === 0, 5000), `the daemon did not remove its pins: ${listPins(pinDir).join(', ')}\n${d.dump()}`);
    assert.equal(await d.stop(), 0, d.dump());
  } finally {
    await d.kill();
    await cg.remove();
  }
});
