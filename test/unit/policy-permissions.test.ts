/**
 * StrictModes-like permission checks: policy files and directories must be
 * owned by root and not writable by group or others, unless
 * --insecure-policy-perms. Only the "owned by root" case needs to run as root.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, realpathSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadPolicies } from '../../src/manager.js';
import { createStrictModesCheck, formatMode, type OwnershipStat } from '../../src/policy/permissions.js';
import { formatProblem } from '../../src/policy/problem.js';
import { portSteeringYaml, withTempDir, writeFiles } from './policy-test-helpers.js';

const uid = process.getuid?.() ?? 0;
const isRoot = uid === 0;
/** Trust root and the user running the tests, so that mode checks work without root. */
const trustCheck = () => createStrictModesCheck({ trustedUids: [0, uid] });

function load(dir: string, paths: string[], options: { insecure?: boolean; check?: ReturnType<typeof trustCheck> } = {}) {
  return loadPolicies({ paths, cwd: dir, insecurePermissions: options.insecure ?? false, trustCheck: options.check ?? trustCheck() });
}

test('formatMode prints modes like chmod', () => {
  assert.equal(formatMode(0o100644), '0644');
  assert.equal(formatMode(0o41777), '01777');
  assert.equal(formatMode(0o600), '0600');
});

test('root-owned (or trusted), 0644 files in 0755 directories are accepted', () => {
  withTempDir((dir) => {
    writeFiles(dir, { 'p/a.yaml': portSteeringYaml('a') });
    const result = load(dir, ['p']);
    assert.deepEqual(result.problems, []);
    assert.equal(result.policies.length, 1);
  });
});

test('a group- or world-writable policy file is refused, naming the path and the mode', () => {
  withTempDir((dir) => {
    writeFiles(dir, { 'p/a.yaml': portSteeringYaml('a'), 'p/b.yaml': portSteeringYaml('b', 'protocol: udp\n  ports: [1]\n  target: {listen: "127.0.0.1:1"}') });
    chmodSync(join(dir, 'p/a.yaml'), 0o664);
    chmodSync(join(dir, 'p/b.yaml'), 0o646);
    const real = realpathSync(dir);
    const result = load(dir, ['p']);
    assert.deepEqual(result.problems.map(formatProblem), [
      `p/a.yaml: error: bad ownership or modes for file ${real}/p/a.yaml: mode 0664 is writable by group; refusing to load policies from it: make it owned by root and not writable by group or others, or pass --insecure-policy-perms`,
      `p/b.yaml: error: bad ownership or modes for file ${real}/p/b.yaml: mode 0646 is writable by others; refusing to load policies from it: make it owned by root and not writable by group or others, or pass --insecure-policy-perms`,
    ]);
    assert.deepEqual(result.policies, []);
    assert.equal(result.ok, false);
  });
});

test('a writable policy directory is refused and not read; the other paths still are', () => {
  withTempDir((dir) => {
    writeFiles(dir, { 'bad/a.yaml': portSteeringYaml('a'), 'good/b.yaml': portSteeringYaml('b', 'protocol: udp\n  ports: [1]\n  target: {listen: "127.0.0.1:1"}') });
    chmodSync(join(dir, 'bad'), 0o777);
    const result = load(dir, ['bad', 'good']);
    assert.equal(result.problems.length, 1);
    assert.match(formatProblem(result.problems[0]!), /^bad: error: bad ownership or modes for directory .*\/bad: mode 0777 is writable by group and others; refusing/);
    assert.deepEqual(result.files, ['good/b.yaml']);
    assert.deepEqual(result.policies.map((p) => p.name), ['b']);
  });
});

test('a writable parent directory is refused, unless it is sticky like /tmp', () => {
  withTempDir((dir) => {
    writeFiles(dir, { 'parent/p/a.yaml': portSteeringYaml('a') });
    chmodSync(join(dir, 'parent'), 0o777);
    const refused = load(dir, ['parent/p']);
    assert.equal(refused.problems.length, 1);
    assert.match(refused.problems[0]!.message, /^bad ownership or modes for directory .*\/parent: mode 0777 is writable by group and others \(a parent of .*\/parent\/p\)/);
    chmodSync(join(dir, 'parent'), 0o1777);
    assert.deepEqual(load(dir, ['parent/p']).problems, []);
  });
});

test('symlinked files are checked where they point to', () => {
  withTempDir((dir) => {
    writeFiles(dir, { 'elsewhere/a.yaml': portSteeringYaml('a'), 'p/.keep': '' });
    chmodSync(join(dir, 'elsewhere/a.yaml'), 0o666);
    symlinkSync('../elsewhere/a.yaml', join(dir, 'p', 'a.yaml'));
    const result = load(dir, ['p']);
    assert.equal(result.problems.length, 1);
    assert.match(result.problems[0]!.message, /^bad ownership or modes for file .*\/elsewhere\/a\.yaml: mode 0666/);
  });
});

test('--insecure-policy-perms skips the checks', () => {
  withTempDir((dir) => {
    writeFiles(dir, { 'p/a.yaml': portSteeringYaml('a') });
    chmodSync(join(dir, 'p'), 0o777);
    chmodSync(join(dir, 'p/a.yaml'), 0o666);
    assert.equal(load(dir, ['p']).ok, false);
    const result = load(dir, ['p'], { insecure: true });
    assert.deepEqual(result.problems, []);
    assert.equal(result.policies.length, 1);
  });
});

test('the check is injectable: ownership decided by the stat function', () => {
  const stats: Record<string, OwnershipStat> = {
    '/': { mode: 0o40755, uid: 0 },
    '/etc': { mode: 0o40755, uid: 0 },
    '/etc/p': { mode: 0o40755, uid: 0 },
    '/etc/p/a.yaml': { mode: 0o100644, uid: 1000 },
    '/etc/p/b.yaml': { mode: 0o100600, uid: 0 },
  };
  const check = createStrictModesCheck({
    stat: (path) => {
      const st = stats[path];
      if (st === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return st;
    },
  });
  assert.equal(check('/etc/p', 'directory'), undefined);
  assert.equal(check('/etc/p/b.yaml', 'file'), undefined);
  assert.match(check('/etc/p/a.yaml', 'file') ?? '', /^bad ownership or modes for file \/etc\/p\/a\.yaml: owned by uid 1000, not root;/);
  assert.match(check('/etc/p/missing.yaml', 'file') ?? '', /cannot stat: ENOENT/);
});

test('a policy file not owned by root is refused (needs root to chown)', { skip: !isRoot && 'not running as root' }, () => {
  withTempDir((dir) => {
    writeFiles(dir, { 'p/a.yaml': portSteeringYaml('a') });
    chownSync(join(dir, 'p/a.yaml'), 65534, 65534);
    const result = loadPolicies({ paths: ['p'], cwd: dir }); // the production check: root only
    assert.equal(result.problems.length, 1);
    assert.match(formatProblem(result.problems[0]!), /^p\/a\.yaml: error: bad ownership or modes for file .*\/p\/a\.yaml: owned by uid 65534, not root; refusing/);
    chownSync(join(dir, 'p/a.yaml'), 0, 0);
    assert.deepEqual(loadPolicies({ paths: ['p'], cwd: dir }).problems, []);
  });
});
