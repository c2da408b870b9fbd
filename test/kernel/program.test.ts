/**
 * The Program kind end to end against the real kernel, with the shipped
 * example (examples/xdp-counter): real UDP packets through a veth pair
 * between throwaway namespaces are counted per (source address, source
 * port, protocol) by the user's own XDP object, new tuples arrive as ring
 * buffer events decoded by BTF, a changed digest is refused while the old
 * program keeps running, an object upgrade keeps the maps and their
 * contents (same link, new program), an object whose maps changed is
 * replaced with the loss named by the plan, and removal leaves nothing.
 */
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBounded, sleep } from '../../src/sandbox/bounded-wait.js';
import { changes, computeStatuses, reconcileExitCode, reconcileOnce, type ReconcileOptions } from '../../src/manager.js';
import { openProgramEvents } from '../../src/kinds/program/events.js';
import { NetnsSandbox } from '../../src/sandbox/netns-sandbox.js';
import { bpftoolIds, eventually, kernelTest } from './harness.js';
import { NET, ifindexIn, udpExchange, vethPair } from './packet-filter-helpers.js';
import { PolicyDir } from './reconcile-helpers.js';
import { EXAMPLE, OBJECT, compileVariant, countsOf, sha256, writePolicy } from './program-helpers.js';

const UDP_FRAME = (payload: number) => 14 + 20 + 8 + payload;

kernelTest('Program: the example XDP counter counts real packets per tuple, sends BTF-decoded events, refuses a changed digest, keeps its maps across an upgrade, names what a replace loses, and leaves nothing on removal', async ({ pinDir, sandbox }) => {
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  using dir = new PolicyDir();
  copyFileSync(OBJECT, join(dir.path, 'xdp_counter.o'));
  const shipped = /sha256: ([0-9a-f]{64})/.exec(readFileSync(join(EXAMPLE, 'tuple-counter.yaml'), 'utf8'))![1]!;
  assert.equal(sha256(OBJECT), shipped, 'the shipped policy names the digest of the object the build makes (examples/xdp-counter/build.sh is reproducible)');
  writePolicy(dir, sandbox.path, 'xdp_counter.o', shipped);
  const opts: ReconcileOptions = { root: pinDir, policyPaths: [dir.path] };

  const first = await reconcileOnce(opts);
  assert.deepEqual(first.result?.failed.map((f) => `${f.action.object}: ${f.error.message}`), []);
  assert.equal(reconcileExitCode(first), 0);
  const again = await reconcileOnce({ ...opts, dryRun: true });
  assert.deepEqual(changes(again.plan), [], 'a second run changes nothing');
  const [status] = computeStatuses(again, true).filter((s) => s.kind === 'Program');
  assert.equal(status?.conditions.find((c) => c.type === 'Ready')?.status, true, JSON.stringify(status?.conditions));
  const links = status!.links as { pin: string; id: number; attached: boolean }[];
  assert.equal(links.length, 1);
  assert.equal(links[0]!.pin, `link_xdp_${/ino-\d+/.exec(links[0]!.pin)![0]}_${ifindexIn(sandbox.name, 'vb')}`);
  const programId = status!.programId as number;
  assert.ok(bpftoolIds('prog').has(programId) && bpftoolIds('link').has(links[0]!.id));

  // Real packets: 5 from port 40001, 3 from 40002 (IPv4 UDP), 2 over IPv6 (not counted: IPv4 only).
  const stream = openProgramEvents(pinDir);
  try {
    assert.equal(stream.sources, 1, 'the events ring of the policy is read');
    const got = await udpExchange(sandbox, peer, [
      { dst: NET.local4, port: 7000, count: 5, sport: 40001 },
      { dst: NET.local4, port: 7000, count: 3, sport: 40002, size: 30 },
      { dst: NET.local6, port: 7000, count: 2, sport: 40003 },
    ]);
    assert.deepEqual(got, { 7000: 10 }, 'every packet passes');
    const counts = countsOf(opts, await reconcileOnce({ ...opts, dryRun: true }));
    assert.deepEqual(counts, {
      [`${NET.peer4}:40001/17`]: { packets: 5, bytes: 5 * UDP_FRAME(10) },
      [`${NET.peer4}:40002/17`]: { packets: 3, bytes: 3 * UDP_FRAME(30) },
    });
    const events: Record<string, unknown>[] = [];
    assert.ok(await eventually(() => (events.push(...stream.poll().map((e) => e.json.event as Record<string, unknown>)), events.length >= 2), 3000), `two new-tuple events (got ${JSON.stringify(events)})`);
    await sleep(100);
    events.push(...stream.poll().map((e) => e.json.event as Record<string, unknown>));
    assert.deepEqual(
      events.map((e) => `${e.saddr}:${e.sport}/${e.protocol} ${e.bytes}`).sort(),
      [`${NET.peer4}:40001/17 ${UDP_FRAME(10)}`, `${NET.peer4}:40002/17 ${UDP_FRAME(30)}`],
      'one event per new tuple, with the first packet\'s size',
    );
  } finally {
    stream.close();
  }

  // A changed digest is refused before anything is loaded; the running program stays.
  const other = join(dir.path, 'variant.o');
  const variantDigest = compileVariant(other, ['-DVARIANT=1']);
  assert.notEqual(variantDigest, shipped);
  writePolicy(dir, sandbox.path, 'variant.o', shipped);
  const refused = await reconcileOnce(opts);
  assert.equal(reconcileExitCode(refused), 1);
  const problem = refused.load.problems.find((p) => p.message.includes('sha256'));
  assert.ok(problem, `a load problem names the digest: ${JSON.stringify(refused.load.problems)}`);
  assert.match(problem.message, new RegExp(`variant\\.o has sha256 ${variantDigest}, but the policy requires ${shipped}`));
  assert.ok(bpftoolIds('prog').has(programId), 'the old program still runs');
  assert.deepEqual(changes(refused.plan), [], 'nothing is changed for a refused object');

  // The right digest: an upgrade with the same maps swaps the program in the same link and keeps the counts.
  writePolicy(dir, sandbox.path, 'variant.o', variantDigest);
  const planned = await reconcileOnce({ ...opts, dryRun: true });
  const upgrade = planned.plan.actions.filter((a) => a.kind !== 'noop');
  assert.deepEqual(upgrade.map((a) => `${a.kind} ${a.code}`), ['update ObjectChanged'], JSON.stringify(upgrade));
  assert.match(upgrade[0]!.reason, /maps keep their contents/);
  const upgraded = await reconcileOnce(opts);
  assert.deepEqual(upgraded.result?.failed.map((f) => f.error.message), []);
  const [after] = computeStatuses(await reconcileOnce({ ...opts, dryRun: true }), true).filter((s) => s.kind === 'Program');
  assert.notEqual(after!.programId, programId, 'a new program runs');
  assert.equal((after!.links as { id: number }[])[0]!.id, links[0]!.id, 'in the same link');
  await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 7000, count: 2, sport: 40001 }]);
  const kept = countsOf(opts, await reconcileOnce({ ...opts, dryRun: true }));
  assert.deepEqual(kept[`${NET.peer4}:40001/17`], { packets: 7, bytes: 7 * UDP_FRAME(10) }, 'the counts survived the upgrade and keep counting');

  // Maps that change (a smaller counts table): a replace, and the plan says what is lost.
  const smaller = join(dir.path, 'smaller.o');
  writePolicy(dir, sandbox.path, 'smaller.o', compileVariant(smaller, ['-DCOUNTS_MAX_ENTRIES=1024']));
  const replacing = await reconcileOnce({ ...opts, dryRun: true });
  const replace = replacing.plan.actions.find((a) => a.code === 'MapsIncompatible');
  assert.ok(replace, JSON.stringify(replacing.plan.actions.map((a) => a.code)));
  assert.equal(replace.kind, 'replace');
  assert.match(replace.reason, /lost: the contents of .*counts \(changed\)/);
  const replaced = await reconcileOnce(opts);
  assert.deepEqual(replaced.result?.failed.map((f) => f.error.message), []);
  assert.deepEqual(changes((await reconcileOnce({ ...opts, dryRun: true })).plan), []);
  assert.deepEqual(countsOf(opts, await reconcileOnce({ ...opts, dryRun: true })), {}, 'a fresh counts map');

  // Removal: pins gone, program and link gone.
  const [last] = computeStatuses(await reconcileOnce({ ...opts, dryRun: true }), true).filter((s) => s.kind === 'Program');
  writeFileSync(join(dir.path, 'tuple-counter.yaml'), '');
  const removed = await reconcileOnce(opts);
  assert.deepEqual(removed.result?.failed.map((f) => f.error.message), []);
  assert.ok(await eventually(() => !bpftoolIds('prog').has(last!.programId as number), 3000), 'the program is gone');
  assert.ok(!bpftoolIds('link').has((last!.links as { id: number }[])[0]!.id), 'the link is gone');
});

