/**
 * Bad input, generated: valid YAML/JSON policy files, broken in the ways
 * files break (truncated anywhere, wrong types, huge numbers, thousands of
 * nesting levels, duplicate keys, BOMs, NUL bytes, tabs, alias bombs, one
 * broken document among good ones, invalid UTF-8 bytes, 10 MB files, FIFOs,
 * symlink loops, unreadable files), fed to the loader in process.
 *
 * Oracles: nothing throws; every problem has a message and, unless it is
 * about a whole file, a file:line:column inside the file; the valid
 * documents and files next to a broken one still load; a normalized policy
 * never carries a number that is not a safe integer; each case ends in
 * bounded time (and a FIFO is never opened for a blocking read); the
 * command's exit status is 0 or 1, never 2, for problems in documents.
 *
 * At least 10,000 generated cases per run (printed). A failure prints
 * fast-check's seed and path: replay with FUZZ_SEED=… FUZZ_PATH=….
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import fc from 'fast-check';
import { loadPolicies, validatePolicyDocuments } from '../../src/manager.js';
import { runValidate, type ValidateEnvironment } from '../../src/cli/validate.js';
import { firstInvalidUtf8 } from '../../src/policy/load.js';
import type { PolicyLoadResult } from '../../src/policy/load.js';
import { parsePolicyText } from '../../src/policy/parse.js';
import { countProblems, formatProblem, sortProblems } from '../../src/policy/problem.js';
import { renderJsonReport, renderSummary, renderTextReport } from '../../src/policy/report.js';
import { killAndWait, runBounded } from '../../src/sandbox/bounded-wait.js';
import {
  applyMutation,
  assertNoCrash,
  badEntryArb,
  buildDirectory,
  checkPlainData,
  checkPolicyNumbers,
  checkProblem,
  FILE_PROBLEM_LINE,
  mkfifo,
  mutationArb,
  PROBLEM_LINE,
  render,
  replay,
  shiftSlot,
  STYLES,
  syntaxOfStyle,
  validDoc,
  type Doc,
  type Expectation,
  type Mutation,
  type Style,
  type Syntax,
} from './policy-fuzz-helpers.js';
import { REPO_ROOT } from './policy-test-helpers.js';

/** Generated cases run so far (policy texts and directories). */
let cases = 0;
/** One case may take this long at most (a loaded 2-core machine; typical cases take about a millisecond). */
const CASE_BOUND_MS = 5_000;

/** Parses and validates `text` as file `file`, like the loader does, with the reports rendered. */
function loadText(file: string, text: string, syntax: Syntax): { result: PolicyLoadResult; ms: number } {
  const started = performance.now();
  const parsed = parsePolicyText(file, text, syntax);
  const validated = validatePolicyDocuments(parsed.documents);
  const problems = sortProblems([...parsed.problems, ...validated.problems], [file]);
  const result: PolicyLoadResult = {
    ok: countProblems(problems).errors === 0,
    files: [file],
    documentCount: parsed.documents.length,
    policies: validated.policies,
    problems,
  };
  for (const d of parsed.documents) {
    checkPlainData(d.value, `document ${d.index}`);
    checkProblem({ file, line: d.line, column: d.column, path: '', message: 'document start', severity: 'warning' }, text, false, `document ${d.index}`);
  }
  return { result, ms: performance.now() - started };
}

function withoutSource(policies: readonly unknown[]): unknown[] {
  return policies.map((p) => ({ ...(p as Record<string, unknown>), source: undefined }));
}

/**
 * Runs the general oracles on one text, and the expectations of its
 * mutation. `siblings` are names that must be among the valid policies.
 */
