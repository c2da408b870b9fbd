/**
 * The GitOps example's plan job (examples/gitops/.github/workflows/policies.yml),
 * run as GitHub Actions runs it on its privileged runner, against a throwaway
 * pin root: on this machine, which has neither the example's app.service
 * cgroup nor its proxy on 127.0.0.1:8080, `plan --detailed-exitcode` exits 0
 * or 2 (never 1), the step passes, no policy is Failed and nothing is pinned.
 * The example names only targets whose absence makes a policy Degraded (see
 * examples/gitops/README.md), so this holds on any machine.
 */
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { listPins, removePinTree } from '../../src/bpf/index.js';
import { DEFAULT_REPORT_DIR, lastPassFile } from '../../src/reconciler/last-pass.js';
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import { kernelTest } from './harness.js';
import { CLI, ExampleCopy, Shim, ebpfPolicyCommands, ebpfPolicySteps, readWorkflow, runStep } from '../unit/gitops-example-helpers.js';

/** Degraded reasons the example's policies may have on a machine without their targets. */
const MISSING_TARGET = new Set(['CgroupNotFound', 'NoInterface', 'TargetNotFound', 'UnsupportedInterface', 'XdpShared']);

kernelTest('the GitOps example: the workflow\'s plan step exits 0 or 2 on a machine without the example\'s targets, and changes nothing', () => {
  const root = `/sys/fs/bpf/ebpf-policy-test-gitops-${process.pid}`;
  const wf = readWorkflow();
  using copy = new ExampleCopy();
  using shim = new Shim({ bpffsRoot: root });
  try {
    const steps = ebpfPolicySteps(wf, 'plan');
    assert.equal(steps.length, 1);
    const r = runStep(wf, 'plan', steps[0]!, copy.dir, shim);
    const [call, ...more] = shim.calls();
    assert.deepEqual(more, []);
    assert.equal(call!.args, 'plan --policies policies --insecure-policy-perms --detailed-exitcode');
    assert.ok(call!.code === 0 || call!.code === 2, `plan exited ${call!.code}:\n${r.stdout}${r.stderr}`);
    assert.equal(r.status, 0, `the step passes on exit ${call!.code}:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, call!.code === 2 ? /^::notice title=ebpf-policy plan::changes pending/m : /^No changes: /m);

    // Why: every problem is a Degraded missing target, none Failed. Same command, JSON output.
    const [args] = ebpfPolicyCommands(steps[0]!.run!);
    const json = runBounded(process.execPath, [CLI, ...args!, '--output', 'json', '--bpffs-root', root], { cwd: copy.dir });
    assert.equal(json.status, call!.code, json.stderr);
    const plan = JSON.parse(json.stdout) as { changes: Record<string, number>; problems: Array<{ policy: string | null; condition: string; reason: string; message: string }> };
    assert.deepEqual(plan.problems.filter((p) => p.condition !== 'Degraded'), [], 'no Failed policy, no invalid file');
    for (const p of plan.problems) assert.ok(MISSING_TARGET.has(p.reason), `${p.policy}: ${p.reason}: ${p.message}`);
    assert.equal(plan.changes.delete, 0, 'a fresh pin root has nothing to delete');

    // A node runs the same policies strictly (no --insecure-policy-perms) from a root-owned checkout: our copy is one.
    const strict = runBounded(process.execPath, [CLI, 'plan', '--policies', 'policies', '--detailed-exitcode', '--bpffs-root', root], { cwd: copy.dir });
    assert.equal(strict.status, call!.code, strict.stdout + strict.stderr);

    assert.ok(!existsSync(root) || listPins(root).length === 0, 'plan pins nothing');
  } finally {
    removePinTree(root);
    rmSync(lastPassFile(DEFAULT_REPORT_DIR, root), { force: true });
  }
});
