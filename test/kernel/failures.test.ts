/**
 * Failures are remembered and never read as "missing": an apply the kernel
 * refuses shows as Failed, with the operation and errno, in `status` run by
 * another process and in the daemon's /healthz, until a later pass succeeds;
 * pins that cannot be opened (an error other than ENOENT) stop their failure
 * domain instead of being rebuilt, so nothing live is wiped.
 */
import assert from 'node:assert/strict';
import { chmodSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listPins } from '../../src/bpf/bpffs.js';
import { DEFAULT_REPORT_DIR, lastPassFile, readLastPass } from '../../src/reconciler/last-pass.js';
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import { DaemonProcess, httpGet } from './daemon-helpers.js';
import { eventually, kernelTest } from './harness.js';
import { PolicyDir, curl, startHttpServer } from './reconcile-helpers.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

type StatusDoc = { policies: Array<{ name: string; conditions: Array<{ type: string; status: boolean; reason: string; message: string; lastTransitionTime?: string }> }> };

function run(...args: string[]) {
  return runBounded(process.execPath, [cli, ...args], {}, 60_000);
}

/** A socket-target policy whose socket is an unbound TCP socket: the kernel refuses it in the sockmap (ENOTSUP). */
function socketPolicy(name: string, netns: string, pid: number, fd: number): string {
  return `apiVersion: ebpf-policy/v1\nkind: PortSteering\nmetadata: {name: ${name}}\nspec:\n  netns: ${netns}\n  protocol: tcp\n  ports: [8082]\n  target: {pid: ${pid}, fd: ${fd}}\n`;
}

kernelTest('a failed apply shows as Failed with the operation and errno in status from another process and in /healthz, until a pass succeeds', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  // A process holding a TCP socket that is neither listening nor connected.
  const holder = sandbox.spawn(['python3', '-c', 'import socket, sys, time\ns = socket.socket()\nprint(s.fileno(), flush=True)\ntime.sleep(120)']);
  const fd = await new Promise<number>((resolve, reject) => {
    holder.stdout!.once('data', (b: Buffer) => resolve(Number(b.toString().trim())));
    holder.once('exit', () => reject(new Error('the socket holder exited')));
  });
  using dir = new PolicyDir();
  dir.writeSteering('good', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  dir.writeRaw('bad.yaml', socketPolicy('bad', sandbox.path, holder.pid!, fd));
  const common = ['--bpffs-root', pinDir, '--policies', dir.path];

  const applied = run('reconcile', '--once', ...common);
  assert.equal(applied.status, 1, `the run reports the failure\n${applied.stdout}${applied.stderr}`);
  assert.match(applied.stdout, /error: policy bad: policy bad: socket: .*ENOTSUP \(operation not supported on socket\)/);
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200, 'the other policy converged');

  // Another process, later: status still knows why.
  const status = JSON.parse(run('status', '--output', 'json', ...common).stdout) as StatusDoc;
  const bad = status.policies.find((p) => p.name === 'bad')!;
  const failed = bad.conditions.find((c) => c.type === 'Failed' && c.status);
  assert.ok(failed, JSON.stringify(bad));
  assert.equal(failed.reason, 'ApplyFailed');
  assert.match(failed.message, /putSocket failed \(bpf_map_update_elem\(socket\): ENOTSUP\)/);
  assert.ok(failed.lastTransitionTime && !Number.isNaN(Date.parse(failed.lastTransitionTime)));
  const text = run('status', ...common);
  assert.equal(text.status, 1);
  assert.match(text.stdout, /^bad {2}Failed {2}/m);
  assert.match(text.stdout, /Failed=True ApplyFailed: policy bad: socket: putSocket failed/);
  assert.ok(status.policies.find((p) => p.name === 'good')!.conditions.some((c) => c.type === 'Ready' && c.status), 'the good policy is Ready');
  assert.ok(readLastPass(DEFAULT_REPORT_DIR, pinDir), `the report is under ${DEFAULT_REPORT_DIR}`);

  // The daemon says the same on /healthz (its own pass fails the same way).
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, ['--metrics-address', '127.0.0.1:9890']);
  try {
    await d.nextPass();
    const health = httpGet(sandbox, 9890, '/healthz');
    assert.equal(health.status, 503);
    assert.match(health.body, /policy bad: ApplyFailed: .*putSocket failed \(bpf_map_update_elem\(socket\): ENOTSUP\)/);

    // Fixed: the next pass succeeds, and the failure is gone from status and /healthz.
    dir.writeSteering('bad', { netns: sandbox.path, ports: [8082], listen: '127.0.0.1:8080' });
    assert.ok(await eventually(() => httpGet(sandbox, 9890, '/healthz').status === 200, 5000), d.dump());
    const fixed = JSON.parse(run('status', '--output', 'json', ...common).stdout) as StatusDoc;
    assert.ok(!fixed.policies.some((p) => p.conditions.some((c) => c.type === 'Failed' && c.status)), JSON.stringify(fixed));
    assert.equal(curl(sandbox, '127.0.0.1', 8082), 200);
    for (const e of readdirSync(dir.path)) rmSync(join(dir.path, e));
    assert.ok(await eventually(() => listPins(pinDir).length === 0, 5000), d.dump());
    assert.equal(await d.stop(), 0, d.dump());
  } finally {
    await d.kill();
  }
  run('destroy', '--yes', '--bpffs-root', pinDir);
  assert.equal(readLastPass(DEFAULT_REPORT_DIR, pinDir), undefined, `destroy removes ${lastPassFile(DEFAULT_REPORT_DIR, pinDir)}`);
});

kernelTest('a pin that cannot be opened (EACCES, not ENOENT) is an error of its domain: nothing is rebuilt or deleted', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  const common = ['--bpffs-root', pinDir, '--policies', dir.path];
  assert.equal(run('reconcile', '--once', ...common).status, 0);
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);
  const pins = listPins(pinDir);
  const program = pins.find((p) => p.endsWith('/program'))!;
  chmodSync(program, 0o000);
  try {
    // Root without CAP_DAC_OVERRIDE: opening the pin fails with EACCES. Read as "missing", the dispatcher would be rebuilt.
    const noDac = (...args: string[]) =>
      runBounded('setpriv', ['--inh-caps=-dac_override,-dac_read_search', '--bounding-set=-dac_override,-dac_read_search', process.execPath, cli, ...args], {}, 60_000);
    const plan = noDac('plan', '--detailed-exitcode', ...common);
    assert.equal(plan.status, 1, `plan fails for the policy instead of planning a rebuild\n${plan.stdout}${plan.stderr}`);
    assert.match(plan.stdout, /error: policy web: PinsUnreadable: dispatcher ino-\d+ .*EACCES/);
    assert.doesNotMatch(plan.stdout, /createDispatcher|removeDispatcher|\+ create|± replace|- delete/);
    const r = noDac('reconcile', '--once', ...common);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /PinsUnreadable/);
    assert.deepEqual(listPins(pinDir), pins, 'every pin is still there');
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 200, 'steering never stopped');
  } finally {
    chmodSync(program, 0o600);
  }
  dir.writeRaw('web.yaml', '');
  assert.equal(run('reconcile', '--once', ...common).status, 0);
  assert.equal(listPins(pinDir).length, 0);
});
