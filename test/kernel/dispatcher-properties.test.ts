/**
 * Property test of the real sk_lookup dispatcher (bpf/dispatcher.c): random
 * PortSteering bindings (TCP and UDP, port ranges, IPv4 and IPv6 prefixes of
 * every length, nested ones, bindings of every address) are written into the
 * dispatcher's maps by the kind's own code (bindingEntries, upsertBindings,
 * putSocket), with real sockets (dual-stack TCP listeners and UDP sockets of
 * a helper process in a throwaway namespace) in the sockmap; then random
 * destinations run through the program with BPF_PROG_TEST_RUN, whose
 * context comes back with the cookie of the socket the program selected.
 * That cookie, and the binding counter that moved, must equal a plain
 * longest-prefix match written here, independently of the kind's compiler:
 * among the bindings of the protocol whose ports contain the port and whose
 * prefix (of the destination's family) contains the address, a prefix beats
 * every address, and a longer prefix a shorter one.
 *
 * Set DISPATCHER_PROP_SEED to replay a run; the seed is logged.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import fc from 'fast-check';
import { loadObject, removePinTree } from '../../src/bpf/index.js';
import { bindingEntries, EVERY_ADDRESS } from '../../src/kinds/port-steering/bindings.js';
import { DISPATCHER_OBJECT } from '../../src/kinds/port-steering/layout.js';
import type { RecordedBinding } from '../../src/kinds/port-steering/model.js';
import { DISPATCHER_MAPS, deleteBindings, putSocket, readCounters, upsertBindings } from '../../src/kinds/port-steering/store.js';
import { childClosed, withTimeout } from '../../src/sandbox/bounded-wait.js';
import { kernelTest } from './harness.js';
import { portArbitrary, prefixArbitrary, prefixText, type Prefix } from './property-generators.js';

// ---------------------------------------------------------------- model

type Family = 4 | 6;
type Protocol = 'tcp' | 'udp';
/** One policy: its ports on its prefixes (or on every address of both families), to one socket. */
interface Policy {
  protocol: Protocol;
  ranges: Array<{ start: number; end: number }>; // disjoint
  prefixes: Prefix[] | 'every';
  socket: number;
}
interface Lookup {
  protocol: Protocol;
  family: Family;
  addr: number[];
  port: number;
}

function inPrefix(pf: Prefix, family: Family, addr: number[]): boolean {
  if (pf.family !== family) return false;
  for (let bit = 0; bit < pf.len; bit++) {
    const m = 0x80 >> bit % 8;
    if ((pf.addr[bit >> 3]! & m) !== (addr[bit >> 3]! & m)) return false;
  }
  return true;
}

const samePrefix = (a: Prefix, b: Prefix) => a.family === b.family && a.len === b.len && a.addr.every((x, i) => x === b.addr[i]);
const ALL4: Prefix = { family: 4, addr: [0, 0, 0, 0], len: 0 };
const ALL6: Prefix = { family: 6, addr: Array<number>(16).fill(0), len: 0 };
const prefixesOf = (p: Policy): Prefix[] => (p.prefixes === 'every' ? [ALL4, ALL6] : p.prefixes);

/**
 * The reference: the binding (policy, range, prefix) that decides, or undefined. Each binding has a
 * binding id: `ids[policy][range][prefix]`. Specificity: a prefix of the destination's family beats
 * every address; a longer prefix beats a shorter one.
 */
function expected(policies: Policy[], l: Lookup): { policy: number; range: number; prefix: number } | undefined {
  let best: { policy: number; range: number; prefix: number; rank: number } | undefined;
  policies.forEach((p, pi) => {
    if (p.protocol !== l.protocol) return;
    p.ranges.forEach((r, ri) => {
      if (l.port < r.start || l.port > r.end) return;
      if (p.prefixes === 'every') {
        if (!best || best.rank < -1) best = { policy: pi, range: ri, prefix: 0, rank: -1 };
        return;
      }
      p.prefixes.forEach((pf, fi) => {
        if (!inPrefix(pf, l.family, l.addr)) return;
        if (!best || pf.len > best.rank) best = { policy: pi, range: ri, prefix: fi, rank: pf.len };
      });
    });
  });
  return best && { policy: best.policy, range: best.range, prefix: best.prefix };
}

/** Policies that would be a conflict (same protocol, a shared port, an identical prefix) are left out, as validate refuses them. */
function withoutConflicts(policies: Policy[]): Policy[] {
  const kept: Policy[] = [];
  for (const p of policies) {
    const clash = kept.some(
      (q) =>
        q.protocol === p.protocol &&
        q.ranges.some((a) => p.ranges.some((b) => a.start <= b.end && b.start <= a.end)) &&
        prefixesOf(q).some((a) => prefixesOf(p).some((b) => samePrefix(a, b))),
    );
    if (!clash) kept.push(p);
  }
  return kept;
}

