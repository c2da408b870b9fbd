/** Pure pieces of the daemon: drift comparison, watch planning, listen addresses, logs, metrics. */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, request } from 'node:http';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import winston from 'winston';
import { findDrift, unblockedPolicies, type SteeringExpectation } from '../../src/kinds/port-steering/drift.js';
import { findFilterDrift, type FilterExpectation } from '../../src/kinds/packet-filter/drift.js';
import { findPinDrift } from '../../src/daemon/pin-drift.js';
import { STEERING_METRICS } from '../../src/kinds/port-steering/metrics.js';
import { httpHandler, parseListenAddress } from '../../src/daemon/http-server.js';
import { createLogger } from '../../src/daemon/logger.js';
import { DaemonMetrics } from '../../src/daemon/metrics.js';
import { inputFingerprint, summarizePass, type PassSummary } from '../../src/daemon/pass-summary.js';
import type { ReconcileReport } from '../../src/reconciler/reconcile.js';
import { isRelevant, planWatch } from '../../src/daemon/tree-watcher.js';
import type { Resolver } from '../../src/kinds/port-steering/desired.js';

const D = '/sys/fs/bpf/ebpf-policy/netns/ino-1';
const PINS = [`${D}/link`, `${D}/map_sockets`, `${D}/program`];
function expectation(): SteeringExpectation {
  return {
    waiting: [],
    dispatchers: [{ key: 'ino-1', dir: D, link: { id: 7, progId: 3, attached: true }, sockets: { 1: '42', 2: null }, policyOfDest: { 1: 'web', 2: 'api' } }],
  };
}

test('findDrift: nothing when the kernel looks as expected', () => {
  const e = expectation();
  assert.deepEqual(findPinDrift(PINS, [...PINS]), []);
  assert.deepEqual(findDrift(e, { [D]: { link: { id: 7, progId: 3, attached: true }, sockets: { 1: '42', 2: null } } }), []);
});

test('findDrift names removed and unexpected pins, detached or replaced links, and sockets that left', () => {
  const e = expectation();
  assert.deepEqual(findPinDrift(PINS, [`${D}/map_sockets`, `${D}/program`, `${D}/program_next`]), [`pin removed: ${D}/link`, `unexpected pin: ${D}/program_next`]);
  assert.deepEqual(findDrift(e, { [D]: { link: null, sockets: { 1: null, 2: '99' } } }), [
    'dispatcher ino-1: the link pin is gone',
    'policy web: its socket (cookie 42) left the sockmap (target closed or restarted?)',
    'policy api: the sockmap holds socket 99, not nothing',
  ]);
  assert.deepEqual(findDrift(e, { [D]: { link: { id: 7, progId: 3, attached: false }, sockets: { 1: '42', 2: null } } }), ['dispatcher ino-1: link 7 was detached']);
  assert.deepEqual(findDrift(e, { [D]: { link: { id: 8, progId: 3, attached: true }, sockets: { 1: '42', 2: null } } }), [
    'dispatcher ino-1: link 7 (program 3) is now link 8 (program 3)',
  ]);
});

test('findFilterDrift names detached links, deleted cls_bpf filters and replaced programs', () => {
  const F = '/sys/fs/bpf/ebpf-policy/filters/ino-1/xdp-2';
  const e: FilterExpectation = {
    attachments: [
      { key: 'ino-1/xdp-2', dir: F, method: 'xdp', progId: 3, linkId: 7, netnsPath: '/run/netns/x', ifname: 'eth0', hook: 'xdp' },
      { key: 'ino-1/tc-ingress-2', dir: `${F}x`, method: 'cls_bpf', progId: 4, linkId: 0, netnsPath: '/run/netns/x', ifname: 'eth0', hook: 'tc-ingress' },
    ],
  };
  assert.deepEqual(findFilterDrift(e, { 'ino-1/xdp-2': { progId: 3, linkId: 7 }, 'ino-1/tc-ingress-2': { progId: 4, linkId: 0 } }), []);
  assert.deepEqual(findFilterDrift(e, { 'ino-1/xdp-2': { gone: 'link 7 was detached' }, 'ino-1/tc-ingress-2': { gone: 'its cls_bpf filter on eth0 is gone' } }), [
    'filter xdp on eth0 (ino-1/xdp-2): link 7 was detached',
    'filter tc-ingress on eth0 (ino-1/tc-ingress-2): its cls_bpf filter on eth0 is gone',
  ]);
  assert.deepEqual(findFilterDrift(e, { 'ino-1/xdp-2': { progId: 9, linkId: 7 } }), ['filter xdp on eth0 (ino-1/xdp-2): runs program 9 in link 7, not program 3 in link 7']);
});

