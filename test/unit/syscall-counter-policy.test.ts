/**
 * The SyscallCounter kind, document half: the shipped example normalizes as
 * documented, defaults and canonical forms, unknown system call names with
 * their closest names, every check beyond the schema, another architecture,
 * no conflicts between counters; the generated x86_64 system call table and
 * closestSyscalls, with properties of both.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_MAX_KEYS, GROUP_BY_FIELDS, syscallCounterKind, type SyscallCounterPolicy } from '../../src/kinds/syscall-counter/document.js';
import { loadPolicies } from '../../src/manager.js';
import { editDistance } from '../../src/policy/describe.js';
import { createKindRegistry } from '../../src/policy/kind-registry.js';
import type { AnyPolicyKind } from '../../src/policy/kind.js';
import { parsePolicyText, type PolicySyntax } from '../../src/policy/parse.js';
import { formatProblem } from '../../src/policy/problem.js';
import { closestSyscalls, syscallTable } from '../../src/policy/syscalls/table.js';
import { X86_64_SYSCALLS } from '../../src/policy/syscalls/x86_64.js';
import { validatePolicyDocuments } from '../../src/policy/validate.js';
import type { SyscallCounter } from '../../src/types/generated/syscall-counter.js';
import { REPO_ROOT } from './policy-test-helpers.js';

const KINDS = createKindRegistry([syscallCounterKind as AnyPolicyKind]);
const SOURCE = { file: 'k.yaml', documentIndex: 0, line: 1, column: 1 };

/** Parses and validates one text as file `file` against the SyscallCounter kind alone. */
function validate(text: string, syntax: PolicySyntax = 'yaml', file = 'test.yaml'): { policies: SyscallCounterPolicy[]; problems: string[] } {
  const parsed = parsePolicyText(file, text, syntax);
  const result = validatePolicyDocuments(parsed.documents, { kinds: KINDS });
  return { policies: result.policies as SyscallCounterPolicy[], problems: [...parsed.problems, ...result.problems].map(formatProblem) };
}

/** A SyscallCounter document in YAML with the given spec lines (indented by two spaces). */
function doc(spec: string, name = 'p'): string {
  const body = spec
    .trim()
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
  return `apiVersion: ebpf-policy/v1\nkind: SyscallCounter\nmetadata:\n  name: ${name}\nspec:\n${body}\n`;
}

/** The problems of a document with the given spec lines (lines counted from 1; spec starts on line 6). */
function problemsOf(spec: string): string[] {
  return validate(doc(spec)).problems;
}

/** Runs `fn` with process.arch reading `arch`. */
function withArch<T>(arch: string, fn: () => T): T {
  const saved = Object.getOwnPropertyDescriptor(process, 'arch')!;
  Object.defineProperty(process, 'arch', { ...saved, value: arch });
  try {
    return fn();
  } finally {
    Object.defineProperty(process, 'arch', saved);
  }
}

const TABLE = syscallTable('x64');
if (!TABLE.ok) throw new Error(TABLE.reason);
const NAMES = X86_64_SYSCALLS.map(([name]) => name);

test('the example policies/syscall-counter.yaml is valid and normalizes as documented', () => {
  const result = loadPolicies({ paths: ['policies/syscall-counter.yaml'], cwd: REPO_ROOT, insecurePermissions: true, kinds: KINDS });
  assert.deepEqual(result.problems, []);
  assert.deepEqual(result.policies, [
    {
      kind: 'SyscallCounter',
      name: 'exec-open-connect',
      labels: { team: 'platform' },
      source: { file: 'policies/syscall-counter.yaml', documentIndex: 0, line: 9, column: 1 },
      syscalls: [42, 59, 257],
      groupBy: ['syscall', 'comm'],
      cgroup: undefined,
      maxKeys: 10240,
    },
  ]);
});

test('defaults: groupBy [syscall], no cgroup, 10240 keys; names become sorted numbers', () => {
  const { policies, problems } = validate(doc('syscalls: [execve, openat, connect]'));
  assert.deepEqual(problems, []);
  assert.deepEqual(policies, [
    {
      kind: 'SyscallCounter',
      name: 'p',
      labels: {},
      source: { file: 'test.yaml', documentIndex: 0, line: 1, column: 1 },
      syscalls: [42, 59, 257],
      groupBy: ['syscall'],
      cgroup: undefined,
      maxKeys: DEFAULT_MAX_KEYS,
    },
  ]);
  assert.equal(DEFAULT_MAX_KEYS, 10240);
  assert.deepEqual(GROUP_BY_FIELDS, ['syscall', 'comm', 'cgroup', 'pid']);
});

