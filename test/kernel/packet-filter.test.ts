/**
 * PacketFilter end to end against the real kernel: a veth pair between two
 * throwaway namespaces, real UDP and TCP traffic from python3 sockets, every
 * hook (XDP, tc ingress, tc egress), counters checked against the packets
 * sent, sampled drop events from the ring buffer, rule and program changes in
 * place, interfaces that come and go, another tool's programs, the cls_bpf
 * fallback, and bpftool as the independent observer of what is left.
 */
import { childClosed, runBounded, sleep } from '../../src/sandbox/bounded-wait.js';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BPF_F_MMAPABLE, BpfMap, Features, Link, MapType, Netns, hasFeature, loadObject, unpin } from '../../src/bpf/index.js';
import { FilterEventStream, formatEventJson, formatEventText, type FilterEvent } from '../../src/kinds/packet-filter/events.js';
import { collectFilterMetrics } from '../../src/kinds/packet-filter/metrics.js';
import type { DesiredFilters } from '../../src/kinds/packet-filter/model.js';
import type { MetricSample } from '../../src/reconciler/kind.js';
import { DECISION_VALUE_SIZE, FILTER_TABLES, FILTER_VARIANT_OBJECT, MAX_RULES, PORT_CLASS_ENTRIES, PORT_CLASS_SIZE, u32 } from '../../src/kinds/packet-filter/layout.js';
import { readFilterCounters, type ObservedFilter, type ObservedFilters } from '../../src/kinds/packet-filter/store.js';
import type { FilterPolicyStatus } from '../../src/kinds/packet-filter/status.js';
import { changes, kindState, reconcileExitCode, reconcileOnce, type ReconcileOptions } from '../../src/manager.js';
import { NetnsSandbox } from '../../src/sandbox/netns-sandbox.js';
import { bpftool, bpftoolIds, eventually, kernelTest } from './harness.js';
import { NET, ifindexIn, ip, tcpConnect, udpExchange, vethPair, writeFilter } from './packet-filter-helpers.js';
import { PolicyDir, curl, filtersOf, startHttpServer, statusesOf, steeringOf } from './reconcile-helpers.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const HOOKS = fileURLToPath(new URL('../../../build/bpf/test_hooks.o', import.meta.url));

/** Every kernel object id of our filters: programs, links, maps (inner maps included). */
function ourObjects(filters: ObservedFilter[]): { prog: number[]; link: number[]; map: number[] } {
  const out = { prog: [] as number[], link: [] as number[], map: [] as number[] };
  for (const f of filters) {
    if (f.program) {
      out.prog.push(f.program.id);
      const info = bpftool('prog', 'show', 'id', String(f.program.id)) as { map_ids?: number[] };
      out.map.push(...(info.map_ids ?? []));
    }
    if (f.link?.id) out.link.push(f.link.id);
    for (const table of FILTER_TABLES) {
      using outer = BpfMap.fromPin(join(f.dir, `map_${table}`));
      for (const gen of [0, 1]) {
        const v = outer.lookup(u32(gen));
        if (v) out.map.push(v.readUInt32LE(0));
      }
    }
  }
  return out;
}

async function assertNoneLeft(ids: { prog: number[]; link: number[]; map: number[] }): Promise<void> {
  assert.ok(ids.prog.length > 0 && ids.map.length > 0, 'there were objects to check');
  const gone = () =>
    ids.prog.every((id) => !bpftoolIds('prog').has(id)) && ids.link.every((id) => !bpftoolIds('link').has(id)) && ids.map.every((id) => !bpftoolIds('map').has(id));
  assert.ok(await eventually(gone, 5000), `bpftool still shows some of ${JSON.stringify(ids)}`);
}

function counters(f: ObservedFilter, policy: string): Record<string, { packets: number; bytes: number }> {
  const slots = f.slots.filter((s) => s.policy === policy);
  const values = readFilterCounters(f.dir, [0, ...slots.map((s) => s.slot)]);
  const out: Record<string, { packets: number; bytes: number }> = {};
  for (const s of [{ slot: 0, rule: '(default)' }, ...slots]) {
    const v = values.get(s.slot)!;
    out[s.rule] = { packets: Number(v.packets), bytes: Number(v.bytes) };
  }
  return out;
}

/** Packets and would-drop packets (audit mode) per rule of `policy`. */
function auditCounters(f: ObservedFilter, policy: string): Record<string, { packets: number; wouldDrop: number; wouldDropBytes: number }> {
  const slots = f.slots.filter((s) => s.policy === policy);
  const values = readFilterCounters(f.dir, [0, ...slots.map((s) => s.slot)]);
  const out: Record<string, { packets: number; wouldDrop: number; wouldDropBytes: number }> = {};
  for (const s of [{ slot: 0, rule: '(default)' }, ...slots]) {
    const v = values.get(s.slot)!;
    out[s.rule] = { packets: Number(v.packets), wouldDrop: Number(v.wouldDropPackets), wouldDropBytes: Number(v.wouldDropBytes) };
  }
  return out;
}

async function reconciled(opts: ReconcileOptions) {
  const r = await reconcileOnce(opts);
  assert.deepEqual(r.result?.failed.map((f) => `${f.action.object}: ${f.error.message}`) ?? [], []);
  return r;
}

function filterOf(r: Awaited<ReturnType<typeof reconcileOnce>>, ifname: string, hook: string): ObservedFilter {
  const f = filtersOf(r).filters.find((x) => x.attachment?.ifname === ifname && x.hook === hook);
  assert.ok(f, `a ${hook} filter on ${ifname} is observed`);
  return f;
}

