/**
 * The Program kind's other attachments against the real kernel, with a
 * bring-your-own object compiled here (test/fixtures/program/hooks.c): a
 * tracepoint program counts real getppid calls, a tc (tcx) program counts
 * real packets on a veth, and a cgroup/connect4 program refuses a connect of
 * a process in a throwaway cgroup (EPERM) to the port its declared map entry
 * names, while other cgroups are untouched; a changed entry is a map write
 * (same program, same link); removal detaches everything.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Features, hasFeature } from '../../src/bpf/index.js';
import { changes, computeStatuses, reconcileExitCode, reconcileOnce, type ReconcileOptions } from '../../src/manager.js';
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import { NetnsSandbox } from '../../src/sandbox/netns-sandbox.js';
import { TestCgroup, tryConnects } from './connect-policy-helpers.js';
import { bpftoolIds, eventually, kernelTest } from './harness.js';
import { NET, udpExchange, vethPair } from './packet-filter-helpers.js';
import { PolicyDir } from './reconcile-helpers.js';

const SOURCE = fileURLToPath(new URL('../../../test/fixtures/program/hooks.c', import.meta.url));
const HIT = { tracepoint: 0, tc: 1, connect: 2, denied: 3 } as const;

function compile(out: string): string {
  const arch = runBounded('gcc', ['-dumpmachine']).stdout.trim() || 'x86_64-linux-gnu';
  const r = runBounded('clang', ['-target', 'bpf', '-O2', '-g', '-Wall', '-Werror', `-I/usr/include/${arch}`, '-c', SOURCE, '-o', out]);
  assert.equal(r.status, 0, `clang: ${r.stderr}`);
  const sum = runBounded('sha256sum', [out]);
  return sum.stdout.split(' ')[0]!;
}

function policy(name: string, sha: string, program: string, attach: string, extra: string[] = []): string {
  return ['apiVersion: ebpf-policy/v1', 'kind: Program', 'metadata:', `  name: ${name}`, 'spec:', '  object: hooks.o', `  sha256: ${sha}`, `  program: ${program}`, `  attach: ${attach}`, ...extra].join('\n') + '\n';
}

type Status = Record<string, unknown> & { name: string; conditions: { type: string; status: boolean; message: string }[] };

async function statuses(opts: ReconcileOptions): Promise<Map<string, Status>> {
  const r = await reconcileOnce({ ...opts, dryRun: true });
  return new Map(computeStatuses(r, true, { showMaps: true }).filter((s) => s.kind === 'Program').map((s) => [s.name, s as Status]));
}

/** hits[slot] of a policy, as its decoded map contents show it (each policy pins its own maps). */
function hits(s: Status | undefined, slot: number): number {
  const contents = (s?.mapContents as Record<string, { entries: { key: number; value: number }[] }> | undefined)?.hits;
  assert.ok(contents, `hits of ${s?.name}: ${JSON.stringify(s?.mapContents)}`);
  return contents.entries.find((e) => e.key === slot)?.value ?? 0;
}

