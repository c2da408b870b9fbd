/**
 * Benchmark: load + validate 10,000 valid PortSteering policies spread over
 * 1,000 YAML files, in-process, against a baseline measured in the same run:
 * the floor cost of just reading the same files (read, YAML-parse every
 * document, JSON.stringify the result).
 *
 * Then the same in fresh processes (what `ebpf-policy validate DIR` pays:
 * modules, schemas, cold code), medians of runs interleaved, next to the
 * floor of the same work: reading the files, parsing them with js-yaml
 * alone (the parser of the fast path), and JSON.parse of the same data.
 * CPU time (user + system) is printed next to wall time: on a shared
 * machine it moves much less.
 *
 *   npm run bench:validate            (after a build; target: loading and validating all 10,000 policies <= 200 ms)
 *   node dist/bench/validate.js [FILES] [POLICIES_PER_FILE] [COLD_RUNS]
 *   node dist/bench/validate.js --child load|js-yaml|json|read DIR   (one cold measurement, as JSON; used by the above)
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const runStart = performance.now();
const startCpu = process.cpuUsage();
const fileCount = Number(process.argv[2] ?? 1000);
const perFile = Number(process.argv[3] ?? 10);
const coldRuns = Number(process.argv[4] ?? 3);

/** Policy number i: unique name, its own ports, varied prefixes and targets. */
function policyYaml(i: number): string {
  const base = 10000 + i * 5;
  const target = i % 2 === 0 ? `listen: "127.0.0.1:${8000 + (i % 1000)}"` : `pid: ${1000 + i}\n    fd: ${3 + (i % 5)}`;
  return `apiVersion: ebpf-policy/v1
kind: PortSteering
metadata:
  name: bench-${i}
  labels: {team: t${i % 7}, tier: "${i % 3}"}
spec:
  protocol: ${i % 4 === 0 ? 'udp' : 'tcp'}
  ports: [${base}, "${base + 1}-${base + 3}"]
  addresses: ["10.${(i >> 8) & 255}.${i & 255}.0/24", "2001:db8:${i.toString(16)}::/48"]
  target:
    ${target}
`;
}

/** Writes the policy files below a new temporary directory (mode 0755/0644, as required). */
function generate(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ebpf-policy-bench-'));
  chmodSync(dir, 0o755);
  for (let f = 0; f < fileCount; f++) {
    const sub = join(dir, `group-${String(f % 10).padStart(2, '0')}`);
    mkdirSync(sub, { recursive: true, mode: 0o755 });
    const docs: string[] = [];
    for (let d = 0; d < perFile; d++) docs.push(policyYaml(f * perFile + d));
    const file = join(sub, `policies-${String(f).padStart(4, '0')}.yaml`);
    writeFileSync(file, docs.join('---\n'), { mode: 0o644 });
    chmodSync(file, 0o644);
  }
  return dir;
}

/** The policy files below `dir`, in the order the loader reads them. */
function policyFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((sub) => readdirSync(join(dir, sub)).sort().map((name) => join(dir, sub, name)));
}

/** The baseline: read each file, parse every YAML document with the `yaml` package to plain data, JSON.stringify it. */
async function baseline(dir: string): Promise<() => number> {
  const { parseAllDocuments } = await import('yaml');
  return () => {
    let documents = 0;
    let bytes = 0;
    for (const file of policyFiles(dir)) {
      for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
        bytes += JSON.stringify(doc.toJS()).length;
        documents++;
      }
    }
    if (bytes === 0) throw new Error('baseline read nothing');
    return documents;
  };
}

/** Wall and CPU (user + system, all threads: V8's GC helpers included) milliseconds of `fn`. */
function time<T>(fn: () => T): [T, number, number] {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const result = fn();
  const wall = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return [result, wall, (used.user + used.system) / 1000];
}

/** What a child process measured: its work and, for `load`, the import of the modules before it. */
interface ColdFigures {
  readonly count: number;
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly importMs: number;
  /** From the start of the process (node's own start-up included) to the end of the work. */
  readonly processMs: number;
  readonly processCpuMs: number;
}

/**
 * One measurement in this (fresh) process: `load` = import the engine and
 * load + validate DIR as `ebpf-policy validate` does; `js-yaml` = read the
 * files and parse them with js-yaml's core schema alone; `json` = JSON.parse
 * of the same documents as JSON texts (converted first, not timed); `read`
 * = reading the files alone.
 */
async function child(mode: string, dir: string): Promise<ColdFigures> {
  const importStart = performance.now();
  const files = policyFiles(dir);
  let work: () => number;
  if (mode === 'load') {
    const { loadPolicies } = await import('../src/manager.js');
    const { createStrictModesCheck } = await import('../src/policy/permissions.js');
    work = () => {
      const result = loadPolicies({ paths: [dir], trustCheck: createStrictModesCheck() });
      if (!result.ok) throw new Error('invalid policies');
      return result.policies.length;
    };
  } else {
    const jsYaml = (await import('js-yaml')).default;
    const loadAll = (text: string): unknown[] => jsYaml.loadAll(text, undefined, { schema: jsYaml.CORE_SCHEMA });
    if (mode === 'js-yaml') work = () => files.reduce((n, file) => n + loadAll(readFileSync(file, 'utf8')).length, 0);
    else if (mode === 'read') work = () => files.reduce((n, file) => n + (readFileSync(file, 'utf8').length > 0 ? 1 : 0), 0);
    else if (mode === 'json') {
      const texts = files.map((file) => JSON.stringify(loadAll(readFileSync(file, 'utf8')), null, 2));
      work = () => texts.reduce((n, text) => n + (JSON.parse(text) as unknown[]).length, 0);
    } else throw new Error(`unknown mode ${mode}`);
  }
  const importMs = performance.now() - importStart;
  const [count, wallMs, cpuMs] = time(work);
  const total = process.cpuUsage();
  return { count, wallMs, cpuMs, importMs, processMs: process.uptime() * 1000, processCpuMs: (total.user + total.system) / 1000 };
}

