/**
 * ConnectPolicy end to end against the real kernel: real client processes
 * moved into throwaway cgroups (inside a throwaway network namespace) get
 * EPERM from connect() and sendto() where a policy denies, pass where it
 * allows, and are counted and reported; audit mode, rule edits in place,
 * several policies on one cgroup, another tool's program on the same cgroup,
 * a program upgrade by link update, and a cgroup that goes away and comes
 * back. bpftool is the independent observer of links and programs.
 */
import assert from 'node:assert/strict';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AttachType, loadObject, unpin } from '../../src/bpf/index.js';
import { attachToCgroup } from '../../src/bpf/cgroup.js';
import { GuardEventStream, type GuardEvent } from '../../src/kinds/connect-policy/events.js';
import { GUARD_HOOKS, GUARD_VARIANT_OBJECT } from '../../src/kinds/connect-policy/layout.js';
import type { ConnectPolicyStatus } from '../../src/kinds/connect-policy/status.js';
import type { ObservedGuard, ObservedGuards } from '../../src/kinds/connect-policy/store.js';
import { changes, kindState, reconcileOnce, type ReconcileOptions, type ReconcileReport } from '../../src/manager.js';
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import { bpftool, bpftoolIds, eventually, kernelTest } from './harness.js';
import { TestCgroup, tryConnects, writeConnectPolicy, type Attempt } from './connect-policy-helpers.js';
import { PolicyDir, statusesOf } from './reconcile-helpers.js';

const HOOKS = fileURLToPath(new URL('../../../build/bpf/test_hooks.o', import.meta.url));

function guardsOf(r: ReconcileReport): ObservedGuards {
  const s = kindState(r, 'ConnectPolicy');
  assert.ok(s && !s.observeError, `ConnectPolicy pins could not be read: ${s?.observeError?.message}`);
  return s.observed as ObservedGuards;
}

async function reconciled(opts: ReconcileOptions): Promise<ReconcileReport> {
  const r = await reconcileOnce({ insecurePermissions: true, settle: true, ...opts });
  assert.deepEqual(r.result?.failed.map((f) => `${f.action.object}: ${f.error.message}`) ?? [], []);
  return r;
}

/** The one guard after a pass (and that it serves `policies`). */
function theGuard(r: ReconcileReport, policies: string[]): ObservedGuard {
  const guards = guardsOf(r).guards;
  assert.equal(guards.length, 1, `one guard: ${guards.map((g) => g.key).join(', ')}`);
  assert.deepEqual(
    guards[0]!.policies.map((p) => p.name),
    policies,
  );
  return guards[0]!;
}