function checkText(file: string, text: string, syntax: Syntax, expect: Expectation & { siblings?: readonly string[]; base?: string } = {}): PolicyLoadResult {
  cases++;
  let loaded: { result: PolicyLoadResult; ms: number };
  try {
    loaded = loadText(file, text, syntax);
  } catch (error) {
    assert.fail(`the loader threw on ${syntax} text ${JSON.stringify(text.slice(0, 300))}…: ${(error as Error).stack}`);
  }
  const { result, ms } = loaded;
  const context = `${syntax} ${JSON.stringify(text.length > 400 ? `${text.slice(0, 400)}…` : text)}`;
  assert.ok(ms < CASE_BOUND_MS, `took ${Math.round(ms)} ms (bound ${CASE_BOUND_MS}): ${context}`);
  for (const p of result.problems) {
    assert.equal(p.file, file, context);
    checkProblem(p, text, false, context);
  }
  for (const policy of result.policies) {
    checkPolicyNumbers(policy, context);
    assert.equal(policy.source.file, file);
  }
  // The reports: one well-formed line per problem, JSON that parses back to the same counts.
  const lines = renderTextReport(result).split('\n').filter(Boolean);
  assert.equal(lines.length, result.problems.length, context);
  for (const line of lines) assert.match(line, PROBLEM_LINE, context);
  assertNoCrash(renderTextReport(result), context);
  const json = JSON.parse(renderJsonReport(result)) as { ok: boolean; summary: { errors: number }; problems: unknown[] };
  assert.equal(json.ok, result.ok);
  assert.equal(json.problems.length, result.problems.length);
  assert.equal(json.summary.errors, countProblems(result.problems).errors);
  assert.match(renderSummary(result), /^(valid|invalid): /);
  if (expect.mustError !== undefined) {
    const errors = result.problems.filter((p) => p.severity === 'error');
    assert.ok(
      errors.some((p) => expect.mustError!.test(p.message)),
      `expected an error matching ${expect.mustError}, got ${JSON.stringify(result.problems.map(formatProblem))}: ${context}`,
    );
  }
  if (expect.sameAsBase === true && expect.base !== undefined) {
    const base = loadText(file, expect.base, syntax).result;
    assert.deepEqual(withoutSource(result.policies), withoutSource(base.policies), context);
    assert.deepEqual(result.problems.map((p) => [p.severity, p.path, p.message]), base.problems.map((p) => [p.severity, p.path, p.message]), context);
  }
  const names = new Set(result.policies.map((p) => p.name));
  for (const sibling of expect.siblings ?? []) {
    assert.ok(names.has(sibling), `valid document "${sibling}" lost next to a broken one: ${JSON.stringify(result.problems.map(formatProblem))}: ${context}`);
  }
  return result;
}

const style = fc.constantFrom(...STYLES);
const slot = fc.nat(199);
const docWithStyle = slot.chain((s) => fc.tuple(validDoc(`fuzz-${s}`, s), style));

test('property: generated valid documents load without problems in every style (the mutations start from valid files)', () => {
  fc.assert(
    fc.property(docWithStyle, ([doc, st]) => {
      const result = checkText(`p.${syntaxOfStyle(st)}`, render(doc, st), syntaxOfStyle(st));
      assert.deepEqual(result.problems.filter((p) => p.severity === 'error').map(formatProblem), []);
      assert.equal(result.policies.length, 1);
    }),
    replay(150),
  );
});

test('property: one mutated document never throws, is reported with positions inside the file, in bounded time', () => {
  fc.assert(
    fc.property(docWithStyle, mutationArb(), ([doc, st], mutation) => {
      const syntax = syntaxOfStyle(st);
      const text = render(doc, st);
      const mutated = applyMutation(text, syntax, doc, mutation, st);
      checkText(`p.${syntax}`, mutated.text, syntax, { ...mutated, base: text });
    }),
    replay(4000),
  );
});

test('property: two to four mutations stacked on one document (general oracles only)', () => {
  fc.assert(
    fc.property(docWithStyle, fc.array(mutationArb(), { minLength: 2, maxLength: 4 }), ([doc, st], mutations) => {
      const syntax = syntaxOfStyle(st);
      let text = render(doc, st);
      for (const m of mutations) text = applyMutation(text, syntax, m.kind === 'wrong-type' || m.kind === 'proto-key' ? undefined : doc, m, st).text;
      checkText(`p.${syntax}`, text, syntax);
    }),
    replay(1000),
  );
});

