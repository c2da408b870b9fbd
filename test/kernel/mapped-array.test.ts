/**
 * MappedArray (BpfMap.mmap) against the real kernel: what is written through
 * the mapping is what a lookup syscall reads and the other way round, the
 * mapping outlives the map's fd, a read-only mapping refuses writes, close()
 * is idempotent and every access after it throws, and an array without
 * BPF_F_MMAPABLE (or a map of another type) is refused with a named error.
 */
import assert from 'node:assert/strict';
import { BPF_F_MMAPABLE, BpfMap, ErrnoError, MapType, liveMappings } from '../../src/bpf/index.js';
import { kernelTest } from './harness.js';

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

kernelTest('MappedArray: writes through the mapping are seen by lookups and updates by the mapping, across padded values, after the fd is closed; close() twice; refusals are named', () => {
  // 12-byte values: the kernel spaces them 16 bytes apart in the mapping.
  for (const valueSize of [8, 12]) {
    const N = 70_000;
    const map = BpfMap.create({ type: MapType.ARRAY, name: `test_mmap${valueSize}`, keySize: 4, valueSize, maxEntries: N, flags: BPF_F_MMAPABLE });
    const mm = map.mmap();
    assert.equal(mm.valueSize, valueSize);
    assert.equal(mm.stride, valueSize === 12 ? 16 : 8);
    assert.ok(mm.read(0, N).equals(Buffer.alloc(N * valueSize)), 'a new array reads as zeros');

    // Mapping -> syscall: a range written at once, from the middle up to the last entry.
    const first = N - 65_536;
    const values = Buffer.alloc(65_536 * valueSize);
    for (let i = 0; i < 65_536; i++) values.writeUInt32LE(i * 7 + 1, i * valueSize);
    for (let i = 0; i < 65_536; i++) values.writeUInt32LE((0xa5a5a5a5 ^ i) >>> 0, i * valueSize + valueSize - 4);
    mm.write(first, values);
    for (const i of [0, 1, 4095, 40_000, 65_535]) assert.ok(map.lookup(u32(first + i))!.equals(values.subarray(i * valueSize, (i + 1) * valueSize)), `entry ${first + i}`);
    const read = Buffer.concat(map.entries().filter(([k]) => k.readUInt32LE(0) >= first).map(([, v]) => v));
    assert.ok(read.equals(values), 'a batch lookup reads what the mapping wrote');
    assert.ok(map.lookup(u32(first - 1))!.equals(Buffer.alloc(valueSize)), 'the entry before the range is untouched');

    // Syscall -> mapping.
    const v = Buffer.alloc(valueSize, 0x3c);
    map.update(u32(3), v);
    assert.ok(mm.read(3, 1).equals(v));
    assert.ok(mm.read(2, 3).equals(Buffer.concat([Buffer.alloc(valueSize), v, Buffer.alloc(valueSize)])));

    // The mapping keeps the map alive: the fd can go first.
    const id = map.info().id;
    map.close();
    mm.write(5, v);
    {
      using again = BpfMap.fromId(id);
      assert.ok(again.lookup(u32(5))!.equals(v), 'a write after the fd was closed reaches the map');
    }

    assert.throws(() => mm.read(N - 1, 2), RangeError);
    assert.throws(() => mm.write(0, Buffer.alloc(valueSize + 1)), RangeError);
    assert.throws(() => mm.write(N, v), RangeError);
    assert.ok(liveMappings().some((l) => l.includes(`test_mmap${valueSize}`)));
    mm.close();
    mm.close();
    assert.equal(mm.open, false);
    assert.throws(() => mm.read(0, 1), /use after close/);
    assert.throws(() => mm.write(0, v), /use after close/);
    assert.deepEqual(liveMappings(), []);
  }

  {
    using map = BpfMap.create({ type: MapType.ARRAY, name: 'test_mmap_ro', keySize: 4, valueSize: 8, maxEntries: 16, flags: BPF_F_MMAPABLE });
    map.update(u32(1), Buffer.alloc(8, 9));
    using ro = map.mmap({ readOnly: true });
    assert.ok(ro.read(1, 1).equals(Buffer.alloc(8, 9)));
    assert.throws(() => ro.write(0, Buffer.alloc(8)), /read-only/);
  }
  {
    using plain = BpfMap.create({ type: MapType.ARRAY, name: 'test_nommap', keySize: 4, valueSize: 8, maxEntries: 16 });
    assert.throws(
      () => plain.mmap(),
      (err: unknown) => err instanceof ErrnoError && err.code === 'EINVAL' && err.operation === 'mmap' && /test_nommap/.test(err.message),
    );
    using hash = BpfMap.create({ type: MapType.HASH, name: 'test_hash', keySize: 4, valueSize: 8, maxEntries: 16 });
    assert.throws(() => hash.mmap(), TypeError);
  }
  assert.deepEqual(liveMappings(), []);
});
