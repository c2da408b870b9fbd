/**
 * SyscallCounter overhead: the cost a counter adds to a syscall-heavy loop
 * (getppid in a tight loop, bench/c/getppid_loop.c, pinned to one CPU), as
 * nanoseconds per call and ratios to the same loop with no program, measured
 * in the same run, interleaved:
 *  - no program;
 *  - a program that does nothing on the same raw tracepoint (bpf/test_hooks.c):
 *    what the hook itself costs (the kernel then takes every syscall's
 *    tracing path), whatever the program does;
 *  - a counter counting another syscall (execve): what every process pays
 *    once any SyscallCounter policy exists;
 *  - a counter counting getppid itself, grouped by syscall (one key);
 *  - the same grouped by syscall and comm.
 * Target (issue 13): at most 1.10x of no program when counting the syscall itself.
 * Run as root: `npm run bench:syscalls`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBpffs, Link, loadObject, removePinTree } from '../src/bpf/index.js';
import { reconcileOnce } from '../src/manager.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = `/sys/fs/bpf/ebpf-policy-bench-syscalls-${process.pid}`;
const COUNT = 2_000_000;
const ROUNDS = 9;

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function apply(dir: string, spec: object | undefined): Promise<void> {
  const file = join(dir, 'bench.json');
  if (spec === undefined) rmSync(file, { force: true });
  else writeFileSync(file, JSON.stringify({ apiVersion: 'ebpf-policy/v1', kind: 'SyscallCounter', metadata: { name: 'bench' }, spec }), { mode: 0o600 });
  const r = await reconcileOnce({ root, policyPaths: [dir], insecurePermissions: true, reportDir: null });
  if (r.result?.failed.length) throw new Error(r.result.failed[0]!.error.message);
  if (r.plan.problems.length) throw new Error(r.plan.problems[0]!.message);
}

async function main(): Promise<void> {
  ensureBpffs(root);
  const work = mkdtempSync(join(tmpdir(), 'ebpf-policy-bench-syscalls-'));
  const bin = join(work, 'getppid_loop');
  run('gcc', ['-O2', '-o', bin, join(here, '../../bench/c/getppid_loop.c')]);
  const dir = join(work, 'policies');
  run('mkdir', ['-m', '700', dir]);
  const nop = (): Disposable => {
    const obj = loadObject(join(here, '../../build/bpf/test_hooks.o'));
    const link = Link.attachRawTracepoint(obj.program('raw_tp_nop'), 'sys_enter');
    return { [Symbol.dispose]: () => (link.close(), obj.close()) };
  };
  const configs: Array<{ name: string; spec: object | undefined; attach?: () => Disposable }> = [
    { name: 'no program', spec: undefined },
    { name: 'a program that does nothing on sys_enter', spec: undefined, attach: nop },
    { name: 'counter, counting another syscall (execve)', spec: { syscalls: ['execve'] } },
    { name: 'counter, counting getppid by syscall', spec: { syscalls: ['getppid'] } },
    { name: 'counter, counting getppid by syscall and comm', spec: { syscalls: ['getppid'], groupBy: ['syscall', 'comm'] } },
  ];
  const ns: number[][] = configs.map(() => []);
  try {
    console.log(`SyscallCounter overhead: getppid() ${COUNT.toLocaleString('en')} times per round, pinned to CPU 0; ${ROUNDS} interleaved rounds, ns per call (median):`);
    for (let round = 0; round < ROUNDS; round++)
      for (let i = 0; i < configs.length; i++) {
        await apply(dir, configs[i]!.spec);
        using attached = configs[i]!.attach?.();
        ns[i]!.push(Number(run('taskset', ['-c', '0', bin, String(COUNT), '1']).trim()));
        void attached;
      }
    const base = median(ns[0]!);
    for (let i = 0; i < configs.length; i++) {
      const m = median(ns[i]!);
      const ratios = ns[i]!.map((x, r) => x / ns[0]![r]!);
      console.log(`  ${configs[i]!.name.padEnd(48)} ${m.toFixed(1).padStart(7)} ns/call   ${(m / base).toFixed(3)}x no program (per-round ratios ${Math.min(...ratios).toFixed(2)}..${Math.max(...ratios).toFixed(2)})`);
    }
  } finally {
    await apply(dir, undefined).catch(() => undefined);
    removePinTree(root);
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
