/**
 * Packet filter benchmarks, each printed against a baseline measured in the
 * same run:
 *  (a) UDP packets per second through a veth pair between two throwaway
 *      namespaces (a C sender and receiver with sendmmsg/recvmmsg), with no
 *      program, with a program that only passes, with the filter and 10
 *      rules, and with 10,000 rules, at the XDP and at the tc ingress hook;
 *      ratios to the no-program rate (and to the pass-only program);
 *  (b) applying a change of all 10,000 rules: a whole `reconcile --once`
 *      pass, and its kernel write alone, against a C program with libbpf
 *      writing the same entries (bench/c/filter_update.c); then, with the
 *      10,000 rules in place, observing the filter alone and a whole
 *      no-op `reconcile --once` pass.
 * Run as root: `npm run bench:filter` (`-- pps`, `-- testrun` or `-- apply` for one part).
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfMap, ensureBpffs, Link, loadObject, MapType, Netns, Program, removePinTree } from '../src/bpf/index.js';
import { writeFilterRules } from '../src/kinds/packet-filter/store.js';
import { ADDR_KEY_SIZE, CLASS_VALUE_SIZE, DECISION_KEY_SIZE, DECISION_VALUE_SIZE, FILTER_MAPS, MAX_RULES, PORT_CLASS_SIZE, PORTS, portClassIndex, portSliceDims } from '../src/kinds/packet-filter/layout.js';
import { mapPinPath } from '../src/bpf/pinned-maps.js';
import type { FilterOperation } from '../src/kinds/packet-filter/model.js';
import { kindState, reconcileOnce } from '../src/manager.js';
import { observeFilters, type ObservedFilters } from '../src/kinds/packet-filter/store.js';
import { NetnsSandbox } from '../src/sandbox/netns-sandbox.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const cDir = join(here, '../../bench/c');
const root = `/sys/fs/bpf/ebpf-policy-bench-filter-${process.pid}`;
const PORT = 9000;
const HOOKS = join(here, '../../build/bpf/test_hooks.o');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

function compile(work: string, name: string, libs: string[] = []): string {
  const bin = join(work, name);
  run('gcc', ['-O2', '-o', bin, join(cDir, `${name}.c`), ...libs]);
  return bin;
}

/**
 * `n` rules shaped like a real rule set: half source blocklist entries, half
 * TCP port rules, plus two rules that the benchmark traffic (UDP from
 * 10.200.0.1 to port 9000) hits in the class lookups but no decision matches,
 * so every packet does the full set of lookups and passes by default.
 * `variant` changes every rule's values but not its name.
 */
function rules(n: number, variant = 0): string[] {
  const out = ['{name: lan-tcp, protocol: tcp, srcCidrs: ["10.200.0.0/16"], action: drop}', `{name: tcp-${PORT}, protocol: tcp, dstPorts: [${PORT}], action: drop}`];
  for (let i = 0; out.length < n; i++) {
    if (i % 2 === 0) out.push(`{name: src-${i}, srcCidrs: ["172.${16 + variant}.${(i >> 8) & 255}.${i & 255}/32"], action: drop}`);
    else out.push(`{name: port-${i}, protocol: tcp, dstPorts: [${10000 + variant * 20000 + i}], action: drop}`);
  }
  return out;
}

function policy(netns: string, hook: string, list: string[]): string {
  return ['apiVersion: ebpf-policy/v1', 'kind: PacketFilter', 'metadata: {name: bench}', 'spec:', `  netns: ${netns}`, '  interfaces: [vb]', `  hook: ${hook}`, '  rules:', ...list.map((r) => `    - ${r}`)].join('\n');
}

async function converge(dir: string, text: string | undefined): Promise<void> {
  const file = join(dir, 'bench.yaml');
  if (text === undefined) rmSync(file, { force: true });
  else writeFileSync(file, text);
  const r = await reconcileOnce({ root, policyPaths: [dir] });
  if (r.result!.failed.length) throw new Error(r.result!.failed[0]!.error.message);
}

