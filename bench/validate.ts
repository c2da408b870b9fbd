/**
 * Benchmark: load + validate 10,000 valid PortSteering policies spread over
 * 1,000 YAML files, in-process, against a baseline measured in the same run:
 * the floor cost of just reading the same files (read, YAML-parse every
 * document, JSON.stringify the result).
 *
 *   npm run bench:validate            (after a build; target: loading and validating all 10,000 policies < 1 s)
 *   node dist/bench/validate.js [FILES] [POLICIES_PER_FILE]
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseAllDocuments } from 'yaml';
import { loadPolicies } from '../src/manager.js';
import { createStrictModesCheck } from '../src/policy/permissions.js';

const runStart = performance.now();
const fileCount = Number(process.argv[2] ?? 1000);
const perFile = Number(process.argv[3] ?? 10);

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

/** The floor: read each file, parse every YAML document to plain data, JSON.stringify it. */
function baseline(dir: string): number {
  let documents = 0;
  let bytes = 0;
  for (const sub of readdirSync(dir).sort()) {
    for (const name of readdirSync(join(dir, sub)).sort()) {
      const docs = parseAllDocuments(readFileSync(join(dir, sub, name), 'utf8'));
      for (const doc of docs) {
        bytes += JSON.stringify(doc.toJS()).length;
        documents++;
      }
    }
  }
  if (bytes === 0) throw new Error('baseline read nothing');
  return documents;
}

function time<T>(fn: () => T): [T, number] {
  const start = performance.now();
  const result = fn();
  return [result, performance.now() - start];
}

const dir = generate();
try {
  const generatedMs = performance.now() - runStart;
  const [baseDocs, baseMs] = time(() => baseline(dir));
  const [result, loadMs] = time(() => loadPolicies({ paths: [dir], trustCheck: createStrictModesCheck() }));
  const expected = fileCount * perFile;
  if (!result.ok || result.policies.length !== expected || baseDocs !== expected) {
    console.error(result.problems.slice(0, 5));
    throw new Error(`expected ${expected} valid policies, got ${result.policies.length} (ok=${result.ok})`);
  }
  const us = (ms: number) => ((ms * 1000) / expected).toFixed(1);
  console.log(`machine:            ${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}`);
  console.log(`policies:           ${expected} in ${fileCount} files`);
  console.log(`generate files:     ${generatedMs.toFixed(0)} ms`);
  console.log(`baseline (read+YAML.parse+JSON.stringify): ${baseMs.toFixed(0)} ms (${us(baseMs)} µs/policy)`);
  console.log(`load+validate:      ${loadMs.toFixed(0)} ms (${us(loadMs)} µs/policy), incl. schema compilation and permission checks (target < 1000 ms)`);
  console.log(`ratio:              ${(loadMs / baseMs).toFixed(2)}x baseline (the fast path parses YAML with js-yaml; the baseline uses the yaml package)`);
  console.log(`whole benchmark:    ${(performance.now() - runStart).toFixed(0)} ms (generating files and the baseline included)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
