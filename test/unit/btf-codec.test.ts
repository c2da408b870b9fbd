/** The BTF codec: JSON in, the C type's bytes out, and back; errors name the field's path. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { codecFor, CodecError, rawCodec, shapeOf, type Shape } from '../../src/btf/codec.js';
import { readObjectInfo, type ObjectInfo } from '../../src/btf/object-info.js';
import { REPO_ROOT } from './policy-test-helpers.js';

const OBJECTS = ['dispatcher.o', 'packet_filter.o', 'connect_policy.o', 'syscall_counter.o', 'fixture_btf_types.o'];

function objectInfo(name: string): ObjectInfo {
  return readObjectInfo(readFileSync(`${REPO_ROOT}build/bpf/${name}`), name);
}

const fixture = objectInfo('fixture_btf_types.o');
const tuples = fixture.maps.find((m) => m.name === 'tuples')!;
const keyCodec = codecFor(fixture.btf, tuples.keyType!);
const valueCodec = codecFor(fixture.btf, tuples.valueType!);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
/** Byte offset of a member of struct all_types. */
const at = (name: string) => fixture.btf.find('all_types', 'struct')!.members!.find((m) => m.name === name)!.bitOffset / 8;

test('a key: __be32 named saddr is an IPv4 address, __be16 a port in network byte order', () => {
  assert.equal(keyCodec.size, 8);
  assert.equal(keyCodec.typeName, 'struct tuple');
  const k = keyCodec.encode({ saddr: '10.0.0.1', sport: 8080, proto: 6 }, 'key');
  assert.equal(hex(k), '0a0000011f900600');
  assert.deepEqual(keyCodec.decode(k), { saddr: '10.0.0.1', sport: 8080, proto: 6, pad: 0 });
});

test('a value with every kind of field: bytes where the C struct has them', () => {
  const v = valueCodec.encode({
    u8: 255, s8: -1, u16: 65535, s16: -2, u32: 4294967295, s32: -3, u64: '18446744073709551615', s64: '-9223372036854775808',
    flag: true, color: 'BLUE', level: 'LOW', counts: [1, 2], nested: { a: 1, b: -1 }, choice: { pair: { a: 1, b: 2 } },
    name: 'abc', be16: 0x1234, be32: 0x01020304, saddr: '1.2.3.4', sport: 80, dst_port: 443, addr6: '::ffff:1.2.3.4',
    daddr: 'fe80::1', lo: 5, hi: 31, hole_before: 1, after_hole: 2, ratio: 0.5, precise: 1.25, pairs: [{ a: 1, b: 2 }, { a: 3, b: 4 }], last: 9,
  });
  const b = Buffer.from(v);
  assert.equal(v.length, 160);
  assert.equal(b.readInt8(at('s8')), -1);
  assert.equal(b.readInt16LE(at('s16')), -2);
  assert.equal(b.readBigUInt64LE(at('u64')), 2n ** 64n - 1n);
  assert.equal(b.readBigInt64LE(at('s64')), -(2n ** 63n));
  assert.equal(b.readUInt8(at('flag')), 1);
  assert.equal(b.readUInt32LE(at('color')), 7);
  assert.equal(b.readInt32LE(at('level')), -2);
  assert.equal(hex(b.subarray(at('counts'), at('counts') + 12)), '010000000200000000000000');
  assert.equal(b.readInt16LE(at('nested') + 2), -1);
  assert.equal(b.readUInt32LE(at('choice')), 0x00020001);
  assert.equal(b.toString('latin1', at('name'), at('name') + 8), 'abc\0\0\0\0\0');
  assert.equal(hex(b.subarray(at('be16'), at('be16') + 2)), '1234');
  assert.equal(hex(b.subarray(at('be32'), at('be32') + 4)), '01020304');
  assert.equal(hex(b.subarray(at('saddr'), at('saddr') + 4)), '01020304');
  assert.equal(hex(b.subarray(at('sport'), at('sport') + 2)), '0050');
  assert.equal(hex(b.subarray(at('dst_port'), at('dst_port') + 2)), '01bb');
  assert.equal(hex(b.subarray(at('addr6'), at('addr6') + 16)), '00000000000000000000ffff01020304');
  assert.equal(hex(b.subarray(at('daddr'), at('daddr') + 16)), 'fe800000000000000000000000000001');
  assert.equal(b.readUInt8(120), 5 | (31 << 3)); // lo:3 then hi:5 in the byte at bit 960
  assert.equal(b.readFloatLE(at('ratio')), 0.5);
  assert.equal(b.readDoubleLE(at('precise')), 1.25);
  assert.equal(b.readUInt32LE(at('last')), 9);
  const back = valueCodec.decode(v) as Record<string, unknown>;
  assert.equal(back.u64, '18446744073709551615');
  assert.equal(back.s64, '-9223372036854775808');
  assert.equal(back.u32, 4294967295);
  assert.deepEqual(back.counts, [1, 2, 0]);
  assert.deepEqual(back.choice, { as_u32: 0x00020001 }, 'a union decodes as its first largest member');
  assert.equal(back.addr6, '::ffff:1.2.3.4');
  assert.equal(back.daddr, 'fe80::1');
  assert.equal(back.level, 'LOW');
  // Missing fields are zero; a number not named by the enum decodes as the number.
  const zero = valueCodec.decode(valueCodec.encode({ color: 3 })) as Record<string, unknown>;
  assert.equal(zero.color, 3);
  assert.equal(zero.saddr, '0.0.0.0');
  assert.equal(zero.daddr, '::');
  assert.equal(zero.name, '');
});

