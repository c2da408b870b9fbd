/**
 * SyscallCounter end to end against the real kernel: real processes in
 * throwaway cgroups make a known number of system calls, and the counter
 * finds exactly those, by syscall, command, cgroup and process; "*" counts
 * everything; edits change the maps in place; deleting the file removes
 * everything; the key layout has no padding holes (read from the object's
 * BTF with bpftool).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { COUNTER_OBJECT, COUNTER_VARIANT_OBJECT } from '../../src/kinds/syscall-counter/layout.js';
import type { ObservedCounters } from '../../src/kinds/syscall-counter/store.js';
import { changes, kindState, reconcileOnce, type ReconcileOptions, type ReconcileReport } from '../../src/manager.js';
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import { TestCgroup } from './connect-policy-helpers.js';
import { EXECS, SCRIPT, counterStatuses as statuses, inCgroup, keyed, writeCounter } from './syscall-counter-helpers.js';
import { bpftoolIds, eventually, kernelTest } from './harness.js';
import { PolicyDir } from './reconcile-helpers.js';

async function reconciled(opts: ReconcileOptions): Promise<ReconcileReport> {
  const r = await reconcileOnce({ insecurePermissions: true, settle: true, ...opts });
  assert.deepEqual(r.result?.failed.map((f) => `${f.action.object}: ${f.error.message}`) ?? [], []);
  assert.deepEqual(r.plan.problems.map((p) => `${p.policy}: ${p.message}`), []);
  return r;
}

function counterOf(r: ReconcileReport): NonNullable<ObservedCounters['counter']> {
  const s = kindState(r, 'SyscallCounter');
  assert.ok(s && !s.observeError && (s.observed as ObservedCounters).counter, 'the counter is observed');
  return (s.observed as ObservedCounters).counter!;
}

kernelTest('counts exactly the execve calls of a process in a test cgroup, by syscall and comm, by cgroup and by pid; another cgroup and other syscalls are not counted', async ({ pinDir }) => {
  await using cg = new TestCgroup('sc');
  await using other = new TestCgroup('sc-other');
  using dir = new PolicyDir();
  writeCounter(dir, 'by-comm', { syscalls: ['execve'], groupBy: ['syscall', 'comm'], cgroup: cg.name });
  writeCounter(dir, 'by-cgroup', { syscalls: ['execve', 'getppid'], groupBy: ['syscall', 'cgroup'], cgroup: cg.path });
  writeCounter(dir, 'by-pid', { syscalls: ['execve'], groupBy: ['pid'], cgroup: cg.name, maxKeys: 64 });
  await reconciled({ root: pinDir, policyPaths: [dir.path] });

  const pid = inCgroup(cg, SCRIPT);
  inCgroup(other, SCRIPT); // the same in another cgroup: not counted
  const s = await statuses(pinDir, dir);
  // The shell's exec of python3 runs while its command is still "sh"; python's children exec /bin/true as "python3".
  assert.deepEqual(keyed(s.get('by-comm')!.top), { 'execve sh': 1, 'execve python3': EXECS });
  assert.deepEqual(keyed(s.get('by-cgroup')!.top), { [`getppid ${cg.path}`]: 25, [`execve ${cg.path}`]: EXECS + 1 });
  // By pid: python itself (its own exec happened as the shell, same pid) and each child once.
  const byPid = keyed(s.get('by-pid')!.top);
  assert.equal(byPid[String(pid)], 1, `python's pid ${pid} made one execve: ${JSON.stringify(byPid)}`);
  assert.equal(Object.values(byPid).reduce((a, b) => a + b, 0), EXECS + 1);
  assert.equal(Object.keys(byPid).length, EXECS + 1, 'one key per process');
  assert.equal(s.get('by-pid')!.keys, EXECS + 1);

  for (const f of ['by-comm', 'by-cgroup', 'by-pid']) rmSync(join(dir.path, `${f}.json`));
  const after = await reconciled({ root: pinDir, policyPaths: [dir.path] });
  assert.deepEqual(kindState(after, 'SyscallCounter')!.observed, {}, 'deleting the files removes the counter');
});

kernelTest('"*" counts every syscall of the cgroup; edits change the maps in place (program and link stay, counts of kept keys stay); a new groupBy starts a fresh table', async ({ pinDir }) => {
  await using cg = new TestCgroup('sc');
  using dir = new PolicyDir();
  writeCounter(dir, 'all', { syscalls: ['*'], cgroup: cg.name });
  const first = await reconciled({ root: pinDir, policyPaths: [dir.path] });
  const c0 = counterOf(first);
  inCgroup(cg, SCRIPT);
  let s = (await statuses(pinDir, dir)).get('all')!;
  const all = keyed(s.top);
  assert.equal(all.getppid, 25);
  assert.equal(all.execve, EXECS + 1);
  for (const nr of ['read', 'mmap', 'openat', 'close']) assert.ok((all[nr] ?? 0) > 0, `${nr} is counted too: ${JSON.stringify(all)}`);

  // From "*" to two names: the same program, link and table; only the wanted bits change.
  writeCounter(dir, 'all', { syscalls: ['getppid', 'execve'], cgroup: cg.name });
  const edited = await reconciled({ root: pinDir, policyPaths: [dir.path] });
  assert.deepEqual(changes(edited.plan).map((a) => a.code), ['CountingChanged']);
  const c1 = counterOf(edited);
  assert.deepEqual([c1.program?.id, c1.link?.id, c1.slots[0]?.table?.id], [c0.program?.id, c0.link?.id, c0.slots[0]?.table?.id]);
  inCgroup(cg, SCRIPT);
  s = (await statuses(pinDir, dir)).get('all')!;
  assert.equal(keyed(s.top).getppid, 50, 'getppid kept its count and counted on');
  const readBefore = all.read!;
  assert.equal(keyed(s.top).read, readBefore, 'read is no longer counted (its old count stays until evicted)');

  // A new groupBy: the keys change meaning, so a fresh table (counts restart).
  writeCounter(dir, 'all', { syscalls: ['getppid'], groupBy: ['syscall', 'comm'], cgroup: cg.name });
  const regrouped = await reconciled({ root: pinDir, policyPaths: [dir.path] });
  assert.deepEqual(changes(regrouped.plan).map((a) => a.code), ['CountTableChanged']);
  inCgroup(cg, SCRIPT);
  s = (await statuses(pinDir, dir)).get('all')!;
  assert.deepEqual(keyed(s.top), { 'getppid python3': 25 });
  rmSync(join(dir.path, 'all.json'));
  await reconciled({ root: pinDir, policyPaths: [dir.path] });
});

kernelTest('an upgrade attaches the new program with a new link and keeps the counts; a removed link pin is attached again', async ({ pinDir }) => {
  await using cg = new TestCgroup('sc');
  using dir = new PolicyDir();
  writeCounter(dir, 'p', { syscalls: ['getppid'], cgroup: cg.name });
  const first = counterOf(await reconciled({ root: pinDir, policyPaths: [dir.path] }));
  inCgroup(cg, SCRIPT);
  const up = await reconciled({ root: pinDir, policyPaths: [dir.path], kindOptions: { SyscallCounter: { objectPath: COUNTER_VARIANT_OBJECT } } });
  assert.deepEqual(changes(up.plan).map((a) => a.code), ['BytecodeChanged']);
  const c = counterOf(up);
  assert.notEqual(c.program?.id, first.program?.id);
  assert.equal(c.link?.progId, c.program?.id);
  assert.ok(await eventually(() => !bpftoolIds('prog').has(first.program!.id) && !bpftoolIds('link').has(first.link!.id), 5000), 'the old program and link are freed');
  inCgroup(cg, SCRIPT);
  assert.equal(keyed((await statuses(pinDir, dir)).get('p')!.top).getppid, 50, 'counts kept across the upgrade');

  rmSync(join(pinDir, 'syscalls', 'link'));
  const repaired = await reconciled({ root: pinDir, policyPaths: [dir.path], kindOptions: { SyscallCounter: { objectPath: COUNTER_VARIANT_OBJECT } } });
  assert.deepEqual(changes(repaired.plan).map((a) => a.code), ['NotAttached']);
  inCgroup(cg, SCRIPT);
  assert.equal(keyed((await statuses(pinDir, dir)).get('p')!.top).getppid, 75);
  rmSync(join(dir.path, 'p.json'));
  await reconciled({ root: pinDir, policyPaths: [dir.path] });
});

kernelTest('the count key has no padding holes (struct sc_key in the object BTF: members back to back, size = their sum)', () => {
  const r = runBounded('bpftool', ['-j', 'btf', 'dump', 'file', COUNTER_OBJECT]);
  assert.equal(r.status, 0, r.stderr);
  type BtfType = { id: number; kind: string; name?: string; size?: number; type_id?: number; nr_elems?: number; members?: Array<{ name: string; type_id: number; bits_offset: number }> };
  const types = (JSON.parse(r.stdout) as { types: BtfType[] }).types;
  const byId = new Map(types.map((t) => [t.id, t]));
  const sizeOf = (id: number): number => {
    const t = byId.get(id)!;
    if (t.kind === 'ARRAY') return t.nr_elems! * sizeOf(t.type_id!);
    if (t.kind === 'TYPEDEF' || t.kind === 'CONST' || t.kind === 'VOLATILE') return sizeOf(t.type_id!);
    return t.size!;
  };
  const key = types.find((t) => t.kind === 'STRUCT' && t.name === 'sc_key');
  assert.ok(key, 'struct sc_key is in the BTF');
  let offset = 0;
  for (const m of key.members!) {
    assert.equal(m.bits_offset, offset * 8, `${m.name} starts where the previous member ends (no hole before it)`);
    offset += sizeOf(m.type_id);
  }
  assert.equal(key.size, offset, 'no padding at the end');
  assert.equal(key.size, 32, 'the size src/kinds/syscall-counter/layout.ts encodes');
});