/** Names of the programs attached to a cgroup, as bpftool lists them (sorted). */
function cgroupPrograms(path: string): string[] {
  const r = runBounded('bpftool', ['-j', 'cgroup', 'show', path]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim() === '' ? [] : (JSON.parse(r.stdout) as Array<{ name: string }>).map((p) => p.name).sort();
}

/** Link and program ids of every hook of a guard, as bpftool sees them. */
function hookIds(g: ObservedGuard): Record<string, { link: number; prog: number }> {
  const out: Record<string, { link: number; prog: number }> = {};
  for (const h of GUARD_HOOKS) {
    const l = g.hooks[h].link;
    assert.ok(l?.attached, `${h} link attached`);
    const shown = bpftool('link', 'show', 'id', String(l.id)) as { prog_id: number; cgroup_id?: number; attach_type?: string };
    assert.equal(shown.prog_id, l.progId, `bpftool: ${h} link ${l.id} runs program ${l.progId}`);
    out[h] = { link: l.id, prog: l.progId };
  }
  return out;
}

function statusOf(r: ReconcileReport, name: string): ConnectPolicyStatus {
  const s = statusesOf(r, 'ConnectPolicy').find((x) => x.name === name);
  assert.ok(s, `status of ${name}`);
  return s as ConnectPolicyStatus;
}

/** Counters per rule ("default" for the default) of a policy's status. */
function countersOf(s: ConnectPolicyStatus): Record<string, [number, number, number]> {
  const out: Record<string, [number, number, number]> = {};
  for (const c of [...s.rules, ...(s.default ? [s.default] : [])]) out[c.rule ?? 'default'] = [Number(c.connects), Number(c.denies), Number(c.wouldDeny)];
  return out;
}

async function collectEvents(stream: GuardEventStream, n: number): Promise<GuardEvent[]> {
  const got: GuardEvent[] = [];
  await eventually(() => {
    got.push(...stream.poll());
    return got.length >= n;
  }, 5000);
  assert.equal(got.length, n, `${n} events arrived: ${JSON.stringify(got)}`);
  return got;
}

const IMDS4 = '169.254.169.254';
const IMDS6 = 'fd00:ec2::254';

kernelTest('enforce: a process in the cgroup gets EPERM for denied destinations (TCP, UDP sendto and connect, IPv6, IPv4-mapped) at once, allowed ones pass, one outside is not affected; counters and events match', async ({ pinDir, sandbox }) => {
  await using cg = new TestCgroup();
  using dir = new PolicyDir();
  await sandbox.startServer('127.0.0.1', 8080);
  writeConnectPolicy(dir, 'guard-app', {
    cgroup: cg.name,
    rules: [
      { name: 'block-imds', action: 'deny', destinations: [`${IMDS4}/32`, `${IMDS6}/128`] },
      { name: 'block-dns', action: 'deny', protocol: 'udp', ports: [53] },
      { name: 'allow-9050', action: 'allow', protocol: 'tcp', ports: [9050] },
      { name: 'block-9000s', action: 'deny', protocol: 'tcp', destinations: ['127.0.0.0/8'], ports: ['9000-9099'] },
    ],
    sampleRate: 1,
  });
  const r = await reconciled({ root: pinDir, policyPaths: [dir.path] });
  const g = theGuard(r, ['guard-app']);
  hookIds(g);
  assert.equal(g.guard?.cgroupPath, cg.path);

  using stream = GuardEventStream.open(pinDir);
  const attempts: Attempt[] = [
    { op: 'tcp', host: '127.0.0.1', port: 8080 }, // default allow: the server answers
    { op: 'tcp', host: IMDS4, port: 80 }, // block-imds
    { op: 'tcp', host: IMDS6, port: 80 }, // block-imds, IPv6
    { op: 'tcp', host: `::ffff:${IMDS4}`, port: 80 }, // block-imds, IPv4-mapped on an IPv6 socket
    { op: 'udp-sendto', host: '127.0.0.1', port: 53 }, // block-dns (sendmsg4)
    { op: 'udp-connect', host: '127.0.0.1', port: 53 }, // block-dns (connect4)
    { op: 'udp-sendto', host: '::1', port: 53 }, // block-dns (sendmsg6)
    { op: 'udp-sendto', host: '127.0.0.1', port: 54 }, // default allow
    { op: 'tcp', host: '127.0.0.1', port: 9050 }, // allow-9050 comes first: refused by the kernel, not denied
    { op: 'tcp', host: '127.0.0.1', port: 9051 }, // block-9000s
    { op: 'tcp', host: '::1', port: 9051 }, // not in 127.0.0.0/8: default allow
  ];
  const inside = tryConnects(sandbox, cg, attempts);
  assert.deepEqual(inside.results, ['ok', 'EPERM', 'EPERM', 'EPERM', 'EPERM', 'EPERM', 'EPERM', 'ok', 'ECONNREFUSED', 'EPERM', 'ECONNREFUSED']);
  // The same process outside the cgroup: nothing is denied (no route to the metadata address in the namespace).
  const outside = tryConnects(sandbox, undefined, attempts);
  assert.ok(!outside.results.includes('EPERM'), `outside the cgroup nothing is denied: ${outside.results.join(' ')}`);
  // curl, as a user would run it: fails at once with "Operation not permitted" (exit 7), not after a timeout.
  const curl = runBounded('sh', ['-c', `echo $$ > ${cg.path}/cgroup.procs && exec ip netns exec ${sandbox.name} curl -sS --max-time 20 http://${IMDS4}/latest/meta-data/`], {}, 30_000);
  assert.equal(curl.status, 7, `curl fails to connect (exit 7), it does not time out (exit 28): ${curl.stderr}`);
  assert.match(curl.stderr, /Failed to connect to 169\.254\.169\.254/);

  const s = statusOf(await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, insecurePermissions: true }), 'guard-app');
  assert.equal(s.conditions.find((c) => c.type === 'Ready')?.status, true);
  assert.deepEqual(countersOf(s), {
    'block-imds': [4, 4, 0], // three from the client, one from curl
    'block-dns': [3, 3, 0],
    'allow-9050': [1, 0, 0],
    'block-9000s': [1, 1, 0],
    default: [3, 0, 0],
  });

  const events = await collectEvents(stream, 8);
  const client = events.filter((e) => e.pid === inside.pid);
  assert.equal(client.length, 7, 'every denied connect of the client is an event (sampleRate 1)');
  assert.deepEqual(
    client.map((e) => `${e.verdict} ${e.hook} ${e.protocol} ${e.destination}:${e.port} ${e.rule}`),
    [
      `deny connect4 tcp ${IMDS4}:80 block-imds`,
      `deny connect6 tcp ${IMDS6}:80 block-imds`,
      `deny connect6 tcp ${IMDS4}:80 block-imds`,
      'deny sendmsg4 udp 127.0.0.1:53 block-dns',
      'deny connect4 udp 127.0.0.1:53 block-dns',
      'deny sendmsg6 udp ::1:53 block-dns',
      'deny connect4 tcp 127.0.0.1:9051 block-9000s',
    ],
  );
  for (const e of client) {
    assert.equal(e.comm, 'python3');
    assert.equal(e.cgroup, cg.path);
    assert.equal(e.policy, 'guard-app');
  }
  const fromCurl = events.find((e) => e.pid !== inside.pid)!;
  assert.equal(fromCurl.comm, 'curl');

  rmSync(join(dir.path, 'guard-app.json'));
  const after = await reconciled({ root: pinDir, policyPaths: [dir.path] });
  assert.deepEqual(guardsOf(after).guards, []);
  assert.deepEqual(tryConnects(sandbox, cg, attempts.slice(1, 2)).results, ['ENETUNREACH'], 'deleting the file removes the guard');
});

