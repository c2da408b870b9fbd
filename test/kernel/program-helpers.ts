/**
 * Helpers of the Program kind's kernel tests (program.test.ts, the crash
 * matrix): the shipped example (examples/xdp-counter), variants of it
 * compiled with other flags, its policy pointed at a sandbox's veth, and the
 * per-tuple counts read back through `status --show-maps`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { computeStatuses, type reconcileOnce, type ReconcileOptions } from '../../src/manager.js';
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import type { PolicyDir } from './reconcile-helpers.js';

export const EXAMPLE = fileURLToPath(new URL('../../../examples/xdp-counter/', import.meta.url));
export const SOURCE = join(EXAMPLE, 'xdp_counter.c');
export const OBJECT = join(EXAMPLE, 'xdp_counter.o');

/** Compiles the example with extra clang flags into `out` (variants for upgrades); returns its sha256. */
export function compileVariant(out: string, flags: string[]): string {
  const arch = runBounded('gcc', ['-dumpmachine']).stdout.trim() || 'x86_64-linux-gnu';
  const r = runBounded('clang', ['-target', 'bpf', '-O2', '-g', '-Wall', '-Werror', `-I/usr/include/${arch}`, ...flags, '-c', SOURCE, '-o', out]);
  assert.equal(r.status, 0, `clang ${flags.join(' ')}: ${r.stderr}`);
  return sha256(out);
}

export function sha256(path: string): string {
  const r = runBounded('sha256sum', [path]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split(' ')[0]!;
}

/** The shipped policy, pointed at the sandbox's veth (or `interfaces`), with `object` and `digest`; `countsEntry`: also one declared entry of `counts`. */
export function writePolicy(dir: PolicyDir, netns: string, object: string, digest: string, extra: { interfaces?: string[]; countsEntry?: boolean } = {}): string {
  let text = readFileSync(join(EXAMPLE, 'tuple-counter.yaml'), 'utf8')
    .replace(/^ {2}object: .*$/m, `  object: ${object}`)
    .replace(/^ {2}sha256: .*$/m, `  sha256: ${digest}`)
    .replace(/interfaces: \["eth0"\]/, `interfaces: ${JSON.stringify(extra.interfaces ?? ['vb'])}`)
    .replace(/^spec:$/m, `spec:\n  netns: ${netns}`);
  if (extra.countsEntry) text = text.replace(/^ {2}maps:$/m, `  maps:\n    counts:\n      - key: {saddr: 10.9.9.9, sport: 1, protocol: 17, pad: 0}\n        value: {packets: 0, bytes: 0}`);
  return dir.writeRaw('tuple-counter.yaml', text);
}

export type Counts = Record<string, { packets: number; bytes: number }>;

/** The counts map through `status --show-maps` (decoded by the kernel's BTF): "saddr:sport/protocol" → counter. */
export function countsOf(opts: ReconcileOptions, r: Awaited<ReturnType<typeof reconcileOnce>>): Counts {
  const [s] = computeStatuses(r, true, { showMaps: true }).filter((x) => x.kind === 'Program');
  assert.ok(s, `a Program status (${JSON.stringify(opts.policyPaths)})`);
  const contents = (s.mapContents as Record<string, { entries: { key: { saddr: string; sport: number; protocol: number }; value: { packets: number; bytes: number } }[] }>).counts!;
  return Object.fromEntries(contents.entries.map((e) => [`${e.key.saddr}:${e.key.sport}/${e.key.protocol}`, e.value]));
}
