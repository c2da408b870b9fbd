/** The BTF reader: ELF sections, BTF types and what our objects and the fixture declare (no kernel, no libbpf). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { BtfError, parseBtf } from '../../src/btf/btf.js';
import { elfSections } from '../../src/btf/elf.js';
import { readObjectInfo, type ObjectInfo } from '../../src/btf/object-info.js';
import { REPO_ROOT } from './policy-test-helpers.js';

/** BPF_MAP_TYPE_* from /usr/include/linux/bpf.h. */
const MAP_TYPE = { HASH: 1, ARRAY: 2, PERCPU_ARRAY: 6, CGROUP_ARRAY: 8, LPM_TRIE: 11, ARRAY_OF_MAPS: 12, SOCKMAP: 15, RINGBUF: 27 };

function objectInfo(name: string): ObjectInfo {
  return readObjectInfo(readFileSync(`${REPO_ROOT}build/bpf/${name}`), name);
}

test('elfSections finds .BTF and refuses a file that is not ELF', () => {
  const sections = elfSections(readFileSync(`${REPO_ROOT}build/bpf/dispatcher.o`));
  assert.ok(sections.get('.BTF')!.length > 24);
  assert.ok(sections.has('sk_lookup'));
  assert.throws(() => elfSections(new TextEncoder().encode('#!/bin/sh\n'.repeat(10))), BtfError);
  assert.throws(() => parseBtf(new Uint8Array(32)), /bad BTF magic/);
});

test('our objects: maps with their types and sizes, programs with their sections, the license', () => {
  const d = objectInfo('dispatcher.o');
  assert.equal(d.license, 'Dual BSD/GPL');
  assert.deepEqual(d.programs, [{ name: 'dispatcher', section: 'sk_lookup' }]);
  const bindings = d.maps.find((m) => m.name === 'bindings')!;
  assert.equal(bindings.mapType, MAP_TYPE.LPM_TRIE);
  assert.equal(bindings.maxEntries, 1_048_576);
  assert.equal(d.btf.typeName(bindings.keyType!), 'struct binding_key');
  assert.equal(bindings.keySize, 23);
  assert.equal(bindings.valueSize, 8);
  assert.equal(d.maps.find((m) => m.name === 'sockets')!.mapType, MAP_TYPE.SOCKMAP);

  const f = objectInfo('packet_filter.o');
  assert.deepEqual(f.programs.map((p) => `${p.name}@${p.section}`), ['filter_xdp@xdp', 'filter_tc@tc']);
  const addr = f.maps.find((m) => m.name === 'addr_tables')!;
  assert.equal(addr.mapType, MAP_TYPE.ARRAY_OF_MAPS);
  assert.equal(addr.valueSize, 4);
  assert.equal(addr.valueType, undefined);
  const inner = f.btf.get(addr.innerDefinition!);
  assert.equal(inner.name, 'addr_table');
  const ev = f.maps.find((m) => m.name === 'events')!;
  assert.deepEqual([ev.mapType, ev.keySize, ev.valueSize, ev.maxEntries], [MAP_TYPE.RINGBUF, 0, 0, 131072]);

  const c = objectInfo('connect_policy.o');
  assert.deepEqual(c.programs.map((p) => p.section), ['cgroup/connect4', 'cgroup/connect6', 'cgroup/sendmsg4', 'cgroup/sendmsg6']);

  const s = objectInfo('syscall_counter.o');
  assert.deepEqual(s.programs, [{ name: 'count_syscalls', section: 'raw_tracepoint/sys_enter' }]);
  const cg = s.maps.find((m) => m.name === 'cgroups')!;
  assert.deepEqual([cg.mapType, cg.keySize, cg.valueSize, cg.keyType, cg.valueType], [MAP_TYPE.CGROUP_ARRAY, 4, 4, undefined, undefined]);
  assert.equal(s.btf.sizeOf(s.btf.find('sc_key', 'struct')!.id), 32);
});

test('the fixture: every kind of type the codec handles, with C-like names', () => {
  const info = objectInfo('fixture_btf_types.o');
  const { btf } = info;
  assert.deepEqual(info.maps.map((m) => m.name), ['tuples', 'holey', 'raw', 'events']);
  const raw = info.maps.find((m) => m.name === 'raw')!;
  assert.deepEqual([raw.mapType, raw.keySize, raw.valueSize, raw.keyType], [MAP_TYPE.ARRAY, 4, 12, undefined]);
  const all = btf.find('all_types', 'struct')!;
  assert.equal(all.size, 160);
  const member = (name: string) => all.members!.find((m) => m.name === name)!;
  const named = (name: string) => btf.typeName(member(name).type);
  assert.equal(named('counts'), '__u32[3]');
  assert.equal(named('nested'), 'struct inner');
  assert.equal(named('choice'), 'union choice');
  assert.equal(named('name'), 'char[8]');
  assert.equal(named('be16'), '__be16');
  assert.equal(named('daddr'), 'struct in6_addr');
  assert.equal(named('color'), 'enum color');
  assert.equal(named('ratio'), 'float');
  assert.equal(named('pairs'), 'struct inner[2]');
  assert.deepEqual([member('lo').bitOffset, member('lo').bitSize, member('hi').bitOffset, member('hi').bitSize], [960, 3, 963, 5]);
  assert.equal(btf.resolve(member('be32').type).name, 'unsigned int');
  assert.deepEqual(btf.resolve(member('flag').type).encoding, { signed: false, bool: true, char: false, bits: 8, offset: 0 });
  // clang 14 emits a negative enum value as unsigned without the kind flag: read back as negative.
  assert.deepEqual(btf.find('level', 'enum')!.enumValues, [{ name: 'LOW', value: -2n }, { name: 'HIGH', value: 100n }]);
  assert.equal(btf.sizeOf(btf.find('event', 'struct')!.id), 32);
  assert.equal(btf.typeName(0), 'void');
  assert.throws(() => btf.get(btf.types.length), BtfError);
});

test('readObjectInfo names the file and keeps the cause', () => {
  const err = (() => {
    try {
      readObjectInfo(new Uint8Array(100), 'nothing.o');
    } catch (e) {
      return e as Error;
    }
    return undefined;
  })();
  assert.ok(err instanceof BtfError);
  assert.match(err.message, /^nothing\.o: not an ELF file/);
  assert.ok(err.cause instanceof BtfError);
});