async function collectEvents(stream: FilterEventStream, n: number): Promise<FilterEvent[]> {
  const got: FilterEvent[] = [];
  await eventually(() => {
    got.push(...stream.poll());
    return got.length >= n;
  }, 3000);
  got.push(...stream.poll());
  return got;
}

// UDP frame size on the wire: Ethernet 14 + IPv4 20 (IPv6 40) + UDP 8 + payload.
const V4_BYTES = (payload: number) => 14 + 20 + 8 + payload;
const V6_BYTES = (payload: number) => 14 + 40 + 8 + payload;

kernelTest('XDP: dropped traffic is dropped, passed traffic passes, counters match the packets sent, events arrive, removal leaves nothing', async ({ pinDir, sandbox }) => {
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  const server = await sandbox.startServer('::', 8080);
  assert.ok(server.pid);
  using dir = new PolicyDir();
  writeFilter(dir, 'guard', {
    netns: sandbox.path,
    interfaces: ['v?'],
    hook: 'xdp',
    rules: [
      '{name: block-udp, protocol: udp, dstPorts: ["9999"], action: drop}',
      '{name: block-tcp, protocol: tcp, dstPorts: [2323], action: drop}',
      '{name: bad-net6, srcCidrs: ["fd00:200::1/128"], protocol: udp, action: drop}',
      '{name: count-dns, protocol: udp, dstPorts: ["5353"], action: pass}',
    ],
    sampleRate: 1,
  });
  const opts = { root: pinDir, policyPaths: [dir.path] };
  // Before: everything gets through.
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 3 }]), { 9999: 3 });

  const first = await reconciled(opts);
  assert.equal(reconcileExitCode(first), 0);
  const again = await reconcileOnce({ ...opts, dryRun: true });
  assert.deepEqual(changes(again.plan), [], 'a second run changes nothing');
  const f = filterOf(again, 'vb', 'xdp');
  assert.equal(f.link?.method, 'xdp');
  assert.equal(f.link?.ifindex, ifindexIn(sandbox.name, 'vb'));
  const [status] = statusesOf(again, 'PacketFilter') as FilterPolicyStatus[];
  assert.equal(status?.conditions[0]?.status, true, JSON.stringify(status?.conditions));
  assert.equal(status?.interfaces[0]?.xdpMode, 'native', 'veth has native XDP');

  using events = FilterEventStream.open(pinDir, 'guard');
  assert.equal(events.filterCount, 1);
  const sentAt = Date.now();
  const got = await udpExchange(sandbox, peer, [
    { dst: NET.local4, port: 9999, count: 5, sport: 40001 },
    { dst: NET.local4, port: 5353, count: 7 },
    { dst: NET.local4, port: 7000, count: 4 },
    { dst: NET.local6, port: 7000, count: 6, size: 20 },
  ]);
  assert.deepEqual(got, { 9999: 0, 5353: 7, 7000: 4 }, 'UDP 9999 and everything from fd00:200::1 dropped, the rest passed');
  const c = counters(filterOf(await reconcileOnce({ ...opts, dryRun: true }), 'vb', 'xdp'), 'guard');
  assert.deepEqual(c['block-udp'], { packets: 5, bytes: 5 * V4_BYTES(10) });
  assert.deepEqual(c['count-dns'], { packets: 7, bytes: 7 * V4_BYTES(10) });
  assert.deepEqual(c['bad-net6'], { packets: 6, bytes: 6 * V6_BYTES(20) });
  assert.equal(c['block-tcp']?.packets, 0);

  // TCP: the server answers on 8080; port 2323 is dropped (no RST comes back), 2324 refused.
  assert.match(tcpConnect(peer, NET.local4, 8080), /^listener=8080/);
  assert.match(tcpConnect(peer, NET.local6, 8080), /^listener=8080/);
  assert.equal(tcpConnect(peer, NET.local4, 2323), 'dropped');
  assert.equal(tcpConnect(peer, NET.local4, 2324), 'refused');

  // Every dropped datagram was reported (sampleRate 1), with its 5-tuple and rule.
  const evs = await collectEvents(events, 11);
  const udp = evs.filter((e) => e.protocol === 'udp');
  assert.equal(udp.length, 11, JSON.stringify(evs));
  assert.deepEqual(
    { ...udp[0]!, time: undefined },
    { time: undefined, interface: 'vb', ifindex: f.ifindex, netns: sandbox.path, hook: 'xdp', action: 'drop', verdict: 'drop', family: 4, protocol: 'udp', src: NET.peer4, srcPort: 40001, dst: NET.local4, dstPort: 9999, policy: 'guard', rule: 'block-udp', length: V4_BYTES(10) },
  );
  const eventAt = udp[0]!.time.getTime();
  assert.ok(eventAt >= sentAt - 1000 && eventAt <= Date.now() + 1000, `the event time is when the datagram was sent (${udp[0]!.time.toISOString()})`);
  assert.deepEqual(
    udp.filter((e) => e.family === 6).map((e) => `${e.src} -> [${e.dst}]:${e.dstPort} ${e.rule}`),
    Array(6).fill(`${NET.peer6} -> [${NET.local6}]:7000 bad-net6`),
  );
  assert.ok(evs.some((e) => e.protocol === 'tcp' && e.dstPort === 2323 && e.rule === 'block-tcp'), 'the TCP SYN to 2323 was reported');
  events.close();

  // The CLI shows the same: status with counters, events as JSON lines.
  const st = runBounded(process.execPath, [cli, 'status', '--bpffs-root', pinDir, '--policies', dir.path]);
  assert.equal(st.status, 0, st.stdout + st.stderr);
  assert.match(st.stdout, /guard {2}Ready {2}PacketFilter xdp/);
  assert.match(st.stdout, /interface vb \(ifindex \d+\) xdp: XDP native mode/);
  assert.match(st.stdout, /rule block-udp \(drop\): 5 packets, 260 bytes/);
  const json = runBounded(process.execPath, [cli, 'status', '--output', 'json', '--bpffs-root', pinDir, '--policies', dir.path]);
  const doc = JSON.parse(json.stdout) as { policies: Array<{ kind: string; interfaces: Array<{ rules: Array<{ rule: string; packets: string }> }> }> };
  assert.equal(doc.policies[0]?.interfaces[0]?.rules.find((r) => r.rule === 'count-dns')?.packets, '7');

  // `ebpf-policy events guard --output json` streams the same as JSON lines.
  const child = spawn(process.execPath, [cli, 'events', 'guard', '--output', 'json', '--count', '2', '--timeout', '10', '--bpffs-root', pinDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const closed = childClosed(child, 'ebpf-policy events --count 2', 30_000);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await sleep(700);
  await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 2, sport: 40002 }]);
  await closed;
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 2, out);
  assert.deepEqual(Object.keys(lines[0]!), ['time', 'interface', 'ifindex', 'netns', 'hook', 'action', 'verdict', 'family', 'protocol', 'src', 'srcPort', 'dst', 'dstPort', 'policy', 'rule', 'length']);
  assert.deepEqual([lines[0]!.interface, lines[0]!.srcPort, lines[0]!.dstPort, lines[0]!.rule, lines[0]!.verdict], ['vb', 40002, 9999, 'block-udp', 'drop']);

  // Removing the policy detaches everything: bpftool shows none of our objects.
  const ids = ourObjects(filtersOf(again).filters);
  rmSync(join(dir.path, 'guard.yaml'));
  const last = await reconciled(opts);
  assert.equal(reconcileExitCode(last), 0);
  await assertNoneLeft(ids);
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 2 }]), { 9999: 2 }, 'traffic passes again');
  assert.deepEqual(changes((await reconcileOnce({ ...opts, dryRun: true })).plan), []);
});

