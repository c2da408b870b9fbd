/**
 * The daemon (`ebpf-policy reconcile` without --once) end to end against the
 * real kernel: real policy files changed under it, a real HTTP server that
 * is not ours, curl as the client, pins removed behind its back, signals.
 * Every test removes its policies and lets the daemon converge to nothing
 * before stopping it, so the harness finds no pins.
 */
import { childClosed, killAndWait, sleep } from '../../src/sandbox/bounded-wait.js';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listPins } from '../../src/bpf/bpffs.js';
import { eventually, kernelTest } from './harness.js';
import { PolicyDir, connectionLoop, curl, startHttpServer } from './reconcile-helpers.js';
import { DaemonProcess, httpGet, sample } from './daemon-helpers.js';

/** Fast timers for tests: a drift probe every 200 ms, a resync every 2 s. */
const FAST = ['--resync-interval', '2s', '--drift-probe-interval', '200ms'];

function steering(name: string, netns: string, ports: Array<number | string>): string {
  return [
    'apiVersion: ebpf-policy/v1',
    'kind: PortSteering',
    `metadata: {name: ${name}}`,
    'spec:',
    `  netns: ${netns}`,
    '  protocol: tcp',
    `  ports: ${JSON.stringify(ports)}`,
    '  target: {listen: "127.0.0.1:8080"}',
    '',
  ].join('\n');
}

/** Removes every policy file, waits until the daemon removed every pin, then stops it (exit 0 expected). */
async function convergeToNothingAndStop(d: DaemonProcess, policyDir: string, pinDir: string): Promise<void> {
  for (const e of readdirSync(policyDir)) rmSync(join(policyDir, e), { recursive: true, force: true });
  assert.ok(await eventually(() => listPins(pinDir).length === 0, 5000), `the daemon did not remove its pins: ${listPins(pinDir).join(', ')}\n${d.dump()}`);
  assert.equal(await d.stop(), 0, `the daemon did not exit 0 on SIGTERM\n${d.dump()}`);
}

async function until(cond: () => boolean, what: string, d: DaemonProcess, ms = 3000): Promise<void> {
  assert.ok(await eventually(cond, ms), `${what} (within ${ms} ms)\n${d.dump()}`);
}

kernelTest('daemon: writing, editing and deleting policy files converges', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, FAST);
  try {
    const first = await d.nextPass();
    assert.equal(first.changes, 0, 'an empty directory changes nothing');
    assert.deepEqual(first.trigger, ['startup']);

    dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
    await until(() => curl(sandbox, '127.0.0.1', 8081) === 200, 'a new policy file is applied', d);
    const applied = await d.waitFor('the applied policy', (l) => l.msg === 'applied' && l.policy === 'web' && l.object === 'policy web');
    assert.match(String(applied.reason), /new policy from .*web\.yaml/);

    let mark = d.lines.length;
    dir.writeSteering('web', { netns: sandbox.path, ports: [8082], listen: '127.0.0.1:8080' });
    await until(() => curl(sandbox, '127.0.0.1', 8082) === 200, 'an edited policy file is applied', d);
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 0, 'the port taken out of the policy is refused');
    const edit = await d.waitFor('a pass with changes', (l) => l.msg === 'reconcile pass' && Number(l.changes) > 0, mark);
    assert.deepEqual(edit.trigger, ['policy change']);
    assert.equal(edit.failed, 0);

    mark = d.lines.length;
    rmSync(join(dir.path, 'web.yaml'));
    await until(() => curl(sandbox, '127.0.0.1', 8082) === 0 && listPins(pinDir).length === 0, 'a deleted policy file is removed from the kernel', d);
    await d.waitFor('the removal', (l) => l.msg === 'applied' && l.kind === 'delete', mark);
    await convergeToNothingAndStop(d, dir.path, pinDir);
  } finally {
    await d.kill();
  }
});

kernelTest('daemon: a ConfigMap-style ..data symlink swap converges in exactly one pass', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  // kubelet's layout: ..data -> ..TIMESTAMP/, and NAME.yaml -> ..data/NAME.yaml
  const version = (n: number, ports: number[]) => {
    const v = join(dir.path, `..2024_01_01_00_00_0${n}.000000000`);
    mkdirSync(v, { mode: 0o755 });
    writeFileSync(join(v, 'web.yaml'), steering('web', sandbox.path, ports), { mode: 0o644 });
    return v;
  };
  const v1 = version(1, [8081]);
  symlinkSync(v1.split('/').pop()!, join(dir.path, '..data'));
  symlinkSync('..data/web.yaml', join(dir.path, 'web.yaml'));
  // The debounce is generous so that a slow machine's spread of watch events still coalesces.
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, ['--resync-interval', '60s', '--debounce', '200ms']);
  try {
    await d.nextPass();
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 200, 'the ConfigMap mount is applied');

    const mark = d.lines.length;
    // kubelet's atomic update: a new version directory, a new symlink renamed over ..data, the old version removed.
    const v2 = version(2, [8082]);
    symlinkSync(v2.split('/').pop()!, join(dir.path, '..data_tmp'));
    renameSync(join(dir.path, '..data_tmp'), join(dir.path, '..data'));
    rmSync(v1, { recursive: true });
    await until(() => curl(sandbox, '127.0.0.1', 8082) === 200, 'the swapped version is applied', d);
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 0);
    await sleep(800); // room for any further pass to show up
    // The first event starts a pass at once (it may come before the rename and find nothing to change) and
    // a settle pass follows: the swap itself is applied by exactly one pass, never in parts.
    const passes = d.passes(mark);
    const changing = passes.filter((p) => Number(p.changes) > 0);
    assert.equal(changing.length, 1, `the swap converged in exactly one pass that changed something:\n${passes.map((p) => JSON.stringify(p)).join('\n')}`);

    await convergeToNothingAndStop(d, dir.path, pinDir);
  } finally {
    await d.kill();
  }
});