kernelTest('Program: a tracepoint program counts real getppid calls, a tc program counts real packets, a cgroup/connect4 program refuses a connect by its declared entry; entries change in place; removal detaches all', async ({ pinDir, sandbox }) => {
  assert.ok(hasFeature(Features.tcx), 'this test needs tcx links (Linux 6.6+)');
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  await using cg = new TestCgroup('prog');
  using dir = new PolicyDir();
  const sha = compile(join(dir.path, 'hooks.o'));
  dir.writeRaw('tp.yaml', policy('tp', sha, 'on_getppid', '{tracepoint: {category: syscalls, name: sys_enter_getppid}}'));
  dir.writeRaw('tc.yaml', policy('tc', sha, 'on_tc', '{tc: {interfaces: [vb], direction: ingress}}', [`  netns: ${sandbox.path}`]));
  const connectPolicy = (port: number) => policy('guard', sha, 'on_connect4', `{cgroup: {path: ${cg.name}, type: connect4}}`, ['  maps:', `    config: [{key: 0, value: {deny_port: ${port}}}]`]);
  dir.writeRaw('guard.yaml', connectPolicy(9));
  const opts: ReconcileOptions = { root: pinDir, policyPaths: [dir.path] };

  const first = await reconcileOnce(opts);
  assert.deepEqual(first.result?.failed.map((f) => `${f.action.object}: ${f.error.message}`), []);
  assert.equal(reconcileExitCode(first), 0);
  assert.deepEqual(changes((await reconcileOnce({ ...opts, dryRun: true })).plan), [], 'converged');
  let s = await statuses(opts);
  for (const name of ['tp', 'tc', 'guard']) assert.equal(s.get(name)?.conditions.find((c) => c.type === 'Ready')?.status, true, `${name}: ${JSON.stringify(s.get(name)?.conditions)}`);

  // Tracepoint: a process calls getppid 25 times (others on the machine may call it too).
  const before = hits(s.get('tp'), HIT.tracepoint);
  const py = runBounded('python3', ['-c', 'import os\nfor _ in range(25): os.getppid()']);
  assert.equal(py.status, 0, py.stderr);
  s = await statuses(opts);
  assert.ok(hits(s.get('tp'), HIT.tracepoint) - before >= 25, `at least the 25 getppid calls were counted (${before} -> ${hits(s.get('tp'), HIT.tracepoint)})`);

  // tc ingress on vb: 6 datagrams arrive there (and nothing else is sent in this namespace).
  const tcBefore = hits(s.get('tc'), HIT.tc);
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 7000, count: 6 }]), { 7000: 6 }, 'the tc program passes everything');
  s = await statuses(opts);
  assert.ok(hits(s.get('tc'), HIT.tc) - tcBefore >= 6, `the 6 packets were counted at tc ingress (${tcBefore} -> ${hits(s.get('tc'), HIT.tc)})`);

  // cgroup/connect4: port 9 refused for a process in the cgroup, not for one outside; port 10 allowed.
  const inside = tryConnects(sandbox, cg, [{ op: 'udp-connect', host: NET.peer4, port: 9 }, { op: 'udp-connect', host: NET.peer4, port: 10 }]);
  assert.deepEqual(inside.results, ['EPERM', 'ok']);
  const outside = tryConnects(sandbox, undefined, [{ op: 'udp-connect', host: NET.peer4, port: 9 }]);
  assert.deepEqual(outside.results, ['ok'], 'other cgroups are not guarded');
  s = await statuses(opts);
  assert.equal(hits(s.get('guard'), HIT.denied), 1);
  const guardProgram = s.get('guard')!.programId;
  const guardLink = (s.get('guard')!.links as { id: number }[])[0]!.id;

  // A changed entry is a map write: same program, same link, new behaviour.
  dir.writeRaw('guard.yaml', connectPolicy(10));
  const edit = await reconcileOnce({ ...opts, dryRun: true });
  assert.deepEqual(changes(edit.plan).map((a) => `${a.kind} ${a.code}`), ['update EntriesChanged']);
  assert.equal(reconcileExitCode(await reconcileOnce(opts)), 0);
  const edited = tryConnects(sandbox, cg, [{ op: 'udp-connect', host: NET.peer4, port: 9 }, { op: 'udp-connect', host: NET.peer4, port: 10 }]);
  assert.deepEqual(edited.results, ['ok', 'EPERM']);
  s = await statuses(opts);
  assert.equal(s.get('guard')!.programId, guardProgram);
  assert.equal((s.get('guard')!.links as { id: number }[])[0]!.id, guardLink);

  // Removal: every link and program goes.
  const ids = [...s.values()].map((x) => ({ prog: x.programId as number, links: (x.links as { id: number }[]).map((l) => l.id) }));
  for (const f of ['tp.yaml', 'tc.yaml', 'guard.yaml']) dir.writeRaw(f, '');
  const removed = await reconcileOnce(opts);
  assert.deepEqual(removed.result?.failed.map((f) => f.error.message), []);
  assert.ok(await eventually(() => ids.every((i) => !bpftoolIds('prog').has(i.prog)), 3000), 'the programs are gone');
  assert.ok(ids.every((i) => i.links.every((l) => !bpftoolIds('link').has(l))), 'the links are gone');
  assert.deepEqual(tryConnects(sandbox, cg, [{ op: 'udp-connect', host: NET.peer4, port: 10 }]).results, ['ok'], 'the cgroup is no longer guarded');
});