test('"*" is all; groupBy in canonical order; the cgroup path is normalized', () => {
  const { policies, problems } = validate(doc('syscalls: ["*"]\ngroupBy: [pid, cgroup, syscall]\ncgroup: /sys/fs/cgroup/app.slice/\nmaxKeys: 1048576'));
  assert.deepEqual(problems, []);
  const p = policies[0]!;
  assert.equal(p.syscalls, 'all');
  assert.deepEqual(p.groupBy, ['syscall', 'cgroup', 'pid']);
  assert.equal(p.cgroup, '/sys/fs/cgroup/app.slice');
  assert.equal(p.maxKeys, 1048576);
  assert.deepEqual(validate(doc('syscalls: [read]\ngroupBy: [comm]\ncgroup: app.slice/web.service/')).policies[0]?.groupBy, ['comm']);
  assert.equal(validate(doc('syscalls: [read]\ncgroup: app.slice/web.service/')).policies[0]?.cgroup, 'app.slice/web.service');
  assert.equal(validate(doc('syscalls: [read]\ncgroup: /')).policies[0]?.cgroup, '/');
});

test('a JSON document goes through the same pipeline', () => {
  const text = JSON.stringify({ apiVersion: 'ebpf-policy/v1', kind: 'SyscallCounter', metadata: { name: 'j' }, spec: { syscalls: ['getppid', 'read'], maxKeys: 5 } });
  const { policies, problems } = validate(text, 'json', 'p.json');
  assert.deepEqual(problems, []);
  assert.deepEqual(policies[0]?.syscalls, [0, 110]);
  assert.equal(policies[0]?.maxKeys, 5);
});

test('unknown system call names are errors naming the closest names', () => {
  assert.deepEqual(problemsOf('syscalls: [execve, execv, xyzzy, opnat]'), [
    'test.yaml:6:22: error: spec.syscalls[1]: unknown system call "execv" on x86_64: did you mean "execve", "execveat"?',
    'test.yaml:6:29: error: spec.syscalls[2]: unknown system call "xyzzy" on x86_64',
    'test.yaml:6:36: error: spec.syscalls[3]: unknown system call "opnat" on x86_64: did you mean "openat"?',
  ]);
  assert.deepEqual(problemsOf('syscalls:\n  - sys_execve\n  - __x64_sys_openat'), [
    'test.yaml:7:7: error: spec.syscalls[0]: unknown system call "sys_execve" on x86_64: did you mean "execve", "execveat"?',
    'test.yaml:8:7: error: spec.syscalls[1]: unknown system call "__x64_sys_openat" on x86_64: did you mean "openat", "openat2", "open"?',
  ]);
  assert.deepEqual(validate(doc('syscalls: [execv]')).policies, []);
});

test('unknown fields are errors with file:line:column', () => {
  assert.deepEqual(problemsOf('syscalls: [read]\ngroupby: [comm]\nfoo: 1'), [
    'test.yaml:7:3: error: spec.groupby: unknown field "groupby" (did you mean "groupBy"?)',
    'test.yaml:8:3: error: spec.foo: unknown field "foo"',
  ]);
});