// ---------------------------------------------------------------- generators

const V4_POOL = [
  [10, 1, 2, 3],
  [10, 1, 200, 7],
  [192, 168, 5, 9],
  [127, 0, 0, 1],
];
const V6_POOL = [
  [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
  [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5],
  [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd],
  [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], // ::1: its short prefixes (::/0 .. ::/80) also hold every IPv4-mapped address
];
const PORT_POOL = [1, 22, 53, 80, 443, 1023, 1024, 8080, 8081, 65535];

const arbPrefix = prefixArbitrary(V4_POOL, V6_POOL);
const arbPort = portArbitrary(PORT_POOL);
// Short ranges mostly (each port of a prefix binding is one trie entry), some long ones.
const arbRange = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(arbPort, fc.integer({ min: 0, max: 40 })).map(([a, n]) => ({ start: a, end: Math.min(65535, a + n) })) },
  { weight: 1, arbitrary: fc.tuple(arbPort, arbPort).map(([a, b]) => ({ start: Math.min(a, b), end: Math.max(a, b) })) },
);

function merge(ranges: Array<{ start: number; end: number }>): Array<{ start: number; end: number }> {
  const out: Array<{ start: number; end: number }> = [];
  for (const r of [...ranges].sort((a, b) => a.start - b.start)) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end + 1) last.end = Math.max(last.end, r.end);
    else out.push({ ...r });
  }
  return out;
}

const SOCKETS = 6; // per protocol

const arbPolicy: fc.Arbitrary<Policy> = fc
  .record({
    protocol: fc.constantFrom<Protocol>('tcp', 'udp'),
    ranges: fc.array(arbRange, { minLength: 1, maxLength: 3 }),
    every: fc.integer({ min: 0, max: 4 }),
    prefixes: fc.uniqueArray(arbPrefix, { minLength: 1, maxLength: 3, comparator: samePrefix }),
    socket: fc.integer({ min: 0, max: SOCKETS - 1 }),
  })
  .map((r) => ({ protocol: r.protocol, ranges: merge(r.ranges), prefixes: r.every === 0 ? ('every' as const) : r.prefixes, socket: r.socket }))
  .filter((p) => p.ranges.reduce((n, r) => n + (p.prefixes === 'every' ? 1 : (r.end - r.start + 1) * p.prefixes.length), 0) <= 20_000);

/** An address biased to the pool and to the policies' prefixes: exact, one bit flipped, or random. */
function arbAddr(family: Family): fc.Arbitrary<number[]> {
  const pool = family === 4 ? V4_POOL : V6_POOL;
  const n = family === 4 ? 4 : 16;
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...pool) },
    { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...pool), fc.integer({ min: 0, max: n * 8 - 1 })).map(([a, bit]) => a.map((x, i) => (i === bit >> 3 ? x ^ (0x80 >> bit % 8) : x))) },
    { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: n, maxLength: n }) },
  );
}

/** Lookups aimed at the policies' ports (and their neighbours) and addresses. */
function arbLookups(policies: Policy[]): fc.Arbitrary<Lookup[]> {
  const ports = policies.flatMap((p) => p.ranges.flatMap((r) => [r.start, r.end, Math.max(1, r.start - 1), Math.min(65535, r.end + 1)]));
  const arbLookupPort = ports.length ? fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...ports) }, { weight: 1, arbitrary: arbPort }) : arbPort;
  return fc.array(
    fc.record({ protocol: fc.constantFrom<Protocol>('tcp', 'udp'), family: fc.constantFrom<Family>(4, 6), a4: arbAddr(4), a6: arbAddr(6), port: arbLookupPort }).map((r) => ({
      protocol: r.protocol,
      family: r.family,
      addr: r.family === 4 ? r.a4 : r.a6,
      port: r.port,
    })),
    { minLength: 40, maxLength: 40 },
  );
}

const arbCase = fc
  .array(arbPolicy, { minLength: 1, maxLength: 8 })
  .map(withoutConflicts)
  .chain((policies) => fc.tuple(fc.constant(policies), arbLookups(policies)));

// ---------------------------------------------------------------- the kernel side

// struct bpf_sk_lookup (linux/bpf.h): cookie@0 family@8 protocol@12 remote_ip4@16 remote_ip6@20 remote_port@36
// local_ip4@40 local_ip6@44 local_port@60 ingress_ifindex@64; 72 bytes with the tail padding of its u64 (the kernel
// writes the context back only into a buffer of its full size: ENOSPC otherwise).
const SK_LOOKUP_CTX_SIZE = 72;
const AF_INET = 2; // bits/socket.h PF_INET
const AF_INET6 = 10; // bits/socket.h PF_INET6
const IPPROTO = { tcp: 6, udp: 17 } as const; // netinet/in.h
const SK_PASS = 1; // enum sk_action, linux/bpf.h