kernelTest('audit mode lets connects through and counts and reports them as would-deny; switching audit and enforce, and editing rules, are map writes that keep every program and link', async ({ pinDir, sandbox }) => {
  await using cg = new TestCgroup();
  using dir = new PolicyDir();
  const spec = (mode: 'audit' | 'enforce', ports: Array<number | string>) => ({
    cgroup: cg.path,
    mode,
    rules: [{ name: 'no-local-db', action: 'deny' as const, protocol: 'tcp' as const, destinations: ['127.0.0.0/8'], ports }],
    sampleRate: 1,
  });
  writeConnectPolicy(dir, 'db', spec('audit', [5432]));
  const first = await reconciled({ root: pinDir, policyPaths: [dir.path] });
  const ids = hookIds(theGuard(first, ['db']));
  using stream = GuardEventStream.open(pinDir);
  const attempt: Attempt[] = [{ op: 'tcp', host: '127.0.0.1', port: 5432 }];

  assert.deepEqual(tryConnects(sandbox, cg, attempt).results, ['ECONNREFUSED'], 'audit: the connect goes through');
  const [audited] = await collectEvents(stream, 1);
  assert.equal(audited!.verdict, 'would-deny');
  let s = statusOf(await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, insecurePermissions: true }), 'db');
  assert.deepEqual(countersOf(s)['no-local-db'], [1, 0, 1]);

  // Enforce: one rules write, the same programs and links.
  writeConnectPolicy(dir, 'db', spec('enforce', [5432]));
  const enforce = await reconciled({ root: pinDir, policyPaths: [dir.path] });
  assert.deepEqual(
    changes(enforce.plan!).map((a) => a.code),
    ['RulesChanged', 'RecordsOutdated'],
  );
  assert.deepEqual(hookIds(theGuard(enforce, ['db'])), ids, 'program and link ids kept');
  assert.deepEqual(tryConnects(sandbox, cg, attempt).results, ['EPERM']);
  const [denied] = await collectEvents(stream, 1);
  assert.equal(denied!.verdict, 'deny');

  // A rule edit (another port): in place too; the rule's counters stay.
  writeConnectPolicy(dir, 'db', spec('enforce', [5432, 6379]));
  const edited = await reconciled({ root: pinDir, policyPaths: [dir.path] });
  assert.deepEqual(hookIds(theGuard(edited, ['db'])), ids, 'program and link ids kept');
  assert.deepEqual(tryConnects(sandbox, cg, [...attempt, { op: 'tcp', host: '127.0.0.1', port: 6379 }, { op: 'tcp', host: '127.0.0.1', port: 6380 }]).results, ['EPERM', 'EPERM', 'ECONNREFUSED']);
  assert.deepEqual((await collectEvents(stream, 2)).map((e) => `${e.verdict} ${e.port}`), ['deny 5432', 'deny 6379']);
  s = statusOf(await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, insecurePermissions: true }), 'db');
  assert.deepEqual(countersOf(s)['no-local-db'], [4, 3, 1], 'counters survive the switch and the edit');
  // Back to audit, per rule this time: the spec says enforce, the rule audit.
  writeConnectPolicy(dir, 'db', { ...spec('enforce', [5432]), rules: [{ ...spec('enforce', [5432]).rules[0]!, mode: 'audit' }] });
  const back = await reconciled({ root: pinDir, policyPaths: [dir.path] });
  assert.deepEqual(hookIds(theGuard(back, ['db'])), ids);
  assert.deepEqual(tryConnects(sandbox, cg, attempt).results, ['ECONNREFUSED']);
  assert.deepEqual((await collectEvents(stream, 1)).map((e) => `${e.verdict} ${e.port}`), ['would-deny 5432']);
  rmSync(join(dir.path, 'db.json'));
  await reconciled({ root: pinDir, policyPaths: [dir.path] });
});

