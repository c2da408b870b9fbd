/**
 * The GitOps example (examples/gitops/): its CI workflow's validate job, run
 * as GitHub Actions runs it, passes on the example's policies; every
 * ebpf-policy command line in the workflow, the node's systemd units and the
 * example's README uses only subcommands and flags the CLI knows. (The plan
 * job needs a kernel: test/kernel/gitops-example.test.ts.)
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import {
  CLI,
  EXAMPLE_DIR,
  ExampleCopy,
  Shim,
  WORKFLOW,
  ebpfPolicyCommands,
  ebpfPolicySteps,
  execStarts,
  readWorkflow,
  runStep,
  unknownArgs,
} from './gitops-example-helpers.js';

test('the workflow validates on every push and pull request and plans on a privileged self-hosted runner', () => {
  const wf = readWorkflow();
  assert.ok('push' in wf.on && 'pull_request' in wf.on, 'runs on push and pull_request');
  assert.equal(wf.defaults?.run?.shell, 'bash', 'steps run with GitHub\'s "bash --noprofile --norc -eo pipefail", as the tests do');

  const validate = ebpfPolicySteps(wf, 'validate').flatMap((s) => ebpfPolicyCommands(s.run!));
  assert.deepEqual(validate, [['validate', '--policies', 'policies']]);
  assert.equal(wf.jobs.validate!['runs-on'], 'ubuntu-latest', 'validate needs no kernel and no root');

  const plan = ebpfPolicySteps(wf, 'plan').flatMap((s) => ebpfPolicyCommands(s.run!));
  assert.deepEqual(plan, [['plan', '--policies', 'policies', '--insecure-policy-perms', '--detailed-exitcode']]);
  assert.ok([wf.jobs.plan!['runs-on']].flat().includes('self-hosted'), 'plan runs on a self-hosted runner');
  assert.equal(wf.jobs.plan!.needs, 'validate');
  assert.ok(ebpfPolicySteps(wf, 'plan').every((s) => /^\s*sudo ebpf-policy /m.test(s.run!)), 'plan runs as root');

  for (const args of [...validate, ...plan]) assert.deepEqual(unknownArgs(args), [], `ebpf-policy ${args.join(' ')}`);

  // `ebpf-policy test` (issue 15) is there, commented out, and says so.
  const text = readFileSync(join(EXAMPLE_DIR, WORKFLOW), 'utf8');
  assert.match(text, /^\s*#\s+run: ebpf-policy test /m);
  assert.match(text, /issue 15/);
  assert.ok(!Object.values(wf.jobs).some((j) => j.steps.some((s) => /ebpf-policy test/.test(s.run ?? ''))), 'no active test step yet');
});

test('the validate job, run as GitHub Actions runs it, passes on a private copy of the example', () => {
  const wf = readWorkflow();
  using copy = new ExampleCopy();
  using shim = new Shim();
  const steps = ebpfPolicySteps(wf, 'validate');
  assert.ok(steps.length > 0);
  for (const step of steps) {
    const r = runStep(wf, 'validate', step, copy.dir, shim);
    assert.equal(r.status, 0, `step "${step.name}": ${r.stdout}${r.stderr}`);
    assert.equal(r.stdout, '', 'no problem, not even a warning');
    assert.match(r.stderr, /^ebpf-policy validate: valid: 4 policies in 4 files\n$/);
  }
  assert.deepEqual(shim.calls(), [{ code: 0, args: 'validate --policies policies' }]);
});

test('the plan step passes on exit 0 ("no changes") and 2 ("changes pending"), and fails on 1 or any other status', () => {
  const wf = readWorkflow();
  const [step, ...more] = ebpfPolicySteps(wf, 'plan');
  assert.deepEqual(more, []);
  using copy = new ExampleCopy();
  for (const [code, status, output] of [
    [0, 0, /^No changes: /m],
    [2, 0, /^::notice title=ebpf-policy plan::changes pending/m],
    [1, 1, /^::error title=ebpf-policy plan::plan failed \(exit 1\)/m],
    [127, 1, /^::error title=ebpf-policy plan::plan failed \(exit 127\)/m],
  ] as const) {
    using shim = new Shim({ stubExit: code });
    const r = runStep(wf, 'plan', step!, copy.dir, shim);
    assert.equal(r.status, status, `plan exit ${code}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, output);
    assert.deepEqual(shim.calls(), [{ code, args: 'plan --policies policies --insecure-policy-perms --detailed-exitcode' }]);
  }
});

test('validate without --insecure-policy-perms: a checkout owned by the user running it (root on a node, the runner on CI) passes; another owner or a group-writable file is refused', () => {
  // The same command the workflow runs, minus the flag the workflow documents.
  const [args] = ebpfPolicySteps(readWorkflow(), 'validate').flatMap((s) => ebpfPolicyCommands(s.run!));
  const strict = args!.filter((a) => a !== '--insecure-policy-perms');
  using copy = new ExampleCopy();
  const validate = () => runBounded(process.execPath, [CLI, ...strict], { cwd: copy.dir });
  const file = join(copy.dir, 'policies', 'base', 'exec-counter.yaml');

  if (process.getuid?.() === 0) {
    // Our copy is root's, 0700/0600, under a sticky /tmp: what a node's root-owned checkout looks like.
    const ok = validate();
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    chownSync(file, 65534, 65534);
    const other = validate();
    assert.equal(other.status, 1);
    assert.match(other.stdout, /exec-counter\.yaml: error: bad ownership or modes for file .*: owned by uid 65534, not root/);
    chownSync(file, 0, 0);
    // A checkout made with umask 002 (group-writable files) is refused too; the node's unit pulls with UMask=0022.
    chmodSync(file, 0o620);
    const group = validate();
    assert.equal(group.status, 1);
    assert.match(group.stdout, /exec-counter\.yaml: error: bad ownership or modes for file .*mode 0620 is writable by group/);
  } else {
    // A CI runner's user: its own checkout passes; a group-writable file does not.
    const ok = validate();
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    chmodSync(file, 0o620);
    const group = validate();
    assert.equal(group.status, 1);
    assert.match(group.stdout, /exec-counter\.yaml: error: bad ownership or modes for file .*mode 0620 is writable by group/);
  }
});

test('the node units pull with git and reconcile --once with flags the CLI knows, without --insecure-policy-perms', () => {
  const service = join(EXAMPLE_DIR, 'node', 'ebpf-policy-pull.service');
  const [pull, reconcile, ...more] = execStarts(service);
  assert.deepEqual(more, []);
  assert.deepEqual(pull, ['/usr/bin/git', '-C', '/srv/policy-repo', 'pull', '--ff-only', '--quiet']);
  assert.match(reconcile![0]!, /\/ebpf-policy$/);
  const args = reconcile!.slice(1);
  assert.deepEqual(unknownArgs(args), [], `ExecStart=${reconcile!.join(' ')}`);
  assert.deepEqual(args, ['reconcile', '--once', '--policies', '/srv/policy-repo/policies']);

  const unit = readFileSync(service, 'utf8');
  assert.match(unit, /^Type=oneshot$/m, 'several ExecStart lines, run in order, each must succeed');
  assert.match(unit, /^User=root$/m);
  assert.match(unit, /^UMask=0022$/m, 'pulled files are not group-writable');
  const timer = readFileSync(join(EXAMPLE_DIR, 'node', 'ebpf-policy-pull.timer'), 'utf8');
  assert.match(timer, /^Unit=ebpf-policy-pull\.service$/m);
  assert.match(timer, /^OnUnitActiveSec=/m);
  assert.match(timer, /^WantedBy=timers\.target$/m);
});

test('every ebpf-policy command line in the example README uses subcommands and flags the CLI knows', () => {
  const readme = readFileSync(join(EXAMPLE_DIR, 'README.md'), 'utf8');
  // Fenced blocks, also indented ones (in list items); unit lines shown as comments of a shell block count too.
  const blocks = [...readme.matchAll(/^ *```[a-z]*\n([\s\S]*?)^ *```$/gm)].map((m) => m[1]!);
  const commands = blocks
    .flatMap((b) => b.replace(/\\\n/g, ' ').split('\n'))
    .map((l) => l.trim().replace(/^#\s*(?=ExecStart=)/, ''))
    .map((l) => /^(?:sudo\s+|ExecStart=)?(?:\/\S+\/)?ebpf-policy\s+(.*)$/.exec(l)?.[1])
    .filter((c): c is string => c !== undefined)
    .map((c) => c.replace(/\s+#.*$/, '').split(/\s+(?:\|\||&&|;|\|)\s+/)[0]!.trim().split(/\s+/));
  assert.ok(commands.length >= 4, `found ${commands.length} commands`);
  for (const args of commands) assert.deepEqual(unknownArgs(args), [], `ebpf-policy ${args.join(' ')}`);
});
