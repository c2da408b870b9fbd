/**
 * HandleScope (src/reconciler/apply-scope.ts): what a kind keeps open during
 * an apply is opened once per key, closed when forgotten by prefix, and
 * closed exactly once when the scope closes, even when one close throws.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HandleScope } from '../../src/reconciler/apply-scope.js';

function handles() {
  const opened: string[] = [];
  const closed: string[] = [];
  const open = (key: string, failOnClose = false) => () => {
    opened.push(key);
    return {
      key,
      [Symbol.dispose]() {
        closed.push(key);
        if (failOnClose) throw new Error(`closing ${key} failed`);
      },
    };
  };
  return { opened, closed, open };
}

test('HandleScope: one open per key, forget by prefix closes only those, close() closes the rest once', () => {
  const h = handles();
  const scope = new HandleScope();
  const a = scope.keep('/d1/map_a', h.open('/d1/map_a'));
  assert.equal(scope.keep('/d1/map_a', h.open('/d1/map_a')), a, 'the same handle the second time');
  scope.keep('/d1/map_b', h.open('/d1/map_b'));
  scope.keep('/d10/map_a', h.open('/d10/map_a'));
  assert.deepEqual(h.opened, ['/d1/map_a', '/d1/map_b', '/d10/map_a']);
  scope.forget('/d1/');
  assert.deepEqual(h.closed.sort(), ['/d1/map_a', '/d1/map_b'], 'a prefix with its slash leaves /d10 alone');
  assert.notEqual(scope.keep('/d1/map_a', h.open('/d1/map_a')), a, 'a forgotten key is opened again');
  scope.close();
  scope.close();
  assert.deepEqual(h.closed.sort(), ['/d1/map_a', '/d1/map_a', '/d1/map_b', '/d10/map_a'], 'each handle closed once');
});

test('HandleScope: close() closes every handle even when one throws, then rethrows the first error; an open that throws keeps nothing', () => {
  const h = handles();
  const scope = new HandleScope();
  assert.throws(() => scope.keep('bad', () => { throw new Error('cannot open'); }), /cannot open/);
  scope.keep('x', h.open('x', true));
  scope.keep('y', h.open('y'));
  assert.throws(() => scope.close(), /closing x failed/);
  assert.deepEqual(h.closed, ['x', 'y']);
  scope.close();
  assert.deepEqual(h.closed, ['x', 'y'], 'nothing is closed twice');
});
