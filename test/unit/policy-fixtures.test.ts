/**
 * Every fixture under test/fixtures/ yields exactly its expected problems:
 * invalid/ and warnings/ entries (files or directories) have a sibling
 * NAME.expected with the exact text output; valid/ and policies/ have none.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { test } from 'node:test';
import { loadPolicies } from '../../src/manager.js';
import { countProblems, formatProblem } from '../../src/policy/problem.js';
import { FIXTURES_DIR, REPO_ROOT } from './policy-test-helpers.js';

function cases(category: string): { entry: string; expectedFile: string }[] {
  const dir = join(FIXTURES_DIR, category);
  return readdirSync(dir)
    .filter((name) => !name.endsWith('.expected'))
    .sort()
    .map((name) => {
      const isDirectory = statSync(join(dir, name)).isDirectory();
      const stem = isDirectory ? name : basename(name, extname(name));
      return { entry: `${category}/${name}`, expectedFile: join(dir, `${stem}.expected`) };
    });
}

function load(paths: string[], cwd = FIXTURES_DIR) {
  return loadPolicies({ paths, cwd, insecurePermissions: true });
}

test('there are at least 15 invalid fixtures, each with its own .expected file', () => {
  const invalid = cases('invalid');
  assert.ok(invalid.length >= 15, `only ${invalid.length} invalid fixtures`);
  const expectedFiles = invalid.map((c) => c.expectedFile);
  assert.equal(new Set(expectedFiles).size, expectedFiles.length, 'two fixtures share a .expected file');
  for (const { entry, expectedFile } of invalid) assert.ok(existsSync(expectedFile), `${entry} has no ${expectedFile}`);
  const stems = new Set(invalid.map((c) => basename(c.expectedFile)));
  for (const name of readdirSync(join(FIXTURES_DIR, 'invalid')).filter((n) => n.endsWith('.expected'))) {
    assert.ok(stems.has(name), `${name} belongs to no fixture`);
  }
});

for (const category of ['invalid', 'warnings']) {
  for (const { entry, expectedFile } of cases(category)) {
    test(`fixture ${entry} yields exactly its expected problems`, () => {
      const result = load([entry]);
      const actual = result.problems.map((p) => `${formatProblem(p)}\n`).join('');
      assert.equal(actual, readFileSync(expectedFile, 'utf8'));
      const { errors, warnings } = countProblems(result.problems);
      if (category === 'invalid') {
        assert.ok(errors > 0, 'an invalid fixture must have an error');
        assert.equal(result.ok, false);
      } else {
        assert.equal(errors, 0);
        assert.ok(warnings > 0, 'a warnings fixture must have a warning');
        assert.equal(result.ok, true);
      }
      for (const problem of result.problems) {
        assert.ok(problem.line >= 1 && problem.column >= 1, `no position: ${formatProblem(problem)}`);
      }
    });
  }
}

test('each valid fixture, and all of them together, load without any problem', () => {
  const entries = readdirSync(join(FIXTURES_DIR, 'valid')).sort();
  assert.ok(entries.length >= 4);
  for (const entry of entries) {
    const result = load([`valid/${entry}`]);
    assert.deepEqual(result.problems.map(formatProblem), [], entry);
    assert.ok(result.policies.length >= 1, entry);
  }
  const all = load(['valid']);
  assert.deepEqual(all.problems.map(formatProblem), []);
  assert.equal(all.policies.length, 5);
});

test('the example policies/port-steering.yaml is valid and normalizes as documented', () => {
  const result = loadPolicies({ paths: ['policies/port-steering.yaml'], cwd: REPO_ROOT, insecurePermissions: true });
  assert.deepEqual(result.problems, []);
  assert.deepEqual(result.policies, [
    {
      kind: 'PortSteering',
      name: 'legacy-http',
      labels: { team: 'web' },
      source: { file: 'policies/port-steering.yaml', documentIndex: 0, line: 9, column: 1 },
      netns: undefined,
      protocol: 'tcp',
      ports: [
        { start: 8081, end: 8081 },
        { start: 9000, end: 9010 },
      ],
      prefixes: ['0.0.0.0/0', '::/0'],
      target: { type: 'listen', family: 4, address: '127.0.0.1', port: 8080 },
    },
  ]);
});

test('all invalid fixtures loaded in one run report every problem of every file', () => {
  const entries = cases('invalid');
  const together = new Set(load(entries.map((c) => c.entry)).problems.map(formatProblem));
  for (const { entry } of entries) {
    for (const problem of load([entry]).problems) {
      assert.ok(together.has(formatProblem(problem)), `missing when loaded together: ${formatProblem(problem)}`);
    }
  }
});