kernelTest('daemon: a pin deleted by hand is repaired at once, and the repair is logged with what drifted', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  // A long resync: the repair must come from the pin watch and the drift probe.
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, ['--resync-interval', '60s']);
  try {
    await d.nextPass();
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);
    const linkPin = listPins(pinDir).find((p) => p.endsWith('/link'));
    assert.ok(linkPin, `a link pin: ${listPins(pinDir).join(', ')}`);

    let mark = d.lines.length;
    rmSync(linkPin); // the last reference: the kernel detaches the link
    const detected = await d.waitFor('drift detected', (l) => l.msg === 'drift detected', mark, 2000);
    assert.ok((detected.drift as string[]).some((x) => x.includes('link')), JSON.stringify(detected));
    const repaired = await d.waitFor('drift repaired', (l) => l.msg === 'drift repaired', mark, 2000);
    assert.ok((repaired.repairs as string[]).some((x) => /link pin is missing/.test(x)), JSON.stringify(repaired));
    assert.ok(existsSync(linkPin), 'the link is pinned again');
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 200, 'steering works again');

    // A whole map pin: the dispatcher is rebuilt.
    mark = d.lines.length;
    const mapPin = listPins(pinDir).find((p) => p.endsWith('/map_bindings'))!;
    rmSync(mapPin);
    const rebuilt = await d.waitFor('dispatcher rebuilt', (l) => l.msg === 'applied' && /incomplete dispatcher/.test(String(l.reason)), mark, 2000);
    assert.equal(rebuilt.kind, 'replace');
    await until(() => curl(sandbox, '127.0.0.1', 8081) === 200, 'steering works after the rebuild', d);

    await convergeToNothingAndStop(d, dir.path, pinDir);
  } finally {
    await d.kill();
  }
});

kernelTest('daemon: a restarted target process is steered to again without waiting for a resync', async ({ pinDir, sandbox }) => {
  const server = await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, ['--resync-interval', '60s', '--drift-probe-interval', '200ms']);
  try {
    await d.nextPass();
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);
    const mark = d.lines.length;
    await killAndWait(server, 'the http server');
    await d.waitFor('the socket leaving the sockmap', (l) => l.msg === 'drift detected' && /left the sockmap/.test(JSON.stringify(l.drift)), mark, 2000);
    await startHttpServer(sandbox, '127.0.0.1', 8080);
    await until(() => curl(sandbox, '127.0.0.1', 8081) === 200, 'the new server is steered to', d);
    const repaired = await d.waitFor('drift repaired', (l) => l.msg === 'drift repaired', mark);
    assert.ok((repaired.repairs as string[]).some((x) => x.includes('socket')), JSON.stringify(repaired));
    await convergeToNothingAndStop(d, dir.path, pinDir);
  } finally {
    await d.kill();
  }
});

/** A client loop inside the namespace: connects to PORT over and over until STOPFILE exists; prints "ok fail reasons". */
kernelTest('daemon: SIGTERM leaves everything attached; a restart adopts it with zero changes; connections never fail', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  using work = new PolicyDir(); // holds the loop's stop file, outside the watched directory
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  const first = DaemonProcess.start(sandbox, pinDir, dir.path, FAST);
  let second: DaemonProcess | undefined;
  try {
    await first.nextPass();
    const pins = listPins(pinDir);
    const loop = connectionLoop(sandbox, 8081, join(work.path, 'stop'));
    await sleep(300);
    assert.equal(await first.stop(), 0, first.dump());
    assert.ok(first.lines.some((l) => l.msg === 'stopping: programs stay attached' && l.signal === 'SIGTERM'));
    assert.deepEqual(listPins(pinDir), pins, 'every pin stays');
    await sleep(300);
    second = DaemonProcess.start(sandbox, pinDir, dir.path, FAST);
    const adopt = await second.nextPass();
    assert.equal(adopt.changes, 0, `the restarted daemon adopts the live state:\n${second.dump()}`);
    assert.equal(adopt.ready, 1);
    await sleep(300);
    writeFileSync(join(work.path, 'stop'), '');
    await childClosed(loop.child, 'the connection loop', 40_000);
    const [ok, fail] = loop.output().split(' ', 2).map(Number);
    assert.equal(fail, 0, `connections failed across the restart: ${loop.output()}`);
    assert.ok(ok! > 20, `the loop made connections (${loop.output()})`);
    await convergeToNothingAndStop(second, dir.path, pinDir);
  } finally {
    await first.kill();
    await second?.kill();
  }
});