/** Packets per second a receiver in `rx` gets from a sender in `tx` over `seconds`. */
async function pps(flood: string, rx: NetnsSandbox, tx: NetnsSandbox, seconds: number): Promise<{ rx: number; tx: number }> {
  const child = rx.spawn([flood, 'recv', String(PORT), String(seconds)]);
  const lines = createInterface({ input: child.stdout! });
  const it = lines[Symbol.asyncIterator]();
  if ((await it.next()).value !== 'ready') throw new Error('receiver did not start');
  const sent = Number(tx.exec([flood, 'send', '10.200.0.2', String(PORT), String(seconds + 0.3), '64']).trim());
  const [got, elapsed] = String((await it.next()).value).split(' ').map(Number);
  lines.close();
  if (child.exitCode === null) await once(child, 'close');
  return { rx: got! / elapsed!, tx: sent / (seconds + 0.3) };
}

async function benchPps(work: string, rx: NetnsSandbox, tx: NetnsSandbox): Promise<void> {
  const flood = compile(work, 'udp_flood');
  const dir = join(work, 'pps');
  mkdirSync(dir, { mode: 0o700 });
  const seconds = 2;
  const rounds = 7;
  console.log(`(a) UDP packets/s (64-byte payload) through a veth pair, received by a socket; median of ${rounds} rounds of ${seconds} s, ratios per round:`);
  for (const hook of ['xdp', 'tc-ingress']) {
    // A program that only counts and passes (bpf/test_hooks.c) separates the hook's own cost
    // (veth switches to its XDP receive path once any XDP program is attached) from the filter's.
    const passOnly = (): Disposable => {
      const obj = loadObject(HOOKS);
      using ns = Netns.open(rx.path);
      const ifindex = Number(JSON.parse(run('ip', ['-n', rx.name, '-j', 'link', 'show', 'dev', 'vb']))[0].ifindex);
      const link = ns.enter(() => (hook === 'xdp' ? Link.attachXdp(obj.program('xdp_count'), ifindex, 'native') : Link.attachTcx(obj.program('tc_count'), ifindex, 'ingress')));
      return { [Symbol.dispose]: () => (link.close(), obj.close()) };
    };
    const configs: Array<{ name: string; text: string | undefined; attach?: () => Disposable }> = [
      { name: 'no program', text: undefined },
      { name: 'pass-only program', text: undefined, attach: passOnly },
      { name: 'filter, 10 rules', text: policy(rx.path, hook, rules(10)) },
      { name: 'filter, 10,000 rules', text: policy(rx.path, hook, rules(10000)) },
    ];
    const rates: number[][] = configs.map(() => []);
    const sent: number[][] = configs.map(() => []);
    const ratios: number[][] = configs.map(() => []);
    for (let round = 0; round < rounds; round++) {
      let base = 0;
      for (const [i, c] of configs.entries()) {
        await converge(dir, c.text);
        using _attached = c.attach?.();
        const r = await pps(flood, rx, tx, seconds);
        if (i === 0) base = r.rx;
        rates[i]!.push(r.rx);
        sent[i]!.push(r.tx);
        ratios[i]!.push(r.rx / base);
      }
    }
    await converge(dir, undefined);
    console.log(`    ${hook}:`);
    configs.forEach((c, i) =>
      console.log(
        `      ${c.name.padEnd(22)} ${(median(rates[i]!) / 1e6).toFixed(3)} Mpps received (sent ${(median(sent[i]!) / 1e6).toFixed(3)} Mpps), ratio to no program ${median(ratios[i]!).toFixed(3)}${i >= 2 ? `, to the pass-only program ${median(ratios[i]!.map((x, k) => x / ratios[1]![k]!)).toFixed(3)}` : ''}`,
      ),
    );
  }
}

/** An Ethernet + IPv4 + UDP frame from 10.200.0.1 to 10.200.0.2:9000 with a 64-byte payload (checksums left 0). */
function frame(): Buffer {
  const f = Buffer.alloc(14 + 20 + 8 + 64);
  f.writeUInt16BE(0x0800, 12); // ETH_P_IP
  f.writeUInt8(0x45, 14); // version 4, IHL 5
  f.writeUInt16BE(20 + 8 + 64, 16);
  f.writeUInt8(64, 22); // TTL
  f.writeUInt8(17, 23); // UDP
  Buffer.from([10, 200, 0, 1, 10, 200, 0, 2]).copy(f, 26);
  f.writeUInt16BE(40000, 34);
  f.writeUInt16BE(PORT, 36);
  f.writeUInt16BE(8 + 64, 38);
  return f;
}

