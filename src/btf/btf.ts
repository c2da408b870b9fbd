/**
 * A parser of the BPF Type Format (the `.BTF` section of an object file,
 * linux/btf.h): every type, with the helpers the codec, the TypeScript
 * generator and the layout checks need. Pure TypeScript, no libbpf.
 */
import { BtfError } from './errors.js';

export { BtfError } from './errors.js';

/** BTF_KIND_* of linux/btf.h, by value (index = kind number). */
const KINDS = [
  undefined, 'int', 'ptr', 'array', 'struct', 'union', 'enum', 'fwd', 'typedef', 'volatile',
  'const', 'restrict', 'func', 'func_proto', 'var', 'datasec', 'float', 'decl_tag', 'type_tag', 'enum64',
] as const;

/** The kind of a BTF type. */
export type BtfKind = NonNullable<(typeof KINDS)[number]>;

/** An integer's BTF encoding (BTF_INT_SIGNED/CHAR/BOOL, bits, bit offset). */
export interface BtfIntEncoding {
  signed: boolean;
  bool: boolean;
  char: boolean;
  bits: number;
  offset: number;
}

/** A struct or union member; `bitSize` is 0 for a member that is not a bitfield. */
export interface BtfMember {
  name: string;
  type: number;
  bitOffset: number;
  bitSize: number;
}

/** One type of a BTF section. Which optional fields are set depends on `kind`. */
export interface BtfType {
  /** The type id; 0 is void. */
  id: number;
  kind: BtfKind;
  /** The name, "" when anonymous. */
  name: string;
  /** int, struct, union, enum, enum64, datasec, float: the size in bytes. */
  size?: number;
  /** ptr, typedef, volatile, const, restrict, func, func_proto (return type), var, decl_tag, type_tag: the referenced type. */
  type?: number;
  /** int only. */
  encoding?: BtfIntEncoding;
  /** struct, union. */
  members?: BtfMember[];
  /** enum, enum64. */
  enumValues?: { name: string; value: bigint }[];
  /** enum, enum64: the values are signed (the kind flag, or a negative value). */
  signed?: boolean;
  /** array. */
  array?: { elemType: number; indexType: number; nelems: number };
  /** datasec: its variables. */
  vars?: { type: number; offset: number; size: number }[];
  /** func_proto: the parameters. */
  params?: { name: string; type: number }[];
  /** var: linkage; func: linkage (BTF_FUNC_*); decl_tag: component index. */
  linkage?: number;
  /** fwd: true for a forward-declared union. */
  fwdUnion?: boolean;
}

/** The types of one BTF section. */
export interface Btf {
  /** Every type; index = id, 0 = void (kind "int", name "void", size 0, no encoding). */
  readonly types: readonly BtfType[];
  /**
   * The type with id `id`.
   * @throws BtfError for an id out of range.
   */
  get(id: number): BtfType;
  /**
   * The type `id` names, skipping typedef, const, volatile, restrict and type_tag.
   * @throws BtfError for an id out of range or a loop.
   */
  resolve(id: number): BtfType;
  /**
   * The size in bytes of type `id` (pointers are 8 bytes; arrays nelems × elem).
   * @throws BtfError for a type without a size (void, func, fwd).
   */
  sizeOf(id: number): number;
  /** The first type named `name` (of `kind` when given), or undefined. */
  find(name: string, kind?: BtfKind): BtfType | undefined;
  /** A C-like name of type `id`: "struct tuple", "__u32[4]", "char *", "void". */
  typeName(id: number): string;
}

const HEADER_MIN = 24;
const BTF_MAGIC = 0xeb9f;
const MODIFIERS: ReadonlySet<BtfKind> = new Set(['typedef', 'const', 'volatile', 'restrict', 'type_tag']);

class ParsedBtf implements Btf {
  readonly types: BtfType[];
  private readonly byName = new Map<string, BtfType[]>();

  constructor(types: BtfType[]) {
    this.types = types;
    for (const t of types) {
      if (t.name === '') continue;
      const list = this.byName.get(t.name) ?? [];
      list.push(t);
      this.byName.set(t.name, list);
    }
  }

  get(id: number): BtfType {
    const t = this.types[id];
    if (!t) throw new BtfError(`BTF type id ${id} out of range (${this.types.length} types)`);
    return t;
  }

