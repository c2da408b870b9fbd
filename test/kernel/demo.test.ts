/** The Quickstart's main job, run as a user runs it: the CLI in a child process. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { bpftoolIds, kernelTest } from './harness.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

kernelTest('`ebpf-policy demo` steers a connection and leaves no object behind', () => {
  const before = { prog: bpftoolIds('prog'), link: bpftoolIds('link') };
  const r = spawnSync(process.execPath, [cli, 'demo'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /connect 127\.0\.0\.1:8081 -> listener=8080 local=8081/);
  assert.match(r.stdout, /demo: OK/);
  const progId = Number(/program id (\d+)/.exec(r.stdout)?.[1]);
  const linkId = Number(/sk_lookup link id (\d+)/.exec(r.stdout)?.[1]);
  assert.ok(progId > 0 && linkId > 0);
  assert.ok(!before.prog.has(progId));
  assert.ok(!bpftoolIds('link').has(linkId), 'the demo link is gone');
});