async function benchTestRun(rx: NetnsSandbox, work: string): Promise<void> {
  const dir = join(work, 'testrun');
  mkdirSync(dir, { mode: 0o700 });
  const data = frame();
  const repeat = 1_000_000;
  const time = (prog: Program) => median([0, 1, 2, 3, 4].map(() => prog.testRun(data, repeat).durationNs));
  console.log(`(b) the program alone (BPF_PROG_TEST_RUN, ${repeat} runs on a UDP frame that takes every lookup and passes), median of 5:`);
  for (const hook of ['xdp', 'tc-ingress'] as const) {
    let base: number;
    {
      using obj = loadObject(HOOKS);
      base = time(obj.program(hook === 'xdp' ? 'xdp_count' : 'tc_count'));
    }
    const results: string[] = [];
    for (const n of [10, 10000]) {
      await converge(dir, policy(rx.path, hook, rules(n)));
      const r = await reconcileOnce({ root, policyPaths: [dir], dryRun: true });
      using prog = Program.fromPin(join((kindState(r, 'PacketFilter')!.observed as ObservedFilters).filters[0]!.dir, 'program'));
      const ns = time(prog);
      results.push(`${n} rules ${ns} ns (+${ns - base} ns)`);
    }
    console.log(`    ${hook.padEnd(10)} pass-only program ${base} ns; filter: ${results.join(', ')}`);
  }
  await converge(dir, undefined);
}

/**
 * Where the nanoseconds go: the filter's maps (from a converged filter) with
 * truncated builds of bpf/packet_filter.c (PF_STOP, see there) and extra
 * builds given as -D flags on the command line, each timed with
 * BPF_PROG_TEST_RUN in interleaved rounds against the pass-only program and
 * the real object. `-- variants [-DNAME,... | @OTHER.c ...]`.
 */
async function benchVariants(rx: NetnsSandbox, work: string, extra: string[]): Promise<void> {
  const dir = join(work, 'variants');
  mkdirSync(dir, { mode: 0o700 });
  const arch = `/usr/include/${run('gcc', ['-dumpmachine']).trim()}`;
  const src = join(here, '../../bpf/packet_filter.c');
  const build = (name: string, flags: string[], from = src): string => {
    const obj = join(work, `${name}.o`);
    run('clang', ['-target', 'bpf', '-O2', '-g', '-Wall', '-Werror', `-I${arch}`, `-I${join(here, '../../bpf')}`, ...flags, '-c', from, '-o', obj]);
    return obj;
  };
  const objs: Array<{ name: string; path: string }> = [
    { name: 'stop after parse', path: build('stop1', ['-DPF_STOP=1']) },
    { name: 'stop after active/config', path: build('stop2', ['-DPF_STOP=2']) },
    { name: 'stop after class lookups', path: build('stop3', ['-DPF_STOP=3']) },
    { name: 'stop after pattern scan', path: build('stop4', ['-DPF_STOP=4']) },
    { name: 'full (this build)', path: build('full', []) },
    // `@FILE.c`: another source of the filter (e.g. an older commit's, for a before/after in one run); `-DX,-DY`: this source with flags.
    ...extra.map((f, i) => (f.startsWith('@') ? { name: `other source ${f.slice(1)}`, path: build(`extra${i}`, [], f.slice(1)) } : { name: `full ${f}`, path: build(`extra${i}`, f.split(',')) })),
  ];
  const data = frame();
  const repeat = 1_000_000;
  const rounds = 7;
  for (const hook of ['xdp', 'tc-ingress'] as const) {
    for (const n of [10, 10000]) {
      await converge(dir, policy(rx.path, hook, rules(n)));
      const r = await reconcileOnce({ root, policyPaths: [dir], dryRun: true });
      const fdir = (kindState(r, 'PacketFilter')!.observed as ObservedFilters).filters[0]!.dir;
      const reuse: Record<string, BpfMap> = {};
      for (const m of FILTER_MAPS) reuse[m] = BpfMap.fromPin(mapPinPath(fdir, m));
      const progName = hook === 'xdp' ? 'filter_xdp' : 'filter_tc';
      using hooks = loadObject(HOOKS);
      // Another source may declare rule_stats differently (before: a per-CPU hash): it gets a fresh rule_stats of its own.
      const own = Object.fromEntries(Object.entries(reuse).filter(([k]) => k !== 'rule_stats'));
      const loaded = objs.map((o) => ({ name: o.name, obj: loadObject(o.path, { reuseMaps: o.name.startsWith('other source') ? own : reuse }) }));
      const times: number[][] = [[], ...loaded.map(() => [])];
      for (let k = 0; k < rounds; k++) {
        times[0]!.push(hooks.program(hook === 'xdp' ? 'xdp_count' : 'tc_count').testRun(data, repeat).durationNs);
        loaded.forEach((l, i) => times[i + 1]!.push(l.obj.program(progName).testRun(data, repeat).durationNs));
      }
      const base = median(times[0]!);
      console.log(`  ${hook} ${n} rules: pass-only ${base} ns (median of ${rounds} interleaved rounds)`);
      loaded.forEach((l, i) => {
        const t = median(times[i + 1]!);
        console.log(`    ${l.name.padEnd(40)} ${t} ns (+${t - base} ns)`);
        l.obj.close();
      });
      for (const m of Object.values(reuse)) m.close();
    }
  }
  await converge(dir, undefined);
}

