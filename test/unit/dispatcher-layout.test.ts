/** Byte layout of the dispatcher's keys (pure: no kernel). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { bindingEntries, EVERY_ADDRESS, packBindingEntries } from '../../src/kinds/port-steering/bindings.js';
import {
  BINDING_KEY_SIZE,
  BINDING_V6_ONLY,
  isV6OnlyPrefix,
  addressBytes,
  decodeBindingValue,
  encodeBindingKey,
  encodeBindingValue,
  encodePolicyRecord,
  decodePolicyRecord,
  encodePortBlockKey,
  policyKey,
  decodePolicyKey,
} from '../../src/kinds/port-steering/layout.js';
import { portRangeBlocks } from '../../src/policy/net/ports.js';
import { cgroup2Mount } from '../../src/bpf/cgroup.js';
import { describeErrno } from '../../src/bpf/errors.js';

test('IPv4 keys are IPv4-mapped, prefix counts protocol and port bits', () => {
  const k = encodeBindingKey({ protocol: 'tcp', address: '10.1.2.3', prefixLength: 24, port: 8081 });
  assert.equal(k.length, BINDING_KEY_SIZE);
  assert.equal(k.readUInt32LE(0), 8 + 16 + 96 + 24);
  assert.equal(k[4], 6);
  assert.equal(k.readUInt16BE(5), 8081);
  assert.equal(k.subarray(7).toString('hex'), '00000000000000000000ffff0a010203');
});

test('IPv6 keys, including embedded IPv4 and ::', () => {
  assert.equal(addressBytes('::1').toString('hex'), '00000000000000000000000000000001');
  assert.equal(addressBytes('2001:db8::8:1').toString('hex'), '20010db8000000000000000000080001');
  assert.equal(addressBytes('::ffff:1.2.3.4').toString('hex'), addressBytes('1.2.3.4').toString('hex'));
  const k = encodeBindingKey({ protocol: 'udp', address: '::', prefixLength: 0, port: 53 });
  assert.equal(k.readUInt32LE(0), 24);
  assert.equal(k[4], 17);
});

test('bad bindings are refused', () => {
  assert.throws(() => encodeBindingKey({ protocol: 'tcp', address: '10.0.0.0', prefixLength: 33, port: 1 }), RangeError);
  assert.throws(() => encodeBindingKey({ protocol: 'tcp', address: '10.0.0.0', prefixLength: 8, port: 65536 }), RangeError);
  assert.throws(() => encodeBindingKey({ protocol: 'tcp', address: 'example.com', prefixLength: 8, port: 1 }), TypeError);
});

test('port ranges split into the fewest aligned blocks that cover exactly the range', () => {
  assert.deepEqual(portRangeBlocks(0, 65535), [{ port: 0, bits: 0 }]);
  assert.deepEqual(portRangeBlocks(8081, 8081), [{ port: 8081, bits: 16 }]);
  assert.deepEqual(portRangeBlocks(8080, 8083), [{ port: 8080, bits: 14 }]);
  assert.ok(portRangeBlocks(1, 65535).length <= 30);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), (a, b) => {
      const [lo, hi] = a <= b ? [a, b] : [b, a];
      const blocks = portRangeBlocks(lo, hi);
      assert.ok(blocks.length <= 30);
      let next = lo;
      for (const { port, bits } of blocks) {
        const size = 2 ** (16 - bits);
        assert.equal(port, next, 'blocks are contiguous');
        assert.equal(port % size, 0, 'blocks are aligned');
        next = port + size;
        // The key is valid for the block.
        encodePortBlockKey({ protocol: 'tcp', port, bits });
      }
      assert.equal(next, hi + 1, 'blocks end at the range end');
    }),
  );
});

test('policy keys and records round-trip, and oversize ones are refused', () => {
  assert.equal(decodePolicyKey(policyKey('legacy-http')), 'legacy-http');
  assert.throws(() => policyKey('x'.repeat(64)), RangeError);
  const json = JSON.stringify({ a: 'é'.repeat(100) });
  assert.equal(decodePolicyRecord(encodePolicyRecord(json)), json);
  assert.throws(() => encodePolicyRecord('x'.repeat(9000)), RangeError);
});

test('binding values round-trip', () => {
  fc.assert(
    fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), (destId, bindingId) => {
      assert.deepEqual(decodeBindingValue(encodeBindingValue(destId, bindingId)), { destId, bindingId });
    }),
  );
});

test('every IPv4 address maps to distinct, stable bytes', () => {
  fc.assert(
    fc.property(fc.ipV4(), fc.ipV4(), (a, b) => {
      assert.equal(addressBytes(a).equals(addressBytes(b)), a === b);
    }),
  );
});

test('cgroup2 mount point from mountinfo, hybrid and unified', () => {
  const hybrid = '30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n';
  assert.equal(cgroup2Mount('29 25 0:25 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n' + hybrid), '/sys/fs/cgroup/unified');
  assert.equal(cgroup2Mount('36 35 0:30 / /sys/fs/cgroup rw,relatime shared:9 - cgroup2 cgroup2 rw\n'), '/sys/fs/cgroup');
  assert.throws(() => cgroup2Mount('1 2 0:1 / / rw - ext4 /dev/vda rw\n'), /no cgroup2/);
});

test('errno names include libbpf codes', () => {
  assert.equal(describeErrno(1).code, 'EPERM');
  assert.equal(describeErrno(524).code, 'ENOTSUPP');
  assert.equal(describeErrno(4007).code, 'LIBBPF_ERRNO__VERIFY');
});

test('entries of an IPv6 prefix carry BINDING_V6_ONLY (the dispatcher never applies them to IPv4); IPv4 and IPv4-mapped prefixes and port blocks do not', () => {
  const word = (prefix: string) => bindingEntries('tcp', { id: 7, start: 80, end: 80, prefix }, 3)[0]!.bindingId;
  assert.equal(word('::/0'), (7 | BINDING_V6_ONLY) >>> 0, '::/0 holds every IPv4-mapped address');
  assert.equal(word('::/80'), (7 | BINDING_V6_ONLY) >>> 0);
  assert.equal(word('2001:db8::/32'), (7 | BINDING_V6_ONLY) >>> 0);
  assert.equal(word('10.0.0.0/8'), 7);
  assert.equal(word('0.0.0.0/0'), 7);
  assert.equal(word('::ffff:192.0.2.0/120'), 7, 'an IPv4-mapped prefix is IPv4');
  assert.equal(word(EVERY_ADDRESS), 7);
  assert.deepEqual([isV6OnlyPrefix('::ffff:0:0', 95), isV6OnlyPrefix('::ffff:0:0', 96)], [true, false]);
});

test('packed binding entries are the entries bindingEntries makes, byte for byte and in the same order', () => {
  const prefixes = ['10.1.2.3/32', '10.0.0.0/8', '0.0.0.0/0', '2001:db8::/32', '::/0', '::ffff:192.0.2.0/120', '::1/128', EVERY_ADDRESS];
  const arbBinding = fc
    .record({ id: fc.integer({ min: 0, max: 65535 }), start: fc.integer({ min: 0, max: 65535 }), len: fc.integer({ min: 0, max: 300 }), prefix: fc.constantFrom(...prefixes) })
    .map(({ id, start, len, prefix }) => ({ id, start, end: Math.min(65535, start + len), prefix }));
  fc.assert(
    fc.property(fc.constantFrom('tcp' as const, 'udp' as const), fc.array(arbBinding, { maxLength: 5 }), fc.integer({ min: 1, max: 65535 }), (protocol, bindings, destId) => {
      const want = bindings.flatMap((b) => bindingEntries(protocol, b, destId));
      const packed = packBindingEntries(protocol, bindings, destId);
      assert.equal(packed.count, want.length);
      assert.equal(packed.keys.length, want.length * BINDING_KEY_SIZE);
      assert.equal(packed.values.length, want.length * 8);
      assert.deepEqual([...packed], want);
      want.forEach((e, i) => {
        assert.equal(packed.keys.toString('latin1', i * BINDING_KEY_SIZE, (i + 1) * BINDING_KEY_SIZE), e.key);
        assert.deepEqual(decodeBindingValue(packed.values.subarray(i * 8, i * 8 + 8)), { destId: e.destId, bindingId: e.bindingId });
        assert.ok(packed.keyEquals(i, e.key));
      });
      if (want.length > 1) assert.ok(!packed.keyEquals(0, want[want.length - 1]!.key) || want[0]!.key === want[want.length - 1]!.key);
    }),
  );
  // A whole range of one /32, as the benchmarks write it.
  const all = packBindingEntries('tcp', [{ id: 1, start: 1, end: 65535, prefix: '127.0.0.1/32' }], 9);
  assert.equal(all.count, 65535);
  assert.deepEqual(all.keys.subarray(65534 * BINDING_KEY_SIZE), encodeBindingKey({ protocol: 'tcp', address: '127.0.0.1', prefixLength: 32, port: 65535 }));
  assert.deepEqual(all.values.subarray(65534 * 8), encodeBindingValue(9, 1));
  assert.deepEqual(all.pick([65534, 0]).keys, Buffer.concat([all.keys.subarray(65534 * BINDING_KEY_SIZE), all.keys.subarray(0, BINDING_KEY_SIZE)]));
  assert.deepEqual(JSON.parse(JSON.stringify(all)), { count: 65535 }, 'a plan printed as JSON counts the entries');
});
