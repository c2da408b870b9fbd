/**
 * The reconciler's command line as users and CI run it: plan output and
 * exit codes, reconcile --once failures named per policy, status JSON with
 * live ids and hit counters, destroy's confirmation, and the flock that
 * serialises concurrent runs.
 */
import { childClosed, runBounded, sleep } from '../../src/sandbox/bounded-wait.js';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RootLock } from '../../src/bpf/root-lock.js';
import { listPins } from '../../src/bpf/index.js';
import { kernelTest } from './harness.js';
import { PolicyDir, curl, startHttpServer } from './reconcile-helpers.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = runBounded(process.execPath, [cli, ...args]);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

kernelTest('plan shows +/~/- with reasons, JSON is stable, --detailed-exitcode says whether anything would change', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  const common = ['--bpffs-root', pinDir, '--policies', dir.path];

  const text = run('plan', ...common, '--detailed-exitcode');
  assert.equal(text.status, 2, text.stderr);
  assert.match(text.stdout, /^\+ create {2}dispatcher ino-\d+ {2}\(policies web need a dispatcher/m);
  assert.match(text.stdout, /^\+ create {2}policy web {2}\(new policy from .*web\.yaml\)/m);
  assert.match(text.stdout, /^Plan: 4 to create, 1 to update, 0 to replace, 0 to delete\.$/m);

  const json = JSON.parse(run('plan', ...common, '--output', 'json').stdout) as {
    apiVersion: string;
    kind: string;
    changes: Record<string, number>;
    actions: Array<Record<string, unknown>>;
  };
  assert.equal(json.apiVersion, 'ebpf-policy/v1');
  assert.equal(json.kind, 'Plan');
  assert.deepEqual(json.changes, { create: 4, update: 1, replace: 0, delete: 0 });
  assert.deepEqual(Object.keys(json.actions[0]!), ['kind', 'phase', 'object', 'policyKind', 'policy', 'domain', 'operation', 'code', 'reason', 'before', 'after']);
  assert.deepEqual(
    json.actions.map((a) => [a.policyKind, a.code]),
    [
      ['PortSteering', 'Needed'],
      ['PortSteering', 'NewPolicy'],
      ['PortSteering', 'NewBindings'],
      ['PortSteering', 'SteerToTarget'],
      ['PortSteering', 'BindingsToAdd'],
    ],
    'every action names its kind and a reason code',
  );
  assert.equal(listPins(pinDir).length, 0, 'plan changes nothing');

  const applied = run('reconcile', '--once', ...common);
  assert.equal(applied.status, 0, applied.stderr);
  assert.match(applied.stdout, /Applied 5 changes \(4 created, 1 updated, 0 replaced, 0 deleted\), 0 failed/);
  const none = run('plan', ...common, '--detailed-exitcode');
  assert.equal(none.status, 0, none.stdout);
  assert.match(none.stdout, /No changes\. The kernel matches the policies\./);

  // Edit: one port more, one port less.
  dir.writeSteering('web', { netns: sandbox.path, ports: [8082], listen: '127.0.0.1:8080' });
  const edit = run('plan', ...common);
  assert.match(edit.stdout, /^~ update {2}policy web {2}\(the policy changed in .*web\.yaml\)\n {6}before: tcp 8081 -> listen 127\.0\.0\.1:8080\n {6}after: {2}tcp 8082 -> listen 127\.0\.0\.1:8080$/m);
  assert.match(edit.stdout, /^- delete {2}policy web: bindings {2}\(1 entry no longer wanted\)$/m);

  dir.writeSteering('web', { netns: sandbox.path, ports: [], listen: '127.0.0.1:8080' });
  const invalid = run('plan', ...common, '--detailed-exitcode');
  assert.equal(invalid.status, 1, 'an invalid file is an error');
  assert.match(invalid.stdout, /web\.yaml:\d+:\d+: error: spec\.ports/);
  assert.match(invalid.stdout, /^No changes\./m, 'and it changes nothing');

  assert.equal(run('plan', '--bpffs-root', pinDir, '--policies', join(dir.path, 'missing')).status, 2, 'a missing path is a usage error');
  dir.writeRaw('web.yaml', '');
  assert.equal(run('reconcile', '--once', ...common).status, 0);
  assert.equal(listPins(pinDir).length, 0);
});