kernelTest('two policies on one cgroup both apply and a deny in either wins; removing one keeps the guard and its links for the other', async ({ pinDir, sandbox }) => {
  await using cg = new TestCgroup();
  using dir = new PolicyDir();
  writeConnectPolicy(dir, 'allow-some', { cgroup: cg.name, defaultAction: 'allow', rules: [{ name: 'ok-7001', action: 'allow', protocol: 'tcp', ports: [7001] }] });
  // The same cgroup, spelled as an absolute path.
  writeConnectPolicy(dir, 'deny-most', {
    cgroup: cg.path,
    defaultAction: 'deny',
    rules: [
      { name: 'ok-7002', action: 'allow', protocol: 'tcp', ports: [7002] },
      { name: 'ok-7001', action: 'allow', protocol: 'tcp', ports: [7001] },
    ],
  });
  const r = await reconciled({ root: pinDir, policyPaths: [dir.path] });
  const ids = hookIds(theGuard(r, ['allow-some', 'deny-most']));
  const ports = [7001, 7002, 7003].map((port) => ({ op: 'tcp' as const, host: '127.0.0.1', port }));
  // 7001: both allow. 7002: allow-some allows by default, deny-most by rule. 7003: deny-most denies by default.
  assert.deepEqual(tryConnects(sandbox, cg, ports).results, ['ECONNREFUSED', 'ECONNREFUSED', 'EPERM']);

  writeConnectPolicy(dir, 'allow-some', { cgroup: cg.name, defaultAction: 'allow', rules: [{ name: 'no-7002', action: 'deny', protocol: 'tcp', ports: [7002] }] });
  await reconciled({ root: pinDir, policyPaths: [dir.path] });
  assert.deepEqual(tryConnects(sandbox, cg, ports).results, ['ECONNREFUSED', 'EPERM', 'EPERM'], "allow-some's deny wins over deny-most's allow");

  rmSync(join(dir.path, 'deny-most.json'));
  const one = await reconciled({ root: pinDir, policyPaths: [dir.path] });
  assert.deepEqual(hookIds(theGuard(one, ['allow-some'])), ids, 'the guard and its links stay for the other policy');
  assert.deepEqual(tryConnects(sandbox, cg, ports).results, ['ECONNREFUSED', 'EPERM', 'ECONNREFUSED']);
  rmSync(join(dir.path, 'allow-some.json'));
  await reconciled({ root: pinDir, policyPaths: [dir.path] });
});

