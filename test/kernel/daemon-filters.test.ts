/**
 * The daemon treats PacketFilter as first class: with default flags, a
 * filter's XDP link detached by hand (bpftool) or its cls_bpf filter deleted
 * with tc is found by the drift probe and repaired within 2 s, and /metrics
 * exports the filter's rule counters and attachment.
 */
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { listPins } from '../../src/bpf/bpffs.js';
import { CLS_BPF_PREF } from '../../src/bpf/cls-bpf.js';
import { reconcileOnce } from '../../src/manager.js';
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import { NetnsSandbox } from '../../src/sandbox/netns-sandbox.js';
import { DaemonProcess, httpGet } from './daemon-helpers.js';
import { eventually, kernelTest } from './harness.js';
import { NET, udpExchange, vethPair, writeFilter } from './packet-filter-helpers.js';
import { PolicyDir, filtersOf } from './reconcile-helpers.js';

/** The daemon's own repair deadline for a detached filter, with default flags (a 1 s drift probe). */
const REPAIR_MS = 2000;

async function stopClean(d: DaemonProcess, dir: PolicyDir, pinDir: string): Promise<void> {
  for (const e of readdirSync(dir.path)) rmSync(join(dir.path, e), { force: true });
  assert.ok(await eventually(() => listPins(pinDir).length === 0, 5000), `the daemon did not remove its pins: ${listPins(pinDir).join(', ')}\n${d.dump()}`);
  assert.equal(await d.stop(), 0, d.dump());
}

kernelTest('daemon (default flags): an XDP filter link detached with bpftool is repaired within 2 s; /metrics has its counters', async ({ pinDir, sandbox }) => {
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  using dir = new PolicyDir();
  writeFilter(dir, 'guard', { netns: sandbox.path, interfaces: ['vb'], hook: 'xdp', rules: ['{name: block-udp, protocol: udp, dstPorts: [9999], action: drop}'] });
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, ['--metrics-address', '127.0.0.1:9890']);
  try {
    const first = await d.nextPass();
    assert.equal(first.ready, 1, d.dump());
    const before = filtersOf(await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, reportDir: null })).filters[0]!;
    assert.ok(before.link?.attached && before.link.id > 0);
    assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 3 }]), { 9999: 0 }, 'dropped while attached');

    const mark = d.lines.length;
    const detachedAt = Date.now();
    runBounded('bpftool', ['link', 'detach', 'id', String(before.link.id)]);
    const repaired = await d.waitFor('the detached filter repaired', (l) => l.msg === 'drift repaired', mark, REPAIR_MS + 1000);
    const took = Date.now() - detachedAt;
    assert.ok(took <= REPAIR_MS, `repaired after ${took} ms (bound ${REPAIR_MS} ms)\n${d.dump()}`);
    assert.ok((repaired.repairs as string[]).some((x) => /attachment: its link was detached/.test(x)), JSON.stringify(repaired));
    assert.ok(d.lines.slice(mark).some((l) => l.msg === 'drift detected' && /xdp on vb .*was detached/.test(JSON.stringify(l.drift))), d.dump());
    const after = filtersOf(await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, reportDir: null })).filters[0]!;
    assert.ok(after.link?.attached, 'attached again');
    assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 2 }]), { 9999: 0 }, 'dropped again');

    const metrics = httpGet(sandbox, 9890, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^ebpf_policy_filter_packets_total\{policy="guard",rule="block-udp",action="drop",interface="vb",hook="xdp",netns="ino-\d+",verdict="drop"\} 5$/m, metrics.body);
    assert.match(metrics.body, /^ebpf_policy_filter_packets_total\{policy="guard",rule="block-udp",action="drop",interface="vb",hook="xdp",netns="ino-\d+",verdict="would-drop"\} 0$/m, metrics.body);
    assert.match(metrics.body, /^ebpf_policy_filter_attached\{interface="vb",hook="xdp",netns="ino-\d+",method="xdp",xdp_mode="native"\} 1$/m);
    await stopClean(d, dir, pinDir);
  } finally {
    await d.kill();
  }
});

kernelTest('daemon (default flags): a cls_bpf filter deleted with tc is repaired within 2 s', async ({ pinDir, sandbox }) => {
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  using dir = new PolicyDir();
  writeFilter(dir, 'guard', { netns: sandbox.path, interfaces: ['vb'], hook: 'tc-ingress', rules: ['{name: block-udp, protocol: udp, dstPorts: [9999], action: drop}'] });
  // This kernel has tcx: the cls_bpf path is forced, as it runs for real below Linux 6.6.
  const d = DaemonProcess.start(sandbox, pinDir, dir.path, ['--kind-option', 'PacketFilter.tcMethod=cls_bpf']);
  const tcShow = () => runBounded('ip', ['netns', 'exec', sandbox.name, 'tc', 'filter', 'show', 'dev', 'vb', 'ingress']).stdout;
  try {
    assert.equal((await d.nextPass()).ready, 1, d.dump());
    assert.match(tcShow(), new RegExp(`pref ${CLS_BPF_PREF} bpf`));
    const mark = d.lines.length;
    const deletedAt = Date.now();
    const del = runBounded('ip', ['netns', 'exec', sandbox.name, 'tc', 'filter', 'del', 'dev', 'vb', 'ingress', 'pref', String(CLS_BPF_PREF)]);
    assert.equal(del.status, 0, del.stderr);
    const repaired = await d.waitFor('the deleted cls_bpf filter repaired', (l) => l.msg === 'drift repaired', mark, REPAIR_MS + 1000);
    const took = Date.now() - deletedAt;
    assert.ok(took <= REPAIR_MS, `repaired after ${took} ms (bound ${REPAIR_MS} ms)\n${d.dump()}`);
    assert.ok((repaired.repairs as string[]).some((x) => /attachment/.test(x)), JSON.stringify(repaired));
    assert.match(tcShow(), new RegExp(`pref ${CLS_BPF_PREF} bpf`), 'our cls_bpf filter is back');
    assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 2 }]), { 9999: 0 }, 'and drops again');
    await stopClean(d, dir, pinDir);
  } finally {
    await d.kill();
  }
});