kernelTest('audit mode: the packets a drop rule matches get through, counted and reported as would-drop; switching to enforce (a file edit) is a map write: they are dropped, same program and link', async ({ pinDir, sandbox }) => {
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  using dir = new PolicyDir();
  const spec = (mode: 'enforce' | 'audit') =>
    writeFilter(dir, 'staged', {
      netns: sandbox.path,
      interfaces: ['vb'],
      hook: 'xdp',
      mode,
      rules: ['{name: block-udp, protocol: udp, dstPorts: [9999], action: drop}', '{name: always, protocol: udp, dstPorts: [9998], action: drop, mode: enforce}', '{name: dns, protocol: udp, dstPorts: [5353], action: pass}'],
      sampleRate: 1,
    });
  // IPv6 on a fresh veth pair: the first datagrams can be lost while neighbour discovery settles, so wait
  // (at most 5 tries) until one gets through before counting exactly.
  let v6Ready = false;
  for (let i = 0; i < 5 && !v6Ready; i++) v6Ready = (await udpExchange(sandbox, peer, [{ dst: NET.local6, port: 5353, count: 1 }]))[5353] === 1;
  assert.ok(v6Ready, 'an IPv6 datagram reaches the sandbox before the filter is attached');
  spec('audit');
  const opts = { root: pinDir, policyPaths: [dir.path] };
  assert.equal(reconcileExitCode(await reconciled(opts)), 0);
  const dry = () => reconcileOnce({ ...opts, dryRun: true });
  const f1 = filterOf(await dry(), 'vb', 'xdp');
  assert.ok(f1.program && f1.link?.id, 'a program and a link');

  using events = FilterEventStream.open(pinDir, 'staged');
  const got = await udpExchange(sandbox, peer, [
    { dst: NET.local4, port: 9999, count: 5, sport: 40011 },
    { dst: NET.local6, port: 9999, count: 2 },
    { dst: NET.local4, port: 9998, count: 3 },
    { dst: NET.local4, port: 5353, count: 4 },
  ]);
  assert.deepEqual(got, { 9999: 7, 9998: 0, 5353: 4 }, 'the audited drop rule lets its packets through; the rule in enforce mode still drops');
  const c1 = auditCounters(f1, 'staged');
  assert.deepEqual(c1['block-udp'], { packets: 7, wouldDrop: 7, wouldDropBytes: 5 * V4_BYTES(10) + 2 * V6_BYTES(10) }, 'every packet of the audited rule is a would-drop');
  assert.deepEqual(c1.always, { packets: 3, wouldDrop: 0, wouldDropBytes: 0 }, 'real drops are not would-drops');
  assert.deepEqual(c1.dns, { packets: 4, wouldDrop: 0, wouldDropBytes: 0 });

  const evs1 = await collectEvents(events, 10);
  const summary = (evs: FilterEvent[]) => evs.map((e) => `${e.rule} ${e.action} ${e.verdict}`).sort();
  assert.deepEqual(summary(evs1), [...Array<string>(3).fill('always drop drop'), ...Array<string>(7).fill('block-udp drop would-drop')]);
  const first = evs1.find((e) => e.verdict === 'would-drop' && e.family === 4)!;
  assert.deepEqual([first.src, first.srcPort, first.dst, first.dstPort], [NET.peer4, 40011, NET.local4, 9999]);
  assert.match(formatEventText(first), / vb xdp would-drop udp 10\.200\.0\.1:40011 -> 10\.200\.0\.2:9999 rule staged\/block-udp /);
  assert.equal((JSON.parse(formatEventJson(first)) as { verdict: string }).verdict, 'would-drop');

  // status and /metrics show the audited verdicts apart from the real ones.
  const st = runBounded(process.execPath, [cli, 'status', '--bpffs-root', pinDir, '--policies', dir.path]);
  assert.equal(st.status, 0, st.stdout + st.stderr);
  assert.match(st.stdout, /rule block-udp \(drop, audit\): 7 packets, \d+ bytes, 7 would be dropped/);
  assert.match(st.stdout, /rule always \(drop\): 3 packets, \d+ bytes\n/);
  const state = kindState(await dry(), 'PacketFilter')!;
  const metric = (m: Record<string, MetricSample[]>, rule: string, verdict: string) =>
    m.ebpf_policy_filter_packets_total!.find((s) => s.labels.rule === rule && s.labels.verdict === verdict)?.value;
  const m1 = collectFilterMetrics(state.desired as DesiredFilters, state.observed as ObservedFilters);
  assert.deepEqual([metric(m1, 'block-udp', 'would-drop'), metric(m1, 'block-udp', 'drop'), metric(m1, 'always', 'drop'), metric(m1, 'always', 'would-drop'), metric(m1, 'dns', 'pass')], [7, 0, 3, 0, 4]);

  // Enforce: an edit of the file; the reconcile writes the other generation's tables and flips to it.
  spec('enforce');
  const switched = await reconciled(opts);
  assert.deepEqual(
    changes(switched.plan).map((a) => `${a.kind} ${a.op.type}`),
    ['update writeFilterRules', 'update writeFilterRecords'],
    'only the rules (and the policy record) are written',
  );
  const f2 = filterOf(await dry(), 'vb', 'xdp');
  assert.deepEqual([f2.program?.id, f2.link?.id, f2.link?.progId], [f1.program.id, f1.link.id, f1.program.id], 'same program, same link');
  assert.notEqual(f2.activeGen, f1.activeGen, 'the other generation is active');
  assert.deepEqual(bpftool('link', 'show', 'id', String(f1.link.id)), bpftool('link', 'show', 'id', String(f2.link!.id)), 'bpftool sees the same link');
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 4 }, { dst: NET.local4, port: 5353, count: 1 }]), { 9999: 0, 5353: 1 }, 'dropped now');
  const c2 = auditCounters(f2, 'staged');
  assert.deepEqual([c2['block-udp']!.packets, c2['block-udp']!.wouldDrop], [11, 7], 'the rule keeps its counters; the new packets are real drops');
  const evs2 = await collectEvents(events, 4);
  assert.deepEqual(summary(evs2), Array<string>(4).fill('block-udp drop drop'));
  const m2 = collectFilterMetrics(state.desired as DesiredFilters, filtersOf(await dry()));
  assert.deepEqual([metric(m2, 'block-udp', 'would-drop'), metric(m2, 'block-udp', 'drop')], [7, 4]);
  events.close();

  const ids = ourObjects(filtersOf(await dry()).filters);
  rmSync(join(dir.path, 'staged.yaml'));
  await reconciled(opts);
  await assertNoneLeft(ids);
});