kernelTest("coexists with another tool's program on the same cgroup: both run, and removing the policy leaves the other program attached", async ({ pinDir, sandbox }) => {
  await using cg = new TestCgroup();
  using dir = new PolicyDir();
  using hooks = loadObject(HOOKS);
  // Outside our pin root: anything else under it would be removed as stray.
  const foreignPin = `/sys/fs/bpf/ebpf-policy-test-foreign-${process.pid}`;
  {
    using link = attachToCgroup(hooks.program('connect4_count'), cg.path, statSync(cg.path, { bigint: true }).ino, AttachType.CGROUP_INET4_CONNECT, 'foreign connect4');
    link.pin(foreignPin);
  }
  try {
    writeConnectPolicy(dir, 'p', { cgroup: cg.name, rules: [{ name: 'no-7000', action: 'deny', protocol: 'tcp', ports: [7000] }] });
    const r = await reconciled({ root: pinDir, policyPaths: [dir.path] });
    hookIds(theGuard(r, ['p']));
    const attached = cgroupPrograms(cg.path).sort();
    assert.deepEqual(attached, ['connect4_count', 'guard_connect4', 'guard_connect6', 'guard_sendmsg4', 'guard_sendmsg6']);
    const hits = () => hooks.map('hits').lookup(Buffer.from([2, 0, 0, 0]))!.readBigUInt64LE(0);
    const before = hits();
    assert.deepEqual(tryConnects(sandbox, cg, [7000, 7001].map((port) => ({ op: 'tcp' as const, host: '127.0.0.1', port }))).results, ['EPERM', 'ECONNREFUSED']);
    assert.ok(hits() - before >= 1n, "the other tool's program still sees connects");

    rmSync(join(dir.path, 'p.json'));
    await reconciled({ root: pinDir, policyPaths: [dir.path] });
    assert.deepEqual(cgroupPrograms(cg.path), ['connect4_count'], 'only our links went');
  } finally {
    unpin(foreignPin);
  }
});

kernelTest('an upgrade swaps each hook to the new program by link update: link ids, rules and counters stay', async ({ pinDir, sandbox }) => {
  await using cg = new TestCgroup();
  using dir = new PolicyDir();
  writeConnectPolicy(dir, 'p', { cgroup: cg.name, rules: [{ name: 'no-7000', action: 'deny', protocol: 'tcp', ports: [7000] }] });
  const r = await reconciled({ root: pinDir, policyPaths: [dir.path] });
  const ids = hookIds(theGuard(r, ['p']));
  const attempt: Attempt[] = [{ op: 'tcp', host: '127.0.0.1', port: 7000 }];
  assert.deepEqual(tryConnects(sandbox, cg, attempt).results, ['EPERM']);

  const up = await reconciled({ root: pinDir, policyPaths: [dir.path], kindOptions: { ConnectPolicy: { objectPath: GUARD_VARIANT_OBJECT } } });
  assert.deepEqual(
    changes(up.plan!).map((a) => `${a.code} ${a.object.split(': ')[1]}`),
    GUARD_HOOKS.map((h) => `BytecodeChanged ${h} program`),
  );
  const now = hookIds(theGuard(up, ['p']));
  for (const h of GUARD_HOOKS) {
    assert.equal(now[h]!.link, ids[h]!.link, `${h}: same link`);
    assert.notEqual(now[h]!.prog, ids[h]!.prog, `${h}: new program`);
    assert.ok(!bpftoolIds('prog').has(ids[h]!.prog) || (await eventually(() => !bpftoolIds('prog').has(ids[h]!.prog), 5000)), `${h}: the old program is freed`);
  }
  assert.deepEqual(tryConnects(sandbox, cg, attempt).results, ['EPERM']);
  const s = statusOf(await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, insecurePermissions: true, kindOptions: { ConnectPolicy: { objectPath: GUARD_VARIANT_OBJECT } } }), 'p');
  assert.deepEqual(countersOf(s)['no-7000'], [2, 2, 0], 'counters kept across the upgrade');
  rmSync(join(dir.path, 'p.json'));
  await reconciled({ root: pinDir, policyPaths: [dir.path] });
});