test('unblockedPolicies names waiting policies whose namespace or target appeared', () => {
  const resolver: Resolver = {
    netnsKey: (p) => (p === '/run/netns/up' ? { ok: true, key: 'ino-9' } : { ok: false, reason: 'gone' }),
    target: (_n, _p, t) => (t.type === 'listen' && t.port === 8080 ? { ok: true, pid: 1, fd: 3, cookie: '5' } : { ok: false, reason: 'nothing listens' }),
    dispatcherTag: () => 'tag',
  };
  const listen = (port: number) => ({ type: 'listen' as const, family: 4 as const, address: '127.0.0.1', port });
  assert.deepEqual(
    unblockedPolicies(
      [
        { name: 'a', netnsPath: '/run/netns/up', protocol: 'tcp', target: listen(1), waitsFor: 'netns' },
        { name: 'b', netnsPath: '/run/netns/down', protocol: 'tcp', target: listen(1), waitsFor: 'netns' },
        { name: 'c', netnsPath: '/run/netns/up', protocol: 'tcp', target: listen(8080), waitsFor: 'target' },
        { name: 'd', netnsPath: '/run/netns/up', protocol: 'tcp', target: listen(9), waitsFor: 'target' },
      ],
      resolver,
    ),
    ['policy a: network namespace /run/netns/up appeared', 'policy c: its target is there now'],
  );
});

