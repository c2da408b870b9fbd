/**
 * PortSteering at a million bindings (issue 17): 1,000 policies of 1,000
 * ports each, every policy on its own /32 of 127.1.0.0/16, in one
 * dispatcher (1,000,000 LPM entries, within MAX_BINDINGS = 1,048,576). A
 * real connection is steered through the farthest binding, a change of one
 * binding is applied as one entry, and removing the policies leaves nothing.
 * This test is slow by nature (each pass reads and plans a million entries):
 * it has its own bound, see below.
 */
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { changes, reconcileExitCode, reconcileOnce } from '../../src/manager.js';
import type { Action } from '../../src/reconciler/model.js';
import { bpftoolIds, eventually, kernelTest } from './harness.js';
import { PolicyDir, curl, startHttpServer, steeringOf } from './reconcile-helpers.js';

const POLICIES = 1000;
const PORTS = 1000;
const FIRST_PORT = 20000;

function address(i: number): string {
  return `127.1.${i >> 8}.${i & 255}`;
}

/** Writes the policies, 100 to a file; `extra` adds one port to one policy. */
function writePolicies(dir: PolicyDir, netns: string, extra?: { index: number; port: number }): void {
  for (let f = 0; f * 100 < POLICIES; f++) {
    const docs: string[] = [];
    for (let i = f * 100; i < Math.min(POLICIES, (f + 1) * 100); i++) {
      const ports = [`"${FIRST_PORT}-${FIRST_PORT + PORTS - 1}"`, ...(extra?.index === i ? [String(extra.port)] : [])];
      docs.push(
        [
          'apiVersion: ebpf-policy/v1',
          'kind: PortSteering',
          `metadata: {name: m${String(i).padStart(4, '0')}}`,
          'spec:',
          `  netns: ${netns}`,
          '  protocol: tcp',
          `  ports: [${ports.join(', ')}]`,
          `  addresses: ["${address(i)}/32"]`,
          '  target: {listen: "127.0.0.1:8080"}',
        ].join('\n'),
      );
    }
    dir.writeRaw(`f${String(f).padStart(2, '0')}.yaml`, `${docs.join('\n---\n')}\n`);
  }
}

/** Entries written (upserted) and deleted by a plan's actions. */
function entryChanges(actions: readonly Action[]): { upserted: number; deleted: number } {
  let upserted = 0;
  let deleted = 0;
  for (const a of actions) {
    const op = a.op as unknown as { type: string; entries?: unknown[]; keys?: unknown[] };
    if (op.type === 'upsertBindings') upserted += op.entries!.length;
    if (op.type === 'deleteBindings') deleted += op.keys!.length;
  }
  return { upserted, deleted };
}

kernelTest(
  'PortSteering with 1,000,000 bindings: applied, a far binding steers a real connection, one binding changes as one entry, removal leaves nothing',
  async ({ pinDir, sandbox }) => {
    await startHttpServer(sandbox, '127.0.0.1', 8080);
    using dir = new PolicyDir();
    const opts = { root: pinDir, policyPaths: [dir.path] };
    const far = { host: address(POLICIES - 1), port: FIRST_PORT + PORTS - 1 };
    assert.equal(curl(sandbox, far.host, far.port), 0, 'nothing listens there before');

    writePolicies(dir, sandbox.path);
    const first = await reconcileOnce(opts);
    assert.equal(reconcileExitCode(first), 0, JSON.stringify(first.result?.failed.map((f) => f.error.message)));
    assert.deepEqual(first.plan.problems, []);
    assert.equal(entryChanges(first.plan.actions).upserted, POLICIES * PORTS, 'a million entries written');
    assert.equal(curl(sandbox, far.host, far.port), 200, 'the farthest binding steers a real connection');
    assert.equal(curl(sandbox, address(0), FIRST_PORT), 200, 'and the first one');
    assert.equal(curl(sandbox, far.host, FIRST_PORT + PORTS), 0, 'a port outside the range is not steered');

    const second = await reconcileOnce(opts);
    assert.deepEqual(changes(second.plan), [], 'a second pass changes nothing');
    const [d] = steeringOf(second).dispatchers;
    assert.equal(d!.bindings.length, POLICIES * PORTS, 'the kernel holds a million entries');
    const progIds = new Set([d!.program!.id]);

    // One binding more on one policy among a thousand: one entry written, nothing else.
    const mid = { index: 500, port: 30000 };
    writePolicies(dir, sandbox.path, mid);
    const edit = await reconcileOnce(opts);
    assert.equal(reconcileExitCode(edit), 0);
    assert.deepEqual(entryChanges(edit.plan.actions), { upserted: 1, deleted: 0 }, 'one entry written');
    assert.deepEqual(new Set(changes(edit.plan).map((a) => a.policy)), new Set(['m0500']), 'only the edited policy changes');
    assert.equal(curl(sandbox, address(mid.index), mid.port), 200, 'the new binding steers');

    // And back: one entry deleted.
    writePolicies(dir, sandbox.path);
    const back = await reconcileOnce(opts);
    assert.equal(reconcileExitCode(back), 0);
    assert.deepEqual(entryChanges(back.plan.actions), { upserted: 0, deleted: 1 }, 'one entry deleted');
    assert.equal(curl(sandbox, address(mid.index), mid.port), 0, 'the removed binding no longer steers');
    assert.equal(curl(sandbox, far.host, far.port), 200, 'the others still do');

    // Removal leaves nothing.
    for (const f of readdirSync(dir.path)) rmSync(join(dir.path, f));
    const gone = await reconcileOnce(opts);
    assert.equal(reconcileExitCode(gone), 0);
    assert.equal(curl(sandbox, far.host, far.port), 0, 'no longer steered');
    assert.deepEqual(readdirSync(join(pinDir, 'netns')), [], 'no dispatcher pins left');
    assert.ok(await eventually(() => ![...progIds].some((id) => bpftoolIds('prog').has(id))), 'bpftool shows no program of ours');
  },
  // Each pass reads and plans a million entries: about 30-60 s in all on a quiet 2-vCPU machine, more under load.
  600_000,
);