function lookupContext(l: Lookup): Buffer {
  const c = Buffer.alloc(SK_LOOKUP_CTX_SIZE);
  c.writeUInt32LE(l.family === 4 ? AF_INET : AF_INET6, 8);
  c.writeUInt32LE(IPPROTO[l.protocol], 12);
  if (l.family === 4) {
    Buffer.from([192, 0, 2, 99]).copy(c, 16);
    Buffer.from(l.addr).copy(c, 40);
  } else {
    Buffer.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99]).copy(c, 20);
    Buffer.from(l.addr).copy(c, 44);
  }
  c.writeUInt16BE(40000, 36);
  c.writeUInt32LE(l.port, 60);
  return c;
}

// Dual-stack TCP listeners and UDP sockets on [::]:0 (so they serve IPv4 and IPv6 lookups), no SO_REUSEPORT.
// Prints one line: JSON {"pid", "tcp": [[fd, cookie], ...], "udp": [...]}; then waits until stdin closes.
const SOCKETS_PY = `
import json, os, socket, struct, sys
n = int(sys.argv[1])
out = {"pid": os.getpid(), "tcp": [], "udp": []}
keep = []
for proto, kind in (("tcp", socket.SOCK_STREAM), ("udp", socket.SOCK_DGRAM)):
    for _ in range(n):
        s = socket.socket(socket.AF_INET6, kind)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 0))
        if kind == socket.SOCK_STREAM:
            s.listen(8)
        keep.append(s)
        out[proto].append([s.fileno(), str(struct.unpack("<Q", s.getsockopt(socket.SOL_SOCKET, 57, 8))[0])])
print(json.dumps(out), flush=True)
sys.stdin.read()
`;

const describe = (x: unknown) =>
  JSON.stringify(x, (_k, v: unknown) => (Array.isArray(v) && v.length > 0 && v.every((n) => typeof n === 'number') && (v.length === 4 || v.length === 16) ? `[${v.join(',')}]` : v));

/** Regression cases found by the property (kept explicit). */
const V6_DOC = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const REGRESSIONS: Array<{ name: string; policies: Policy[]; lookups: Lookup[] }> = [
  {
    // IPv4 addresses are looked up IPv4-mapped (::ffff:a.b.c.d), which ::/0 (and every IPv6 prefix up to ::/80)
    // contains: a binding to ::/0 alone steered IPv4 connections too, and one to ::/8 shadowed the binding of
    // every address for IPv4. Fixed with BINDING_V6_ONLY (bpf/dispatcher.h).
    name: 'an IPv6 prefix holding the IPv4-mapped addresses never decides an IPv4 lookup',
    policies: [
      { protocol: 'tcp', ranges: [{ start: 80, end: 80 }], prefixes: [ALL6], socket: 0 },
      { protocol: 'tcp', ranges: [{ start: 1000, end: 1100 }], prefixes: 'every', socket: 1 },
      { protocol: 'tcp', ranges: [{ start: 1050, end: 1050 }], prefixes: [{ family: 6, addr: Array<number>(16).fill(0), len: 8 }], socket: 2 },
      { protocol: 'tcp', ranges: [{ start: 1050, end: 1050 }], prefixes: [{ family: 4, addr: [10, 0, 0, 0], len: 8 }], socket: 3 },
    ],
    lookups: [
      { protocol: 'tcp', family: 4, addr: [10, 1, 2, 3], port: 80 },
      { protocol: 'tcp', family: 6, addr: V6_DOC, port: 80 },
      { protocol: 'tcp', family: 4, addr: [10, 1, 2, 3], port: 1050 },
      { protocol: 'tcp', family: 4, addr: [192, 168, 5, 9], port: 1050 },
      { protocol: 'tcp', family: 6, addr: V6_POOL[3]!, port: 1050 },
      { protocol: 'tcp', family: 6, addr: V6_DOC, port: 1050 },
      { protocol: 'tcp', family: 4, addr: [192, 168, 5, 9], port: 1051 },
    ],
  },
];