  resolve(id: number): BtfType {
    let t = this.get(id);
    for (let hops = 0; MODIFIERS.has(t.kind); hops++) {
      if (hops > this.types.length) throw new BtfError(`BTF type ${id} refers to itself`);
      t = this.get(t.type ?? 0);
    }
    return t;
  }

  sizeOf(id: number): number {
    const t = this.resolve(id);
    switch (t.kind) {
      case 'int':
      case 'struct':
      case 'union':
      case 'enum':
      case 'enum64':
      case 'float':
      case 'datasec':
        return t.size ?? 0;
      case 'ptr':
        return 8;
      case 'array':
        return t.array!.nelems * this.sizeOf(t.array!.elemType);
      case 'var':
        return this.sizeOf(t.type!);
      default:
        throw new BtfError(`BTF type ${id} (${this.typeName(id)}) has no size`);
    }
  }

  find(name: string, kind?: BtfKind): BtfType | undefined {
    return this.byName.get(name)?.find((t) => kind === undefined || t.kind === kind);
  }

  typeName(id: number): string {
    return this.declaration(id, '').trim();
  }

  /** C declaration of `inner` with type `id` (inner = "" for the type name alone). */
  private declaration(id: number, inner: string, depth = 0): string {
    if (depth > 64) return `<loop>${inner}`;
    const tail = inner === '' ? '' : inner.startsWith('[') ? inner : ` ${inner}`;
    if (id === 0) return `void${tail}`;
    const t = this.get(id);
    const named = (prefix: string) => `${prefix}${t.name || '(anon)'}${tail}`;
    switch (t.kind) {
      case 'int':
      case 'float':
      case 'typedef':
        return named('');
      case 'struct':
      case 'union':
      case 'enum':
        return named(`${t.kind} `);
      case 'enum64':
        return named('enum ');
      case 'fwd':
        return named(t.fwdUnion ? 'union ' : 'struct ');
      case 'ptr': {
        const target = this.get(t.type ?? 0);
        const star = target.kind === 'array' || target.kind === 'func_proto' ? `(*${inner})` : `*${inner}`;
        return this.declaration(t.type ?? 0, star, depth + 1);
      }
      case 'array':
        return this.declaration(t.array!.elemType, `${inner}[${t.array!.nelems}]`, depth + 1);
      case 'const':
      case 'volatile':
      case 'restrict':
        return `${t.kind} ${this.declaration(t.type ?? 0, inner, depth + 1)}`;
      case 'type_tag':
        return this.declaration(t.type ?? 0, inner, depth + 1);
      case 'func_proto': {
        const params = (t.params ?? []).map((p) => (p.type === 0 ? '...' : this.typeName(p.type))).join(', ');
        return this.declaration(t.type ?? 0, `${inner}(${params})`, depth + 1);
      }
      case 'func':
      case 'var':
      case 'datasec':
      case 'decl_tag':
        return named(`${t.kind} `);
    }
  }
}

/**
 * Parses a `.BTF` section (little-endian, version 1).
 * @throws BtfError on a bad magic, a truncated section or an unknown kind.
 */
