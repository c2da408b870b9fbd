/**
 * Bad input, generated, through the real command line: about 100 sampled
 * directories of valid policies next to broken ones (mutated documents,
 * invalid UTF-8, 10 MB files, FIFOs, symlink loops, unreadable files, …; see
 * test/unit/policy-fuzz-helpers.ts), each checked with
 * `ebpf-policy validate` and `ebpf-policy plan` as users run them.
 *
 * Oracles: the exit status is 0 or 1, never 2 (which is for usage errors
 * and fatal ones); no stack trace, no uncaught error; every problem line is
 * `FILE:LINE:COLUMN: SEVERITY: …` with the position inside the file (or
 * `FILE: SEVERITY: …` for a file that cannot be read at all); the valid
 * policies next to the broken files are still loaded; plan changes nothing.
 * Every child process is bounded. A failure names the seed: replay with
 * FUZZ_SEED=… (and FUZZ_PATH=…).
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { listPins } from '../../src/bpf/index.js';
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import {
  assertNoCrash,
  badEntryArb,
  buildDirectory,
  checkProblem,
  FILE_PROBLEM_LINE,
  PROBLEM_LINE,
  STYLES,
  validDoc,
  type DirectoryPlan,
  type Doc,
  type Style,
} from '../unit/policy-fuzz-helpers.js';
import { kernelTest } from './harness.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Runs the command line, bounded (a FIFO opened for a blocking read would hang it). */
function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = runBounded(process.execPath, [cli, ...args], {}, 60_000);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Checks the lines about policy files in `output` (those starting with `dir/`): positions inside the files. */
function checkProblemLines(output: string, dir: string, plan: DirectoryPlan, context: string): number {
  let count = 0;
  for (const line of output.split('\n')) {
    if (!line.startsWith(`${dir}/`)) continue;
    count++;
    const positioned = PROBLEM_LINE.exec(line);
    const whole = positioned === null ? FILE_PROBLEM_LINE.exec(line) : null;
    assert.ok(positioned !== null || whole !== null, `${context}: not FILE:LINE:COLUMN: SEVERITY: …: ${line}`);
    const g = (positioned ?? whole)!.groups as Record<string, string>;
    const rel = g.file!.slice(dir.length + 1);
    const rest = line.slice(line.indexOf(`${g.severity}: `) + `${g.severity}: `.length);
    checkProblem(
      { file: g.file!, line: Number(g.line ?? 0), column: Number(g.column ?? 0), path: '', message: positioned === null ? (g.message as string) : rest, severity: g.severity! },
      plan.texts.get(rel),
      plan.fileLevel.has(rel) || !plan.texts.has(rel),
      `${context}: ${line}`,
    );
  }
  return count;
}

/** Valid siblings for a directory: in the test's namespace, steering to addresses (never to another process's socket). */
function siblingsIn(netns: string): fc.Arbitrary<{ doc: Doc; style: Style }[]> {
  const steerToAddress = (doc: Doc): Doc => {
    const spec = doc.spec as Record<string, unknown>;
    if (spec.target !== undefined) spec.target = { listen: '127.0.0.1:8080' };
    return doc;
  };
  return fc.integer({ min: 1, max: 3 }).chain((k) =>
    fc.tuple(
      ...Array.from({ length: k }, (_, i) =>
        fc.tuple(validDoc(`good-${i}`, i, netns), fc.constantFrom(...STYLES)).map(([doc, style]) => ({ doc: steerToAddress(doc), style })),
      ),
    ),
  );
}

kernelTest(
  'policy fuzz: validate and plan on sampled bad directories exit 0 or 1, print no stack trace, and give every problem its file:line:column',
  ({ pinDir, sandbox }) => {
    const root = mkdtempSync(join(tmpdir(), 'ebpf-policy-fuzz-'));
    chmodSync(root, 0o755);
    const seed = process.env.FUZZ_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.FUZZ_SEED);
    console.log(`# policy fuzz (command line): seed ${seed}`);
    let n = 0;
    try {
      fc.assert(
        fc.property(siblingsIn(sandbox.path), fc.array(badEntryArb, { minLength: 1, maxLength: 3 }), (good, bad) => {
          const dir = join(root, `case-${n++}`);
          mkdirSync(dir, { mode: 0o755 });
          try {
            const plan = buildDirectory(dir, good, bad);
            const context = `seed ${seed}, ${dir} with ${JSON.stringify(bad.map((b) => b.kind))}`;

            const validate = run('validate', '--policies', dir, '--insecure-policy-perms');
            assert.ok(validate.status === 0 || validate.status === 1, `${context}: validate exited ${validate.status}: ${validate.stderr}`);
            assertNoCrash(validate.stdout + validate.stderr, `${context}: validate`);
            const lines = validate.stdout.split('\n').filter(Boolean);
            assert.equal(checkProblemLines(validate.stdout, dir, plan, `${context}: validate`), lines.length, `${context}: validate printed lines about other things:\n${validate.stdout}`);
            assert.match(validate.stderr, /^ebpf-policy validate: (valid|invalid): [^\n]*\n$/, context);
            assert.equal(validate.status === 0, validate.stderr.includes(': valid: '), context);

            if (n % 3 === 0) {
              // The valid policies next to the broken files are all there.
              const json = run('validate', '--policies', dir, '--insecure-policy-perms', '--output', 'json');
              assert.equal(json.status, validate.status, context);
              assert.equal(json.stderr, '', context);
              const report = JSON.parse(json.stdout) as { policies: { name: string }[] };
              const names = new Set(report.policies.map((p) => p.name));
              for (const name of plan.siblings) assert.ok(names.has(name), `${context}: valid policy ${name} lost:\n${validate.stdout}`);
            }

            const planned = run('plan', '--policies', dir, '--bpffs-root', pinDir, '--insecure-policy-perms');
            assert.ok(planned.status === 0 || planned.status === 1, `${context}: plan exited ${planned.status}:\n${planned.stderr}\n${planned.stdout}`);
            assertNoCrash(planned.stdout + planned.stderr, `${context}: plan`);
            assert.doesNotMatch(planned.stderr, /fatal/, context);
            checkProblemLines(planned.stdout + planned.stderr, dir, plan, `${context}: plan`);
            assert.equal(planned.status === 1, validate.status === 1 || /^error: policy /m.test(planned.stdout), `${context}: plan's status disagrees with validate's:\n${planned.stdout}`);
            assert.deepEqual(listPins(pinDir), [], `${context}: plan pinned something`);
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        }),
        { numRuns: 100, seed, endOnFailure: true, includeErrorInReport: true, ...(process.env.FUZZ_PATH === undefined ? {} : { path: process.env.FUZZ_PATH }) },
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
    console.log(`# policy fuzz (command line): ${n} directories`);
  },
  840_000,
);
