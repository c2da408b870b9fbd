/**
 * `ebpf-policy validate`: exit statuses, text and JSON output.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command, CommanderError } from 'commander';
import { registerValidate, runValidate, type ValidateEnvironment } from '../../src/cli/validate.js';
import { FIXTURES_DIR, REPO_ROOT } from './policy-test-helpers.js';

function capture(cwd = FIXTURES_DIR): ValidateEnvironment & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    cwd,
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    out: () => out,
    err: () => err,
  };
}

async function cli(args: string[], env = capture()): Promise<{ code: number; out: string; err: string }> {
  let code = -1;
  const program = new Command('ebpf-policy').exitOverride().configureOutput({ writeErr: (s) => env.stderr.write(s), writeOut: (s) => env.stdout.write(s) });
  registerValidate(program, env, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(['node', 'ebpf-policy', 'validate', ...args]);
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    code = error.exitCode === 0 ? 0 : 2; // what main.ts does with usage errors
  }
  return { code, out: env.out(), err: env.err() };
}

test('valid policies: exit 0, nothing on stdout, a summary on stderr', async () => {
  const r = await cli(['--policies', 'valid', '--insecure-policy-perms']);
  assert.equal(r.code, 0);
  assert.equal(r.out, '');
  assert.equal(r.err, 'ebpf-policy validate: valid: 5 policies in 4 files\n');
});

test('invalid policies: exit 1, one line per problem on stdout', async () => {
  const r = await cli(['--policies', 'invalid/port-range-reversed.yaml', '--policies', 'invalid/unknown-field.yaml', '--insecure-policy-perms']);
  assert.equal(r.code, 1);
  assert.equal(
    r.out,
    'invalid/port-range-reversed.yaml:7:23: error: spec.ports[2]: "9000-8000" is not a valid port range (start > end)\n' +
      'invalid/unknown-field.yaml:8:3: error: spec.foo: unknown field "foo"\n',
  );
  assert.equal(r.err, 'ebpf-policy validate: invalid: 2 errors (2 documents in 2 files)\n');
});

test('warnings alone keep exit 0', async () => {
  const r = await cli(['--policies', 'warnings/redundant-entries.yaml', '--insecure-policy-perms']);
  assert.equal(r.code, 0);
  assert.equal(r.out.split('\n').filter(Boolean).length, 6);
  assert.match(r.err, /valid: 1 policy in 1 file, 6 warnings/);
});

test('JSON output: stable documented shape', async () => {
  const r = await cli(['--policies', 'invalid/port-range-reversed.yaml', '--policies', 'valid/minimal.yaml', '--output', 'json', '--insecure-policy-perms']);
  assert.equal(r.code, 1);
  assert.equal(r.err, '');
  const report = JSON.parse(r.out) as Record<string, unknown>;
  assert.deepEqual(Object.keys(report), ['formatVersion', 'ok', 'summary', 'files', 'problems', 'policies']);
  assert.deepEqual(report, {
    formatVersion: 1,
    ok: false,
    summary: { files: 2, documents: 2, policies: 1, errors: 1, warnings: 0 },
    files: ['invalid/port-range-reversed.yaml', 'valid/minimal.yaml'],
    problems: [
      {
        severity: 'error',
        file: 'invalid/port-range-reversed.yaml',
        line: 7,
        column: 23,
        path: 'spec.ports[2]',
        message: '"9000-8000" is not a valid port range (start > end)',
      },
    ],
    policies: [
      {
        kind: 'PortSteering',
        name: 'minimal',
        labels: {},
        source: { file: 'valid/minimal.yaml', documentIndex: 0, line: 1, column: 1 },
        netns: null,
        protocol: 'tcp',
        ports: [{ start: 10080, end: 10080 }],
        prefixes: ['0.0.0.0/0', '::/0'],
        target: { type: 'listen', family: 4, address: '127.0.0.1', port: 8080 },
      },
    ],
  });
});

test('usage errors exit 2: unknown --output, a path given explicitly that does not exist', async () => {
  const badOutput = await cli(['--output', 'xml']);
  assert.equal(badOutput.code, 2);
  assert.match(badOutput.err, /argument 'xml' is invalid\. Allowed choices are text, json/);
  const missing = await cli(['--policies', 'valid', '--policies', 'no/such/dir']);
  assert.equal(missing.code, 2);
  assert.equal(missing.out, '');
  assert.equal(missing.err, 'ebpf-policy validate: error: policy path no/such/dir does not exist\n');
  const unknownOption = await cli(['--frobnicate']);
  assert.equal(unknownOption.code, 2);
});

test('permissions are checked unless --insecure-policy-perms', () => {
  const env = capture(REPO_ROOT);
  const refuseAll: ValidateEnvironment = { ...env, trustCheck: (path) => `bad ownership or modes for file ${path}: test` };
  assert.equal(runValidate({ policies: ['policies'], output: 'text', insecurePolicyPerms: false }, refuseAll), 1);
  assert.match(env.out(), /^policies: error: bad ownership or modes for file .*\/policies: test\n$/);
  assert.equal(runValidate({ policies: ['policies'], output: 'text', insecurePolicyPerms: true }, refuseAll), 0);
});
