/** The Quickstart's main job, run as a user runs it: the CLI in a child process. */
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { bpftoolIds, kernelTest } from './harness.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

kernelTest('`ebpf-policy demo` reconciles the shipped example policies, steers, filters, denies a connect from its cgroup, and leaves nothing behind', () => {
  const before = { prog: bpftoolIds('prog'), link: bpftoolIds('link') };
  const r = runBounded(process.execPath, [cli, 'demo']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /after: {2}:8081 -> 200, :9000 -> 200, :9010 -> 200, :9011 -> refused; telnet :23 -> dropped; 169\.254\.169\.254:80 from the cgroup -> denied \(EPERM\)/);
  assert.match(r.stdout, /before: .*169\.254\.169\.254:80 from the cgroup -> unreachable/);
  assert.match(r.stdout, /no-metadata-service {2}Ready {2}ConnectPolicy/);
  assert.match(r.stdout, /ebpf-policy plan: no changes/);
  assert.match(r.stdout, /legacy-http {2}Ready/);
  assert.match(r.stdout, /demo: OK/);
  assert.deepEqual([...bpftoolIds('link')].filter((id) => !before.link.has(id)), [], 'no new link is left');
  assert.deepEqual([...bpftoolIds('prog')].filter((id) => !before.prog.has(id)), [], 'no new program is left');
});
