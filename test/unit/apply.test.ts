/**
 * The engine's apply (src/reconciler/apply.ts): a failing action fails its
 * policy, or its failure domain when it names no policy; what the failure
 * does not concern still runs; no-ops are not run.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apply } from '../../src/reconciler/apply.js';
import type { Action, Phase } from '../../src/reconciler/model.js';

function action(object: string, opts: { policy?: string; domain?: string; phase?: Phase; owner?: string; noop?: boolean } = {}): Action {
  return {
    kind: opts.noop ? 'noop' : 'create',
    phase: opts.phase ?? 'add',
    object,
    owner: opts.owner,
    policy: opts.policy,
    domain: opts.domain,
    reason: 'test',
    op: { type: opts.noop ? 'none' : 'write' },
  };
}

test('apply: a failing action skips its policy\'s later actions, a failing domain action its domain\'s; the rest runs, in order', () => {
  const actions = [
    action('a1', { policy: 'a', domain: 'd' }),
    action('b1', { policy: 'b', domain: 'd' }),
    action('a2', { policy: 'a', domain: 'd' }),
    action('d1', { domain: 'd', phase: 'remove' }),
    action('b2', { policy: 'b', domain: 'd', phase: 'remove' }), // its policy did not fail, but its domain did
    action('d2', { domain: 'd', phase: 'remove' }),
    action('e1', { domain: 'e', phase: 'gc' }),
    action('a-other-kind', { policy: 'a', owner: 'Other' }), // same name, another kind: another policy
  ];
  const ran: string[] = [];
  const heard: Array<[string, boolean]> = [];
  const failing = new Set(['a1', 'd1']);
  const result = apply(
    actions,
    (a) => {
      ran.push(a.object);
      if (failing.has(a.object)) throw new Error(`${a.object} failed`);
    },
    (a, error) => heard.push([a.object, error !== undefined]),
  );
  assert.deepEqual(ran, ['a1', 'b1', 'd1', 'e1', 'a-other-kind']);
  assert.deepEqual(result.applied.map((a) => a.object), ['b1', 'e1', 'a-other-kind']);
  assert.deepEqual(result.failed.map((f) => [f.action.object, f.error.message]), [['a1', 'a1 failed'], ['d1', 'd1 failed']]);
  assert.deepEqual(result.skipped.map((a) => a.object), ['a2', 'b2', 'd2']);
  assert.deepEqual(heard, [['a1', true], ['b1', false], ['d1', true], ['e1', false], ['a-other-kind', false]], 'each action that ran is heard of, with its error');
});

test('apply: no-ops are not run, and a thrown non-Error is wrapped', () => {
  const ran: string[] = [];
  const result = apply([action('n', { policy: 'a', noop: true }), action('x', { policy: 'b' })], (a) => {
    ran.push(a.object);
    throw 'plain text';
  });
  assert.deepEqual(ran, ['x']);
  assert.ok(result.failed[0]!.error instanceof Error);
  assert.equal(result.failed[0]!.error.message, 'plain text');
});