kernelTest(
  'sk_lookup dispatcher: the real program steers to the socket of the longest matching binding, over random bindings and destinations',
  async ({ pinDir, sandbox }) => {
    const seed = process.env.DISPATCHER_PROP_SEED ? Number(process.env.DISPATCHER_PROP_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
    const numRuns = Number(process.env.DISPATCHER_PROP_RUNS ?? 300);
    console.log(`dispatcher properties: seed ${seed} (DISPATCHER_PROP_SEED=${seed} to replay), ${numRuns} binding sets`);

    const helper = sandbox.spawn(['python3', '-c', SOCKETS_PY, String(SOCKETS)], { stdin: 'pipe' });
    const dir = join(pinDir, 'dispatcher');
    try {
      const lines = createInterface({ input: helper.stdout! });
      const first = await withTimeout(lines[Symbol.asyncIterator]().next(), 10_000, `the socket helper in ${sandbox.name} to report its sockets`);
      lines.close();
      const socks = JSON.parse(String(first.value)) as { pid: number; tcp: Array<[number, string]>; udp: Array<[number, string]> };
      mkdirSync(dir);
      using obj = loadObject(DISPATCHER_OBJECT);
      for (const name of DISPATCHER_MAPS) obj.map(name).pin(join(dir, `map_${name}`));
      const prog = obj.program('dispatcher');
      // Destination ids: 1..SOCKETS for TCP, SOCKETS+1..2*SOCKETS for UDP (0 is never used, as in the kind).
      const destId = (protocol: Protocol, socket: number) => 1 + socket + (protocol === 'udp' ? SOCKETS : 0);
      const cookieOf = new Map<number, string>();
      for (const protocol of ['tcp', 'udp'] as const)
        socks[protocol].forEach(([fd, cookie], i) => {
          putSocket(dir, destId(protocol, i), { pid: socks.pid, fd });
          cookieOf.set(destId(protocol, i), cookie);
        });

      let written: string[] = [];
      let lookupsRun = 0;
      const hits = { steered: 0, none: 0, every: 0, v4: 0, v6: 0 };
      const check = (policies: Policy[], lookups: Lookup[]) => {
        deleteBindings(dir, written);
        // Binding ids: one per (policy, range, prefix), from 1.
        const ids: number[][][] = [];
        let next = 1;
        const entries = policies.flatMap((p, pi) =>
          p.ranges.flatMap((r, ri) =>
            (p.prefixes === 'every' ? [EVERY_ADDRESS] : p.prefixes.map(prefixText)).flatMap((prefix, fi) => {
              const id = next++;
              ((ids[pi] ??= [])[ri] ??= [])[fi] = id;
              const binding: RecordedBinding = { start: r.start, end: r.end, prefix, id };
              return bindingEntries(p.protocol, binding, destId(p.protocol, p.socket));
            }),
          ),
        );
        upsertBindings(dir, entries);
        written = entries.map((e) => e.key);
        const allIds = Array.from({ length: next }, (_, i) => i);
        let before = readCounters(dir, allIds).hits;
        for (const l of lookups) {
          const { retval, ctxOut } = prog.testRunContext(lookupContext(l));
          lookupsRun++;
          const after = readCounters(dir, allIds).hits;
          const moved = allIds.filter((id) => after.get(id) !== before.get(id));
          before = after;
          const want = expected(policies, l);
          const p = want && policies[want.policy]!;
          const got = { retval, cookie: ctxOut.readBigUInt64LE(0).toString(), binding: moved };
          const exp = {
            retval: SK_PASS,
            cookie: p ? cookieOf.get(destId(p.protocol, p.socket))! : '0',
            binding: want ? [ids[want.policy]![want.range]![want.prefix]!] : [],
          };
          assert.deepEqual(got, exp, `mismatch\n  policies: ${describe(policies)}\n  lookup: ${describe(l)}\n  expected binding: ${describe(want)}`);
          hits[want ? 'steered' : 'none']++;
          if (p?.prefixes === 'every') hits.every++;
          hits[l.family === 4 ? 'v4' : 'v6']++;
        }
      };

      try {
        for (const r of REGRESSIONS) {
          console.log(`dispatcher properties: regression case: ${r.name}`);
          check(r.policies, r.lookups);
        }
        const t0 = performance.now();
        try {
          fc.assert(
            fc.property(arbCase, ([policies, lookups]) => check(policies, lookups)),
            { seed, numRuns },
          );
        } catch (err) {
          const cause = (err as Error).cause;
          console.log(`dispatcher properties: seed ${seed} failed; last assertion: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}`);
          throw err;
        }
        console.log(`dispatcher properties: ${numRuns} binding sets, ${lookupsRun} lookups in ${((performance.now() - t0) / 1000).toFixed(1)} s; ${JSON.stringify(hits)}`);
      } finally {
        removePinTree(dir);
      }
    } finally {
      helper.stdin?.end();
      await childClosed(helper, 'the socket helper to exit once its stdin closed', 10_000);
    }
  },
  300_000,
);
