/** The Quickstart's main job, run as a user runs it: the CLI in a child process. */
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { bpftoolIds, eventually, kernelTest } from './harness.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

kernelTest('`ebpf-policy demo` reconciles the shipped example policies, steers, filters, denies a connect from its cgroup, and leaves nothing behind', async () => {
  const before = { prog: bpftoolIds('prog'), link: bpftoolIds('link') };
  const r = runBounded(process.execPath, [cli, 'demo']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /after: {2}:8081 -> 200, :9000 -> 200, :9010 -> 200, :9011 -> refused; telnet :23 -> dropped; 169\.254\.169\.254:80 from the cgroup -> denied \(EPERM\)/);
  assert.match(r.stdout, /before: .*169\.254\.169\.254:80 from the cgroup -> unreachable/);
  assert.match(r.stdout, /no-metadata-service {2}Ready {2}ConnectPolicy/);
  assert.match(r.stdout, /ebpf-policy plan: no changes/);
  assert.match(r.stdout, /legacy-http {2}Ready/);
  assert.match(r.stdout, /demo: OK/);
  // A program whose last reference went is freed after an RCU grace period: give it time; a leak stays.
  const left = (kind: 'link' | 'prog') => [...bpftoolIds(kind)].filter((id) => !before[kind].has(id));
  assert.ok(await eventually(() => left('link').length === 0 && left('prog').length === 0, 10_000), `no new link or program is left: links ${left('link').join(', ')}, programs ${left('prog').join(', ')}`);
});
