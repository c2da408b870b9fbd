/**
 * `ebpf-policy test` for PortSteering policies: the policy's bindings as
 * reconcile computes them (bindings.ts), written into a private load of the
 * real dispatcher (nothing pinned or attached) with the target socket, as
 * the system resolver finds it, in the sockmap. Each case is an sk_lookup
 * test run (BPF_PROG_TEST_RUN with a `struct bpf_sk_lookup`); the kernel
 * reports the cookie of the socket the program selected, which is mapped
 * back to the target it belongs to.
 */
import { AddressFamily, SkAction } from '../../bpf/constants.js';
import { OWN_NETNS } from '../../bpf/netns.js';
import { loadObject } from '../../bpf/object.js';
import { duplicateSocket } from '../../bpf/sockets.js';
import type { DesiredPolicyBase, Finding } from '../../policy/kind.js';
import { parseIpAddress } from '../../policy/net/ip.js';
import { parseListenAddress } from '../../policy/net/listen-address.js';
import type { PolicyTestCase, PolicyTestResult, TestPacket } from '../../policy/policy-test.js';
import type { KindPolicyTest, PolicyTestEnv } from '../../reconciler/kind.js';
import { bindingEntries, bindingShapes } from './bindings.js';
import type { PortSteeringPolicy } from './document.js';
import { BINDING_KEY_SIZE, BINDING_VALUE_SIZE, u32Key } from './layout.js';
import { dispatcherObjectOf } from './ops.js';
import { systemResolver } from './resolver.js';

/** What `steeredTo` says when the program selects no socket (the regular socket lookup decides). */
export const NOT_STEERED = 'none';

