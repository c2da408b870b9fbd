/**
 * Every attach point of the kernel layer against the real kernel: XDP and
 * tcx on a veth inside a throwaway namespace, a cgroup connect4 hook on a
 * throwaway cgroup, a tracepoint through a perf-event link; plus the typed
 * errors (verifier log, errno names, missing pins) and feature probes.
 */
import { runBounded, sleep } from '../../src/sandbox/bounded-wait.js';
import assert from 'node:assert/strict';
import { mkdirSync, openSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AttachType,
  ErrnoError,
  Features,
  Link,
  LoadError,
  Netns,
  NotSupportedError,
  OwnedFd,
  cgroup2Mount,
  ensureTracefs,
  hasFeature,
  loadObject,
  unpin,
} from '../../src/bpf/index.js';
import { u32Key } from '../../src/kinds/port-steering/layout.js';
import { NetnsSandbox } from '../../src/sandbox/netns-sandbox.js';
import { kernelTest } from './harness.js';

const HOOKS = fileURLToPath(new URL('../../../build/bpf/test_hooks.o', import.meta.url));
const REJECT = fileURLToPath(new URL('../../../build/bpf/test_reject.o', import.meta.url));
const HIT = { xdp: 0, tc: 1, connect4: 2, tracepoint: 3 };
const SEND_UDP = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[3])):
    s.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
`;

function ip(...args: string[]): void {
  const r = runBounded('ip', args);
  assert.equal(r.status, 0, `ip ${args.join(' ')}: ${r.stderr}`);
}

function ifindexIn(ns: string, dev: string): number {
  const r = runBounded('ip', ['-n', ns, '-j', 'link', 'show', 'dev', dev]);
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as Array<{ ifindex: number }>)[0]!.ifindex;
}

kernelTest('XDP and tcx links attach to a veth in a namespace and see real packets (tcx before Linux 6.6: NotSupportedError)', async ({ pinDir, sandbox }) => {
  // Two namespaces joined by a veth pair: packets from the peer really cross it.
  await using peer = NetnsSandbox.create('peer');
  const ns = sandbox.name;
  ip('-n', ns, 'link', 'add', 'vb', 'type', 'veth', 'peer', 'name', 'va', 'netns', peer.name);
  ip('-n', peer.name, 'addr', 'add', '10.200.0.1/24', 'dev', 'va');
  ip('-n', ns, 'addr', 'add', '10.200.0.2/24', 'dev', 'vb');
  ip('-n', peer.name, 'link', 'set', 'va', 'up');
  ip('-n', ns, 'link', 'set', 'vb', 'up');
  const vb = ifindexIn(ns, 'vb');

  using obj = loadObject(HOOKS);
  using netns = Netns.open(sandbox.path);
  // Interface indexes are per namespace: attach from inside it.
  const hasTcx = hasFeature(Features.tcx);
  using xdpLink = netns.enter(() => Link.attachXdp(obj.program('xdp_count'), vb, 'generic'));
  // Before Linux 6.6 there is no tcx: the attach is a NotSupportedError naming the feature and the kernel.
  using tcxLink = hasTcx ? netns.enter(() => Link.attachTcx(obj.program('tc_count'), vb, 'ingress')) : undefined;
  if (!hasTcx)
    assert.throws(
      () => netns.enter(() => Link.attachTcx(obj.program('tc_count'), vb, 'ingress')),
      (e: unknown) => e instanceof NotSupportedError && e.feature === 'tcx links' && e.minimumKernel === '6.6',
    );
  xdpLink.pin(join(pinDir, 'xdp'));
  assert.deepEqual(xdpLink.info().target, { kind: 'xdp', ifindex: vb, attached: true });
  if (tcxLink) assert.deepEqual(tcxLink.info().target, { kind: 'tcx', ifindex: vb, attachType: AttachType.TCX_INGRESS, attached: true });

  // Five UDP datagrams from the peer through the veth pair: they arrive on vb.
  peer.exec(['python3', '-c', SEND_UDP, '10.200.0.2', '9', '5']);
  const hits = obj.map('hits');
  assert.ok(hits.lookup(u32Key(HIT.xdp))!.readBigUInt64LE(0) >= 5n, 'XDP program saw the datagrams');
  if (tcxLink) assert.ok(hits.lookup(u32Key(HIT.tc))!.readBigUInt64LE(0) >= 5n, 'tcx program saw the datagrams');

  // A second XDP link on the same interface is refused: another program holds it.
  assert.throws(
    () => netns.enter(() => Link.attachXdp(obj.program('xdp_count'), vb, 'generic')),
    (e: unknown) => e instanceof ErrnoError && (e.code === 'EBUSY' || e.code === 'EEXIST'),
  );
  // Removing the interface leaves the link defunct, and info says so.
  ip('-n', ns, 'link', 'del', 'vb');
  assert.equal(xdpLink.info().target.attached, false);
  unpin(join(pinDir, 'xdp'));
});

kernelTest('a cgroup connect4 link sees connects from a process in that cgroup', async ({ sandbox }) => {
  const cgroup = `${cgroup2Mount()}/ebpf-policy-test-${process.pid}`;
  mkdirSync(cgroup);
  try {
    using obj = loadObject(HOOKS);
    {
      using dir = new OwnedFd(openSync(cgroup, 'r'), `cgroup ${cgroup}`);
      using link = Link.attachCgroup(obj.program('connect4_count'), dir.fd, AttachType.CGROUP_INET4_CONNECT);
      const target = link.info().target;
      assert.equal(target.kind, 'cgroup');
      assert.equal(target.kind === 'cgroup' && target.cgroupId, BigInt(statSync(cgroup).ino));
      await sandbox.startServer('127.0.0.1', 8080);
      // A shell moves itself into the cgroup, then connects.
      const r = runBounded('sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec ip netns exec ${sandbox.name} python3 -c "import socket; socket.create_connection(('127.0.0.1', 8080)).close()"`]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(obj.map('hits').lookup(u32Key(HIT.connect4))!.readBigUInt64LE(0), 1n);
    }
  } finally {
    // The cgroup empties once the shell exited.
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(cgroup);
        break;
      } catch {
        await sleep(20);
      }
    }
  }
});