kernelTest('daemon: an invalid edit keeps the previous state and turns /healthz to 503; fixing it converges', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, [...FAST, '--metrics-address', '127.0.0.1:9890']);
  try {
    await d.nextPass();
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);
    assert.equal(httpGet(sandbox, 9890, '/healthz').status, 200);

    const mark = d.lines.length;
    dir.writeRaw('web.yaml', 'apiVersion: ebpf-policy/v1\nkind: PortSteering\nmetadata: {name: web\nspec: ['); // half written
    const bad = await d.waitFor('a pass over the invalid file', (l) => l.msg === 'reconcile pass' && l.invalidFiles === 1, mark);
    assert.equal(bad.changes, 0, 'nothing is torn down');
    assert.equal(bad.level, 'warn');
    await d.waitFor('the problem', (l) => l.msg === 'policy file problem' && /web\.yaml/.test(String(l.problem)), mark);
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 200, 'the policy keeps its last applied state');
    const health = httpGet(sandbox, 9890, '/healthz');
    assert.equal(health.status, 503);
    assert.match(health.body, /^failing: .*web/);
    await sleep(2500); // a resync with the file still broken
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 200, 'still in place after a resync');
    assert.ok(d.passes(mark).every((p) => p.changes === 0));

    dir.writeSteering('web', { netns: sandbox.path, ports: [8082], listen: '127.0.0.1:8080' });
    await until(() => curl(sandbox, '127.0.0.1', 8082) === 200 && curl(sandbox, '127.0.0.1', 8081) === 0, 'the fixed file is applied', d);
    await until(() => httpGet(sandbox, 9890, '/healthz').status === 200, 'healthy again', d);
    await convergeToNothingAndStop(d, dir.path, pinDir);
  } finally {
    await d.kill();
  }
});

kernelTest('daemon: SIGHUP runs a pass now', async ({ pinDir, sandbox }) => {
  using dir = new PolicyDir();
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, ['--resync-interval', '60s', '--drift-probe-interval', '0']);
  try {
    await d.nextPass();
    for (let i = 0; i < 2; i++) {
      const mark = d.lines.length;
      d.signal('SIGHUP');
      const p = await d.nextPass(mark, 2000);
      assert.deepEqual(p.trigger, ['SIGHUP']);
    }
    await convergeToNothingAndStop(d, dir.path, pinDir);
  } finally {
    await d.kill();
  }
});

kernelTest('daemon: /metrics exports passes, changes, conditions and per-binding hits read from the kernel; /healthz answers', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081, '9000-9001'], listen: '127.0.0.1:8080' });
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, [...FAST, '--metrics-address', '127.0.0.1:9890']);
  try {
    await d.waitFor('the metrics address', (l) => l.msg === 'serving metrics' && l.address === '127.0.0.1:9890');
    await d.nextPass();
    for (let i = 0; i < 3; i++) assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);
    assert.equal(curl(sandbox, '127.0.0.1', 9001), 200);

    const health = httpGet(sandbox, 9890, '/healthz');
    assert.equal(health.status, 200);
    assert.match(health.body, /^ok: 1 policies, 1 ready/);

    const m = httpGet(sandbox, 9890, '/metrics');
    assert.equal(m.status, 200);
    const body = m.body;
    assert.ok(sample(body, 'ebpf_policy_reconciles_total')! >= 1, body);
    assert.equal(sample(body, 'ebpf_policy_reconcile_failures_total'), 0);
    assert.ok(sample(body, 'ebpf_policy_reconcile_duration_seconds_count')! >= 1);
    assert.ok(sample(body, 'ebpf_policy_changes_applied_total{kind="create"}')! >= 3);
    assert.equal(sample(body, 'ebpf_policy_policies{condition="Ready"}'), 1);
    assert.equal(sample(body, 'ebpf_policy_policies{condition="Failed"}'), 0);
    assert.equal(sample(body, 'ebpf_policy_drift_repairs_total'), 0);
    assert.equal(sample(body, 'ebpf_policy_binding_hits_total{policy="web",binding="0",ports="8081",prefix="any"}'), 3, body);
    assert.equal(sample(body, 'ebpf_policy_binding_hits_total{policy="web",binding="1",ports="9000-9001",prefix="any"}'), 1, body);
    assert.ok(/^ebpf_policy_dispatcher_lookups_total\{netns="ino-\d+",result="steered"\} 4$/m.test(body), body);
    assert.ok(sample(body, 'process_resident_memory_bytes')! > 0);

    // A drift repair is counted.
    rmSync(listPins(pinDir).find((p) => p.endsWith('/link'))!);
    await until(() => sample(httpGet(sandbox, 9890, '/metrics').body, 'ebpf_policy_drift_repairs_total') === 1, 'the repair is counted', d);
    await convergeToNothingAndStop(d, dir.path, pinDir);
  } finally {
    await d.kill();
  }
});
