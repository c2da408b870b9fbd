/**
 * The layout guard: every C struct a hand-written encoder of ours assumes
 * (the C_STRUCTS table of each src/kinds/<kind>/layout.ts, whose offsets the
 * encoders read) is compared with the struct in the compiled object's BTF:
 * size, the set of members, each member's offset and size. Map keys must have
 * no padding holes (two equal keys differing in padding bytes would be two
 * entries). An encoder and a decoder written from the same wrong offsets
 * agree with each other; only the BTF can tell them wrong.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { structLayout } from '../../src/btf/layout.js';
import { readObjectInfo, type ObjectInfo } from '../../src/btf/object-info.js';
import type { CStruct } from '../../src/common/c-struct.js';
import { REPO_ROOT } from './policy-test-helpers.js';

const objects = new Map<string, ObjectInfo>();
function objectInfo(path: string): ObjectInfo {
  let info = objects.get(path);
  if (!info) objects.set(path, (info = readObjectInfo(readFileSync(path), path)));
  return info;
}

/** A hand-written encoder: reads or writes an integer at an offset of a buffer. */
const HAND_WRITTEN = /\.(write|read)(Big)?U?Int(8|16|32|64)(LE|BE)?\(/;

/**
 * The C_STRUCTS table of every kind whose layout.ts exports one; a layout.ts
 * with hand-written encoders (integer reads or writes at offsets) must.
 */
async function kindLayouts(): Promise<Map<string, readonly CStruct[]>> {
  const out = new Map<string, readonly CStruct[]>();
  const kindsDir = `${REPO_ROOT}src/kinds`;
  for (const kind of readdirSync(kindsDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
    if (!readdirSync(`${kindsDir}/${kind}`).includes('layout.ts')) continue;
    const mod = (await import(`../../src/kinds/${kind}/layout.js`)) as { C_STRUCTS?: readonly CStruct[] };
    if (mod.C_STRUCTS) out.set(kind, mod.C_STRUCTS);
    else
      assert.doesNotMatch(
        readFileSync(`${kindsDir}/${kind}/layout.ts`, 'utf8'),
        HAND_WRITTEN,
        `src/kinds/${kind}/layout.ts encodes by hand but exports no C_STRUCTS: list the C structs its encoders assume, for this guard`,
      );
  }
  return out;
}

/** What differs between an assumed layout and the BTF's, one line per difference. */
function differences(assumed: CStruct): string[] {
  const info = objectInfo(assumed.object);
  const t = info.btf.find(assumed.struct, 'struct');
  if (!t) return [`struct ${assumed.struct} is not in the BTF of ${assumed.object}`];
  const layout = structLayout(info.btf, t.id);
  const out: string[] = [];
  if (layout.size !== assumed.size) out.push(`size: encoder ${assumed.size}, BTF ${layout.size}`);
  const fields = assumed.fields as Record<string, { offset: number; size: number }>;
  for (const f of layout.fields) {
    const a = fields[f.name];
    if (!a) out.push(`${f.name} (${f.type} at ${f.offset}, ${f.size} bytes) is unknown to the encoder`);
    else if (a.offset !== f.offset || a.size !== f.size) out.push(`${f.name}: encoder ${a.offset}+${a.size}, BTF ${f.offset}+${f.size} (${f.type})`);
  }
  for (const name of Object.keys(fields)) if (!layout.fields.some((f) => f.name === name)) out.push(`${name}: no such member in the C struct`);
  if (assumed.mapKey && layout.holes.length > 0) out.push(`map key with padding holes at ${layout.holes.map((h) => `${h.offset}+${h.size}`).join(', ')}`);
  return out;
}

test('every hand-written layout matches its struct in the object BTF: size, members, offsets; no holes in keys', async () => {
  const layouts = await kindLayouts();
  // The kinds with hand-written encoders; a kind that encodes through the BTF codec may list no struct.
  for (const kind of ['connect-policy', 'packet-filter', 'port-steering', 'syscall-counter'])
    assert.ok((layouts.get(kind)?.length ?? 0) > 0, `src/kinds/${kind}/layout.ts: no C_STRUCTS`);
  const problems: string[] = [];
  for (const [kind, structs] of layouts) {
    for (const s of structs) for (const d of differences(s)) problems.push(`${kind}: struct ${s.struct}: ${d}`);
  }
  assert.deepEqual(problems, []);
});

test('every struct our objects use as a map key is in a kind table and has no padding holes', async () => {
  const listed = new Set([...(await kindLayouts()).values()].flat().filter((s) => s.mapKey).map((s) => `${s.object}:${s.struct}`));
  const objectsOfKinds = new Set([...(await kindLayouts()).values()].flat().map((s) => s.object));
  for (const path of objectsOfKinds) {
    const info = objectInfo(path);
    for (const m of info.maps) {
      if (m.keyType === undefined) continue;
      const key = info.btf.resolve(m.keyType);
      if (key.kind !== 'struct') continue;
      assert.ok(listed.has(`${path}:${key.name}`), `${path}: map ${m.name}'s key struct ${key.name} is not a mapKey of any C_STRUCTS table`);
      assert.deepEqual(structLayout(info.btf, key.id).holes, [], `${path}: map ${m.name}: key struct ${key.name} has padding holes`);
    }
  }
});

test('the guard sees a moved field, a wrong size, an unknown member and a hole in a key', () => {
  const good = { object: `${REPO_ROOT}build/bpf/fixture_btf_types.o`, struct: 'tuple', size: 8, mapKey: true, fields: { saddr: { offset: 0, size: 4 }, sport: { offset: 4, size: 2 }, proto: { offset: 6, size: 1 }, pad: { offset: 7, size: 1 } } };
  assert.deepEqual(differences(good), []);
  assert.deepEqual(differences({ ...good, fields: { ...good.fields, sport: { offset: 5, size: 2 } } }), ['sport: encoder 5+2, BTF 4+2 (__be16)']);
  assert.deepEqual(differences({ ...good, size: 9 }), ['size: encoder 9, BTF 8']);
  const { pad: _pad, ...withoutPad } = good.fields;
  assert.deepEqual(differences({ ...good, fields: withoutPad }), ['pad (__u8 at 7, 1 bytes) is unknown to the encoder']);
  assert.deepEqual(differences({ ...good, struct: 'holey_key', fields: { kind: { offset: 0, size: 1 }, id: { offset: 4, size: 4 } } }), ['map key with padding holes at 1+3']);
  const all = structLayout(objectInfo(good.object).btf, objectInfo(good.object).btf.find('all_types', 'struct')!.id);
  assert.deepEqual(all.holes, [
    { offset: 6, size: 2 },
    { offset: 33, size: 3 },
    { offset: 74, size: 2 },
    { offset: 122, size: 2 },
    { offset: 132, size: 4 },
    { offset: 156, size: 4 },
  ]);
  assert.deepEqual(all.fields.find((f) => f.name === 'hi'), { name: 'hi', offset: 120, size: 1, type: '__u32:5' });
});