kernelTest('a removed cgroup makes the policy Degraded and its guard is removed (nothing leaks); created again, it is guarded again; a detached link is attached again', async ({ pinDir, sandbox }) => {
  const cg = new TestCgroup();
  using dir = new PolicyDir();
  try {
    writeConnectPolicy(dir, 'p', { cgroup: cg.name, rules: [{ name: 'no-7000', action: 'deny', protocol: 'tcp', ports: [7000] }] });
    const r = await reconciled({ root: pinDir, policyPaths: [dir.path] });
    const old = hookIds(theGuard(r, ['p']));

    // Another tool detaches one of our links: the next pass attaches a new one.
    runBounded('bpftool', ['link', 'detach', 'id', String(old.connect4!.link)]);
    const repaired = await reconciled({ root: pinDir, policyPaths: [dir.path] });
    assert.deepEqual(changes(repaired.plan!).map((a) => a.code), ['LinkDetached']);
    assert.deepEqual(tryConnects(sandbox, cg, [{ op: 'tcp', host: '127.0.0.1', port: 7000 }]).results, ['EPERM']);
    const live = hookIds(theGuard(repaired, ['p']));
    assert.notEqual(live.connect4!.link, old.connect4!.link, 'a new connect4 link');
    assert.equal(live.connect6!.link, old.connect6!.link, 'the other links stay');

    await cg.remove();
    const gone = await reconciled({ root: pinDir, policyPaths: [dir.path] });
    assert.deepEqual(changes(gone.plan!).map((a) => a.code), ['CgroupGone']);
    assert.deepEqual(guardsOf(gone).guards, []);
    const s = statusOf(await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, insecurePermissions: true }), 'p');
    assert.equal(s.conditions.find((c) => c.type === 'Degraded')?.reason, 'CgroupNotFound');
    assert.ok(await eventually(() => GUARD_HOOKS.every((h) => !bpftoolIds('link').has(live[h]!.link) && !bpftoolIds('prog').has(live[h]!.prog)), 5000), 'links and programs freed');

    cg.create();
    const back = await reconciled({ root: pinDir, policyPaths: [dir.path] });
    assert.deepEqual(changes(back.plan!).map((a) => a.code), ['Needed']);
    hookIds(theGuard(back, ['p']));
    assert.deepEqual(tryConnects(sandbox, cg, [{ op: 'tcp', host: '127.0.0.1', port: 7000 }]).results, ['EPERM']);
    rmSync(join(dir.path, 'p.json'));
    await reconciled({ root: pinDir, policyPaths: [dir.path] });
  } finally {
    await cg.remove();
  }
});

kernelTest('destroy removes every guard: links, programs and maps are gone and the cgroup runs nothing of ours', async ({ pinDir, sandbox }) => {
  await using cg = new TestCgroup();
  using dir = new PolicyDir();
  writeConnectPolicy(dir, 'p', { cgroup: cg.name, rules: [{ name: 'no-7000', action: 'deny', protocol: 'tcp', ports: [7000] }] });
  const r = await reconciled({ root: pinDir, policyPaths: [dir.path] });
  const ids = hookIds(theGuard(r, ['p']));
  const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const d = runBounded(process.execPath, [cli, 'destroy', '--yes', '--bpffs-root', pinDir], {}, 60_000);
  assert.equal(d.status, 0, d.stderr);
  assert.ok(await eventually(() => Object.values(ids).every((x) => !bpftoolIds('link').has(x.link) && !bpftoolIds('prog').has(x.prog)), 5000), 'links and programs freed');
  assert.deepEqual(cgroupPrograms(cg.path), []);
  assert.deepEqual(tryConnects(sandbox, cg, [{ op: 'tcp', host: '127.0.0.1', port: 7000 }]).results, ['ECONNREFUSED']);
});