test('schema errors: missing and empty syscalls, malformed names, duplicates, bad groupBy, maxKeys bounds', () => {
  assert.deepEqual(problemsOf('groupBy: []\nmaxKeys: 0'), [
    'test.yaml:6:3: error: spec.syscalls: missing required field "syscalls"',
    'test.yaml:6:12: error: spec.groupBy: must have at least 1 entry',
    'test.yaml:7:12: error: spec.maxKeys: 0 is out of range 1..1048576',
  ]);
  assert.deepEqual(problemsOf('syscalls: []\nmaxKeys: 1048577'), [
    'test.yaml:6:13: error: spec.syscalls: must have at least 1 entry',
    'test.yaml:7:12: error: spec.maxKeys: 1048577 is out of range 1..1048576',
  ]);
  assert.deepEqual(problemsOf('syscalls: [Execve, "exec*", open-at, 59]'), [
    'test.yaml:6:14: error: spec.syscalls[0]: "Execve" is not a valid system call name (system call names are lowercase ("execve"))',
    'test.yaml:6:22: error: spec.syscalls[1]: "exec*" is not a valid system call name (patterns are not supported: "*" alone stands for every system call)',
    'test.yaml:6:31: error: spec.syscalls[2]: "open-at" is not a valid system call name ("-" is not allowed; a system call name has lowercase a-z, 0-9 and "_" (e.g. "execve"))',
    'test.yaml:6:40: error: spec.syscalls[3]: expected a string, got 59',
  ]);
  assert.deepEqual(problemsOf('syscalls: [read, write, read]\ngroupBy: [comm, tid, comm]'), [
    'test.yaml:6:27: error: spec.syscalls[2]: duplicate entry "read": also spec.syscalls[0]',
    'test.yaml:7:19: error: spec.groupBy[1]: "tid" is not one of: syscall, comm, cgroup, pid',
    'test.yaml:7:24: error: spec.groupBy[2]: duplicate entry "comm": also spec.groupBy[0]',
  ]);
  assert.match(problemsOf(`syscalls: [${'a'.repeat(65)}]`).join('\n'), /error: spec\.syscalls\[0\]: .*65 characters, at most 64/);
});

test('at most 512 names', () => {
  const names = (n: number) => Array.from({ length: n }, (_, i) => NAMES[i % NAMES.length]! + (i < NAMES.length ? '' : `_${i}`));
  const json = (n: number) => JSON.stringify({ apiVersion: 'ebpf-policy/v1', kind: 'SyscallCounter', metadata: { name: 'big' }, spec: { syscalls: names(n) } });
  assert.deepEqual(validate(json(NAMES.length), 'json', 'big.json').problems, []);
  assert.match(validate(json(513), 'json', 'big.json').problems.join('\n'), /error: spec\.syscalls: has 513 entries, at most 512 allowed/);
});

test('warnings: "*" with names, pid without maxKeys, fewer keys than system calls, a cgroup path not normalized', () => {
  const star = validate(doc('syscalls: [read, "*", write]'));
  assert.deepEqual(star.problems, ['test.yaml:6:20: warning: spec.syscalls[1]: "*" counts every system call: the names listed with it are redundant']);
  assert.equal(star.policies[0]?.syscalls, 'all');
  assert.deepEqual(problemsOf('syscalls: [read]\ngroupBy: [syscall, pid]'), [
    'test.yaml:7:22: warning: spec.groupBy[1]: grouping by pid makes a key per process, and process ids churn: the default maxKeys (10240) fills up and the least recently used keys are evicted with their counts; set spec.maxKeys',
  ]);
  assert.deepEqual(problemsOf('syscalls: [read]\ngroupBy: [syscall, pid]\nmaxKeys: 10240'), []);
  assert.deepEqual(problemsOf('syscalls: [read, write, close]\nmaxKeys: 2'), [
    'test.yaml:7:12: warning: spec.maxKeys: 3 system calls are counted, one key each, but maxKeys is 2: the least recently used keys are evicted with their counts',
  ]);
  assert.match(problemsOf('syscalls: ["*"]\nmaxKeys: 100').join('\n'), new RegExp(`warning: spec\\.maxKeys: ${NAMES.length} system calls are counted`));
  assert.deepEqual(problemsOf('syscalls: [read, write, close]\ngroupBy: [comm]\nmaxKeys: 2'), []);
  assert.deepEqual(problemsOf('syscalls: [read]\ncgroup: /sys/fs//cgroup/./app.slice'), [
    'test.yaml:7:11: warning: spec.cgroup: "/sys/fs//cgroup/./app.slice" is not a normalized path; it means the cgroup directory "/sys/fs/cgroup/app.slice"',
  ]);
  assert.deepEqual(problemsOf('syscalls: [read]\ncgroup: ./app.slice'), [
    'test.yaml:7:11: warning: spec.cgroup: "./app.slice" is not a normalized path; it means the cgroup directory (relative to the cgroup2 mount) "app.slice"',
  ]);
});

