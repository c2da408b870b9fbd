/**
 * Helpers of the packet filter's end-to-end tests: a veth pair between two
 * throwaway namespaces, real UDP and TCP traffic with python3 sockets, and
 * PacketFilter policy files.
 */
import { childClosed, runBounded, scaled, withTimeout } from '../../src/sandbox/bounded-wait.js';
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import type { NetnsSandbox } from '../../src/sandbox/netns-sandbox.js';
import type { PolicyDir } from './reconcile-helpers.js';

/** Addresses of the veth pair: `peer` holds va (.1), `sandbox` holds vb (.2). */
export const NET = { peer4: '10.200.0.1', local4: '10.200.0.2', peer6: 'fd00:200::1', local6: 'fd00:200::2' } as const;

/** Runs `ip ARGS`; fails the test on error. */
export function ip(...args: string[]): void {
  const r = runBounded('ip', args);
  assert.equal(r.status, 0, `ip ${args.join(' ')}: ${r.stderr}`);
}

/** ifindex of `dev` in the namespace named `ns`. */
export function ifindexIn(ns: string, dev: string): number {
  const r = runBounded('ip', ['-n', ns, '-j', 'link', 'show', 'dev', dev]);
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as Array<{ ifindex: number }>)[0]!.ifindex;
}

/** Joins `sandbox` (vb) and `peer` (va) with a veth pair, IPv4 and IPv6 (no DAD), both up. */
export function vethPair(sandbox: NetnsSandbox, peer: NetnsSandbox, local = 'vb', remote = 'va'): void {
  ip('-n', sandbox.name, 'link', 'add', local, 'type', 'veth', 'peer', 'name', remote, 'netns', peer.name);
  ip('-n', peer.name, 'addr', 'add', `${NET.peer4}/24`, 'dev', remote);
  ip('-n', sandbox.name, 'addr', 'add', `${NET.local4}/24`, 'dev', local);
  ip('-n', peer.name, 'addr', 'add', `${NET.peer6}/64`, 'dev', remote, 'nodad');
  ip('-n', sandbox.name, 'addr', 'add', `${NET.local6}/64`, 'dev', local, 'nodad');
  ip('-n', peer.name, 'link', 'set', remote, 'up');
  ip('-n', sandbox.name, 'link', 'set', local, 'up');
}

// Binds UDP ports on "::" (IPv4 too), prints "ready", counts datagrams per port,
// and, once told the sender has finished (SIGUSR1) and nothing more arrived for
// QUIET s, prints the counts as JSON. Arguments: QUIET PORT...
const RECEIVER_PY = `
import json, select, signal, socket, sys, time
quiet_s = float(sys.argv[1])
ports = [int(p) for p in sys.argv[2:]]
done_at = None
def finished(*_):
    global done_at
    done_at = time.monotonic()
signal.signal(signal.SIGUSR1, finished)
socks = {}
for p in ports:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", p))
    socks[s] = p
counts = {p: 0 for p in ports}
print("ready", flush=True)
last = time.monotonic()
while done_at is None or time.monotonic() - max(last, done_at) < quiet_s:
    r, _, _ = select.select(list(socks), [], [], 0.05)
    for s in r:
        s.recv(2048)
        counts[socks[s]] += 1
print(json.dumps(counts), flush=True)
`;

const SENDER_PY = `
import socket, sys, json
for spec in json.loads(sys.argv[1]):
    fam = socket.AF_INET6 if ":" in spec["dst"] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if spec.get("sport"): s.bind(("", spec["sport"]))
    for i in range(spec["count"]):
        s.sendto(b"x" * spec.get("size", 10), (spec["dst"], spec["port"]))
    s.close()
`;

/** One batch of datagrams to send. */
export interface UdpSend {
  dst: string;
  port: number;
  count: number;
  sport?: number;
  /** Payload bytes (default 10). */
  size?: number;
}

/**
 * Sends datagrams from `sender` and counts, per destination port, how many
 * arrive at a receiver in `receiver` bound to every port (both families).
 */
export async function udpExchange(receiver: NetnsSandbox, sender: NetnsSandbox, sends: UdpSend[]): Promise<Record<number, number>> {
  const ports = [...new Set(sends.map((s) => s.port))];
  const child = receiver.spawn(['python3', '-c', RECEIVER_PY, String(scaled(200) / 1000), ...ports.map(String)]);
  const lines = createInterface({ input: child.stdout! });
  const it = lines[Symbol.asyncIterator]();
  const first = await withTimeout(it.next(), 10_000, `the UDP receiver in ${receiver.name} to be ready`);
  assert.equal(first.value, 'ready');
  sender.exec(['python3', '-c', SENDER_PY, JSON.stringify(sends)]);
  // `ip netns exec` execs python3 in place, so the child's pid is the receiver's.
  child.kill('SIGUSR1');
  const result = await withTimeout(it.next(), 20_000, `the UDP receiver in ${receiver.name} to report what arrived`);
  lines.close();
  await childClosed(child, `the UDP receiver in ${receiver.name}`);
  return Object.fromEntries(Object.entries(JSON.parse(String(result.value)) as Record<string, number>).map(([k, v]) => [Number(k), v]));
}

const CONNECT_PY = `
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[3]))
try:
    s.connect((host, port))
    print(s.makefile().readline().strip() or "open")
except socket.timeout:
    print("dropped")
except OSError as e:
    print("refused" if isinstance(e, ConnectionRefusedError) else "error %s" % e)
`;

/** A TCP connect from `sandbox`: the server's greeting, "open", "refused", or "dropped" (no answer in time). */
export function tcpConnect(sandbox: NetnsSandbox, host: string, port: number, timeoutSeconds = 0.7): string {
  return sandbox.exec(['python3', '-c', CONNECT_PY, host, String(port), String(timeoutSeconds)]).trim();
}

/** A PacketFilter spec for {@link writeFilter}: YAML flow text for the rules. */
export interface FilterSpec {
  netns: string;
  interfaces: string[];
  hook: 'xdp' | 'tc-ingress' | 'tc-egress';
  /** spec.mode (absent: not written, so enforce). */
  mode?: 'enforce' | 'audit';
  defaultAction?: 'pass' | 'drop';
  /** Rules as YAML flow mappings, e.g. `{name: a, protocol: udp, dstPorts: [9], action: drop}`. */
  rules: string[];
  sampleRate?: number;
}

/** Writes NAME.yaml with one PacketFilter document into `dir`. */
export function writeFilter(dir: PolicyDir, name: string, spec: FilterSpec): string {
  const lines = [
    'apiVersion: ebpf-policy/v1',
    'kind: PacketFilter',
    `metadata: {name: ${name}}`,
    'spec:',
    `  netns: ${spec.netns}`,
    `  interfaces: ${JSON.stringify(spec.interfaces)}`,
    `  hook: ${spec.hook}`,
    ...(spec.mode ? [`  mode: ${spec.mode}`] : []),
    ...(spec.defaultAction ? [`  defaultAction: ${spec.defaultAction}`] : []),
    spec.rules.length ? '  rules:' : '  rules: []',
    ...spec.rules.map((r) => `    - ${r}`),
    ...(spec.sampleRate ? [`  events: {sampleRate: ${spec.sampleRate}}`] : []),
  ];
  return dir.writeRaw(`${name}.yaml`, `${lines.join('\n')}\n`);
}
