/**
 * What a compiled BPF object declares, read from its ELF sections and BTF
 * alone (no libbpf, no privileges): its BTF-defined maps, its programs and
 * its license.
 */
import { parseBtf, type Btf, type BtfType } from './btf.js';
import { BtfError } from './errors.js';
import { elfSectionHeaders, elfSymbols, SHF_EXECINSTR, STT_FUNC } from './elf.js';

/** A map of the object's `.maps` section (libbpf's BTF-defined maps). */
export interface ObjectMap {
  name: string;
  /** BPF_MAP_TYPE_* (linux/bpf.h); 0 when the definition gives no type. */
  mapType: number;
  /** Key and value sizes in bytes: from `key_size`/`value_size`, else the size of the key/value type; 0 when neither is given. */
  keySize: number;
  valueSize: number;
  /** 0 when not given. */
  maxEntries: number;
  /** BTF type ids of `__type(key, ...)` and `__type(value, ...)`; undefined when only a size is given. */
  keyType?: number;
  valueType?: number;
  /** `map_flags`, when given. */
  mapFlags?: number;
  /** For a map of maps (`__array(values, struct inner)`): the BTF id of the inner map's definition struct. */
  innerDefinition?: number;
}

/** A program: a function symbol in an executable section other than `.text`. */
export interface ObjectProgram {
  name: string;
  /** Its ELF section, e.g. "xdp", "tc", "tracepoint/syscalls/sys_enter_execve", "cgroup/connect4". */
  section: string;
}

/** What an object file declares. */
export interface ObjectInfo {
  btf: Btf;
  maps: ObjectMap[];
  programs: ObjectProgram[];
  /** The `license` section's string, when there is one. */
  license?: string;
}

/** The integer a `__uint(name, N)` member encodes: a pointer to an array of N elements. */
function uintMember(btf: Btf, typeId: number, where: string): number {
  const ptr = btf.resolve(typeId);
  const target = ptr.kind === 'ptr' ? btf.resolve(ptr.type ?? 0) : undefined;
  if (!target || target.kind !== 'array') throw new BtfError(`${where} is not declared with __uint (a pointer to an array)`);
  return target.array!.nelems;
}

/** The type a `__type(name, T)` member names: a pointer to T. */
function typeMember(btf: Btf, typeId: number, where: string): number {
  const ptr = btf.resolve(typeId);
  if (ptr.kind !== 'ptr') throw new BtfError(`${where} is not declared with __type (a pointer)`);
  return ptr.type ?? 0;
}

/**
 * Reads a BTF-defined map definition struct (the members libbpf's
 * `__uint`/`__type`/`__array` macros declare).
 * @throws BtfError on a member that is not encoded as those macros encode it.
 */
export function mapDefinition(btf: Btf, name: string, def: BtfType): ObjectMap {
  const map: ObjectMap = { name, mapType: 0, keySize: 0, valueSize: 0, maxEntries: 0 };
  if (def.kind !== 'struct') throw new BtfError(`map ${name}: its definition is a ${def.kind}, not a struct`);
  for (const m of def.members ?? []) {
    const where = `map ${name}: member ${m.name}`;
    switch (m.name) {
      case 'type':
        map.mapType = uintMember(btf, m.type, where);
        break;
      case 'max_entries':
        map.maxEntries = uintMember(btf, m.type, where);
        break;
      case 'key_size':
        map.keySize = uintMember(btf, m.type, where);
        break;
      case 'value_size':
        map.valueSize = uintMember(btf, m.type, where);
        break;
      case 'map_flags':
        map.mapFlags = uintMember(btf, m.type, where);
        break;
      case 'key':
        map.keyType = typeMember(btf, m.type, where);
        break;
      case 'value':
        map.valueType = typeMember(btf, m.type, where);
        break;
      case 'values': {
        // __array(values, struct inner): an array of pointers to the inner definition.
        const arr = btf.resolve(m.type);
        if (arr.kind === 'array') {
          const ptr = btf.resolve(arr.array!.elemType);
          if (ptr.kind === 'ptr') map.innerDefinition = btf.resolve(ptr.type ?? 0).id;
        }
        break;
      }
      default:
        break; // pinning, numa_node, map_extra, ...: not needed here
    }
  }
  if (map.keyType !== undefined && map.keySize === 0) map.keySize = btf.sizeOf(map.keyType);
  if (map.valueType !== undefined && map.valueSize === 0) map.valueSize = btf.sizeOf(map.valueType);
  // A map of maps holds map fds: libbpf gives it 4-byte values when the definition has none.
  if (map.innerDefinition !== undefined && map.valueSize === 0) map.valueSize = 4;
  return map;
}

/**
 * Reads what object file `bytes` declares: maps from its `.maps` DATASEC
 * (BTF-defined maps), programs from the FUNC symbols of executable sections
 * other than `.text`, the license from the `license` section.
 * @param file named in error messages.
 * @throws BtfError when the file is not ELF64 little-endian, has no `.BTF`
 *   section, or its BTF or a map definition cannot be read; the original
 *   error is the `cause`.
 */
export function readObjectInfo(bytes: Uint8Array, file?: string): ObjectInfo {
  const what = file ?? 'object';
  try {
    const sections = elfSectionHeaders(bytes);
    const btfSection = sections.find((s) => s.name === '.BTF');
    if (!btfSection) throw new BtfError('no .BTF section (compile with clang -g)');
    const btf = parseBtf(btfSection.data);
    const maps: ObjectMap[] = [];
    const datasec = btf.find('.maps', 'datasec');
    for (const v of datasec?.vars ?? []) {
      const variable = btf.get(v.type);
      if (variable.kind !== 'var') continue;
      maps.push(mapDefinition(btf, variable.name, btf.resolve(variable.type ?? 0)));
    }
    const programs: ObjectProgram[] = [];
    for (const sym of elfSymbols(bytes, sections)) {
      if (sym.type !== STT_FUNC || sym.name === '') continue;
      const sec = sections[sym.section];
      if (!sec || sec.name === '.text' || (sec.flags & SHF_EXECINSTR) === 0) continue;
      programs.push({ name: sym.name, section: sec.name });
    }
    const licenseSection = sections.find((s) => s.name === 'license');
    let license: string | undefined;
    if (licenseSection) {
      const end = licenseSection.data.indexOf(0);
      license = Buffer.from(licenseSection.data.subarray(0, end < 0 ? undefined : end)).toString('utf8');
    }
    return { btf, maps, programs, ...(license !== undefined ? { license } : {}) };
  } catch (err) {
    if (err instanceof BtfError) throw new BtfError(`${what}: ${err.message}`, { cause: err });
    throw err;
  }
}