test('refusals name the path of the field and the allowed range', () => {
  const cases: Array<[unknown, string, RegExp]> = [
    [{ nope: 1 }, 'value.nope', /unknown field of struct all_types/],
    [{ counts: [1, 2, 3, 4] }, 'value.counts', /4 elements, the array holds 3/],
    [{ nested: { a: 70000 } }, 'value.nested.a', /out of range .*0\.\.65535/],
    [{ s8: -129 }, 'value.s8', /-128\.\.127/],
    [{ u64: '18446744073709551616' }, 'value.u64', /out of range/],
    [{ u64: 2 ** 53 + 2 }, 'value.u64', /beyond 2\^53: give it as a decimal string/],
    [{ u32: 1.5 }, 'value.u32', /takes an integer/],
    [{ choice: {} }, 'value.choice', /exactly one of as_u32, bytes, pair/],
    [{ choice: { as_u32: 1, bytes: [] } }, 'value.choice', /exactly one/],
    [{ name: 'eight!!!' }, 'value.name', /too long for char\[8\]/],
    [{ saddr: '1.2.3' }, 'value.saddr', /IPv4 address/],
    [{ daddr: '1.2.3.4' }, 'value.daddr', /IPv6 address/],
    [{ color: 'PINK' }, 'value.color', /known: RED, GREEN, BLUE/],
    [{ pairs: [{}, { c: 1 }] }, 'value.pairs[1].c', /unknown field of struct inner/],
    [{ hi: 32 }, 'value.hi', /5-bit unsigned bitfield/],
    [{ flag: 1 }, 'value.flag', /true or false/],
    [{ sport: 65536 }, 'value.sport', /0\.\.65535/],
    [[], 'value', /expected an object/],
  ];
  for (const [value, path, message] of cases) {
    assert.throws(() => valueCodec.encode(value), (e: unknown) => e instanceof CodecError && e.path === path && message.test(e.message), JSON.stringify(value));
  }
  assert.throws(() => keyCodec.encode({ sport: -1 }, 'key'), (e: unknown) => e instanceof CodecError && e.path === 'key.sport');
  assert.throws(() => keyCodec.decode(new Uint8Array(7)), CodecError);
});