test('planWatch watches a missing path through its nearest existing ancestor; the identity changes when it appears', () => {
  const base = mkdtempSync(join(tmpdir(), 'ebpf-policy-watch-'));
  try {
    const p = join(base, 'a', 'b');
    const missing = planWatch([p]);
    assert.deepEqual(missing.roots, [base]);
    mkdirSync(p, { recursive: true });
    const present = planWatch([p]);
    assert.deepEqual(present.roots, [p]);
    assert.notEqual(present.identity, missing.identity);
    assert.equal(planWatch([p]).identity, present.identity, 'stable while nothing changes');
    const held = openSync(p, 'r'); // as TreeWatcher does: the old inode's number stays taken
    try {
      rmSync(p, { recursive: true });
      mkdirSync(p);
      assert.notEqual(planWatch([p]).identity, present.identity, 'a replaced directory is a new inode');
    } finally {
      closeSync(held);
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('isRelevant: the paths, what lies below them and the way to them, nothing else', () => {
  const paths = ['/etc/ebpf-policies'];
  assert.ok(isRelevant('/etc/ebpf-policies', paths));
  assert.ok(isRelevant('/etc/ebpf-policies/..data/web.yaml', paths));
  assert.ok(isRelevant('/etc', paths));
  assert.ok(isRelevant('/', paths));
  assert.ok(!isRelevant('/etc/ebpf-policies-old', paths));
  assert.ok(!isRelevant('/etc/passwd', paths));
});

test('parseListenAddress reads HOST:PORT, [IPV6]:PORT and :PORT', () => {
  assert.deepEqual(parseListenAddress('127.0.0.1:9890'), { host: '127.0.0.1', port: 9890 });
  assert.deepEqual(parseListenAddress('[::1]:9890'), { host: '::1', port: 9890 });
  assert.deepEqual(parseListenAddress(':9890'), { host: '', port: 9890 });
  assert.deepEqual(parseListenAddress('localhost:0'), { host: 'localhost', port: 0 });
  for (const bad of ['9890', '127.0.0.1', '::1:9890', '127.0.0.1:65536', '127.0.0.1:x', '[::1]9890', ''])
    assert.throws(() => parseListenAddress(bad), /not a listen address/, bad);
});

function captureLogger(format: 'json' | 'text'): { logger: winston.Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({ format, level: 'info', isTTY: false });
  logger.clear();
  logger.add(
    new winston.transports.Stream({
      stream: new Writable({
        write(chunk: Buffer, _enc, cb) {
          lines.push(...chunk.toString().split('\n').filter(Boolean));
          cb();
        },
      }),
    }),
  );
  return { logger, lines };
}

test('JSON logs: one object per line with time, level, msg and the fields; levels below the threshold are dropped', async () => {
  const { logger, lines } = captureLogger('json');
  logger.info('reconcile pass', { pass: 1, trigger: ['startup'], changes: 3, big: 5n });
  logger.debug('not shown');
  await new Promise((r) => setImmediate(r));
  assert.equal(lines.length, 1);
  const o = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.deepEqual(Object.keys(o), ['time', 'level', 'msg', 'pass', 'trigger', 'changes', 'big']);
  assert.equal(o.level, 'info');
  assert.equal(o.msg, 'reconcile pass');
  assert.equal(o.big, '5');
  assert.ok(!Number.isNaN(Date.parse(String(o.time))));
});

test('text logs: time, level, message, key=value', async () => {
  const { logger, lines } = captureLogger('text');
  logger.warn('policy problem', { policy: 'web', detail: 'nothing listens on 127.0.0.1:8080', n: 2 });
  await new Promise((r) => setImmediate(r));
  assert.match(lines[0]!, /^\S+Z warn policy problem policy=web detail="nothing listens on 127\.0\.0\.1:8080" n=2$/);
});

function summary(over: Partial<PassSummary> = {}): PassSummary {
  return {
    ok: true,
    durationMs: 12,
    applied: { create: 2, update: 1, replace: 0, delete: 0 },
    failed: { create: 0, update: 0, replace: 0, delete: 0 },
    skipped: 0,
    policies: 2,
    conditions: { Ready: 2, Degraded: 1, Failed: 0 },
    invalidFiles: 0,
    driftRepair: false,
    failing: [],
    ...over,
  };
}

test('metrics: pass counters, durations, changes by kind, conditions, drift repairs and kernel counters in Prometheus text', async () => {
  let reads = 0;
  let hits = 5;
  const m = new DaemonMetrics({
    families: STEERING_METRICS,
    collect: () => {
      reads++;
      return {
        ebpf_policy_binding_hits_total: [
          { labels: { policy: 'web', binding: '0', ports: '8081', prefix: 'any' }, value: hits },
          { labels: { policy: 'web', binding: '1', ports: '9000-9010', prefix: 'any' }, value: 7 },
        ],
        ebpf_policy_dispatcher_lookups_total: [
          { labels: { netns: 'ino-1', result: 'steered' }, value: 12 },
          { labels: { netns: 'ino-1', result: 'no_socket' }, value: 1 },
        ],
      };
    },
  });
  m.passFinished(summary());
  m.passFinished(summary({ ok: false, applied: { create: 0, update: 0, replace: 0, delete: 1 }, failed: { create: 1, update: 0, replace: 0, delete: 0 }, driftRepair: true, conditions: { Ready: 1, Degraded: 0, Failed: 1 } }));
  m.passErrored(3);
  const { contentType, body } = await m.render();
  assert.match(contentType, /^text\/plain; version=0\.0\.4/);
  const has = (line: string) => assert.ok(body.split('\n').includes(line), `missing ${line}\n${body}`);
  has('ebpf_policy_reconciles_total 3');
  has('ebpf_policy_reconcile_failures_total 2');
  has('ebpf_policy_reconcile_duration_seconds_count 3');
  has('ebpf_policy_changes_applied_total{kind="create"} 2');
  has('ebpf_policy_changes_applied_total{kind="delete"} 1');
  has('ebpf_policy_changes_failed_total{kind="create"} 1');
  has('ebpf_policy_policies{condition="Ready"} 1');
  has('ebpf_policy_policies{condition="Failed"} 1');
  has('ebpf_policy_drift_repairs_total 1');
  has('ebpf_policy_last_reconcile_success 0');
  has('ebpf_policy_binding_hits_total{policy="web",binding="0",ports="8081",prefix="any"} 5');
  has('ebpf_policy_binding_hits_total{policy="web",binding="1",ports="9000-9010",prefix="any"} 7');
  has('ebpf_policy_dispatcher_lookups_total{netns="ino-1",result="steered"} 12');
  has('ebpf_policy_dispatcher_lookups_total{netns="ino-1",result="no_socket"} 1');
  assert.equal(reads, 1, 'one kernel read per scrape serves every family');
  // Kernel counters are read again at each scrape, not accumulated.
  hits = 6;
  const again = await m.render();
  assert.equal(reads, 2);
  assert.ok(again.body.includes('ebpf_policy_binding_hits_total{policy="web",binding="0",ports="8081",prefix="any"} 6\n'));
});

test('the HTTP handler answers /healthz with 200 or 503 and a one-line body, /metrics, and 404 elsewhere', async () => {
  let ok = false;
  // On a Unix socket: unit tests make no network traffic.
  const dir = mkdtempSync(join(tmpdir(), 'ebpf-policy-http-'));
  const socketPath = join(dir, 'http.sock');
  const server = createServer(
    httpHandler({ metrics: async () => ({ contentType: 'text/plain; version=0.0.4', body: 'x 1\n' }), health: () => ({ ok, message: ok ? 'ok: fine' : 'failing: web' }) }),
  );
  server.listen(socketPath);
  await once(server, 'listening');
  try {
    const get = (path: string, method = 'GET') =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ socketPath, path, method }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
    assert.deepEqual(await get('/healthz'), { status: 503, body: 'failing: web\n' });
    ok = true;
    assert.deepEqual(await get('/healthz'), { status: 200, body: 'ok: fine\n' });
    assert.deepEqual(await get('/metrics'), { status: 200, body: 'x 1\n' });
    assert.equal((await get('/nope')).status, 404);
    assert.equal((await get('/metrics', 'POST')).status, 405);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('summarizePass counts changes by kind, conditions and failures; drift repair needs the same input and a change', () => {
  const action = (kind: 'create' | 'delete', policy: string) => ({ kind, phase: 'add' as const, object: `policy ${policy}`, policy, reason: 'r', op: { type: 'none' as const } });
  const report = {
    root: '/r',
    load: { ok: false, files: [], documentCount: 2, policies: [], problems: [{ file: 'bad.yaml', line: 1, column: 1, path: '', message: 'syntax', severity: 'error' as const }] },
    failedFiles: ['/abs/bad.yaml'],
    kinds: [{ kind: { kind: 'PortSteering', programTags: (d: { tag: string }) => [d.tag] }, policies: [], desired: { tag: 't' } }],
    plan: { actions: [], problems: [] },
    result: { applied: [action('create', 'web'), action('create', 'web'), action('delete', 'old')], failed: [{ action: action('create', 'api'), error: new Error('EPERM') }], skipped: [action('create', 'api')] },
    durationMs: 7,
  } as unknown as ReconcileReport;
  const statuses = [
    { name: 'web', kind: 'PortSteering', sourceFile: null, netns: null, conditions: [{ type: 'Ready' as const, status: true, reason: 'Converged', message: '' }] },
    { name: 'api', kind: 'PortSteering', sourceFile: null, netns: null, conditions: [{ type: 'Ready' as const, status: false, reason: 'Pending', message: '' }, { type: 'Failed' as const, status: true, reason: 'InvalidPolicy', message: 'bad.yaml:1:1: syntax' }] },
  ];
  const s = summarizePass(report, statuses, true);
  assert.equal(s.ok, false);
  assert.deepEqual(s.applied, { create: 2, update: 0, replace: 0, delete: 1 });
  assert.deepEqual(s.failed, { create: 1, update: 0, replace: 0, delete: 0 });
  assert.equal(s.skipped, 1);
  assert.deepEqual(s.conditions, { Ready: 1, Degraded: 0, Failed: 1 });
  assert.equal(s.invalidFiles, 1);
  assert.equal(s.driftRepair, true);
  assert.deepEqual(s.failing, ['policy api: InvalidPolicy: bad.yaml:1:1: syntax', 'policy api: EPERM']);
  assert.equal(summarizePass(report, statuses, false).driftRepair, false, 'new input: not drift');
  const idle = { ...report, result: { applied: [], failed: [], skipped: [] } } as unknown as ReconcileReport;
  assert.equal(summarizePass(idle, statuses, true).driftRepair, false, 'no change: nothing repaired');
  assert.equal(inputFingerprint(report), inputFingerprint(idle), 'the fingerprint depends on the input only');
  const retagged = { ...report, kinds: [{ ...report.kinds[0]!, desired: { tag: 'u' } }] } as ReconcileReport;
  assert.notEqual(inputFingerprint(report), inputFingerprint(retagged), 'a new program tag is new input');
});
