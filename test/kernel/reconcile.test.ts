/**
 * The reconciler end to end against the real kernel: a real HTTP server that
 * is not ours, a real client (curl), real policy files, and bpftool as the
 * independent observer.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FAILPOINT_ENV } from '../../src/common/failpoint.js';
import { childClosed, killAndWait, runBounded, sleep } from '../../src/sandbox/bounded-wait.js';
import { BpfMap } from '../../src/bpf/index.js';
import { decodePolicyRecord, DISPATCHER_VARIANT_OBJECT, encodePolicyRecord } from '../../src/kinds/port-steering/layout.js';
import { changes, reconcileExitCode, reconcileOnce } from '../../src/manager.js';
import { bpftoolIds, eventually, kernelTest } from './harness.js';
import { PolicyDir, connectionLoop, curl, startHttpServer, steeringOf } from './reconcile-helpers.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function ourIds(report: Awaited<ReturnType<typeof reconcileOnce>>): { prog: number[]; link: number[] } {
  const prog: number[] = [];
  const link: number[] = [];
  for (const d of steeringOf(report).dispatchers) {
    if (d.program) prog.push(d.program.id);
    if (d.link) link.push(d.link.id);
  }
  return { prog, link };
}

kernelTest('PortSteering end to end: extra ports reach a real server, removing a port refuses it, deleting the policy leaves nothing', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  const file = dir.writeSteering('legacy-http', { netns: sandbox.path, ports: [8081, '9000-9010'], listen: '127.0.0.1:8080' });
  const opts = { root: pinDir, policyPaths: [dir.path] };
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 0, 'nothing on 8081 before');

  const first = await reconcileOnce(opts);
  assert.equal(reconcileExitCode(first), 0, JSON.stringify(first.result?.failed.map((f) => f.error.message)));
  assert.equal(first.result!.failed.length, 0);
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);
  assert.equal(curl(sandbox, '127.0.0.1', 9000), 200);
  assert.equal(curl(sandbox, '127.0.0.1', 9010), 200);
  assert.equal(curl(sandbox, '127.0.0.1', 9011), 0, 'outside the range');

  const second = await reconcileOnce(opts);
  assert.deepEqual(changes(second.plan), [], 'a second run changes nothing');
  const ids = ourIds(second);
  assert.equal(ids.prog.length, 1);
  assert.ok(bpftoolIds('prog').has(ids.prog[0]!) && bpftoolIds('link').has(ids.link[0]!), 'bpftool sees the dispatcher');

  // Remove a port.
  dir.writeSteering('legacy-http', { netns: sandbox.path, ports: ['9000-9010'], listen: '127.0.0.1:8080' });
  const third = await reconcileOnce(opts);
  assert.equal(third.result!.failed.length, 0);
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 0, 'the removed port is refused');
  assert.equal(curl(sandbox, '127.0.0.1', 9005), 200, 'the others still work');
  assert.deepEqual(ourIds(third).link, ids.link, 'the link was not touched');

  // Delete the policy file.
  rmSync(file);
  const last = await reconcileOnce(opts);
  assert.equal(reconcileExitCode(last), 0);
  assert.equal(curl(sandbox, '127.0.0.1', 9005), 0);
  assert.ok(
    await eventually(() => !bpftoolIds('prog').has(ids.prog[0]!) && !bpftoolIds('link').has(ids.link[0]!)),
    'bpftool shows no program or link of ours',
  );
  const again = await reconcileOnce({ ...opts, dryRun: true });
  assert.deepEqual(changes(again.plan), []);
});

kernelTest('a broken policy file never tears anything down; other policies still converge', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  const broken = dir.writeSteering('a', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  dir.writeSteering('b', { netns: sandbox.path, ports: [8082], listen: '127.0.0.1:8080' });
  const opts = { root: pinDir, policyPaths: [dir.path] };
  assert.equal(reconcileExitCode(await reconcileOnce(opts)), 0);
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);

  // A half-written file and a new policy in another file.
  dir.writeRaw('a.yaml', 'apiVersion: ebpf-policy/v1\nkind: PortSteering\nmetadata: {name: a\nspec: [');
  dir.writeSteering('c', { netns: sandbox.path, ports: [8083], listen: '127.0.0.1:8080' });
  const r = await reconcileOnce(opts);
  assert.equal(reconcileExitCode(r), 1, 'the run reports the broken file');
  assert.ok(r.load.problems.some((p) => p.file.endsWith('a.yaml') && p.severity === 'error'));
  assert.ok(!r.plan.actions.some((a) => a.policy === 'a' && a.kind === 'delete'), 'nothing of policy a is deleted');
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200, 'policy a keeps its last applied state');
  assert.equal(curl(sandbox, '127.0.0.1', 8083), 200, 'policy c converged anyway');

  // Fixing the file and removing everything cleans up.
  rmSync(broken);
  rmSync(join(dir.path, 'b.yaml'));
  rmSync(join(dir.path, 'c.yaml'));
  const end = await reconcileOnce(opts);
  assert.equal(reconcileExitCode(end), 0);
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 0);
});

kernelTest('a new file that conflicts with a live policy does not take its port: the live policy keeps steering to its target, the new one fails naming the port and the holder', async ({ pinDir, sandbox }) => {
  await sandbox.startServer('127.0.0.1', 8080);
  await sandbox.startServer('127.0.0.1', 8090);
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: ['9000-9010'], listen: '127.0.0.1:8080' });
  const opts = { root: pinDir, policyPaths: [dir.path] };
  assert.equal(reconcileExitCode(await reconcileOnce(opts)), 0);
  assert.match(sandbox.connect('127.0.0.1', 9005), /^listener=8080 /);

  // api.yaml sorts before web.yaml: the conflict check of the loaded files fails web.yaml, the live one.
  dir.writeSteering('api', { netns: sandbox.path, ports: [9005, 9100], listen: '127.0.0.1:8090' });
  const r = await reconcileOnce(opts);
  assert.equal(reconcileExitCode(r), 1);
  assert.ok(r.load.problems.some((p) => p.file.endsWith('web.yaml') && /overlaps policy "api"/.test(p.message)));
  const held = r.plan.problems.find((p) => p.policy === 'api');
  assert.equal(held?.reason, 'BindingHeldByKeptPolicy');
  assert.match(held!.message, /tcp port 9005 for every address is steered by policy web/);
  assert.deepEqual(changes(r.plan), [], 'nothing is written');
  assert.match(sandbox.connect('127.0.0.1', 9005), /^listener=8080 /, 'port 9005 still reaches web\'s target');
  assert.match(sandbox.connect('127.0.0.1', 9000), /^listener=8080 /);
  assert.match(sandbox.connect('127.0.0.1', 9100), /^error /, 'api is not applied');

  // The conflict resolved (web gives up 9005): api is applied.
  dir.writeSteering('web', { netns: sandbox.path, ports: ['9000-9004', '9006-9010'], listen: '127.0.0.1:8080' });
  const fixed = await reconcileOnce(opts);
  assert.equal(reconcileExitCode(fixed), 0, JSON.stringify(fixed.plan.problems));
  assert.match(sandbox.connect('127.0.0.1', 9005), /^listener=8090 /);
  assert.match(sandbox.connect('127.0.0.1', 9100), /^listener=8090 /);
  assert.match(sandbox.connect('127.0.0.1', 9006), /^listener=8080 /);

  rmSync(join(dir.path, 'web.yaml'));
  rmSync(join(dir.path, 'api.yaml'));
  assert.equal(reconcileExitCode(await reconcileOnce(opts)), 0);
});

kernelTest('a continuous connection loop sees zero failures while the dispatcher is upgraded', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  const opts = { root: pinDir, policyPaths: [dir.path] };
  const first = await reconcileOnce(opts);
  assert.equal(reconcileExitCode(first), 0);
  const linkId = ourIds(await reconcileOnce({ ...opts, dryRun: true })).link[0];
  assert.ok(linkId);

  // A client loop inside the namespace: connect, read the answer, count failures, until told to stop.
  const loop = connectionLoop(sandbox, 8081, join(dir.path, 'stop'));
  const t0 = Date.now();
  await sleep(300);
  const marks: string[] = [];
  const upgraded = await reconcileOnce({ ...opts, kindOptions: { PortSteering: { objectPath: DISPATCHER_VARIANT_OBJECT } } });
  marks.push(`upgrade done at +${((Date.now() - t0) / 1000).toFixed(2)}s`);
  assert.ok(upgraded.plan.actions.some((a) => a.op.type === 'replaceProgram'), 'the plan replaces the program');
  assert.deepEqual(upgraded.result!.failed.map((f) => f.error.message), []);
  await sleep(300);
  const back = await reconcileOnce(opts);
  marks.push(`downgrade done at +${((Date.now() - t0) / 1000).toFixed(2)}s`);
  assert.ok(back.plan.actions.some((a) => a.op.type === 'replaceProgram'));
  await sleep(300);
  dir.writeRaw('stop', '');
  await childClosed(loop.child, 'the connection loop', 40_000);
  const [ok, fail] = loop.output().split(' ', 2).map(Number);
  assert.equal(fail, 0, `connections failed during the upgrade (${loop.output()}; ${marks.join(', ')})`);
  assert.ok(ok! > 20, `the loop made connections (${ok})`);
  const after = await reconcileOnce({ ...opts, dryRun: true });
  assert.deepEqual(ourIds(after).link, [linkId], 'same link, new program');

  rmSync(join(dir.path, 'web.yaml'));
  rmSync(join(dir.path, 'stop'));
  assert.equal(reconcileExitCode(await reconcileOnce(opts)), 0);
});

kernelTest('SIGKILL in the middle of an apply, then a rerun, converges with nothing leaked', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('big', { netns: sandbox.path, ports: ['1-65535'], addresses: ['127.0.0.0/8'], listen: '127.0.0.1:8080' });
  dir.writeSteering('small', { netns: sandbox.path, ports: [8081], addresses: ['127.0.0.2/32'], listen: '127.0.0.1:8080' });
  const progsBefore = bpftoolIds('prog');
  const args = ['--bpffs-root', pinDir, '--policies', dir.path];
  // Each run is killed by the failpoint right after the Nth kernel-changing step of its apply, on what the run
  // before it left; a run whose apply has fewer than N steps finishes normally and ends the loop.
  const kills: number[] = [];
  for (let step = 1; step <= 20; step++) {
    const child = spawn(process.execPath, [cli, 'reconcile', '--once', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, [FAILPOINT_ENV]: `apply-step:${step}` },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const end = await childClosed(child, `reconcile --once with the failpoint apply-step:${step}`, 60_000);
    if (end.signal === 'SIGKILL') {
      kills.push(step);
      continue;
    }
    assert.equal(end.code, 0, `the run with apply-step:${step} neither crashed nor converged: ${stderr}`);
    break;
  }
  assert.ok(kills.length >= 2, `at least two runs were killed in the middle of an apply (killed after steps ${kills.join(', ')})`);
  console.log(`# SIGKILL test: ${kills.length} runs killed by the failpoint (after apply steps ${kills.join(', ')} of each run)`);
  const r = runBounded(process.execPath, [cli, 'reconcile', '--once', ...args], {}, 60_000);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const plan = runBounded(process.execPath, [cli, 'plan', '--detailed-exitcode', ...args], {}, 60_000);
  assert.equal(plan.status, 0, `plan after the rerun shows changes:\n${plan.stdout}`);
  assert.equal(curl(sandbox, '127.0.0.2', 8081), 200);
  assert.equal(curl(sandbox, '127.0.0.1', 12345), 200);

  const report = await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true });
  const ours = new Set(ourIds(report).prog);
  // The kernel frees a program whose last fd closed after an RCU grace period, which a busy machine stretches:
  // a program no pin reaches must be gone within a few seconds; a leaked one stays forever.
  const leaked = () => [...bpftoolIds('prog')].filter((id) => !progsBefore.has(id) && !ours.has(id));
  assert.ok(await eventually(() => leaked().length === 0, 10_000), `no program of an interrupted run is left loaded: ${leaked().join(', ')}`);

  rmSync(join(dir.path, 'big.yaml'));
  rmSync(join(dir.path, 'small.yaml'));
  assert.equal(reconcileExitCode(await reconcileOnce({ root: pinDir, policyPaths: [dir.path] })), 0);
  assert.ok(await eventually(() => [...bpftoolIds('prog')].every((id) => progsBefore.has(id))), 'every program of ours is gone');
});

kernelTest('a restarted target is re-resolved; a missing one is Degraded, not fatal', async ({ pinDir, sandbox }) => {
  const server = await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  const opts = { root: pinDir, policyPaths: [dir.path] };
  assert.equal(reconcileExitCode(await reconcileOnce(opts)), 0);
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);

  await killAndWait(server, 'the http server');
  const degraded = await reconcileOnce(opts);
  assert.equal(reconcileExitCode(degraded), 0);
  assert.ok(degraded.plan.problems.some((p) => p.policy === 'web' && p.condition === 'Degraded' && /nothing listens on 127\.0\.0\.1:8080/.test(p.message)));

  await startHttpServer(sandbox, '127.0.0.1', 8080);
  const healed = await reconcileOnce(opts);
  assert.ok(healed.result!.applied.some((a) => a.op.type === 'putSocket'), 'the new socket is put into the sockmap');
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);

  rmSync(join(dir.path, 'web.yaml'));
  assert.equal(reconcileExitCode(await reconcileOnce(opts)), 0);
});

kernelTest('no-op passes still read the kernel: an emptied socket slot, a restarted target, a stray pin and a removed program pin are each seen by the next pass', async ({ pinDir, sandbox }) => {
  let server = await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  dir.writeSteering('api', { netns: sandbox.path, ports: [8082], listen: '127.0.0.1:8080' });
  const opts = { root: pinDir, policyPaths: [dir.path] };
  assert.equal(reconcileExitCode(await reconcileOnce(opts)), 0);
  const warm = async (): Promise<void> => {
    // Warm every cache a pass keeps: the same bytes read twice hand back the same observed objects, and the plan is reused.
    for (let i = 0; i < 3; i++) assert.deepEqual(changes((await reconcileOnce(opts)).plan), []);
  };
  await warm();
  const dispatcher = steeringOf(await reconcileOnce(opts)).dispatchers[0]!;
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);

  // A socket slot, emptied: the next pass puts the socket again (and only that one).
  {
    using sockets = BpfMap.fromPin(join(dispatcher.dir, 'map_sockets'));
    const web = dispatcher.records.find((r) => r.name === 'web')!;
    const key = Buffer.alloc(4);
    key.writeUInt32LE(web.destId);
    assert.ok(sockets.delete(key));
  }
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 0, 'the slot is empty');
  const refilled = await reconcileOnce(opts);
  assert.deepEqual(
    refilled.result!.applied.map((a) => `${a.policy} ${a.op.type}`),
    ['web putSocket'],
    'the emptied slot is seen',
  );
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);
  await warm();

  // The target, restarted on the same address: a new socket (the kernel emptied both slots when the old one closed).
  await killAndWait(server, 'the http server');
  server = await startHttpServer(sandbox, '127.0.0.1', 8080);
  const restarted = await reconcileOnce(opts);
  assert.deepEqual(restarted.result!.applied.map((a) => `${a.policy} ${a.op.type}`).sort(), ['api putSocket', 'web putSocket'], 'the new socket is found');
  assert.equal(curl(sandbox, '127.0.0.1', 8082), 200);
  await warm();

  // A stray pin next to the dispatcher's: removed by the next pass.
  {
    using sockets = BpfMap.fromPin(join(dispatcher.dir, 'map_sockets'));
    sockets.pin(join(dispatcher.dir, 'left_behind'));
  }
  const cleaned = await reconcileOnce(opts);
  assert.ok(cleaned.result!.applied.some((a) => a.op.type === 'removeStray'), 'the stray pin is seen');
  await warm();

  // The program pin, removed: the dispatcher is incomplete and rebuilt.
  rmSync(join(dispatcher.dir, 'program'));
  const rebuilt = await reconcileOnce(opts);
  assert.ok(rebuilt.result!.applied.some((a) => a.op.type === 'createDispatcher'), 'the missing program pin is seen');
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);
  assert.equal(curl(sandbox, '127.0.0.1', 8082), 200);
  assert.deepEqual(changes((await reconcileOnce(opts)).plan), [], 'and then nothing is left to do');

  rmSync(join(dir.path, 'web.yaml'));
  rmSync(join(dir.path, 'api.yaml'));
  assert.equal(reconcileExitCode(await reconcileOnce(opts)), 0);
  await killAndWait(server, 'the http server');
});

kernelTest('no-op passes still read the kernel: a link pin, a binding entry and a record changed behind our back are each seen by the next pass', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  dir.writeSteering('web', { netns: sandbox.path, ports: [8081, 8082], listen: '127.0.0.1:8080' });
  const opts = { root: pinDir, policyPaths: [dir.path] };
  assert.equal(reconcileExitCode(await reconcileOnce(opts)), 0);
  // Warm every cache a pass keeps (parsed and validated documents, records, the target's holder).
  for (let i = 0; i < 2; i++) assert.deepEqual(changes((await reconcileOnce(opts)).plan), []);
  const dispatcher = steeringOf(await reconcileOnce(opts)).dispatchers[0]!;
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);

  // The link pin, removed: the next pass links again.
  rmSync(join(dispatcher.dir, 'link'));
  const relinked = await reconcileOnce(opts);
  assert.ok(relinked.result!.applied.some((a) => a.op.type === 'relink'), 'the missing link pin is seen');
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);

  // A binding entry, deleted: the next pass writes it again.
  {
    using bindings = BpfMap.fromPin(join(dispatcher.dir, 'map_bindings'));
    const entries = bindings.entries();
    assert.ok(entries.length > 0);
    for (const [k] of entries) bindings.delete(k);
  }
  assert.equal(curl(sandbox, '127.0.0.1', 8082), 0, 'the entries are gone');
  const rewritten = await reconcileOnce(opts);
  assert.ok(rewritten.result!.applied.some((a) => a.op.type === 'upsertBindings'), 'the deleted entries are seen');
  assert.equal(curl(sandbox, '127.0.0.1', 8082), 200);

  // The policy record, altered: the next pass writes it again.
  {
    using policies = BpfMap.fromPin(join(dispatcher.dir, 'map_policies'));
    const [[k, v]] = policies.entries() as [[Buffer, Buffer]];
    const record = JSON.parse(decodePolicyRecord(v)) as { targetText: string };
    record.targetText = 'listen 127.0.0.1:9999';
    policies.update(k, encodePolicyRecord(JSON.stringify(record)));
  }
  const restored = await reconcileOnce(opts);
  assert.ok(
    restored.result!.applied.some((a) => a.op.type === 'writeRecord' && a.code === 'RecordOutdated'),
    `the altered record is seen: ${JSON.stringify(restored.plan.actions.filter((a) => a.kind !== 'noop').map((a) => a.code))}`,
  );
  assert.deepEqual(changes((await reconcileOnce(opts)).plan), [], 'and then nothing is left to do');

  rmSync(join(dir.path, 'web.yaml'));
  assert.equal(reconcileExitCode(await reconcileOnce(opts)), 0);
});