/** The canonical text of a listen address (`127.0.0.1:8080`, `[::1]:8080`), or undefined when `text` is none. */
function canonicalAddress(text: string): string | undefined {
  const parsed = parseListenAddress(text);
  if (!parsed.ok) return undefined;
  const { family, address, port } = parsed.value;
  return family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Checks a case against a PortSteering policy: a TCP or UDP packet with a destination port, steeredTo only. */
function checkSteeringCase(c: PolicyTestCase, policy: DesiredPolicyBase): Finding[] {
  const p = policy as PortSteeringPolicy;
  const findings: Finding[] = [];
  const what = `"${p.name}" is a PortSteering policy: a case is a new ${p.protocol} connection (or datagram) and expects steeredTo`;
  for (const field of ['verdict', 'rule'] as const)
    if (c.expect[field] !== undefined) findings.push({ path: ['expect', field], severity: 'error', message: `${field} applies to PacketFilter policies; ${what}` });
  if (c.expect.steeredTo === undefined) findings.push({ path: ['expect'], severity: 'error', message: `missing steeredTo: ${what} ("127.0.0.1:8080", or "${NOT_STEERED}")` });
  else if (c.expect.steeredTo !== NOT_STEERED && canonicalAddress(c.expect.steeredTo) === undefined) {
    const parsed = parseListenAddress(c.expect.steeredTo);
    findings.push({ path: ['expect', 'steeredTo'], severity: 'error', message: `"${c.expect.steeredTo}" is neither "${NOT_STEERED}" nor a listen address (${parsed.ok ? '' : parsed.reason})` });
  }
  if (c.packet === undefined) findings.push({ path: ['connect'], severity: 'error', message: `connect applies to ConnectPolicy policies; ${what}: give a packet` });
  else if (c.packet.protocol === 'icmp') findings.push({ path: ['packet', 'protocol'], severity: 'error', message: `ICMP is never steered: ${what}` });
  else if (c.packet.dstPort === undefined) findings.push({ path: ['packet'], severity: 'error', message: `missing dstPort: a PortSteering case needs the destination port of the connection` });
  return findings;
}

/** `struct bpf_sk_lookup` (linux/bpf.h) of a case: remote = the packet's source, local = its destination. */
function lookupContext(p: TestPacket): Buffer {
  const ctx = Buffer.alloc(72); // sizeof(struct bpf_sk_lookup), 8-byte aligned
  const src = parseIpAddress(p.src)!;
  const dst = parseIpAddress(p.dst)!;
  const bytes = (v: bigint, n: number) => Buffer.from(v.toString(16).padStart(n * 2, '0'), 'hex');
  ctx.writeUInt32LE(p.family === 4 ? AddressFamily.INET : AddressFamily.INET6, 8); // family
  ctx.writeUInt32LE(p.protocol === 'tcp' ? 6 : 17, 12); // protocol (IPPROTO_TCP, IPPROTO_UDP)
  if (p.family === 4) {
    bytes(src.value, 4).copy(ctx, 16); // remote_ip4, network byte order
    bytes(dst.value, 4).copy(ctx, 40); // local_ip4
  } else {
    bytes(src.value, 16).copy(ctx, 20); // remote_ip6
    bytes(dst.value, 16).copy(ctx, 44); // local_ip6
  }
  ctx.writeUInt16BE(p.srcPort ?? 0, 36); // remote_port, network byte order
  ctx.writeUInt32LE(p.dstPort ?? 0, 60); // local_port, host byte order
  return ctx;
}

/** Runs the cases through the real dispatcher with private maps. Throws LoadError, ErrnoError. */
function runSteeringCases(policy: DesiredPolicyBase, cases: readonly PolicyTestCase[], env: PolicyTestEnv): PolicyTestResult[] {
  const p = policy as PortSteeringPolicy;
  const objectPath = dispatcherObjectOf(env);
  const netnsPath = p.netns ?? OWN_NETNS;
  const target = systemResolver(objectPath).target(netnsPath, p.protocol, p.target);
  const targetName = p.target.type === 'listen' ? (p.target.family === 6 ? `[${p.target.address}]:${p.target.port}` : `${p.target.address}:${p.target.port}`) : `pid ${p.target.pid} fd ${p.target.fd}`;
  if (!target.ok) {
    const error = `the target ${targetName} does not exist on this machine (${target.reason}): start it, or run the test where it runs`;
    return cases.map((c) => ({ name: c.name, index: c.index, status: 'error', expect: c.expect, error }));
  }
  const destId = 1;
  const entries = bindingShapes({ ports: p.ports.map((r) => ({ start: r.start, end: r.end })), prefixes: [...p.prefixes] }).flatMap((b, id) => bindingEntries(p.protocol, { ...b, id }, destId));
  using obj = loadObject(objectPath);
  if (entries.length > 0) {
    const keys = Buffer.alloc(entries.length * BINDING_KEY_SIZE);
    const values = Buffer.alloc(entries.length * BINDING_VALUE_SIZE);
    entries.forEach((e, i) => {
      keys.write(e.key, i * BINDING_KEY_SIZE, 'latin1');
      values.writeUInt32LE(e.destId, i * BINDING_VALUE_SIZE);
      values.writeUInt32LE(e.bindingId, i * BINDING_VALUE_SIZE + 4);
    });
    obj.map('bindings').updateBatch(keys, values);
  }
  {
    using sock = duplicateSocket(target);
    obj.map('sockets').updateSocket(u32Key(destId), sock.fd);
  }
  const prog = obj.program('dispatcher');
  const cookie = BigInt(target.cookie);
  return cases.map((c) => {
    const { retval, ctxOut } = prog.testRunContext(lookupContext(c.packet!)); // check() refuses a case without a packet
    const selected = ctxOut.readBigUInt64LE(0); // bpf_sk_lookup.cookie: non-zero when a socket was selected
    if (retval !== SkAction.PASS)
      return { name: c.name, index: c.index, status: 'error', expect: c.expect, error: `the dispatcher returned ${retval}, not SK_PASS` };
    const steeredTo = selected === 0n ? NOT_STEERED : selected === cookie ? targetName : `socket cookie ${selected}`;
    const want = c.expect.steeredTo === NOT_STEERED ? NOT_STEERED : canonicalAddress(c.expect.steeredTo ?? '');
    return { name: c.name, index: c.index, status: want === steeredTo ? 'pass' : 'fail', expect: c.expect, actual: { steeredTo } };
  });
}

/** PortSteering's `ebpf-policy test` support. */
export const portSteeringPolicyTest: KindPolicyTest = { check: checkSteeringCase, run: runSteeringCases };
