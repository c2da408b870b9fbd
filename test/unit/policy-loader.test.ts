/**
 * Loader rules: file types, several documents per file, sorted recursive
 * order, ignored entries, Kubernetes ConfigMap mounts, symlinks, missing paths.
 */
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { discoverPolicyFiles, isIgnoredEntry } from '../../src/policy/discover.js';
import { loadPolicies } from '../../src/manager.js';
import { formatProblem } from '../../src/policy/problem.js';
import { portSteeringYaml, withTempDir, writeFiles } from './policy-test-helpers.js';

/** A policy with a unique name and port, so that policies do not conflict. */
function policy(name: string, port: number): string {
  return portSteeringYaml(name, `protocol: tcp\n  ports: [${port}]\n  target:\n    listen: "127.0.0.1:8080"`);
}

function load(dir: string, paths: string[], extra: { allowMissing?: boolean } = {}) {
  return loadPolicies({ paths, cwd: dir, insecurePermissions: true, ...extra });
}

test('several YAML documents per file, separated by ---, in order; empty documents skipped', () => {
  withTempDir((dir) => {
    writeFiles(dir, { 'multi.yaml': `---\n${policy('one', 1001)}---\n# just a comment\n---\n${policy('two', 1002)}---\n` });
    const result = load(dir, ['multi.yaml']);
    assert.deepEqual(result.problems, []);
    assert.deepEqual(
      result.policies.map((p) => [p.name, p.source.documentIndex, p.source.line]),
      [
        ['one', 0, 2],
        ['two', 2, 14],
      ],
    );
    assert.equal(result.documentCount, 2);
  });
});

test('a broken document does not hide the problems of the other documents or files', () => {
  withTempDir((dir) => {
    writeFiles(dir, {
      'a.yaml': `${policy('good', 1001)}---\nkind: [unclosed\n---\n${portSteeringYaml('bad', 'protocol: icmp\n  ports: [1]\n  target: {listen: "127.0.0.1:1"}')}`,
      'b.json': '{"kind": ',
      'c.yaml': portSteeringYaml('also-bad', 'protocol: tcp\n  ports: [0]\n  target: {listen: "127.0.0.1:1"}'),
    });
    const result = load(dir, ['.']);
    const lines = result.problems.map(formatProblem);
    assert.equal(lines.length, 4, lines.join('\n'));
    assert.equal(lines[0], 'a.yaml:12:1: error: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]');
    assert.match(lines[1] as string, /^a\.yaml:18:13: error: spec\.protocol: "icmp" is not one of: tcp, udp$/);
    assert.match(lines[2] as string, /^b\.json:1:10: error: JSON syntax error: expected a value, found end of file$/);
    assert.match(lines[3] as string, /^c\.yaml:7:11: error: spec\.ports\[0\]: 0 is out of range 1\.\.65535$/);
    assert.deepEqual(result.policies.map((p) => p.name), ['good']);
  });
});

test('directories are read recursively in sorted order, only .yaml/.yml/.json (any case)', () => {
  withTempDir((dir) => {
    writeFiles(dir, {
      'p/b.yaml': policy('b', 2),
      'p/a.yml': policy('a', 1),
      'p/sub/c.json': JSON.stringify({
        apiVersion: 'ebpf-policy/v1',
        kind: 'PortSteering',
        metadata: { name: 'c' },
        spec: { protocol: 'tcp', ports: [3], target: { listen: '127.0.0.1:8080' } },
      }),
      'p/A-upper.YAML': policy('upper', 4),
      'p/aa/d.yaml': policy('d', 5),
      'p/README.md': '# not a policy',
      'p/notes.txt': 'kind: nope',
    });
    const result = load(dir, ['p']);
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.files, ['p/A-upper.YAML', 'p/a.yml', 'p/aa/d.yaml', 'p/b.yaml', 'p/sub/c.json']);
    assert.deepEqual(result.policies.map((p) => p.name), ['upper', 'a', 'd', 'b', 'c']);
  });
});

test('hidden files and directories, backups and editor leftovers are ignored', () => {
  for (const name of ['.hidden.yaml', '.#lock.yaml', '..data', '..2024_01_01_00_00_00.1', 'x.yaml~', 'x.yaml.swp', '.x.yaml.swp', 'x.swo', '#x.yaml#']) {
    assert.ok(isIgnoredEntry(name), name);
  }
  for (const name of ['x.yaml', 'x.json', 'a~b.yaml', 'swp.yaml']) assert.ok(!isIgnoredEntry(name), name);
  withTempDir((dir) => {
    writeFiles(dir, {
      'p/ok.yaml': policy('ok', 1),
      'p/.hidden.yaml': 'garbage: [',
      'p/.git/config.yaml': 'garbage: [',
      'p/ok.yaml~': 'garbage: [',
      'p/.ok.yaml.swp': 'garbage: [',
      'p/ok.yaml.swp': 'garbage: [',
      'p/#ok.yaml#': 'garbage: [',
    });
    const result = load(dir, ['p']);
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.files, ['p/ok.yaml']);
  });
});

test('a file named explicitly is read whatever its name; as YAML unless it ends in .json', () => {
  withTempDir((dir) => {
    writeFiles(dir, { 'policy.txt': policy('txt', 1), '.hidden': policy('hidden', 2) });
    const result = load(dir, ['policy.txt', '.hidden']);
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.policies.map((p) => p.name), ['txt', 'hidden']);
  });
});