test('cgroup paths: ".." segments, NUL and empty paths are errors', () => {
  assert.deepEqual(problemsOf('syscalls: [read]\ncgroup: app.slice/../../etc'), [
    'test.yaml:7:11: error: spec.cgroup: "app.slice/../../etc" is not a valid cgroup path (".." segments are not allowed in a path relative to the cgroup2 mount (it must stay below the mount))',
  ]);
  assert.match(problemsOf('syscalls: [read]\ncgroup: /sys/fs/cgroup/a/..').join('\n'), /error: spec\.cgroup: .*"\.\." segments are not allowed/);
  assert.match(problemsOf('syscalls: [read]\ncgroup: ""').join('\n'), /error: spec\.cgroup: /);
  assert.match(problemsOf('syscalls: [read]\ncgroup: "a\\0b"').join('\n'), /error: spec\.cgroup: .*NUL/);
});

test('on another architecture names are one error; "*" alone still counts everything', () => {
  withArch('arm64', () => {
    assert.deepEqual(problemsOf('syscalls: [read, execve]'), ['test.yaml:6:13: error: spec.syscalls: syscall names are known for x86_64 only (this is arm64): only "*" can be counted here']);
    const { policies, problems } = validate(doc('syscalls: ["*"]\nmaxKeys: 1'));
    assert.deepEqual(problems, []);
    assert.equal(policies[0]?.syscalls, 'all');
  });
  assert.deepEqual(problemsOf('syscalls: [read, execve]'), []);
});

test('two counters of the same system calls are no conflict', () => {
  const text = [doc('syscalls: [execve]\ngroupBy: [comm]', 'one'), doc('syscalls: [execve]\ngroupBy: [comm]', 'two')].join('---\n');
  const { policies, problems } = validate(text);
  assert.deepEqual(problems, []);
  assert.equal(policies.length, 2);
  assert.deepEqual(syscallCounterKind.findConflicts(policies), []);
});

test('the x86_64 table: known numbers, byName and byNumber inverse, names without "sys_"', () => {
  assert.equal(TABLE.byName.get('read'), 0);
  assert.equal(TABLE.byName.get('connect'), 42);
  assert.equal(TABLE.byName.get('execve'), 59);
  assert.equal(TABLE.byName.get('getppid'), 110);
  assert.equal(TABLE.byName.get('openat'), 257);
  assert.equal(TABLE.byNumber.get(59), 'execve');
  assert.ok(TABLE.byName.size >= 330, `only ${TABLE.byName.size} system calls`);
  assert.equal(TABLE.byName.size, X86_64_SYSCALLS.length);
  assert.equal(TABLE.byNumber.size, TABLE.byName.size);
  for (const [name, nr] of TABLE.byName) assert.equal(TABLE.byNumber.get(nr), name);
  for (const [nr, name] of TABLE.byNumber) assert.equal(TABLE.byName.get(name), nr);
  assert.equal(TABLE.maxNr, Math.max(...TABLE.byNumber.keys()));
  assert.deepEqual(
    X86_64_SYSCALLS.map(([, nr]) => nr),
    [...TABLE.byNumber.keys()].sort((a, b) => a - b),
  );
  for (const name of NAMES) {
    assert.match(name, /^[a-z0-9_]{1,64}$/);
    assert.ok(!name.startsWith('sys_'), name);
  }
  assert.equal(syscallTable(), syscallTable('x64'));
  assert.deepEqual(syscallTable('arm64'), { ok: false, reason: 'syscall names are known for x86_64 only (this is arm64)' });
  assert.deepEqual(syscallTable('ia32'), { ok: false, reason: 'syscall names are known for x86_64 only (this is ia32)' });
});

test('closestSyscalls: typos, completions, prefixes stripped, at most n', () => {
  assert.deepEqual(closestSyscalls('execv'), ['execve', 'execveat']);
  assert.deepEqual(closestSyscalls('sys_execve'), ['execve', 'execveat']);
  assert.deepEqual(closestSyscalls('execve'), ['execve', 'execveat']);
  assert.deepEqual(closestSyscalls('SYS_GETPPID'), ['getppid', 'getpgid', 'getpid']);
  assert.deepEqual(closestSyscalls('xyzzy'), []);
  assert.deepEqual(closestSyscalls(''), []);
  assert.deepEqual(closestSyscalls('execv', 1), ['execve']);
  assert.deepEqual(closestSyscalls('execv', 0), []);
  assert.equal(closestSyscalls('open', 100).length > 3, true);
  assert.equal(closestSyscalls('open').length, 3);
  assert.deepEqual(closestSyscalls('x'.repeat(100_000)), []);
});