test('rawCodec: hex of exactly the size', () => {
  const raw = rawCodec(4);
  assert.equal(hex(raw.encode('0A0b0c0d')), '0a0b0c0d');
  assert.equal(raw.decode(new Uint8Array([1, 2, 3, 255])), '010203ff');
  assert.throws(() => raw.encode('0a0b0c'), /expected 4 bytes as 8 hex digits/);
  assert.throws(() => raw.encode('0x0a0b0c'), CodecError);
});

/** RFC 5952 text of eight words, by the URL parser (for addresses that are not IPv4-mapped). */
function canonicalIPv6(words: number[]): string {
  return new URL(`http://[${words.map((w) => w.toString(16)).join(':')}]/`).hostname.slice(1, -1);
}

/** Canonical JSON values of a shape: what decode gives back. */
function arbitrary(s: Shape, bitSize = 0): fc.Arbitrary<unknown> {
  const toJson = (n: bigint) => (n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString());
  switch (s.k) {
    case 'int': {
      const bits = bitSize || s.size * 8;
      const [min, max] = s.signed ? [-(1n << BigInt(bits - 1)), (1n << BigInt(bits - 1)) - 1n] : [0n, (1n << BigInt(bits)) - 1n];
      return fc.bigInt(min, max).map(toJson);
    }
    case 'bool':
      return fc.boolean();
    case 'enum':
      return fc.constantFrom(...s.values.map((v) => v.name));
    case 'float':
      return s.size === 4 ? fc.float({ noNaN: true, noDefaultInfinity: true }) : fc.double({ noNaN: true, noDefaultInfinity: true });
    case 'ipv4':
      return fc.ipV4();
    case 'ipv6':
      return fc
        .array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
        .filter((w) => !(w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff))
        .map(canonicalIPv6);
    case 'string':
      return fc.string({ unit: 'grapheme', maxLength: s.size - 1 }).filter((t) => !t.includes('\0') && Buffer.byteLength(t) < s.size);
    case 'array':
      return fc.array(arbitrary(s.elem), { minLength: s.n, maxLength: s.n });
    case 'struct':
      return fc.record(Object.fromEntries(s.fields.filter((f) => !f.encodeOnly).map((f) => [f.name, arbitrary(f.shape, f.bitSize)]))).map((r) => ({ ...r }));
    case 'union': {
      const f = s.fields[s.decodeAs]!;
      return fc.record({ [f.name]: arbitrary(f.shape, f.bitSize) }).map((r) => ({ ...r }));
    }
  }
}

test('round trip: decode(encode(v)) is v for every key and value type of our objects and the fixture (seeded)', () => {
  for (const name of OBJECTS) {
    const info = objectInfo(name);
    const types = [...info.maps.flatMap((m) => [m.keyType, m.valueType]), info.btf.find('event', 'struct')?.id, info.btf.find('sc_key', 'struct')?.id];
    for (const id of types) {
      if (id === undefined) continue;
      const codec = codecFor(info.btf, id);
      const shape = shapeOf(info.btf, id);
      fc.assert(
        fc.property(arbitrary(shape), (v) => {
          assert.deepEqual(codec.decode(codec.encode(v)), v);
        }),
        { seed: 14, numRuns: shape.k === 'struct' && shape.size > 1000 ? 5 : 60 },
      );
    }
  }
});

test('round trip: encode(decode(bytes)) is bytes for keys without padding (seeded)', () => {
  const dispatcher = objectInfo('dispatcher.o');
  const codecs = [keyCodec, codecFor(dispatcher.btf, dispatcher.maps.find((m) => m.name === 'bindings')!.keyType!)];
  for (const codec of codecs) {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: codec.size, maxLength: codec.size }), (bytes) => {
        assert.equal(hex(codec.encode(codec.decode(bytes))), hex(bytes));
      }),
      { seed: 14, numRuns: 200 },
    );
  }
});