/** The XDP mode the kernel reports for `dev` in `ns`: 1 native (drv), 2 generic (skb), undefined: none. */
function xdpMode(ns: string, dev: string): number | undefined {
  const r = runBounded('ip', ['-n', ns, '-j', 'link', 'show', 'dev', dev]);
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as Array<{ xdp?: { mode: number } }>)[0]!.xdp?.mode;
}

kernelTest('Program: a changed XDP mode on the same interface attaches anew in that mode (regression: the old link was updated in place and kept its mode), and the counter counts there', async ({ pinDir, sandbox }) => {
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  using dir = new PolicyDir();
  const withMode = (mode: string) => {
    const path = writePolicy(dir, sandbox.path, OBJECT, sha256(OBJECT));
    writeFileSync(path, readFileSync(path, 'utf8').replace(/mode: auto/, `mode: ${mode}`));
  };
  const opts: ReconcileOptions = { root: pinDir, policyPaths: [dir.path], reportDir: null };
  withMode('native');
  assert.equal(reconcileExitCode(await reconcileOnce(opts)), 0);
  assert.equal(xdpMode(sandbox.name, 'vb'), 1, 'native XDP on the veth');
  withMode('generic');
  const planned = await reconcileOnce({ ...opts, dryRun: true });
  assert.deepEqual(changes(planned.plan).map((a) => `${a.kind} ${a.code}`), ['update TargetChanged']);
  const r = await reconcileOnce(opts);
  assert.deepEqual(r.result?.failed.map((f) => f.error.message), []);
  assert.ok(await eventually(() => xdpMode(sandbox.name, 'vb') === 2, 3000), `generic XDP on the veth now (mode ${xdpMode(sandbox.name, 'vb')})`);
  assert.deepEqual(changes((await reconcileOnce({ ...opts, dryRun: true })).plan), [], 'then nothing to do');
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 7000, count: 4, sport: 40009 }]), { 7000: 4 });
  assert.equal(countsOf(opts, await reconcileOnce({ ...opts, dryRun: true }))[`${NET.peer4}:40009/17`]?.packets, 4, 'counted by the program at the new hook');
  writeFileSync(join(dir.path, 'tuple-counter.yaml'), '');
  assert.equal(reconcileExitCode(await reconcileOnce(opts)), 0);
  assert.ok(await eventually(() => xdpMode(sandbox.name, 'vb') === undefined, 5000), 'no XDP left on the veth');
});
