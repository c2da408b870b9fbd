/**
 * Struct layouts from BTF: every member's offset and size, and the bytes no
 * member covers (padding). The layout guard (test/unit/bpf-layouts.test.ts)
 * compares them with the hand-written encoders of src/kinds/.
 */
import type { Btf, BtfMember } from './btf.js';
import { BtfError } from './errors.js';

/** The layout of one struct or union. */
export interface StructLayout {
  /** The C type, e.g. "struct tuple". */
  name: string;
  size: number;
  /**
   * Members in declaration order (members of anonymous structs and unions
   * lifted, with offsets from the start of this struct). A bitfield has the
   * bytes its bits touch, and its type ends in `:bits`.
   */
  fields: { name: string; offset: number; size: number; type: string }[];
  /**
   * Bytes covered by no member, trailing padding included; padding inside a
   * member that is itself a struct or union (or an array of them) counts too,
   * at its offset from the start of this struct.
   */
  holes: { offset: number; size: number }[];
}

function mark(btf: Btf, typeId: number, base: number, covered: Uint8Array): void {
  const t = btf.resolve(typeId);
  if (t.kind === 'struct' || t.kind === 'union') {
    for (const m of t.members ?? []) markMember(btf, m, base, covered);
    return;
  }
  if (t.kind === 'array') {
    const elemSize = btf.sizeOf(t.array!.elemType);
    for (let i = 0; i < t.array!.nelems; i++) mark(btf, t.array!.elemType, base + i * elemSize, covered);
    return;
  }
  covered.fill(1, base, base + btf.sizeOf(typeId));
}

function markMember(btf: Btf, m: BtfMember, base: number, covered: Uint8Array): void {
  if (m.bitSize > 0) covered.fill(1, base + Math.floor(m.bitOffset / 8), base + Math.ceil((m.bitOffset + m.bitSize) / 8));
  else mark(btf, m.type, base + m.bitOffset / 8, covered);
}

/**
 * The layout of struct or union `typeId` (typedefs and qualifiers skipped).
 * @throws BtfError when the type is not a struct or union.
 */
export function structLayout(btf: Btf, typeId: number): StructLayout {
  const t = btf.resolve(typeId);
  if (t.kind !== 'struct' && t.kind !== 'union') throw new BtfError(`${btf.typeName(typeId)} is not a struct or union`);
  const size = t.size ?? 0;
  const fields: StructLayout['fields'] = [];
  const lift = (members: readonly BtfMember[], baseBits: number) => {
    for (const m of members) {
      const mt = btf.resolve(m.type);
      const bitOffset = baseBits + m.bitOffset;
      if (m.name === '' && (mt.kind === 'struct' || mt.kind === 'union')) {
        lift(mt.members ?? [], bitOffset);
        continue;
      }
      if (m.bitSize > 0) {
        const offset = Math.floor(bitOffset / 8);
        fields.push({ name: m.name, offset, size: Math.ceil((bitOffset + m.bitSize) / 8) - offset, type: `${btf.typeName(m.type)}:${m.bitSize}` });
      } else fields.push({ name: m.name, offset: bitOffset / 8, size: btf.sizeOf(m.type), type: btf.typeName(m.type) });
    }
  };
  lift(t.members ?? [], 0);
  const covered = new Uint8Array(size);
  mark(btf, t.id, 0, covered);
  const holes: StructLayout['holes'] = [];
  for (let i = 0; i < size; ) {
    if (covered[i]) {
      i++;
      continue;
    }
    let j = i;
    while (j < size && !covered[j]) j++;
    holes.push({ offset: i, size: j - i });
    i = j;
  }
  return { name: btf.typeName(typeId), size, fields, holes };
}