test('property: a broken document in a YAML file loses none of the other documents', () => {
  const three = fc.tuple(validDoc('doc-a', 1), validDoc('doc-b', 2), validDoc('doc-c', 3), fc.constantFrom<Style>('yaml-block', 'yaml-flow', 'yaml-quoted'));
  fc.assert(
    fc.property(three, fc.nat(2), mutationArb(), ([a, b, c, st], broken, mutation) => {
      const docs = [a, b, c];
      const texts = docs.map((d) => render(d, st));
      const m = applyMutation(texts[broken] as string, 'yaml', docs[broken], mutation, st);
      texts[broken] = m.text;
      const file = texts.map((t) => `---\n${t}\n`).join('');
      const siblings = m.addsMarker === true ? [] : ['doc-a', 'doc-b', 'doc-c'].filter((_, i) => i !== broken);
      checkText('multi.yaml', file, 'yaml', { mustError: m.mustError, siblings });
    }),
    replay(1400),
  );
});

/** The shipped examples and the valid fixtures, as text (with their comments). */
function corpus(): { file: string; text: string; syntax: Syntax }[] {
  const out: { file: string; text: string; syntax: Syntax }[] = [];
  for (const dir of [join(REPO_ROOT, 'policies'), join(REPO_ROOT, 'test', 'fixtures', 'valid')]) {
    for (const name of readdirSync(dir).sort()) {
      const syntax: Syntax = name.endsWith('.json') ? 'json' : 'yaml';
      out.push({ file: name, text: readFileSync(join(dir, name), 'utf8'), syntax });
    }
  }
  return out;
}

test('property: the shipped examples and valid fixtures, mutated as text', () => {
  const files = corpus();
  assert.ok(files.length >= 6, 'the corpus is missing');
  fc.assert(
    fc.property(fc.constantFrom(...files), mutationArb(), (f, mutation) => {
      const mutated = applyMutation(f.text, f.syntax, undefined, mutation);
      checkText(f.file, mutated.text, f.syntax, { ...mutated, base: f.text });
    }),
    replay(1200),
  );
});

test('every truncation of a document, at every offset, in YAML and JSON', () => {
  const doc = fc.sample(validDoc('cut', 7, '/run/netns/cut'), { numRuns: 1, seed: 42 })[0] as Doc;
  for (const st of STYLES) {
    const text = render(doc, st);
    for (let i = 0; i <= text.length; i++) checkText(`cut.${syntaxOfStyle(st)}`, text.slice(0, i), syntaxOfStyle(st));
  }
});

test('property: heavy inputs (thousands of nesting levels, alias bombs, strings of up to 1 MB) end in bounded time', () => {
  const heavy = mutationArb(true).filter((m) => m.kind === 'deep-nest' || m.kind === 'alias-bomb' || m.kind === 'long-string');
  fc.assert(
    fc.property(docWithStyle, heavy, ([doc, st], mutation) => {
      const syntax = syntaxOfStyle(st);
      const mutated = applyMutation(render(doc, st), syntax, doc, mutation, st);
      checkText(`heavy.${syntax}`, mutated.text, syntax, mutated);
    }),
    replay(40),
  );
});

test('property: the UTF-8 check agrees with a strict decoder and points at the first bad byte', () => {
  const strict = new TextDecoder('utf-8', { fatal: true });
  const lenient = new TextDecoder('utf-8');
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 24 }),
    fc.tuple(fc.string({ unit: 'grapheme', maxLength: 12 }), fc.uint8Array({ maxLength: 4 }), fc.nat()).map(([s, junk, p]) => {
      const valid = Buffer.from(s, 'utf8');
      const at = p % (valid.length + 1);
      return Buffer.concat([valid.subarray(0, at), junk, valid.subarray(at)]);
    }),
  );
  fc.assert(
    fc.property(bytes, (b) => {
      const bad = firstInvalidUtf8(b);
      let decodes = true;
      try {
        strict.decode(b);
      } catch {
        decodes = false;
      }
      assert.equal(bad === undefined, decodes);
      if (bad !== undefined) {
        assert.doesNotThrow(() => strict.decode(b.subarray(0, bad)));
        assert.equal(lenient.decode(b.subarray(bad))[0], '\uFFFD');
      }
    }),
    replay(2000),
  );
});