test('property: a name with one character changed finds the name; every suggestion is a known name, closest first', () => {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789_';
  const mutated = fc
    .tuple(fc.constantFrom(...NAMES.filter((name) => name.length >= 5)), fc.nat(), fc.constantFrom(...alphabet))
    .map(([name, at, c]) => ({ name, typo: name.slice(0, at % name.length) + c + name.slice((at % name.length) + 1) }))
    .filter(({ name, typo }) => typo !== name && !TABLE.byName.has(typo));
  fc.assert(
    fc.property(mutated, fc.integer({ min: 1, max: 5 }), ({ name, typo }, n) => {
      const closest = closestSyscalls(typo, n);
      assert.ok(closest.length >= 1 && closest.length <= n);
      for (const c of closest) assert.ok(TABLE.byName.has(c), c);
      // Closest first: the first is within one edit, as the name is.
      assert.ok(editDistance(typo, closest[0]!) <= 1, `${typo}: ${closest.join(', ')}`);
      // The name is among them, unless n names (as close, earlier by name) push it out.
      const all = closestSyscalls(typo, NAMES.length);
      assert.ok(all.includes(name), `${typo}: ${all.join(', ')}`);
      if (!closest.includes(name)) {
        assert.equal(closest.length, n);
        for (const c of closest) assert.ok(editDistance(typo, c) <= 1 && c < name, `${c} before ${name}`);
      }
    }),
    { numRuns: 2000 },
  );
});

test('property: documents that pass validation always normalize (and check never throws)', () => {
  const nameArb = fc.oneof(fc.constantFrom(...NAMES), fc.constantFrom('*', 'execv', 'sys_read', 'xyzzy'));
  const documentArb = fc.record(
    {
      syscalls: fc.uniqueArray(nameArb, { minLength: 1, maxLength: 8 }),
      groupBy: fc.uniqueArray(fc.constantFrom(...GROUP_BY_FIELDS), { minLength: 1, maxLength: 4 }),
      cgroup: fc.constantFrom('a', '/sys/fs/cgroup/a/', './x//y', '.', '/', 'a/../b'),
      maxKeys: fc.integer({ min: 1, max: 1048576 }),
    },
    { requiredKeys: ['syscalls'] },
  );
  let valid = 0;
  fc.assert(
    fc.property(documentArb, (spec) => {
      const document = { apiVersion: 'ebpf-policy/v1', kind: 'SyscallCounter', metadata: { name: 'prop' }, spec };
      const { policies, problems } = validate(JSON.stringify(document), 'json', 'prop.json');
      const hasErrors = problems.some((p) => p.includes(': error: '));
      assert.equal(policies.length, hasErrors ? 0 : 1, problems.join('\n'));
      if (hasErrors) return;
      valid++;
      const direct = syscallCounterKind.normalize(document as SyscallCounter, policies[0]!.source);
      assert.deepEqual(direct, policies[0]);
      if (spec.syscalls.includes('*')) assert.equal(direct.syscalls, 'all');
      else assert.deepEqual(direct.syscalls, spec.syscalls.map((name) => TABLE.byName.get(name)!).sort((a, b) => a - b));
      assert.deepEqual(direct.groupBy, GROUP_BY_FIELDS.filter((f) => (spec.groupBy ?? ['syscall']).includes(f)));
    }),
    { numRuns: 500 },
  );
  assert.ok(valid > 50, `only ${valid} valid documents generated`);
  // check on its own, as the pipeline calls it, never throws either.
  assert.deepEqual(syscallCounterKind.check({ apiVersion: 'ebpf-policy/v1', kind: 'SyscallCounter', metadata: { name: 'x' }, spec: { syscalls: ['read'] } }), []);
  assert.equal(syscallCounterKind.normalize({ apiVersion: 'ebpf-policy/v1', kind: 'SyscallCounter', metadata: { name: 'x' }, spec: { syscalls: ['read'] } }, SOURCE).maxKeys, DEFAULT_MAX_KEYS);
});