/**
 * Builds kubelet's ConfigMap volume layout:
 *   ..2024_01_01_00_00_00.123/{a.yaml,b.yaml}
 *   ..data -> ..2024_01_01_00_00_00.123
 *   a.yaml -> ..data/a.yaml, b.yaml -> ..data/b.yaml
 */
function makeConfigMapMount(mount: string, files: Record<string, string>, stamp = '..2024_01_01_00_00_00.123'): void {
  mkdirSync(join(mount, stamp), { recursive: true, mode: 0o755 });
  writeFiles(join(mount, stamp), files);
  symlinkSync(stamp, join(mount, '..data_tmp'));
  renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
  for (const name of Object.keys(files)) symlinkSync(join('..data', name), join(mount, name));
}

test('a Kubernetes ConfigMap mount is read once, through its top-level symlinks', () => {
  withTempDir((dir) => {
    const mount = join(dir, 'etc', 'ebpf-policies');
    makeConfigMapMount(mount, { 'a.yaml': policy('cm-a', 1), 'b.yaml': policy('cm-b', 2) });
    const result = loadPolicies({ paths: [mount], insecurePermissions: true });
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.files, [join(mount, 'a.yaml'), join(mount, 'b.yaml')]);
    assert.deepEqual(result.policies.map((p) => p.name), ['cm-a', 'cm-b']);
    assert.deepEqual(result.policies.map((p) => p.source.file), [join(mount, 'a.yaml'), join(mount, 'b.yaml')]);
  });
});

test('a ConfigMap update (new timestamped dir, ..data swapped) is picked up on the next load', () => {
  withTempDir((dir) => {
    makeConfigMapMount(dir, { 'a.yaml': policy('old', 1) }, '..2024_01_01_00_00_00.1');
    assert.deepEqual(load(dir, ['.']).policies.map((p) => p.name), ['old']);
    mkdirSync(join(dir, '..2024_01_02_00_00_00.2'), { mode: 0o755 });
    writeFiles(join(dir, '..2024_01_02_00_00_00.2'), { 'a.yaml': policy('new', 1) });
    symlinkSync('..2024_01_02_00_00_00.2', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    assert.deepEqual(load(dir, ['.']).policies.map((p) => p.name), ['new']);
  });
});

test('a file reached twice (same path twice, or via a symlink) is read once', () => {
  withTempDir((dir) => {
    writeFiles(dir, { 'p/a.yaml': policy('a', 1) });
    symlinkSync('a.yaml', join(dir, 'p', 'link.yaml'));
    const result = load(dir, ['p', 'p/a.yaml', 'p/link.yaml']);
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.files, ['p/a.yaml']);
  });
});

test('symlinked directories are followed; symlink loops and dangling links do not hang or fail', () => {
  withTempDir((dir) => {
    writeFiles(dir, { 'real/a.yaml': policy('a', 1) });
    mkdirSync(join(dir, 'p'), { mode: 0o755 });
    symlinkSync('../real', join(dir, 'p', 'linked'));
    symlinkSync('..', join(dir, 'p', 'loop'));
    symlinkSync('missing.yaml', join(dir, 'p', 'dangling.yaml'));
    const result = load(dir, ['p']);
    assert.deepEqual(result.policies.map((p) => p.name), ['a']);
    assert.deepEqual(result.problems.map(formatProblem), [
      'p/dangling.yaml: warning: skipped: no such file or directory (a dangling symbolic link?)',
    ]);
    assert.equal(result.ok, true);
  });
});

test('a missing path is an error, or a warning for the default directory', () => {
  withTempDir((dir) => {
    const explicit = load(dir, ['nope']);
    assert.deepEqual(explicit.problems.map(formatProblem), ['nope: error: cannot read: no such file or directory']);
    assert.equal(explicit.ok, false);
    const lenient = load(dir, ['nope'], { allowMissing: true });
    assert.deepEqual(lenient.problems.map(formatProblem), ['nope: warning: does not exist; no policies loaded from it']);
    assert.equal(lenient.ok, true);
  });
});

test('an empty file is a warning; a file too large is an error', () => {
  withTempDir((dir) => {
    writeFiles(dir, { 'empty.yaml': '# nothing yet\n' });
    writeFileSync(join(dir, 'huge.yaml'), Buffer.alloc(4 * 1024 * 1024 + 1, 0x20));
    const result = load(dir, ['empty.yaml', 'huge.yaml']);
    assert.deepEqual(result.problems.map(formatProblem), [
      'empty.yaml: warning: contains no policy documents',
      'huge.yaml: error: file is too large: 4194305 bytes, at most 4194304 allowed',
    ]);
  });
});

test('discoverPolicyFiles lists files without reading them', () => {
  withTempDir((dir) => {
    writeFiles(dir, { 'z.yaml': '', 'a/b.json': '' });
    const found = discoverPolicyFiles(['.'], { cwd: dir });
    assert.deepEqual(found.files.map((f) => [f.path, f.syntax]), [
      ['a/b.json', 'json'],
      ['z.yaml', 'yaml'],
    ]);
    assert.deepEqual(found.problems, []);
  });
});