// ---------------------------------------------------------------------------
// Real files: FIFOs, symlink loops, 10 MB files, invalid UTF-8 bytes on disk.

/**
 * A process that, while it runs, opens every FIFO under `root` for writing
 * without blocking, which succeeds only when some reader is blocked in
 * open(2) on it: it writes that FIFO's path to `marker`, then closes it,
 * which lets the blocked reader go on (a read waits for the close, so the
 * marker is there when the loader returns). A loader that blocks on a FIFO
 * is thus reported, not hung forever.
 */
function fifoWatchdog(root: string, marker: string): ReturnType<typeof spawn> {
  const script = `
    const fs = require('node:fs'); const path = require('node:path');
    const [root, marker] = process.argv.slice(1);
    setInterval(() => {
      let entries = [];
      try { entries = fs.readdirSync(root, { recursive: true }); } catch {}
      for (const e of entries) {
        const p = path.join(root, String(e));
        try {
          if (!fs.lstatSync(p).isFIFO()) continue;
          const fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
          fs.appendFileSync(marker, p + '\\n');
          fs.closeSync(fd);
        } catch {}
      }
    }, 200);`;
  return spawn(process.execPath, ['-e', script, root, marker], { stdio: 'ignore' });
}

function capture(): ValidateEnvironment & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { cwd: '/', stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, out: () => out, err: () => err };
}