kernelTest('reconcile --once names each failed policy and still converges the others; status reports conditions, ids and hits', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('good', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  dir.writeSteering('lost', { netns: '/run/netns/ebpf-policy-no-such-netns', ports: [8081], listen: '127.0.0.1:8080' });
  dir.writeSteering('idle', { netns: sandbox.path, ports: [8090], listen: '127.0.0.1:9999' });
  const common = ['--bpffs-root', pinDir, '--policies', dir.path];

  const r = run('reconcile', '--once', ...common);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /error: policy lost: NetnsNotFound: network namespace \/run\/netns\/ebpf-policy-no-such-netns does not exist/);
  assert.match(r.stderr, /warning: policy idle: TargetNotFound: nothing listens on 127\.0\.0\.1:9999/);
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200, 'the good policy converged');
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);

  const status = JSON.parse(run('status', ...common, '--output', 'json').stdout) as {
    policies: Array<{ name: string; conditions: Array<{ type: string; status: boolean; reason: string; lastTransitionTime?: string }>; programId: number; linkId: number; bindings: Array<{ hits: string }> }>;
  };
  const byName = new Map(status.policies.map((p) => [p.name, p]));
  const good = byName.get('good')!;
  const { lastTransitionTime, ...ready } = good.conditions[0]!;
  assert.deepEqual(ready, { type: 'Ready', status: true, reason: 'Converged', message: 'the kernel matches the policy' });
  assert.ok(lastTransitionTime && Date.parse(lastTransitionTime) > Date.now() - 60_000, `a recent last transition time: ${lastTransitionTime}`);
  assert.ok(good.programId > 0 && good.linkId > 0);
  assert.equal(good.bindings[0]!.hits, '2', 'two connections were steered');
  assert.ok(byName.get('lost')!.conditions.some((c) => c.type === 'Failed' && c.status && c.reason === 'NetnsNotFound'));
  assert.ok(byName.get('idle')!.conditions.some((c) => c.type === 'Degraded' && c.status && c.reason === 'TargetNotFound'));
  const text = run('status', ...common);
  assert.equal(text.status, 1, 'status exits 1 while a policy is Failed');
  assert.match(text.stdout, /^good {2}Ready {2}program \d+ {2}link \d+/m);

  for (const n of ['good', 'lost', 'idle']) dir.writeRaw(`${n}.yaml`, '');
  assert.equal(run('reconcile', '--once', ...common).status, 0);
  assert.equal(listPins(pinDir).length, 0);
});

kernelTest('destroy asks before removing (refuses without a terminal), --yes removes everything', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  const root = join(pinDir, 'root');
  assert.equal(run('reconcile', '--once', '--bpffs-root', root, '--policies', dir.path).status, 0);
  const pins = listPins(root);
  assert.equal(pins.length, 7);

  const refused = run('destroy', '--bpffs-root', root);
  assert.equal(refused.status, 2);
  assert.match(refused.stdout, new RegExp(`This removes 7 pins under ${root}`));
  assert.match(refused.stderr, /pass --yes/);
  assert.deepEqual(listPins(root), pins, 'nothing was removed');

  const done = run('destroy', '--bpffs-root', root, '--yes');
  assert.equal(done.status, 0);
  assert.equal(listPins(root).length, 0);
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 0, 'steering stopped');
});

kernelTest('an flock on the root serialises concurrent runs', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  let lock: RootLock | undefined = await RootLock.acquire(pinDir);
  try {
    const child = spawn(process.execPath, [cli, 'reconcile', '--once', '--bpffs-root', pinDir, '--policies', dir.path], { stdio: 'ignore' });
    const exited = childClosed(child, 'reconcile --once waiting for the lock', 60_000);
    await sleep(500);
    assert.equal(child.exitCode, null, 'the run waits for the lock');
    assert.equal(listPins(pinDir).length, 0, 'and changes nothing meanwhile');
    lock.close();
    lock = undefined;
    const { code } = await exited;
    assert.equal(code, 0);
    assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);
  } finally {
    lock?.close();
  }
  // Two runs at once both succeed, and the result is converged.
  const a = spawn(process.execPath, [cli, 'reconcile', '--once', '--bpffs-root', pinDir, '--policies', dir.path], { stdio: 'ignore' });
  const b = spawn(process.execPath, [cli, 'reconcile', '--once', '--bpffs-root', pinDir, '--policies', dir.path], { stdio: 'ignore' });
  const [ea, eb] = await Promise.all([childClosed(a, 'the first concurrent reconcile --once', 60_000), childClosed(b, 'the second concurrent reconcile --once', 60_000)]);
  assert.deepEqual([ea.code, eb.code], [0, 0]);
  assert.equal(run('plan', '--detailed-exitcode', '--bpffs-root', pinDir, '--policies', dir.path).status, 0);
  dir.writeRaw('web.yaml', '');
  assert.equal(run('reconcile', '--once', '--bpffs-root', pinDir, '--policies', dir.path).status, 0);
});