kernelTest('a tracepoint link through perf_event counts real syscalls', () => {
  ensureTracefs();
  using obj = loadObject(HOOKS);
  using link = Link.attachTracepoint(obj.program('tp_count'), 'syscalls', 'sys_enter_getppid');
  assert.equal(link.info().target.kind, 'perf_event');
  const r = runBounded('sh', ['-c', 'for i in 1 2 3 4 5; do cat /proc/self/stat >/dev/null; done; python3 -c "import os; [os.getppid() for _ in range(10)]"']);
  assert.equal(r.status, 0);
  assert.ok(obj.map('hits').lookup(u32Key(HIT.tracepoint))!.readBigUInt64LE(0) >= 10n);
  assert.throws(
    () => Link.attachTracepoint(obj.program('tp_count'), 'syscalls', 'no_such_tracepoint'),
    (e: unknown) => e instanceof ErrnoError && e.code === 'ENOENT' && e.message.includes('syscalls:no_such_tracepoint'),
  );
});

kernelTest('a verifier rejection carries the verifier log; bad paths carry errno names', ({ pinDir }) => {
  assert.throws(
    () => loadObject(REJECT),
    (e: unknown) =>
      e instanceof LoadError &&
      e.code === 'EACCES' &&
      /map_value_or_null/.test(e.log) &&
      e.message.includes('verifier log') &&
      e.message.includes(REJECT),
  );
  assert.throws(
    () => loadObject(join(pinDir, 'missing.o')),
    (e: unknown) => e instanceof ErrnoError && e.code === 'ENOENT' && e.message.includes('missing.o'),
  );
  const notElf = join('/tmp', `ebpf-policy-test-${process.pid}.o`);
  writeFileSync(notElf, 'not an ELF file');
  try {
    assert.throws(() => loadObject(notElf), (e: unknown) => e instanceof ErrnoError && e.operation === 'bpf_object__open_file');
  } finally {
    unpin(notElf);
  }
  assert.throws(() => Netns.open('/run/netns/ebpf-policy-does-not-exist'), (e: unknown) => e instanceof ErrnoError && e.code === 'ENOENT');
  assert.throws(() => Netns.open('/etc/hostname'), /not a network namespace/);
});

kernelTest('feature probes report what this kernel has: every feature from its minimum kernel on, none before', () => {
  // Upstream kernels (Debian's follow upstream); a distribution that backports a feature would need its own table.
  const version = (v: string) => v.split(/[.-]/).slice(0, 2).map(Number) as [number, number];
  const [major, minor] = version(release());
  for (const f of [Features.skLookup, Features.xdp, Features.lpmTrie, Features.sockmap, Features.ringbuf, Features.tcx]) {
    const [fMajor, fMinor] = version(f.minimumKernel);
    const expected = major > fMajor || (major === fMajor && minor >= fMinor);
    assert.equal(hasFeature(f), expected, `${f.name} (Linux ${f.minimumKernel}+) ${expected ? 'should' : 'should not'} exist on Linux ${release()}`);
  }
});