export function parseBtf(section: Uint8Array): Btf {
  if (section.length < HEADER_MIN) throw new BtfError(`BTF section of ${section.length} bytes is shorter than its header`);
  const view = new DataView(section.buffer, section.byteOffset, section.byteLength);
  const magic = view.getUint16(0, true);
  if (magic !== BTF_MAGIC) throw new BtfError(`bad BTF magic 0x${magic.toString(16)} (a big-endian or not a BTF section?)`);
  const version = view.getUint8(2);
  if (version !== 1) throw new BtfError(`BTF version ${version}, only 1 is known`);
  const hdrLen = view.getUint32(4, true);
  const typeOff = hdrLen + view.getUint32(8, true);
  const typeLen = view.getUint32(12, true);
  const strOff = hdrLen + view.getUint32(16, true);
  const strLen = view.getUint32(20, true);
  if (typeOff + typeLen > section.length || strOff + strLen > section.length) throw new BtfError('BTF section truncated: types or strings lie outside it');
  const strings = section.subarray(strOff, strOff + strLen);
  const str = (off: number): string => {
    if (off >= strings.length) throw new BtfError(`BTF string offset ${off} out of range`);
    let end = off;
    while (end < strings.length && strings[end] !== 0) end++;
    return Buffer.from(strings.buffer, strings.byteOffset + off, end - off).toString('utf8');
  };
  // Id 0 is void: kept as a nameless-size "int" without an encoding, so every id has a type.
  const types: BtfType[] = [{ id: 0, kind: 'int', name: 'void', size: 0 }];
  const end = typeOff + typeLen;
  let at = typeOff;
  const u32 = (o: number) => {
    if (o + 4 > end) throw new BtfError(`BTF type ${types.length} truncated`);
    return view.getUint32(o, true);
  };
  while (at < end) {
    const id = types.length;
    const name = str(u32(at));
    const info = u32(at + 4);
    const sizeOrType = u32(at + 8);
    at += 12;
    const vlen = info & 0xffff;
    const kindNum = (info >>> 24) & 0x1f;
    const kindFlag = (info >>> 31) === 1;
    const kind = KINDS[kindNum];
    if (!kind) throw new BtfError(`BTF type ${id} has unknown kind ${kindNum}`);
    const t: BtfType = { id, kind, name };
    switch (kind) {
      case 'int': {
        const e = u32(at);
        at += 4;
        const enc = (e >>> 24) & 0x0f;
        t.size = sizeOrType;
        t.encoding = { signed: (enc & 1) !== 0, char: (enc & 2) !== 0, bool: (enc & 4) !== 0, bits: e & 0xff, offset: (e >>> 16) & 0xff };
        break;
      }
      case 'ptr':
      case 'typedef':
      case 'volatile':
      case 'const':
      case 'restrict':
      case 'type_tag':
        t.type = sizeOrType;
        break;
      case 'fwd':
        t.fwdUnion = kindFlag;
        break;
      case 'func':
        t.type = sizeOrType;
        t.linkage = vlen;
        break;
      case 'array':
        t.array = { elemType: u32(at), indexType: u32(at + 4), nelems: u32(at + 8) };
        at += 12;
        break;
      case 'struct':
      case 'union':
        t.size = sizeOrType;
        t.members = [];
        for (let i = 0; i < vlen; i++, at += 12) {
          const off = u32(at + 8);
          t.members.push({
            name: str(u32(at)),
            type: u32(at + 4),
            bitOffset: kindFlag ? off & 0xffffff : off,
            bitSize: kindFlag ? off >>> 24 : 0,
          });
        }
        break;
      case 'enum':
        t.size = sizeOrType;
        t.enumValues = [];
        for (let i = 0; i < vlen; i++, at += 8) {
          const raw = u32(at + 4);
          t.enumValues.push({ name: str(u32(at)), value: BigInt(kindFlag ? raw | 0 : raw) });
        }
        // Without the kind flag (clang 14 leaves it unset) a value above 2^31 may be a negative one.
        if (!kindFlag && t.enumValues.some((v) => v.value >= 0x80000000n)) {
          t.enumValues = t.enumValues.map((v) => ({ name: v.name, value: BigInt(Number(v.value) | 0) }));
          t.signed = true;
        } else t.signed = kindFlag;
        break;
      case 'enum64':
        t.size = sizeOrType;
        t.enumValues = [];
        for (let i = 0; i < vlen; i++, at += 12) {
          const raw = (BigInt(u32(at + 8)) << 32n) | BigInt(u32(at + 4));
          t.enumValues.push({ name: str(u32(at)), value: kindFlag ? BigInt.asIntN(64, raw) : raw });
        }
        t.signed = kindFlag;
        break;
      case 'func_proto':
        t.type = sizeOrType;
        t.params = [];
        for (let i = 0; i < vlen; i++, at += 8) t.params.push({ name: str(u32(at)), type: u32(at + 4) });
        break;
      case 'var':
        t.type = sizeOrType;
        t.linkage = u32(at);
        at += 4;
        break;
      case 'datasec':
        t.size = sizeOrType;
        t.vars = [];
        for (let i = 0; i < vlen; i++, at += 12) t.vars.push({ type: u32(at), offset: u32(at + 4), size: u32(at + 8) });
        break;
      case 'float':
        t.size = sizeOrType;
        break;
      case 'decl_tag':
        t.type = sizeOrType;
        t.linkage = view.getInt32(at, true);
        at += 4;
        break;
    }
    types.push(t);
  }
  return new ParsedBtf(types);
}
