/**
 * TypeScript declarations of what an object's maps hold and of named C
 * types (`ebpf-policy types`, the bpf2go `-type` equivalent): the JSON
 * shapes the codec (src/btf/codec.ts) encodes and decodes.
 */
import type { Btf, BtfType } from './btf.js';
import { shapeOf, type Shape } from './codec.js';
import { BtfError } from './errors.js';
import type { ObjectInfo } from './object-info.js';

/** Options of {@link typescriptDeclarations}. */
export interface TypescriptOptions {
  /** Named structs, unions or enums to declare besides the maps' types (like bpf2go -type). */
  types?: string[];
  /** Named in the header comment, e.g. "build/bpf/dispatcher.o". */
  source?: string;
}

/** `binding_key` → `BindingKey`. */
function pascal(name: string): string {
  const p = name
    .split(/[^A-Za-z0-9]+/)
    .filter((w) => w !== '')
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join('');
  return /^[0-9]/.test(p) || p === '' ? `T${p}` : p;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

class Declarations {
  private readonly names = new Map<string, string>(); // "struct foo" -> "Foo"
  private readonly taken = new Set<string>();
  private readonly bodies: string[] = [];
  private readonly done = new Set<string>();

  constructor(private readonly btf: Btf) {}

  /** A fresh TypeScript name based on `wanted`. */
  allocate(wanted: string): string {
    let name = wanted;
    for (let i = 2; this.taken.has(name); i++) name = `${wanted}${i}`;
    this.taken.add(name);
    return name;
  }

  /** The TypeScript type of a shape; named structs, unions and enums become declarations. */
  type(s: Shape): string {
    switch (s.k) {
      case 'int':
        return s.size === 8 ? 'number | string' : 'number';
      case 'bool':
        return 'boolean';
      case 'float':
        return 'number';
      case 'ipv4':
      case 'ipv6':
      case 'string':
        return 'string';
      case 'enum':
        return s.name ? this.named(`enum ${s.name}`, s) : this.enumBody(s);
      case 'array': {
        const elem = this.type(s.elem);
        return /[|{ ]/.test(elem) && !/^[A-Za-z0-9_]+$/.test(elem) ? `(${elem})[]` : `${elem}[]`;
      }
      case 'struct':
      case 'union':
        return s.name ? this.named(`${s.k} ${s.name}`, s) : this.recordBody(s);
    }
  }

  private enumBody(s: Extract<Shape, { k: 'enum' }>): string {
    return [...s.values.map((v) => JSON.stringify(v.name)), 'number'].join(' | ');
  }

  private recordBody(s: Extract<Shape, { k: 'struct' | 'union' }>): string {
    const prop = (name: string) => (IDENTIFIER.test(name) ? name : JSON.stringify(name));
    if (s.k === 'union') return s.fields.map((f) => `{ ${prop(f.name)}: ${this.type(f.shape)} }`).join(' | ');
    return `{ ${s.fields.map((f) => `${prop(f.name)}${f.encodeOnly ? '?' : ''}: ${this.type(f.shape)};`).join(' ')} }`;
  }

  private named(cName: string, s: Extract<Shape, { k: 'enum' | 'struct' | 'union' }>): string {
    let ts = this.names.get(cName);
    if (ts) return ts;
    ts = this.allocate(pascal(cName.replace(/^(struct|union|enum) /, '')));
    this.names.set(cName, ts);
    let body: string;
    if (s.k === 'enum') body = `/** ${cName}: an enumerator's name, or a number. */\nexport type ${ts} = ${this.enumBody(s)};`;
    else if (s.k === 'union') body = `/** ${cName} (${s.size} bytes): exactly one member. */\nexport type ${ts} = ${this.recordBody(s)};`;
    else {
      const prop = (name: string) => (IDENTIFIER.test(name) ? name : JSON.stringify(name));
      const lines = s.fields.map((f) => `  ${prop(f.name)}${f.encodeOnly ? '?' : ''}: ${this.type(f.shape)};`);
      body = `/** ${cName} (${s.size} bytes). */\nexport interface ${ts} {\n${lines.join('\n')}\n}`;
    }
    if (!this.done.has(cName)) {
      this.done.add(cName);
      this.bodies.push(body);
    }
    return ts;
  }

  /** Declares a named C type by id. */
  declare(t: BtfType): string {
    return this.type(shapeOf(this.btf, t.id, '', t.name));
  }

  declarations(): string[] {
    return this.bodies;
  }
}

/**
 * TypeScript declarations for an object: for every map, `<Map>MapKey` and
 * `<Map>MapValue` (the codec's JSON shapes: from the BTF types, or a hex
 * `string` for a map declared with sizes only; none for ring buffers and
 * other maps without key and value), and interfaces or type aliases for the
 * named structs, unions and enums they use and for `options.types`. 64-bit
 * integers are `number | string` (decimal strings beyond 2^53). The output
 * is deterministic and compiles with `tsc --strict`.
 * @throws BtfError naming a type of `options.types` the object does not have;
 *   CodecError for a map type the codec cannot hold.
 */
export function typescriptDeclarations(info: ObjectInfo, options: TypescriptOptions = {}): string {
  const decl = new Declarations(info.btf);
  const mapLines: string[] = [];
  for (const m of info.maps) {
    const base = pascal(m.name);
    const describe = (typeId: number | undefined, size: number) => (typeId !== undefined ? info.btf.typeName(typeId) : `${size} bytes, hex`);
    const parts: string[] = [];
    for (const [what, typeId, size] of [
      ['Key', m.keyType, m.keySize],
      ['Value', m.valueType, m.valueSize],
    ] as const) {
      if (typeId === undefined && size === 0) continue;
      const ts = typeId !== undefined ? decl.type(shapeOf(info.btf, typeId, '', `${m.name}.${what.toLowerCase()}`)) : 'string';
      const name = decl.allocate(`${base}Map${what}`);
      parts.push(`/** Map ${m.name}, ${what.toLowerCase()}: ${describe(typeId, size)}. */\nexport type ${name} = ${ts};`);
    }
    if (parts.length > 0) mapLines.push(...parts);
    else mapLines.push(`// Map ${m.name}: no key or value (map type ${m.mapType}).`);
  }
  for (const name of options.types ?? []) {
    const t = info.btf.types.find((x) => x.name === name && (x.kind === 'struct' || x.kind === 'union' || x.kind === 'enum' || x.kind === 'enum64'));
    if (!t) {
      const known = info.btf.types.filter((x) => x.name !== '' && ['struct', 'union', 'enum', 'enum64'].includes(x.kind)).map((x) => x.name);
      throw new BtfError(`no struct, union or enum named ${name} in the object's BTF (it has: ${[...new Set(known)].join(', ') || 'none'})`);
    }
    decl.declare(t);
  }
  const header = [
    '/* eslint-disable */',
    '/**',
    ` * Generated by \`ebpf-policy types\`${options.source ? ` from ${options.source}` : ''}: the JSON shapes the BTF codec`,
    ' * (src/btf/codec.ts, docs/btf-codec.md) encodes and decodes. Do not edit.',
    ' */',
  ];
  return `${[...header, '', ...mapLines, '', ...decl.declarations().flatMap((d) => [d, ''])].join('\n').trimEnd()}\n`;
}
