/** Decoding a map read again reuses the decoded entries of the unchanged head and tail, and only those. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { commonHead, commonTail, decodeReusing, type EntryRun } from '../../src/common/entry-reuse.js';

const KS = 3;
const VS = 2;

function run(entries: ReadonlyArray<[number, number]>): EntryRun {
  const keys = Buffer.alloc(entries.length * KS);
  const values = Buffer.alloc(entries.length * VS);
  entries.forEach(([k, v], i) => {
    keys.writeUIntBE(k, i * KS, KS);
    values.writeUInt16BE(v, i * VS);
  });
  return { keys, values, count: entries.length };
}

function decoder(r: EntryRun, calls: number[]) {
  return (i: number) => {
    calls.push(i);
    return { key: r.keys.readUIntBE(i * KS, KS), value: r.values.readUInt16BE(i * VS) };
  };
}

test('property: decoding reusing the last read equals decoding everything, and decodes only between the common head and tail', () => {
  const entry = fc.tuple(fc.integer({ min: 0, max: 0xffffff }), fc.integer({ min: 0, max: 3 }));
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 3000 }), fc.array(fc.tuple(fc.nat(), fc.constantFrom('insert', 'delete', 'value')), { maxLength: 4 }), entry, (before, edits, fresh) => {
      const after = [...before];
      for (const [at, how] of edits) {
        const i = after.length === 0 ? 0 : at % after.length;
        if (how === 'insert') after.splice(i, 0, fresh);
        else if (how === 'delete') after.splice(i, 1);
        else if (after[i]) after[i] = [after[i]![0], (after[i]![1] + 1) % 4];
      }
      const last = run(before);
      const lastDecoded = Array.from({ length: last.count }, (_, i) => decoder(last, [])(i));
      const now = run(after);
      const calls: number[] = [];
      const got = decodeReusing(now, last, lastDecoded, KS, VS, decoder(now, calls));
      assert.deepEqual(got, after.map(([key, value]) => ({ key, value })));
      const head = Math.min(commonHead(now.keys, last.keys, KS, Math.min(now.count, last.count)), commonHead(now.values, last.values, VS, Math.min(now.count, last.count)));
      if (now.keys.equals(last.keys) && now.values.equals(last.values)) {
        assert.equal(got, lastDecoded, 'an equal read returns the last decoded array itself');
        assert.equal(calls.length, 0);
        return;
      }
      // Reused objects are the last read's own; every decoded index lies after the common head.
      for (let i = 0; i < head; i++) assert.equal(got[i], lastDecoded[i]);
      assert.ok(calls.every((i) => i >= head));
      assert.ok(calls.length <= now.count - head);
    }),
    { numRuns: 300 },
  );
});

test('one entry added in the middle of 100,000 decodes one entry', () => {
  const before = Array.from({ length: 100_000 }, (_, i): [number, number] => [i * 2, 1]);
  const after = [...before.slice(0, 50_000), [99_999, 2] as [number, number], ...before.slice(50_000)];
  const last = run(before);
  const lastDecoded = Array.from({ length: last.count }, (_, i) => decoder(last, [])(i));
  const calls: number[] = [];
  const now = run(after);
  const got = decodeReusing(now, last, lastDecoded, KS, VS, decoder(now, calls));
  assert.deepEqual(calls, [50_000]);
  assert.equal(got.length, 100_001);
  assert.equal(got[100_000], lastDecoded[99_999]);
});

test('common head and tail count whole entries across block boundaries', () => {
  const a = run(Array.from({ length: 5000 }, (_, i): [number, number] => [i, 0]));
  const b = run(Array.from({ length: 5000 }, (_, i): [number, number] => [i === 2731 ? 7 : i, 0]));
  assert.equal(commonHead(a.keys, b.keys, KS, 5000), 2731);
  assert.equal(commonTail(a.keys, b.keys, KS, 5000), 5000 - 2732);
  assert.equal(commonHead(a.keys, a.keys, KS, 5000), 5000);
  assert.equal(commonTail(a.keys, a.keys, KS, 10), 10);
});
