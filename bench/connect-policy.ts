/**
 * ConnectPolicy benchmark: the cost per connect of a guard on the cgroup,
 * printed against the rate with no program measured in the same run. A C
 * loop (bench/c/connect_loop.c) in a throwaway cgroup runs
 *  - udp:    connect() of one UDP socket, alternating between two ports
 *            (the connect4 hook with no handshake: isolates the hook's cost);
 *  - tcp:    socket + connect to a local listener + accept + close (a real
 *            workload; the loop accepts too, in the same thread);
 *  - sendto: unconnected UDP datagrams (the sendmsg4 hook);
 * with no program, with a pass-only connect4 program (bpf/test_hooks.c), and
 * with a ConnectPolicy of 10 and of 10,000 rules that all miss the loop's
 * destination (every connect takes every lookup and ends at the default
 * allow), and of 10,000 rules whose last one matches it (allow). Configs are
 * interleaved within each round (ratios to the round's "no program" run), and
 * every run alternates 100 ms slices in the guarded cgroup with slices in a
 * sibling cgroup that never has a program: a second baseline measured within
 * the same second (on a shared machine the rate drifts by more than the cost
 * measured), which leaves out the kernel's hook path that a program at a hook
 * turns on for every cgroup. Rates are per second of wall-clock time and per
 * second of the loop's CPU time (less sensitive to other work on the
 * machine). Medians over the rounds.
 * Run as root: `npm run bench:connect` (`-- udp`, `-- tcp`, `-- sendto` for some modes, `-- --rounds=N`; 5 by default).
 * With `sysctl kernel.bpf_stats_enabled=1` it also prints the deciding program's own run time per run.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AttachType, cgroup2Mount, ensureBpffs, loadObject, removePinTree } from '../src/bpf/index.js';
import { attachToCgroup } from '../src/bpf/cgroup.js';
import { observeGuards, readGuardCounters } from '../src/kinds/connect-policy/store.js';
import { reconcileOnce } from '../src/manager.js';
import { runBounded, sleep } from '../src/sandbox/bounded-wait.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const cDir = join(here, '../../bench/c');
const HOOKS = join(here, '../../build/bpf/test_hooks.o');
const root = `/sys/fs/bpf/ebpf-policy-bench-connect-${process.pid}`;
const cgroup = join(cgroup2Mount(), `ebpf-policy-bench-connect-${process.pid}`);
/** A sibling cgroup no program is ever attached to: the baseline, run right next to every measurement. */
const bareCgroup = `${cgroup}-bare`;
/** The loop's destinations: 127.0.0.1 on these ports (tcp listens on the first). */
const PORTS = [9001, 9002] as const;
const MODES = ['udp', 'tcp', 'sendto'] as const;
type Mode = (typeof MODES)[number];
/** Length of one run per mode (half of it in each cgroup): long enough for a stable rate, short enough for several rounds in a few minutes. */
const SECONDS: Record<Mode, number> = { udp: 1, tcp: 2, sendto: 1 };
const ROUNDS = Math.max(1, Number(/^--rounds=(\d+)$/.exec(process.argv.find((a) => a.startsWith('--rounds=')) ?? '')?.[1] ?? 5));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Set by SIGINT/SIGTERM: the run stops at the next step and still cleans up (the default action would skip `finally`). */
let interrupted: NodeJS.Signals | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => (interrupted = sig));