test('property: directories with bad entries: the valid files still load, every problem is well-formed, nothing blocks', async () => {
  const root = mkdtempSync(join(tmpdir(), 'ebpf-policy-fuzz-'));
  chmodSync(root, 0o755);
  const marker = join(root, 'blocked-on-fifos');
  const watchdog = fifoWatchdog(root, marker);
  let blocked: string | undefined;
  let n = 0;
  try {
    const siblings = fc.integer({ min: 1, max: 3 }).chain((k) =>
      fc.tuple(...Array.from({ length: k }, (_, i) => fc.tuple(validDoc(`good-${i}`, i), style).map(([doc, st]) => ({ doc, style: st })))),
    );
    fc.assert(
      fc.property(siblings, fc.array(badEntryArb, { minLength: 1, maxLength: 3 }), (good, bad) => {
        cases++;
        const dir = join(root, `case-${n++}`);
        mkdirSync(dir, { mode: 0o755 });
        try {
          const plan = buildDirectory(dir, good, bad);
          const started = performance.now();
          let result: PolicyLoadResult;
          try {
            result = loadPolicies({ paths: [dir], insecurePermissions: true });
          } catch (error) {
            assert.fail(`loadPolicies threw: ${(error as Error).stack}`);
          }
          const ms = performance.now() - started;
          const context = `${dir} with ${JSON.stringify(bad.map((b) => b.kind))}`;
          assert.ok(!existsSync(marker), `the loader blocked opening a FIFO for reading: ${existsSync(marker) ? readFileSync(marker, 'utf8') : ''}`);
          assert.ok(ms < CASE_BOUND_MS, `took ${Math.round(ms)} ms: ${context}`);
          for (const p of result.problems) {
            assert.ok(p.file.startsWith(`${dir}/`), `problem about a file outside the directory: ${JSON.stringify(p)}`);
            const rel = p.file.slice(dir.length + 1);
            checkProblem(p, plan.texts.get(rel), plan.fileLevel.has(rel) || !plan.texts.has(rel), `${context}: ${rel}`);
          }
          for (const [rel, pattern] of plan.mustError) {
            assert.ok(
              result.problems.some((p) => p.file === join(dir, rel) && p.severity === 'error' && pattern.test(p.message)),
              `${rel}: expected an error matching ${pattern}: ${JSON.stringify(result.problems.map(formatProblem))}`,
            );
          }
          const names = new Set(result.policies.map((p) => p.name));
          for (const name of plan.siblings) assert.ok(names.has(name), `valid policy "${name}" lost: ${JSON.stringify(result.problems.map(formatProblem))} (${context})`);
          for (const rel of plan.siblingFiles) assert.ok(result.files.includes(join(dir, rel)), `valid file ${rel} not read (${context})`);
          for (const policy of result.policies) checkPolicyNumbers(policy, context);

          // The command: exit 0 or 1 (never 2: that is for usage errors), one well-formed line per problem.
          const env = capture();
          const code = runValidate({ policies: [dir], output: 'text', insecurePolicyPerms: true }, env);
          assert.ok(code === 0 || code === 1, `validate exited ${code}: ${env.err()}`);
          assert.equal(code === 0, result.ok);
          for (const line of env.out().split('\n').filter(Boolean)) {
            const m = PROBLEM_LINE.exec(line) ?? FILE_PROBLEM_LINE.exec(line);
            assert.ok(m, `malformed problem line: ${line}`);
            assert.ok(m.groups?.file?.startsWith(`${dir}/`), line);
          }
          assert.match(env.err(), /^ebpf-policy validate: (valid|invalid): .*\n$/);
          assertNoCrash(env.out() + env.err(), context);
          const jsonEnv = capture();
          assert.equal(runValidate({ policies: [dir], output: 'json', insecurePolicyPerms: true }, jsonEnv), code);
          const report = JSON.parse(jsonEnv.out()) as { ok: boolean; problems: unknown[] };
          assert.equal(report.ok, code === 0);
          assert.equal(report.problems.length, result.problems.length);
          assert.equal(jsonEnv.err(), '');
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      replay(150),
    );
  } finally {
    await killAndWait(watchdog, 'the FIFO watchdog', 'SIGKILL', 10_000);
    // A reader that opened a FIFO without reading it may have gone on before the marker was written: look once more.
    blocked = existsSync(marker) ? readFileSync(marker, 'utf8') : '';
    rmSync(root, { recursive: true, force: true });
  }
  assert.equal(blocked, '', 'the loader opened these FIFOs for reading and blocked');
});

// ---------------------------------------------------------------------------
// The bugs these tests found, each kept as a fixed example.

const GOOD_YAML = (name: string, port: number): string =>
  `apiVersion: ebpf-policy/v1\nkind: PortSteering\nmetadata:\n  name: ${name}\nspec:\n  protocol: tcp\n  ports: [${port}]\n  target:\n    listen: "127.0.0.1:8080"\n`;

function problemsOf(file: string, text: string, syntax: Syntax): string[] {
  const parsed = parsePolicyText(file, text, syntax);
  return [...parsed.problems, ...validatePolicyDocuments(parsed.documents).problems].map(formatProblem);
}

test('regression: duplicate keys in JSON are errors (JSON.parse kept the last one silently)', () => {
  const text = '{"apiVersion": "ebpf-policy/v1", "kind": "PortSteering", "metadata": {"name": "a"},\n "spec": {"protocol": "tcp", "ports": [1], "protocol": "udp", "target": {"pid": 1, "fd": 0}}}';
  assert.deepEqual(problemsOf('d.json', text, 'json'), ['d.json:2:44: error: JSON error: duplicate key "protocol": keys must be unique']);
  // Escapes do not hide a duplicate.
  assert.match(problemsOf('e.json', '{"kind": 1, "\\u006bind": 2}', 'json')[0] as string, /^e\.json:1:13: error: JSON error: duplicate key "kind"/);
});

test('regression: keys that differ only in type (1 and "1") are duplicates too (one replaced the other silently)', () => {
  const text = `${GOOD_YAML('a', 1).replace('metadata:\n', 'metadata:\n  labels: {1: x, "1": y}\n')}`;
  assert.deepEqual(problemsOf('k.yaml', text, 'yaml'), ['k.yaml:4:18: error: YAML syntax error: Map keys must be unique']);
});

test('regression: YAML 1.1 tags (!!omap, !!set, !!timestamp, !!binary) give plain values, not objects that validate as empty mappings', () => {
  // `labels: !!omap [...]` was a Map, which validated as an empty mapping: the policy loaded without its labels.
  const text = GOOD_YAML('a', 1).replace('  name: a\n', '  name: a\n  labels: !!omap [{team: web}]\n');
  assert.deepEqual(problemsOf('t.yaml', text, 'yaml'), [
    't.yaml:5:11: warning: YAML warning: Unresolved tag: tag:yaml.org,2002:omap',
    't.yaml:5:18: error: metadata.labels: expected a mapping, got a list',
  ]);
  const parsed = parsePolicyText('t.yaml', GOOD_YAML('a', 1).replace('ports: [1]', 'ports: [!!timestamp 2001-12-14, !!binary aGk=, !!set {a}]'), 'yaml');
  checkPlainData(parsed.documents[0]?.value, 'tags');
});

test('regression: an alias bomb with anchors a quick test misses ("&ä", "&-x") is refused like any other', () => {
  for (const a of ['ä', '-x', '😀']) {
    const bomb = [`x0: &${a}0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]`];
    for (let d = 1; d <= 6; d++) bomb.push(`x${d}: &${a}${d} [${Array(10).fill(`*${a}${d - 1}`).join(', ')}]`);
    const problems = problemsOf('bomb.yaml', `${bomb.join('\n')}\n${GOOD_YAML('a', 1)}`, 'yaml');
    assert.deepEqual(problems, ['bomb.yaml:1:1: error: YAML error: Excessive alias count indicates a resource exhaustion attack'], a);
  }
});

test('regression: a quoted string left open does not take the following documents with it', () => {
  const text = `${GOOD_YAML('one', 1)}---\napiVersion: "ebpf-policy/v1\nkind: PortSteering\n---\n${GOOD_YAML('three', 3)}`;
  const parsed = parsePolicyText('q.yaml', text, 'yaml');
  assert.deepEqual(validatePolicyDocuments(parsed.documents).policies.map((p) => p.name), ['one', 'three']);
  assert.deepEqual(parsed.problems.map(formatProblem), ['q.yaml:11:28: error: YAML syntax error: Missing closing "quote']);
  // The same with single quotes, and with no newline at the end of the file.
  const single = parsePolicyText('s.yaml', `${GOOD_YAML('one', 1)}---\nkind: 'Port\n---\n${GOOD_YAML('three', 3).trimEnd()}`, 'yaml');
  assert.deepEqual(validatePolicyDocuments(single.documents).policies.map((p) => p.name), ['one', 'three']);
});

test('regression: a document nested too deeply does not take the other documents of its file with it', () => {
  const text = `${GOOD_YAML('one', 1)}---\nx: ${'['.repeat(100)}${']'.repeat(100)}\n---\n${GOOD_YAML('three', 3)}`;
  const parsed = parsePolicyText('n.yaml', text, 'yaml');
  assert.deepEqual(validatePolicyDocuments(parsed.documents).policies.map((p) => p.name), ['one', 'three']);
  assert.deepEqual(parsed.problems.map(formatProblem), ['n.yaml:11:67: error: YAML error: nested more than 64 levels deep']);
});

test('regression: a stray token right after "---" breaks its own document, not the one before (which was dropped while the broken one loaded)', () => {
  const text = `${GOOD_YAML('one', 1)}---\n}${GOOD_YAML('two', 2)}---\n${GOOD_YAML('three', 3)}`;
  const parsed = parsePolicyText('s.yaml', text, 'yaml');
  assert.deepEqual(validatePolicyDocuments(parsed.documents).policies.map((p) => p.name), ['one', 'three']);
  assert.deepEqual(parsed.problems.map(formatProblem), ['s.yaml:11:1: error: YAML syntax error: Unexpected flow-map-end token in YAML document: "}"']);
});

test('regression: problems after a broken block scalar are located on their own line (the parser\'s line count was off)', () => {
  const one = '{apiVersion: ebpf-policy/v1, kind: PortSteering, metadata: {name: one}, spec: {protocol: tcp, ports: [1], target: {pid: 1, fd: 0}}}';
  const two = '{apiVersion: ebpf-policy/v1, kind: PortSteering, metadata: {name: two}, spec: {protocol: tcp, ports: [2], addresses: [10.0.0.1/8], target: {pid: 1, fd: 0}}}';
  assert.deepEqual(problemsOf('b.yaml', `${one}|\n\n---\n${two}\n`, 'yaml'), [
    'b.yaml:1:132: error: YAML syntax error: Unexpected block-scalar-header at node end',
    'b.yaml:2:1: error: YAML syntax error: Unexpected scalar at node end',
    'b.yaml:4:119: warning: spec.addresses[0]: "10.0.0.1/8" has host bits set; it means 10.0.0.0/8',
  ]);
});

test('regression: block nesting 10,000 levels deep is "nested more than 64 levels deep" at a position (it was "Maximum call stack size exceeded", without one)', () => {
  const text = `apiVersion: ebpf-policy/v1\nkind: PortSteering\nmetadata:\n  name:\n    ${'- '.repeat(10_000)}x\nspec: {}\n`;
  assert.deepEqual(problemsOf('c.yaml', text, 'yaml'), ['c.yaml:5:129: error: YAML error: nested more than 64 levels deep']);
});

test('regression: JSON nested 100,000 levels deep is refused at once (it took seconds to locate problems in it)', () => {
  const deep = `{"apiVersion": "ebpf-policy/v1", "kind": "PortSteering", "metadata": {"name": "a"}, "spec": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
  const started = performance.now();
  assert.deepEqual(problemsOf('deep.json', deep, 'json'), ['deep.json:1:156: error: JSON error: nested more than 64 levels deep']);
  assert.ok(performance.now() - started < 1000);
});

test('regression: a 1 MB unknown kind or field name is reported in bounded time (the typo hint was quadratic: 20 s)', () => {
  const started = performance.now();
  const kind = problemsOf('k.yaml', `apiVersion: ebpf-policy/v1\nkind: ${'K'.repeat(1_000_000)}\nmetadata: {name: a}\nspec: {}\n`, 'yaml');
  assert.match(kind[0] as string, /^k\.yaml:2:7: error: kind: unknown kind "KKK/);
  const field = problemsOf('f.yaml', GOOD_YAML('a', 1).replace('spec:\n', `spec:\n  ${'p'.repeat(1_000_000)}: 1\n`), 'yaml');
  assert.match(field[0] as string, /^f\.yaml:6:3: error: spec\.ppp+: unknown field "ppp/);
  assert.ok(performance.now() - started < 3000, `${performance.now() - started} ms`);
});

test('regression: a mapping of 50,000 keys and a file of 10,000 documents load in bounded time (both were quadratic)', () => {
  let started = performance.now();
  const keys = Array.from({ length: 50_000 }, (_, i) => `k${i}: 1`).join('\n');
  const manyKeys = problemsOf('keys.yaml', `${keys}\n${GOOD_YAML('a', 1)}`, 'yaml');
  assert.equal(manyKeys.length, 50_000);
  assert.equal(manyKeys[0], 'keys.yaml:1:1: error: k0: unknown field "k0"');
  assert.ok(performance.now() - started < 10_000, `many keys: ${performance.now() - started} ms`);
  started = performance.now();
  const docs = Array.from({ length: 10_000 }, (_, i) => `a${i}: 1\n`).join('---\n');
  const manyDocs = problemsOf('docs.yaml', docs, 'yaml');
  assert.equal(manyDocs.length, 10_000 * 5);
  assert.ok(manyDocs.includes('docs.yaml:19999:1: error: spec: missing required field "spec"'));
  assert.ok(performance.now() - started < 10_000, `many documents: ${performance.now() - started} ms`);
  // The same mapping in a .json file, with a duplicate at its end.
  started = performance.now();
  const json = `{${Array.from({ length: 100_000 }, (_, i) => `"k${i}": 1`).join(',')}, "k5": 2}`;
  assert.match(problemsOf('keys.json', json, 'json')[0] as string, /^keys\.json:1:\d+: error: JSON error: duplicate key "k5"/);
  assert.ok(performance.now() - started < 5_000, `JSON keys: ${performance.now() - started} ms`);
});

test('regression: invalid UTF-8 is an error at its line and column (it was read as U+FFFD, silently changing a namespace path)', () => {
  const root = mkdtempSync(join(tmpdir(), 'ebpf-policy-fuzz-'));
  try {
    chmodSync(root, 0o755);
    const text = GOOD_YAML('a', 1).replace('spec:\n', 'spec:\n  netns: /run/netns/caf\u00e9X\n');
    const bytes = Buffer.from(text, 'utf8');
    const x = bytes.indexOf('X');
    bytes[x] = 0xff;
    writeFileSync(join(root, 'latin.yaml'), bytes, { mode: 0o644 });
    writeFileSync(join(root, 'ok.yaml'), `\uFEFF${GOOD_YAML('b', 2)}`, { mode: 0o644 });
    const result = loadPolicies({ paths: [root], insecurePermissions: true });
    assert.deepEqual(result.problems.map(formatProblem), [
      `${root}/latin.yaml:6:25: error: not valid UTF-8 (byte 0xFF); policy files must be encoded in UTF-8`,
    ]);
    assert.deepEqual(result.policies.map((p) => p.name), ['b']);
    // A byte order mark does not count as a column.
    writeFileSync(join(root, 'latin.yaml'), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf, 0x61, 0xc0, 0x80])]), { mode: 0o644 });
    assert.match(formatProblem(loadPolicies({ paths: [join(root, 'latin.yaml')], insecurePermissions: true }).problems[0]!), /latin\.yaml:1:2: error: not valid UTF-8 \(byte 0xC0\)/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('regression: a file replaced by a FIFO after it was listed is reported, not opened for a blocking read', () => {
  const root = mkdtempSync(join(tmpdir(), 'ebpf-policy-fuzz-'));
  try {
    chmodSync(root, 0o755);
    const fifo = join(root, 'late.yaml');
    mkfifo(fifo);
    // In a child: a blocking open would hang it (and only it) until the bound.
    const load = fileURLToPath(new URL('../../src/policy/load.js', import.meta.url));
    const script = `import { readPolicyDocuments } from ${JSON.stringify(load)};
      const r = readPolicyDocuments([{ path: 'late.yaml', realPath: ${JSON.stringify(fifo)}, syntax: 'yaml' }]);
      process.stdout.write(JSON.stringify(r.problems));`;
    const r = runBounded(process.execPath, ['--input-type=module', '-e', script], {}, 20_000);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [{ file: 'late.yaml', line: 0, column: 0, path: '', message: 'not a regular file', severity: 'error' }]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('CRLF line ends and a leading byte order mark change nothing, in every style (the oracle of those mutations)', () => {
  const doc = fc.sample(validDoc('same', 3), { numRuns: 1, seed: 7 })[0] as Doc;
  shiftSlot(doc, 3);
  for (const st of STYLES) {
    const text = render(doc, st);
    for (const noop of [{ kind: 'newlines', mode: 'crlf' }, { kind: 'bom', where: 'start', pick: 0 }] as const satisfies readonly Mutation[]) {
      const m = applyMutation(text, syntaxOfStyle(st), doc, noop, st);
      assert.equal(m.sameAsBase, true);
      checkText(`same.${syntaxOfStyle(st)}`, m.text, syntaxOfStyle(st), { ...m, base: text, siblings: ['same'] });
    }
  }
});

test('at least 10,000 generated cases ran', () => {
  console.log(`# policy fuzz: ${cases} cases`);
  if (process.env.FUZZ_SEED === undefined && process.env.FUZZ_PATH === undefined) assert.ok(cases >= 10_000, `only ${cases} cases`);
});