const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1] as number;

/** Runs each mode in `coldRuns` fresh processes, the modes interleaved; the `cli` mode is `ebpf-policy validate --policies DIR` (wall only). */
function coldRunsOf(dir: string, modes: readonly string[]): Map<string, ColdFigures[]> {
  const self = fileURLToPath(import.meta.url);
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const runs = new Map<string, ColdFigures[]>(modes.map((m) => [m, []]));
  for (let i = 0; i < coldRuns; i++) {
    for (const mode of modes) {
      const start = performance.now();
      const args = mode === 'cli' ? [cli, 'validate', '--policies', dir] : [self, '--child', mode, dir];
      const out = spawnSync(process.execPath, args, { encoding: 'utf8' });
      const wall = performance.now() - start;
      if (out.status !== 0) throw new Error(`${mode}: exit ${out.status}: ${out.stderr}`);
      const figures: ColdFigures =
        mode === 'cli' ? { count: 0, wallMs: wall, cpuMs: NaN, importMs: NaN, processMs: wall, processCpuMs: NaN } : (JSON.parse(out.stdout) as ColdFigures);
      runs.get(mode)?.push(figures);
    }
  }
  return runs;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    console.log(JSON.stringify(await child(process.argv[3] ?? '', process.argv[4] ?? '')));
    return;
  }
  const { loadPolicies } = await import('../src/manager.js');
  const { createStrictModesCheck } = await import('../src/policy/permissions.js');
  const dir = generate();
  try {
    const generatedMs = performance.now() - runStart;
    const [baseDocs, baseMs, baseCpu] = time(await baseline(dir));
    const [result, loadMs, loadCpu] = time(() => loadPolicies({ paths: [dir], trustCheck: createStrictModesCheck() }));
    const expected = fileCount * perFile;
    if (!result.ok || result.policies.length !== expected || baseDocs !== expected) {
      console.error(result.problems.slice(0, 5));
      throw new Error(`expected ${expected} valid policies, got ${result.policies.length} (ok=${result.ok})`);
    }
    const us = (ms: number) => ((ms * 1000) / expected).toFixed(1);
    const ms = (wall: number, cpu: number) => `${wall.toFixed(0)} ms wall, ${cpu.toFixed(0)} ms CPU`;
    console.log(`machine:            ${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}`);
    console.log(`policies:           ${expected} in ${fileCount} files`);
    console.log(`generate files:     ${generatedMs.toFixed(0)} ms`);
    console.log(`baseline (read+YAML.parse+JSON.stringify): ${ms(baseMs, baseCpu)} (${us(baseMs)} µs/policy)`);
    console.log(`load+validate:      ${ms(loadMs, loadCpu)} (${us(loadMs)} µs/policy), incl. schema loading and permission checks (target <= 200 ms)`);
    console.log(`ratio:              ${(loadMs / baseMs).toFixed(2)}x baseline (the fast path parses YAML with js-yaml; the baseline uses the yaml package)`);

    const runs = coldRunsOf(dir, ['load', 'js-yaml', 'json', 'read', 'cli']);
    const of = (mode: string, field: keyof ColdFigures): number => median((runs.get(mode) ?? []).map((r) => r[field]));
    for (const mode of ['load', 'js-yaml', 'json', 'read']) {
      const counted = (runs.get(mode) ?? []).map((r) => r.count);
      const want = mode === 'read' ? fileCount : expected;
      if (counted.some((n) => n !== want)) throw new Error(`${mode}: counted ${counted.join(', ')}, expected ${want}`);
    }
    console.log(`cold processes (median of ${coldRuns}, interleaved):`);
    console.log(`  load+validate:    ${ms(of('load', 'wallMs'), of('load', 'cpuMs'))}; + importing the modules ${of('load', 'importMs').toFixed(0)} ms; the whole process ${ms(of('load', 'processMs'), of('load', 'processCpuMs'))}`);
    console.log(`  ebpf-policy validate --policies DIR: ${of('cli', 'wallMs').toFixed(0)} ms wall (the whole command)`);
    console.log(`  floor, read + js-yaml alone (core schema, no validation): ${ms(of('js-yaml', 'wallMs'), of('js-yaml', 'cpuMs'))}`);
    console.log(`  floor, JSON.parse of the same documents as JSON:          ${ms(of('json', 'wallMs'), of('json', 'cpuMs'))}`);
    console.log(`  floor, reading the files alone:                           ${ms(of('read', 'wallMs'), of('read', 'cpuMs'))}`);
    console.log(`  load+validate / js-yaml floor: ${(of('load', 'wallMs') / of('js-yaml', 'wallMs')).toFixed(2)}x wall, ${(of('load', 'cpuMs') / of('js-yaml', 'cpuMs')).toFixed(2)}x CPU`);
    const cpu = process.cpuUsage(startCpu);
    console.log(`whole benchmark:    ${(performance.now() - runStart).toFixed(0)} ms, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU in this process (generating files, the baseline and waiting for the cold runs included)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