function run(cmd: string, args: string[], boundMs = 60_000): string {
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
  const r = runBounded(cmd, args, {}, boundMs);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || `exit ${r.status ?? r.signal}`}`);
  return r.stdout;
}

/**
 * `n` rules, none of which matches the loop's connects, shaped so that each
 * connect still takes every lookup: `lo-port-1` puts 127.0.0.1 in an address
 * class and `bench-ports-elsewhere` the loop's ports in a port class, so the
 * three rule patterns in use (destination; protocol + port; protocol +
 * destination + port) each cost a decision lookup that finds nothing, and the
 * default (allow) decides. The rest: distinct /32 destinations and a mix of
 * ports. With `lastMatches` the last rule allows 127.0.0.1/32: same lookups,
 * decided by that rule.
 */
function rules(n: number, lastMatches = false): string[] {
  const out = ['{name: lo-port-1, action: deny, protocol: udp, destinations: ["127.0.0.0/8"], ports: [1]}', `{name: bench-ports-elsewhere, action: deny, protocol: tcp, destinations: ["10.255.255.255/32"], ports: ["${PORTS[0]}-${PORTS[1]}"]}`];
  for (let i = 0; out.length < n - (lastMatches ? 1 : 0); i++) {
    const ip = `${(i >> 8) & 255}.${i & 255}`;
    if (i % 3 === 0) out.push(`{name: dst-${i}, action: deny, destinations: ["172.16.${ip}/32"]}`);
    else if (i % 3 === 1) out.push(`{name: tcp-${i}, action: deny, protocol: tcp, destinations: ["192.168.${ip}/32"], ports: [${10000 + (i % 5000)}]}`);
    else out.push(`{name: udp-${i}, action: deny, protocol: udp, ports: [${20000 + i}]}`);
  }
  if (lastMatches) out.push('{name: last, action: allow, destinations: ["127.0.0.1/32"]}');
  return out;
}

function policy(list: string[]): string {
  return ['apiVersion: ebpf-policy/v1', 'kind: ConnectPolicy', 'metadata: {name: bench}', 'spec:', `  cgroup: ${cgroup}`, '  defaultAction: allow', '  rules:', ...list.map((r) => `    - ${r}`)].join('\n');
}

async function converge(dir: string, text: string | undefined): Promise<void> {
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
  const file = join(dir, 'bench.yaml');
  if (text === undefined) rmSync(file, { force: true });
  else writeFileSync(file, text);
  const r = await reconcileOnce({ root, policyPaths: [dir], insecurePermissions: true, reportDir: null });
  if (r.result!.failed.length) throw new Error(r.result!.failed[0]!.error.message);
  if (!r.load.ok) throw new Error(`policy did not load: ${JSON.stringify(r.load.problems[0])}`);
  const guards = observeGuards(root).guards.length;
  if (guards !== (text === undefined ? 0 : 1)) throw new Error(`${guards} guards after the pass (policy ${text === undefined ? 'removed' : 'written'})`);
}

/** Connects counted per rule of the guard on the cgroup ("" = the default), or undefined without a guard. */
function decided(): Map<string, bigint> | undefined {
  const g = observeGuards(root).guards[0];
  if (!g) return undefined;
  const counts = readGuardCounters(g.dir, g.slots.map((s) => s.slot));
  return new Map(g.slots.map((s) => [s.rule, counts.get(s.slot)!.connects]));
}

/** The rule that decided most of the connects between `before` and now. */
function decidedBy(before: Map<string, bigint> | undefined): string {
  const after = decided();
  if (!after) return 'no guard';
  let best: [string, bigint] = ['none', 0n];
  for (const [rule, n] of after) {
    const d = n - (before?.get(rule) ?? 0n);
    if (d > best[1]) best = [rule, d];
  }
  return `${best[0] === '' ? 'the default' : `rule ${best[0]}`} (${best[1]} connects)`;
}

/**
 * With `sysctl kernel.bpf_stats_enabled=1` (left to the user: it adds two clock reads to every program run on the
 * machine), the kernel counts each program's runs and run time: this reads them (bpftool), else undefined.
 */
function programRuns(id: number | undefined): { ns: number; runs: number } | undefined {
  if (id === undefined || readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim() !== '1') return undefined;
  // bpftool leaves both out while the program has not run yet.
  const info = JSON.parse(run('bpftool', ['-j', 'prog', 'show', 'id', String(id)])) as { run_time_ns?: number; run_cnt?: number };
  return { ns: info.run_time_ns ?? 0, runs: info.run_cnt ?? 0 };
}

/** The id of the program that decides `mode`'s operations in the guarded cgroup: the guard's, or the pass-only one. */
function deciderId(mode: Mode, passOnlyId: number | undefined): number | undefined {
  const hook = mode === 'sendto' ? 'sendmsg4' : 'connect4';
  return observeGuards(root).guards[0]?.hooks[hook].link?.progId ?? (hook === 'connect4' ? passOnlyId : undefined);
}

/** Operations per second (of wall-clock time, and per second of the loop's CPU time) in the guarded cgroup and, in alternating slices of the same run, in the bare one. */
interface Pair {
  guarded: { wall: number; cpu: number };
  bare: { wall: number; cpu: number };
}

function rate(loop: string, mode: Mode): Pair {
  const seconds = SECONDS[mode];
  const out = run(loop, [cgroup, mode, String(seconds), String(PORTS[0]), String(PORTS[1]), bareCgroup], seconds * 1000 + 20_000);
  const [gw, gc, bw, bc] = out.trim().split(' ').map(Number);
  if (![gw, gc, bw, bc].every((x) => x !== undefined && x > 0)) throw new Error(`connect_loop printed ${JSON.stringify(out)}`);
  return { guarded: { wall: gw!, cpu: gc! }, bare: { wall: bw!, cpu: bc! } };
}

async function main(work: string): Promise<void> {
  const loop = join(work, 'connect_loop');
  run('gcc', ['-O2', '-o', loop, join(cDir, 'connect_loop.c')]);
  const dir = join(work, 'policies');
  mkdirSync(dir, { mode: 0o700 });
  const picked = MODES.filter((m) => process.argv.includes(m));
  const modes = picked.length ? picked : [...MODES];
  const cgroupId = statSync(cgroup, { bigint: true }).ino;
  let passOnlyId: number | undefined;
  const passOnly = (): Disposable => {
    const obj = loadObject(HOOKS);
    const prog = obj.program('connect4_count');
    const link = attachToCgroup(prog, cgroup, cgroupId, AttachType.CGROUP_INET4_CONNECT, 'bench pass-only connect4');
    passOnlyId = prog.info().id;
    return { [Symbol.dispose]: () => (link.close(), obj.close(), (passOnlyId = undefined)) };
  };
  const configs: Array<{ name: string; text: string | undefined; attach?: () => Disposable }> = [
    { name: 'no program', text: undefined },
    { name: 'pass-only connect4', text: undefined, attach: passOnly },
    { name: 'policy, 10 rules', text: policy(rules(10)) },
    { name: 'policy, 10,000 rules', text: policy(rules(10000)) },
    { name: '10,000, last matches', text: policy(rules(10000, true)) },
  ];
  // Per mode and config: one pair per round.
  const pairs = new Map(modes.map((m) => [m, configs.map((): Pair[] => [])]));
  const converges = configs.map((): number[] => []);
  // Per mode and config: the deciding program's own run time per run, when the kernel counts it.
  const progNs = new Map(modes.map((m) => [m, configs.map((): number[] => [])]));
  const start = performance.now();
  for (let round = 0; round < ROUNDS; round++) {
    if (round > 0) process.stderr.write(`  round ${round + 1} of ${ROUNDS} (${((performance.now() - start) / 1000).toFixed(0)} s so far)\n`);
    for (const [i, c] of configs.entries()) {
      const t = performance.now();
      await converge(dir, c.text);
      converges[i]!.push(performance.now() - t);
      using _attached = c.attach?.();
      for (const m of modes) {
        const before = round === 0 ? decided() : undefined;
        const id = deciderId(m, passOnlyId);
        const runs0 = programRuns(id);
        pairs.get(m)![i]!.push(rate(loop, m));
        const runs1 = programRuns(id);
        if (runs0 && runs1 && runs1.runs > runs0.runs) progNs.get(m)![i]!.push((runs1.ns - runs0.ns) / (runs1.runs - runs0.runs));
        if (round === 0 && c.text !== undefined) console.log(`    check: ${m} with "${c.name}": decided by ${decidedBy(before)}`);
      }
    }
  }
  await converge(dir, undefined);
  console.log(`ConnectPolicy cost per operation of a process in the guarded cgroup; median of ${ROUNDS} rounds (${modes.map((m) => `${m} ${SECONDS[m]} s`).join(', ')}), ratios per round:`);
  console.log('  vs no program: against the "no program" config of the same round (nothing attached anywhere), configs interleaved;');
  console.log('  vs sibling:    against a sibling cgroup without programs, in alternating 100 ms slices of the same run: the cost of the');
  console.log('                 programs themselves, without the kernel hook path that any program at the hook turns on for every cgroup;');
  console.log('  wall: operations per second; CPU: operations per CPU-second of the loop (less sensitive to other work on the machine);');
  console.log('  ns: extra CPU time per operation from the CPU ratio. On "no program", "vs sibling" shows the noise.');
  const withProgNs = [...progNs.values()].some((t) => t.some((x) => x.length > 0));
  if (withProgNs) console.log('  prog ns: the deciding program\'s own run time per run (kernel.bpf_stats_enabled=1, which itself slows every run).');
  const what: Record<Mode, string> = {
    udp: 'udp: connect() of one UDP socket to two ports in turn (connect4 hook, no handshake)',
    tcp: 'tcp: socket + connect to a local listener + accept + close of both, in one thread',
    sendto: 'sendto: unconnected UDP datagrams (sendmsg4 hook; the pass-only program is not on it)',
  };
  const f3 = (x: number) => x.toFixed(3).padStart(7);
  const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
  for (const m of modes) {
    console.log(`  ${what[m]}:`);
    console.log(`    ${''.padEnd(22)} ${'wall/s'.padStart(10)} ${'CPU/s'.padStart(10)} | vs no program: wall     CPU       ns | vs sibling: wall     CPU       ns${withProgNs ? ' | prog ns' : ''}`);
    const ps = pairs.get(m)!;
    // Per round, the no-program rate: both cgroups of the "no program" config's run.
    const none = (k: 'wall' | 'cpu') => ps[0]!.map((p) => (p.guarded[k] + p.bare[k]) / 2);
    const vsNone = (i: number, k: 'wall' | 'cpu') => ps[i]!.map((p, r) => p.guarded[k] / none(k)[r]!);
    const vsSibling = (i: number, k: 'wall' | 'cpu') => ps[i]!.map((p) => p.guarded[k] / p.bare[k]);
    /** Extra CPU nanoseconds per operation that a ratio of CPU rates means, at the baseline's median rate. */
    const ns = (r: number, base: number) => {
      const v = (1 / r - 1) * (1e9 / base);
      return `${v >= 0 ? '+' : ''}${v.toFixed(0)}`.padStart(7);
    };
    configs.forEach((c, i) => {
      const n = median(vsNone(i, 'cpu'));
      const sib = median(vsSibling(i, 'cpu'));
      console.log(
        `    ${c.name.padEnd(22)} ${fmt(median(ps[i]!.map((p) => p.guarded.wall))).padStart(10)} ${fmt(median(ps[i]!.map((p) => p.guarded.cpu))).padStart(10)} |` +
          `              ${f3(median(vsNone(i, 'wall')))} ${f3(n)} ${ns(n, median(none('cpu')))} |` +
          `          ${f3(median(vsSibling(i, 'wall')))} ${f3(sib)} ${ns(sib, median(ps[i]!.map((p) => p.bare.cpu)))}` +
          (withProgNs ? ` | ${progNs.get(m)![i]!.length ? median(progNs.get(m)![i]!).toFixed(0).padStart(7) : '      -'}` : ''),
      );
    });
    const ratio10k = (k: 'wall' | 'cpu', of: (i: number, k: 'wall' | 'cpu') => number[]) => median(of(3, k).map((x, r) => x / of(2, k)[r]!)).toFixed(3);
    console.log(
      `    10,000 vs 10 rules: wall ${ratio10k('wall', vsNone)}, CPU ${ratio10k('cpu', vsNone)} (through no program); wall ${ratio10k('wall', vsSibling)}, CPU ${ratio10k('cpu', vsSibling)} (through the sibling)`,
    );
  }
  console.log(`  reconcile pass switching to each config (median): ${configs.map((c, i) => `${c.name} ${median(converges[i]!).toFixed(0)} ms`).join(', ')}`);
}

/** Removes a cgroup once it is empty; a loop process that was waited for may take the kernel a moment to drop. */
async function removeCgroup(cg: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      rmdirSync(cg);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || i >= 50) throw err;
      await sleep(100);
    }
  }
}

/** The policy gone, one more pass removes the guard's links and pins; then the pin root, the cgroups and the work directory. */
async function cleanup(work: string): Promise<void> {
  const dir = join(work, 'policies');
  try {
    rmSync(join(dir, 'bench.yaml'), { force: true });
    if (existsSync(dir)) await reconcileOnce({ root, policyPaths: [dir], insecurePermissions: true, reportDir: null });
  } finally {
    removePinTree(root);
    try {
      await removeCgroup(cgroup);
      await removeCgroup(bareCgroup);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
}

const work = mkdtempSync(join(tmpdir(), 'ebpf-policy-bench-connect-'));
ensureBpffs(root);
try {
  mkdirSync(cgroup);
  mkdirSync(bareCgroup);
  await main(work);
} finally {
  await cleanup(work);
}