const ICMP_PY = `
import os, socket, struct, sys, time
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
dst, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(0.3)
replies = 0
for seq in range(n):
    hdr = struct.pack("!BBHHH", 8, 0, 0, os.getpid() & 0xffff, seq)
    pkt = struct.pack("!BBHHH", 8, 0, csum(hdr + b"ping"), os.getpid() & 0xffff, seq) + b"ping"
    s.sendto(pkt, (dst, 0))
    try:
        while True:
            data = s.recv(2048)
            if data[20] == 0: replies += 1; break
    except socket.timeout:
        pass
print(replies)
`;

/** `tc ARGS` inside the sandbox (through nsenter: `ip netns exec` remounts /sys, hiding bpffs pins); fails the test on error. */
function tcIn(sandbox: NetnsSandbox, ...args: string[]): string {
  const r = runBounded('nsenter', [`--net=${sandbox.path}`, 'tc', ...args]);
  assert.equal(r.status, 0, `tc ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

kernelTest('tc ingress (tcx; cls_bpf before Linux 6.6): coexists with another tool\'s program; rule changes update maps in place; a program change is an atomic link update (tc filter replace with cls_bpf)', async ({ pinDir, sandbox }) => {
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  const vb = ifindexIn(sandbox.name, 'vb');
  const tcx = hasFeature(Features.tcx);
  // Another tool's program on the same hook; its tc_count returns TCX_PASS (TC_ACT_OK), which ends the chain.
  // With tcx it is a tcx link attached before ours: ours goes in front of it. Without tcx (the reconciler
  // uses cls_bpf there) it is a cls_bpf filter of its own on the clsact qdisc, with a later priority than
  // ours (pref 65000 > 60319). Either way what we pass (TC_ACT_UNSPEC = TCX_NEXT) still reaches it.
  using other = loadObject(HOOKS);
  using ns = Netns.open(sandbox.path);
  const otherPin = join(pinDir, 'other_tc_count');
  using otherLink = tcx ? ns.enter(() => Link.attachTcx(other.program('tc_count'), vb, 'ingress')) : undefined;
  if (!tcx) {
    other.program('tc_count').pin(otherPin);
    tcIn(sandbox, 'qdisc', 'add', 'dev', 'vb', 'clsact');
    tcIn(sandbox, 'filter', 'add', 'dev', 'vb', 'ingress', 'protocol', 'all', 'pref', '65000', 'bpf', 'direct-action', 'object-pinned', otherPin);
  }
  const otherHits = () => other.map('hits').lookup(u32(1))!.readBigUInt64LE(0);

  using dir = new PolicyDir();
  const spec = (rules: string[]) => writeFilter(dir, 'ingress', { netns: sandbox.path, interfaces: ['vb'], hook: 'tc-ingress', rules, sampleRate: 1 });
  spec(['{name: no-ping, protocol: icmp, srcCidrs: ["10.200.0.1/32"], action: drop}', '{name: block-a, protocol: udp, dstPorts: [9001], action: drop}', '{name: lan, srcCidrs: ["10.200.0.0/24"], action: pass}']);
  const opts = { root: pinDir, policyPaths: [dir.path] };
  const first = await reconciled(opts);
  const f1 = filterOf(first.result ? await reconcileOnce({ ...opts, dryRun: true }) : first, 'vb', 'tc-ingress');
  assert.equal(f1.link?.method, tcx ? 'tcx' : 'cls_bpf');
  assert.equal(f1.link?.progId, f1.program?.id);

  const beforeOther = otherHits();
  assert.equal(peer.exec(['python3', '-c', ICMP_PY, NET.local4, '3']).trim(), '0', 'ICMP echo requests are dropped');
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9001, count: 4 }, { dst: NET.local4, port: 9002, count: 5 }]), { 9001: 0, 9002: 5 });
  assert.ok(otherHits() - beforeOther >= 5n, 'the other tool\'s program still sees what we pass (we return TCX_NEXT)');
  let c = counters(filterOf(await reconcileOnce({ ...opts, dryRun: true }), 'vb', 'tc-ingress'), 'ingress');
  assert.deepEqual({ ping: c['no-ping']?.packets, a: c['block-a']?.packets, lan: c.lan?.packets }, { ping: 3, a: 4, lan: 5 });
  assert.equal(c['block-a']?.bytes, 4 * V4_BYTES(10), 'tc counts skb->len: the frame with its Ethernet header');

  // Change the rules: the maps change in place, the program and link stay.
  spec(['{name: no-ping, protocol: icmp, srcCidrs: ["10.200.0.1/32"], action: drop}', '{name: block-b, protocol: udp, dstPorts: [9002], action: drop}', '{name: lan, srcCidrs: ["10.200.0.0/24"], action: pass}']);
  const changed = await reconciled(opts);
  assert.deepEqual(
    changes(changed.plan).map((a) => `${a.kind} ${a.op.type}`),
    ['update writeFilterRules', 'update writeFilterRecords'],
    'only the rules (and the policy record) are written',
  );
  const f2 = filterOf(await reconcileOnce({ ...opts, dryRun: true }), 'vb', 'tc-ingress');
  assert.deepEqual([f2.program?.id, f2.link?.id], [f1.program?.id, f1.link?.id], 'same program, same link');
  assert.notEqual(f2.activeGen, f1.activeGen, 'the other generation is active');
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9001, count: 2 }, { dst: NET.local4, port: 9002, count: 3 }]), { 9001: 2, 9002: 0 });
  c = counters(f2, 'ingress');
  assert.deepEqual({ ping: c['no-ping']?.packets, b: c['block-b']?.packets, lan: c.lan?.packets }, { ping: 3, b: 3, lan: 7 }, 'kept rules keep counting; the new rule starts at zero');
  assert.equal(c['block-a'], undefined, 'the removed rule has no counter any more');

  // A new program (other bytecode): swapped into the same link, rules and counters stay.
  const upgraded = await reconciled({ ...opts, kindOptions: { PacketFilter: { objectPath: FILTER_VARIANT_OBJECT } } });
  assert.deepEqual(changes(upgraded.plan).map((a) => a.op.type), ['replaceFilterProgram']);
  const f3 = filterOf(await reconcileOnce({ ...opts, dryRun: true, kindOptions: { PacketFilter: { objectPath: FILTER_VARIANT_OBJECT } } }), 'vb', 'tc-ingress');
  assert.equal(f3.link?.id, f1.link?.id, 'same link');
  assert.notEqual(f3.program?.id, f1.program?.id, 'new program');
  assert.equal(f3.link?.progId, f3.program?.id, 'the hook runs the new program');
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9002, count: 2 }]), { 9002: 0 });
  assert.equal(counters(f3, 'ingress')['block-b']?.packets, 5, 'the counters carried over');
  await reconciled(opts); // back to the shipped program

  const ids = ourObjects(filtersOf(await reconcileOnce({ ...opts, dryRun: true })).filters);
  rmSync(join(dir.path, 'ingress.yaml'));
  await reconciled(opts);
  await assertNoneLeft(ids);
  if (otherLink) assert.equal(otherLink.info().target.attached, true, 'the other tool\'s link is untouched');
  else assert.match(tcIn(sandbox, 'filter', 'show', 'dev', 'vb', 'ingress'), /pref 65000 bpf/, 'the other tool\'s filter is untouched');
  assert.equal(peer.exec(['python3', '-c', ICMP_PY, NET.local4, '2']).trim(), '2', 'ping works again');
  if (!tcx) {
    tcIn(sandbox, 'filter', 'del', 'dev', 'vb', 'ingress', 'pref', '65000');
    unpin(otherPin);
  }
});

kernelTest('tc egress: packets sent through the interface are filtered and counted; events name the hook', async ({ pinDir, sandbox }) => {
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  using dir = new PolicyDir();
  writeFilter(dir, 'egress', {
    netns: sandbox.path,
    interfaces: ['vb'],
    hook: 'tc-egress',
    defaultAction: 'drop',
    rules: ['{name: dns-out, protocol: udp, dstPorts: [53, "5300-5400"], action: pass}', '{name: web-out, protocol: tcp, dstPorts: [8080], action: pass}'],
    sampleRate: 2,
  });
  const opts = { root: pinDir, policyPaths: [dir.path] };
  await reconciled(opts);
  await startHttpServer(peer, '0.0.0.0', 8080);
  using events = FilterEventStream.open(pinDir);
  // From the sandbox out through vb: only DNS-like UDP and TCP to 8080 leave (replies come back in: not egress).
  assert.deepEqual(await udpExchange(peer, sandbox, [{ dst: NET.peer4, port: 5353, count: 3 }, { dst: NET.peer4, port: 9999, count: 4 }, { dst: NET.peer6, port: 9999, count: 2 }]), { 5353: 3, 9999: 0 });
  assert.equal(curl(sandbox, NET.peer4, 8080), 200, 'TCP to 8080 leaves and its replies come back');
  assert.equal(tcpConnect(sandbox, NET.peer4, 8081), 'dropped', 'TCP to 8081 never leaves');
  const f = filterOf(await reconcileOnce({ ...opts, dryRun: true }), 'vb', 'tc-egress');
  const c = counters(f, 'egress');
  assert.equal(c['dns-out']?.packets, 3);
  assert.ok((c['web-out']?.packets ?? 0) >= 3, 'the HTTP request went out');
  assert.ok((c['(default)']?.packets ?? 0) >= 6, 'the default action dropped the UDP to 9999 (and more: the SYN to 8081, neighbour discovery)');
  // Every 2nd default drop per CPU is reported: at least one of the UDP datagrams, named by hook and as the default action.
  const evs = await collectEvents(events, 1);
  assert.ok(evs.length >= 1);
  assert.ok(evs.every((e) => e.hook === 'tc-egress' && e.interface === 'vb' && e.rule === null && e.action === 'drop'), JSON.stringify(evs));
  events.close();

  const ids = ourObjects(filtersOf(await reconcileOnce({ ...opts, dryRun: true })).filters);
  rmSync(join(dir.path, 'egress.yaml'));
  await reconciled(opts);
  await assertNoneLeft(ids);
});

kernelTest('a filter whose port_classes and rules were pinned without BPF_F_MMAPABLE (before 2026-12-02) is another layout: observed as such, rebuilt (LayoutChanged), then filters again with mapped arrays', async ({ pinDir, sandbox }) => {
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  using dir = new PolicyDir();
  writeFilter(dir, 'ports', { netns: sandbox.path, interfaces: ['vb'], hook: 'xdp', rules: ['{name: no-9999, protocol: udp, dstPorts: [9999], action: drop}'] });
  const opts = { root: pinDir, policyPaths: [dir.path] };
  await reconciled(opts);
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 2 }, { dst: NET.local4, port: 9998, count: 2 }]), { 9999: 0, 9998: 2 });
  const before = filterOf(await reconcileOnce({ ...opts, dryRun: true }), 'vb', 'xdp');
  assert.deepEqual(before.layoutMismatch, []);
  assert.ok(before.fingerprint, 'the active generation is read through the mappings');
  // What an older version pinned: the same arrays, same sizes, without the flag.
  for (const [name, valueSize, maxEntries] of [['port_classes', PORT_CLASS_SIZE, PORT_CLASS_ENTRIES], ['rules', DECISION_VALUE_SIZE, 2 * MAX_RULES]] as const) {
    const pin = join(before.dir, `map_${name}`);
    {
      using pinned = BpfMap.fromPin(pin);
      assert.equal(pinned.info().flags & BPF_F_MMAPABLE, BPF_F_MMAPABLE, `map_${name} is mmapable`);
    }
    unpin(pin);
    using old = BpfMap.create({ type: MapType.ARRAY, name: `pf_old_${name}`.slice(0, 15), keySize: 4, valueSize, maxEntries });
    old.pin(pin);
  }
  const planned = await reconcileOnce({ ...opts, dryRun: true });
  // Maps of another layout are not read, the records (and so the attachment) included: found by its directory.
  const seen = filtersOf(planned).filters.find((f) => f.dir === before.dir);
  assert.ok(seen, 'the filter directory is observed');
  assert.deepEqual(seen.layoutMismatch, [`map port_classes (flags 0x0/0x${BPF_F_MMAPABLE.toString(16)})`, `map rules (flags 0x0/0x${BPF_F_MMAPABLE.toString(16)})`]);
  assert.equal(seen.fingerprint, undefined, 'maps of another layout are not read');
  assert.ok(planned.plan.actions.some((a) => a.code === 'LayoutChanged'), JSON.stringify(planned.plan.actions.map((a) => a.code)));
  await reconciled(opts);
  const after = filterOf(await reconcileOnce({ ...opts, dryRun: true }), 'vb', 'xdp');
  assert.deepEqual(after.layoutMismatch, []);
  assert.equal(after.fingerprint, before.fingerprint, 'the same rules, written through the mappings of the new maps');
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 2 }, { dst: NET.local4, port: 9998, count: 2 }]), { 9999: 0, 9998: 2 });
  const ids = ourObjects(filtersOf(await reconcileOnce({ ...opts, dryRun: true })).filters);
  rmSync(join(dir.path, 'ports.yaml'));
  await reconciled(opts);
  await assertNoneLeft(ids);
});

kernelTest('interfaces that appear later get the filter at the next reconcile; interfaces that vanish have their filter removed', async ({ pinDir, sandbox }) => {
  await using peer = NetnsSandbox.create('peer');
  using dir = new PolicyDir();
  writeFilter(dir, 'late', { netns: sandbox.path, interfaces: ['vx*'], hook: 'xdp', rules: ['{name: block, protocol: udp, dstPorts: [9999], action: drop}'] });
  const opts = { root: pinDir, policyPaths: [dir.path] };
  const none = await reconciled(opts);
  assert.equal(reconcileExitCode(none), 0, 'no interface yet is not an error');
  assert.ok(none.plan.problems.some((p) => p.policy === 'late' && p.condition === 'Degraded' && p.reason === 'NoInterface'));
  assert.equal(statusesOf(none, 'PacketFilter')[0]?.conditions[0]?.reason, 'NoInterface');

  vethPair(sandbox, peer, 'vx0', 'va');
  const appeared = await reconciled(opts);
  assert.deepEqual(changes(appeared.plan).map((a) => `${a.kind} ${a.op.type}`), ['create createFilter']);
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 2 }, { dst: NET.local4, port: 9998, count: 2 }]), { 9999: 0, 9998: 2 });

  // The interface goes away: the link reports attached: false, and the next reconcile removes the filter.
  const f = filterOf(await reconcileOnce({ ...opts, dryRun: true }), 'vx0', 'xdp');
  const ids = ourObjects([f]);
  ip('-n', sandbox.name, 'link', 'del', 'vx0');
  const gone = await reconcileOnce({ ...opts, dryRun: true });
  assert.equal(filtersOf(gone).filters[0]?.link?.attached, false);
  const removal = changes(gone.plan);
  assert.deepEqual(removal.map((a) => `${a.kind} ${a.op.type}`), ['delete removeFilter']);
  assert.match(removal[0]!.reason, /interface vx0 is gone \(its link reports attached: false\)/);
  await reconciled(opts);
  await assertNoneLeft(ids);
  assert.deepEqual(changes((await reconcileOnce({ ...opts, dryRun: true })).plan), []);
  rmSync(join(dir.path, 'late.yaml'));
  await reconciled(opts);
});

kernelTest('another tool\'s XDP program is a reported conflict, never overwritten; other policies still converge', async ({ pinDir, sandbox }) => {
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  const vb = ifindexIn(sandbox.name, 'vb');
  using other = loadObject(HOOKS);
  using ns = Netns.open(sandbox.path);
  const theirs = ns.enter(() => Link.attachXdp(other.program('xdp_count'), vb, 'native'));
  const theirProg = other.program('xdp_count').info().id;
  using dir = new PolicyDir();
  writeFilter(dir, 'edge', { netns: sandbox.path, interfaces: ['vb'], hook: 'xdp', rules: ['{name: block, protocol: udp, dstPorts: [9999], action: drop}'] });
  writeFilter(dir, 'loopback', { netns: sandbox.path, interfaces: ['lo'], hook: 'tc-ingress', rules: ['{name: block, protocol: udp, dstPorts: [9999], action: drop}'] });
  const opts = { root: pinDir, policyPaths: [dir.path] };
  try {
    const r = await reconcileOnce(opts);
    assert.equal(reconcileExitCode(r), 1, 'the conflict fails the run');
    const problem = r.plan.problems.find((p) => p.policy === 'edge');
    assert.equal(problem?.reason, 'XdpConflict');
    assert.match(problem!.message, new RegExp(`interface vb already runs XDP program ${theirProg} \\(native mode\\) of another tool: not replacing it`));
    assert.equal(theirs.info().target.attached, true, 'their program is still attached');
    assert.equal(theirs.info().progId, theirProg);
    const hits = () => other.map('hits').lookup(u32(0))!.readBigUInt64LE(0);
    const before = hits();
    assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 3 }]), { 9999: 3 }, 'their program passes everything');
    assert.ok(hits() - before >= 3n);
    const statuses = statusesOf(await reconcileOnce({ ...opts, dryRun: true }), 'PacketFilter');
    assert.equal(statuses.find((s) => s.name === 'edge')?.conditions.find((c) => c.type === 'Failed')?.reason, 'XdpConflict');
    assert.equal(statuses.find((s) => s.name === 'loopback')?.conditions[0]?.status, true, 'the other policy converged');
    assert.deepEqual(await udpExchange(sandbox, sandbox, [{ dst: '127.0.0.1', port: 9999, count: 2 }]), { 9999: 0 }, 'and filters');
  } finally {
    theirs.close();
  }
  // Once their program is gone, ours attaches.
  const after = await reconciled(opts);
  assert.equal(reconcileExitCode(after), 0);
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 3 }]), { 9999: 0 });
  rmSync(join(dir.path, 'edge.yaml'));
  rmSync(join(dir.path, 'loopback.yaml'));
  await reconciled(opts);
});

kernelTest('PortSteering and PacketFilter share a pin root: reconciling one kind leaves the other\'s pins alone', async ({ pinDir, sandbox }) => {
  await startHttpServer(sandbox, '127.0.0.1', 8080);
  using dir = new PolicyDir();
  const steering = () => dir.writeSteering('web', { netns: sandbox.path, ports: [8081], listen: '127.0.0.1:8080' });
  const filter = () => writeFilter(dir, 'lo-guard', { netns: sandbox.path, interfaces: ['lo'], hook: 'tc-ingress', rules: ['{name: block, protocol: tcp, dstPorts: [8082], action: drop}'] });
  steering();
  filter();
  const opts = { root: pinDir, policyPaths: [dir.path] };
  const both = await reconciled(opts);
  assert.equal(reconcileExitCode(both), 0);
  assert.deepEqual(changes((await reconcileOnce({ ...opts, dryRun: true })).plan), []);
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);
  assert.equal(tcpConnect(sandbox, '127.0.0.1', 8082), 'dropped');
  const snapshot = async () => {
    const r = await reconcileOnce({ ...opts, dryRun: true });
    return {
      dispatcher: steeringOf(r).dispatchers.map((d) => [d.program?.id, d.link?.id]),
      filter: filtersOf(r).filters.map((f) => [f.program?.id, f.link?.id]),
    };
  };
  const ids = await snapshot();

  // Without the steering policy: the dispatcher goes, the filter's pins stay as they are.
  rmSync(join(dir.path, 'web.yaml'));
  const r1 = await reconciled(opts);
  assert.ok(changes(r1.plan).every((a) => a.owner !== 'PacketFilter'), 'no action touches the filter');
  assert.deepEqual((await snapshot()).filter, ids.filter);
  assert.deepEqual((await snapshot()).dispatcher, []);
  assert.equal(tcpConnect(sandbox, '127.0.0.1', 8082), 'dropped');

  // And the other way round.
  steering();
  await reconciled(opts);
  const ids2 = await snapshot();
  rmSync(join(dir.path, 'lo-guard.yaml'));
  const r2 = await reconciled(opts);
  assert.ok(changes(r2.plan).every((a) => a.owner === 'PacketFilter' && a.domain?.startsWith('filter ')), 'only filter actions');
  assert.deepEqual((await snapshot()).dispatcher, ids2.dispatcher);
  assert.deepEqual((await snapshot()).filter, []);
  assert.equal(curl(sandbox, '127.0.0.1', 8081), 200);
  assert.equal(tcpConnect(sandbox, '127.0.0.1', 8082), 'refused');
  rmSync(join(dir.path, 'web.yaml'));
  await reconciled(opts);
});

kernelTest('the cls_bpf fallback (forced where the kernel has tcx) filters, and moves to tcx once allowed (stays without tcx)', async ({ pinDir, sandbox }) => {
  await using peer = NetnsSandbox.create('peer');
  vethPair(sandbox, peer);
  using dir = new PolicyDir();
  writeFilter(dir, 'old-kernel', { netns: sandbox.path, interfaces: ['vb'], hook: 'tc-ingress', rules: ['{name: block, protocol: udp, dstPorts: [9999], action: drop}'] });
  const opts = { root: pinDir, policyPaths: [dir.path] };
  const forced = { ...opts, kindOptions: { PacketFilter: { tcMethod: 'cls_bpf' } } };
  const r = await reconciled(forced);
  assert.match(changes(r.plan)[0]!.after ?? '', /clsact qdisc \+ cls_bpf filter/);
  const f = filterOf(await reconcileOnce({ ...forced, dryRun: true }), 'vb', 'tc-ingress');
  assert.equal(f.link?.method, 'cls_bpf');
  assert.equal(f.link?.progId, f.program?.id);
  assert.deepEqual(changes((await reconcileOnce({ ...forced, dryRun: true })).plan), []);
  const tc = () => runBounded('ip', ['netns', 'exec', sandbox.name, 'tc', 'filter', 'show', 'dev', 'vb', 'ingress']).stdout;
  assert.match(tc(), /pref 60319 bpf/);
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 3 }, { dst: NET.local4, port: 9998, count: 2 }]), { 9999: 0, 9998: 2 });
  assert.equal(counters(f, 'old-kernel').block?.packets, 3);

  if (hasFeature(Features.tcx)) {
    // Allowed to use tcx: the filter is attached with a tcx link, then the cls_bpf filter is removed.
    const moved = await reconciled(opts);
    assert.deepEqual(changes(moved.plan).map((a) => `${a.kind} ${a.op.type}`), ['replace attachFilter']);
    assert.match(changes(moved.plan)[0]!.reason, /attached with cls_bpf, but this kernel wants tcx/);
    assert.doesNotMatch(tc(), /pref 60319/);
    assert.equal(filterOf(await reconcileOnce({ ...opts, dryRun: true }), 'vb', 'tc-ingress').link?.method, 'tcx');
  } else {
    // Without tcx (before Linux 6.6) cls_bpf is what the kernel wants: the unforced run changes nothing.
    const stays = await reconcileOnce({ ...opts, dryRun: true });
    assert.deepEqual(changes(stays.plan), []);
    assert.equal(filterOf(stays, 'vb', 'tc-ingress').link?.method, 'cls_bpf');
    assert.match(tc(), /pref 60319 bpf/);
  }
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 2 }]), { 9999: 0 });

  // Back to cls_bpf, then removed: the tc filter goes with the pins.
  await reconciled(forced);
  assert.match(tc(), /pref 60319 bpf/);
  rmSync(join(dir.path, 'old-kernel.yaml'));
  await reconciled(forced);
  assert.doesNotMatch(tc(), /pref 60319/);
  assert.deepEqual(await udpExchange(sandbox, peer, [{ dst: NET.local4, port: 9999, count: 2 }]), { 9999: 2 });
});