/** Writes a rule set's tables in filter_update.c's input format. */
function dumpTables(file: string, op: Extract<FilterOperation, { type: 'writeFilterRules' }>): number {
  const e = op.rules.encoded;
  const parts: Buffer[] = [];
  // Sizes as the maps have them, also for an empty table (a rule set without multi-field rules has no decisions).
  const table = (type: number, keySize: number, valueSize: number, t: { keys: Buffer; values: Buffer; count: number }) => {
    const head = Buffer.alloc(16);
    head.writeUInt32LE(type, 0);
    head.writeUInt32LE(keySize, 4);
    head.writeUInt32LE(valueSize, 8);
    head.writeUInt32LE(t.count, 12);
    parts.push(head, t.keys, t.values);
  };
  table(MapType.LPM_TRIE, ADDR_KEY_SIZE, CLASS_VALUE_SIZE, e.addr);
  table(MapType.HASH, DECISION_KEY_SIZE, DECISION_VALUE_SIZE, e.decision);
  const dims = portSliceDims(e.port.dims);
  const keys = Buffer.alloc(dims.length * PORTS * 4);
  dims.forEach((dim, at) => {
    for (let p = 0; p < PORTS; p++) keys.writeUInt32LE(portClassIndex(op.gen, dim, p), (at * PORTS + p) * 4);
  });
  table(MapType.ARRAY, 4, PORT_CLASS_SIZE, { keys, values: e.port.values, count: dims.length * PORTS });
  const nRules = e.rules.length / DECISION_VALUE_SIZE;
  const ruleKeys = Buffer.alloc(nRules * 4);
  for (let i = 0; i < nRules; i++) ruleKeys.writeUInt32LE(op.gen * MAX_RULES + i, i * 4);
  table(MapType.ARRAY, 4, DECISION_VALUE_SIZE, { keys: ruleKeys, values: e.rules, count: nRules });
  parts.push(e.config);
  writeFileSync(file, Buffer.concat(parts));
  return e.addr.count + dims.length * PORTS + nRules + e.decision.count;
}

