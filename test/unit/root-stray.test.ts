/**
 * The engine's look at the pin root (rootStrayOf in src/reconciler/reconcile.ts):
 * entries no registered kind owns are stray; each kind's own directory is not.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ENGINE, KINDS } from '../../src/kinds/registry.js';
import { rootStrayOf } from '../../src/reconciler/reconcile.js';

test('rootStrayOf: junk at the root is stray, while each kind\'s pinDir is not', () => {
  const root = mkdtempSync(join(tmpdir(), 'ebpf-policy-root-stray-'));
  try {
    assert.deepEqual(rootStrayOf(ENGINE, join(root, 'absent')), [], 'a root that does not exist has nothing stray');
    assert.deepEqual(rootStrayOf(ENGINE, root), [], 'an empty root has nothing stray');
    for (const kind of KINDS) mkdirSync(join(root, kind.pinDir));
    assert.deepEqual(rootStrayOf(ENGINE, root), [], 'the kinds\' own directories are not stray');
    mkdirSync(join(root, 'junk'));
    writeFileSync(join(root, 'a-file'), '');
    assert.deepEqual(rootStrayOf(ENGINE, root), [join(root, 'a-file'), join(root, 'junk')], 'entries no kind owns are, in name order');
    // Without a kind, its directory is stray too: what a kind owns comes from the engine it is handed.
    const [first, ...rest] = KINDS;
    assert.deepEqual(rootStrayOf({ ...ENGINE, kinds: rest }, root), [join(root, 'a-file'), join(root, first!.pinDir), join(root, 'junk')].sort());
  } finally {
    rmSync(root, { recursive: true });
  }
});
