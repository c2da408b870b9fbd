/**
 * StrictModes-like permission checks: policy files and directories must be
 * owned by root or by the invoking user and not writable by group or others,
 * unless --insecure-policy-perms. The owner rules are tested through the
 * injectable uid and stat, so they need no root; only the chown case does.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, realpathSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadPolicies } from '../../src/manager.js';
import { createStrictModesCheck, formatMode, type OwnershipStat } from '../../src/policy/permissions.js';
import { formatProblem } from '../../src/policy/problem.js';
import { portSteeringYaml, withTempDir, writeFiles } from './policy-test-helpers.js';

const uid = process.geteuid?.() ?? 0;
const isRoot = uid === 0;
/** The production check: root and the user running the tests are trusted. */
const trustCheck = () => createStrictModesCheck();
/** "root", or "root or you (uid N)" when the tests do not run as root. */
const owners = isRoot ? 'root' : `root or you (uid ${uid})`;

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
      `p/a.yaml: error: bad ownership or modes for file ${real}/p/a.yaml: mode 0664 is writable by group; refusing to load policies from it: make it owned by ${owners} and not writable by group or others, or pass --insecure-policy-perms`,
      `p/b.yaml: error: bad ownership or modes for file ${real}/p/b.yaml: mode 0646 is writable by others; refusing to load policies from it: make it owned by ${owners} and not writable by group or others, or pass --insecure-policy-perms`,
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
    uid: 0,
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

/** A check over a fake file system, for the user `uid`. */
function fakeCheck(uid: number, stats: Record<string, OwnershipStat>) {
  return createStrictModesCheck({
    uid,
    stat: (path) => {
      const st = stats[path];
      if (st === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return st;
    },
  });
}

/** A CI checkout: /home/ci (and everything below) owned by uid 1001; `policies/web.yaml` gets `fileMode`. */
function checkout(fileMode = 0o100644): Record<string, OwnershipStat> {
  return {
    '/': { mode: 0o40755, uid: 0 },
    '/home': { mode: 0o40755, uid: 0 },
    '/home/ci': { mode: 0o40750, uid: 1001 },
    '/home/ci/repo': { mode: 0o40755, uid: 1001 },
    '/home/ci/repo/policies': { mode: 0o40755, uid: 1001 },
    '/home/ci/repo/policies/web.yaml': { mode: fileMode, uid: 1001 },
  };
}

test('files and directories owned by the invoking user are accepted for that user (a CI checkout)', () => {
  const check = fakeCheck(1001, checkout());
  assert.equal(check('/home/ci/repo/policies', 'directory'), undefined);
  assert.equal(check('/home/ci/repo/policies/web.yaml', 'file'), undefined);
});

test('the same user-owned files are refused for root: the daemon as root still requires root-owned files', () => {
  const check = fakeCheck(0, checkout());
  assert.equal(
    check('/home/ci/repo/policies', 'directory'),
    'bad ownership or modes for directory /home/ci/repo/policies: owned by uid 1001, not root; refusing to load policies from it: make it owned by root and not writable by group or others, or pass --insecure-policy-perms',
  );
  assert.match(check('/home/ci/repo/policies/web.yaml', 'file') ?? '', /^bad ownership or modes for file \/home\/ci\/repo\/policies\/web\.yaml: owned by uid 1001, not root;/);
});

test('files of another ordinary user are refused, naming both trusted owners', () => {
  const check = fakeCheck(1000, checkout());
  assert.equal(
    check('/home/ci/repo/policies', 'directory'),
    'bad ownership or modes for directory /home/ci/repo/policies: owned by uid 1001, not root or you (uid 1000); refusing to load policies from it: make it owned by root or you (uid 1000) and not writable by group or others, or pass --insecure-policy-perms',
  );
});

test('a parent directory owned by another user is refused even when the policies are yours', () => {
  const stats = { ...checkout(), '/home/ci': { mode: 0o40755, uid: 1002 } };
  assert.match(
    fakeCheck(1001, stats)('/home/ci/repo/policies', 'directory') ?? '',
    /^bad ownership or modes for directory \/home\/ci: owned by uid 1002, not root or you \(uid 1001\) \(a parent of \/home\/ci\/repo\/policies\); refusing/,
  );
});

test('a group-writable file is refused for its owner and for root alike', () => {
  const stats = checkout(0o100664);
  assert.match(
    fakeCheck(1001, stats)('/home/ci/repo/policies/web.yaml', 'file') ?? '',
    /^bad ownership or modes for file \/home\/ci\/repo\/policies\/web\.yaml: mode 0664 is writable by group; refusing/,
  );
  assert.match(
    fakeCheck(0, stats)('/home/ci/repo/policies/web.yaml', 'file') ?? '',
    /^bad ownership or modes for file \/home\/ci\/repo\/policies\/web\.yaml: owned by uid 1001, not root, mode 0664 is writable by group; refusing/,
  );
  const rootOwned = { ...stats, '/home/ci/repo/policies/web.yaml': { mode: 0o100664, uid: 0 } };
  assert.match(fakeCheck(0, rootOwned)('/home/ci/repo/policies/web.yaml', 'file') ?? '', /: mode 0664 is writable by group; refusing/);
  // A group-writable directory too, which sshd's StrictModes also refuses.
  const groupDir = { ...checkout(), '/home/ci/repo/policies': { mode: 0o40775, uid: 1001 } };
  assert.match(fakeCheck(1001, groupDir)('/home/ci/repo/policies', 'directory') ?? '', /: mode 0775 is writable by group; refusing/);
});

test('by default the invoking user is the effective uid', () => {
  const euid = process.geteuid?.() ?? 0;
  const check = createStrictModesCheck({ stat: () => ({ mode: 0o40755, uid: euid }) });
  assert.equal(check('/x/y', 'directory'), undefined);
  const other = euid === 0 ? 4242 : euid + 1;
  const refused = createStrictModesCheck({ stat: () => ({ mode: 0o40755, uid: other }) })('/x/y', 'directory');
  assert.match(refused ?? '', new RegExp(`owned by uid ${other}, not ${euid === 0 ? 'root' : `root or you \\(uid ${euid}\\)`};`));
});

test('a policy file not owned by root is refused (needs root to chown)', { skip: !isRoot && 'not running as root' }, () => {
  withTempDir((dir) => {
    writeFiles(dir, { 'p/a.yaml': portSteeringYaml('a') });
    chownSync(join(dir, 'p/a.yaml'), 65534, 65534);
    const result = loadPolicies({ paths: ['p'], cwd: dir }); // the production check, as root: root-owned only
    assert.equal(result.problems.length, 1);
    assert.match(formatProblem(result.problems[0]!), /^p\/a\.yaml: error: bad ownership or modes for file .*\/p\/a\.yaml: owned by uid 65534, not root; refusing/);
    chownSync(join(dir, 'p/a.yaml'), 0, 0);
    assert.deepEqual(loadPolicies({ paths: ['p'], cwd: dir }).problems, []);
  });
});