async function benchApply(work: string, rx: NetnsSandbox): Promise<void> {
  const updater = compile(work, 'filter_update', ['-lbpf']);
  const dir = join(work, 'apply');
  mkdirSync(dir, { mode: 0o700 });
  const A = policy(rx.path, 'xdp', rules(10000, 0));
  const B = policy(rx.path, 'xdp', rules(10000, 1));
  const file = join(dir, 'bench.yaml');
  const tables = join(work, 'tables.bin');
  const planB = async () => {
    writeFileSync(file, B);
    const r = await reconcileOnce({ root, policyPaths: [dir], dryRun: true });
    const a = r.plan.actions.find((x) => x.op.type === 'writeFilterRules');
    const op = a?.op as FilterOperation | undefined;
    if (!op || op.type !== 'writeFilterRules') throw new Error('expected a rule write');
    const onlyWrite = r.plan.actions.filter((x) => x.kind !== 'noop').every((x) => x.op.type === 'writeFilterRules' || x.op.type === 'writeFilterRecords');
    if (!onlyWrite) throw new Error('a rule change should only write rules');
    return op;
  };
  const full: number[] = [];
  const write: number[] = [];
  const cNs: number[] = [];
  let entries = 0;
  for (let i = 0; i < 5; i++) {
    await converge(dir, A);
    let op = await planB();
    entries = dumpTables(tables, op);
    let t = performance.now();
    writeFilterRules(op.dir, op.gen, op.rules);
    write.push(performance.now() - t);

    await converge(dir, A);
    op = await planB();
    dumpTables(tables, op);
    cNs.push(Number(run(updater, [op.dir, tables, String(op.gen)]).trim()) / 1e6);

    await converge(dir, A);
    writeFileSync(file, B);
    t = performance.now();
    const r = await reconcileOnce({ root, policyPaths: [dir] });
    full.push(performance.now() - t);
    if (r.result!.failed.length) throw new Error(r.result!.failed[0]!.error.message);
  }
  // With the 10,000 rules of B in place: what every later pass pays to look at the filter, and a whole pass that changes nothing.
  await converge(dir, B);
  const observe: number[] = [];
  const noop: number[] = [];
  for (let i = 0; i < 5; i++) {
    let t = performance.now();
    const seen = observeFilters(root);
    observe.push(performance.now() - t);
    if (seen.filters.length !== 1 || seen.filters[0]!.fingerprint === undefined) throw new Error('expected one filter with tables');
    t = performance.now();
    const r = await reconcileOnce({ root, policyPaths: [dir] });
    noop.push(performance.now() - t);
    if (r.result!.failed.length) throw new Error(r.result!.failed[0]!.error.message);
    if (r.plan.actions.some((x) => x.kind !== 'noop')) throw new Error('a pass over a converged filter should change nothing');
  }
  await converge(dir, undefined);
  const c = median(cNs);
  console.log(`(c) a change of all 10,000 rules (${entries} table entries: address trie, port class slices, rules, decisions), median of 5:`);
  console.log(`    raw C libbpf: new inner maps, bpf_map_update_batch of the same entries, switch: ${c.toFixed(1)} ms`);
  console.log(`    ebpf-policy kernel write (the same steps through koffi): ${median(write).toFixed(1)} ms, ${(median(write) / c).toFixed(2)}x the C baseline`);
  console.log(
    `    ebpf-policy reconcile pass (load and validate 10,000 rules, resolve, observe, compile, plan, write): ${median(full).toFixed(1)} ms, ${(median(full) / c).toFixed(1)}x the C baseline`,
  );
  console.log(`    with the 10,000 rules in place: observing the filter ${median(observe).toFixed(1)} ms, a no-op reconcile pass ${median(noop).toFixed(1)} ms`);
}

const work = mkdtempSync(join(tmpdir(), 'ebpf-policy-bench-filter-'));
ensureBpffs(root);
const rx = NetnsSandbox.create('bench-rx');
const tx = NetnsSandbox.create('bench-tx');
try {
  run('ip', ['-n', rx.name, 'link', 'add', 'vb', 'type', 'veth', 'peer', 'name', 'va', 'netns', tx.name]);
  run('ip', ['-n', tx.name, 'addr', 'add', '10.200.0.1/24', 'dev', 'va']);
  run('ip', ['-n', rx.name, 'addr', 'add', '10.200.0.2/24', 'dev', 'vb']);
  run('ip', ['-n', tx.name, 'link', 'set', 'va', 'up']);
  run('ip', ['-n', rx.name, 'link', 'set', 'vb', 'up']);
  const only = process.argv[2];
  if (!only || only === 'pps') await benchPps(work, rx, tx);
  if (!only || only === 'testrun') await benchTestRun(rx, work);
  if (!only || only === 'apply') await benchApply(work, rx);
  if (only === 'variants') await benchVariants(rx, work, process.argv.slice(3));
} finally {
  await rx.destroy();
  await tx.destroy();
  removePinTree(root);
  rmSync(work, { recursive: true, force: true });
}
