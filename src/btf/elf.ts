/**
 * A minimal reader of ELF64 little-endian object files (what clang -target
 * bpf emits): section headers, section contents and the symbol table. Pure
 * TypeScript, no libbpf, so object files can be inspected without privileges.
 */
import { BtfError } from './errors.js';

/** One section header of an ELF file. */
export interface ElfSection {
  index: number;
  name: string;
  /** sh_type (SHT_PROGBITS = 1, SHT_SYMTAB = 2, SHT_NOBITS = 8, ...). */
  type: number;
  /** sh_flags (SHF_EXECINSTR = 0x4, ...). */
  flags: number;
  /** The section's bytes (empty for SHT_NOBITS). */
  data: Uint8Array;
}

/** One symbol of the symbol table. */
export interface ElfSymbol {
  name: string;
  /** STT_* (STT_FUNC = 2, STT_OBJECT = 1, ...). */
  type: number;
  /** STB_* (STB_GLOBAL = 1, ...). */
  bind: number;
  /** Index of the section the symbol is in (0 = undefined). */
  section: number;
  value: bigint;
  size: bigint;
}

/** SHT_SYMTAB, SHT_NOBITS, SHF_EXECINSTR, STT_FUNC (elf.h). */
export const SHT_SYMTAB = 2;
export const SHT_NOBITS = 8;
export const SHF_EXECINSTR = 0x4;
export const STT_FUNC = 2;

const EHDR_SIZE = 64;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;

function cString(bytes: Uint8Array, offset: number): string {
  let end = offset;
  while (end < bytes.length && bytes[end] !== 0) end++;
  return Buffer.from(bytes.buffer, bytes.byteOffset + offset, end - offset).toString('utf8');
}

function slice(bytes: Uint8Array, offset: number, size: number, what: string): Uint8Array {
  if (offset < 0 || size < 0 || offset + size > bytes.length) throw new BtfError(`${what} lies outside the file (offset ${offset}, ${size} bytes, file of ${bytes.length})`);
  return bytes.subarray(offset, offset + size);
}

/**
 * The section headers of an ELF64 little-endian file, in index order.
 * @throws BtfError when `bytes` is not such a file or a header lies outside it.
 */
export function elfSectionHeaders(bytes: Uint8Array): ElfSection[] {
  if (bytes.length < EHDR_SIZE || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46)
    throw new BtfError('not an ELF file (no \\x7fELF magic)');
  if (bytes[4] !== 2) throw new BtfError(`not a 64-bit ELF file (EI_CLASS ${bytes[4]})`);
  if (bytes[5] !== 1) throw new BtfError(`not a little-endian ELF file (EI_DATA ${bytes[5]})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shoff = Number(view.getBigUint64(0x28, true));
  const shentsize = view.getUint16(0x3a, true);
  const shnum = view.getUint16(0x3c, true);
  const shstrndx = view.getUint16(0x3e, true);
  if (shnum === 0) return [];
  if (shentsize !== SHDR_SIZE) throw new BtfError(`unexpected section header size ${shentsize}`);
  slice(bytes, shoff, shnum * SHDR_SIZE, 'the section header table');
  const raw = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * SHDR_SIZE;
    raw.push({
      nameOff: view.getUint32(at, true),
      type: view.getUint32(at + 4, true),
      flags: Number(view.getBigUint64(at + 8, true)),
      offset: Number(view.getBigUint64(at + 24, true)),
      size: Number(view.getBigUint64(at + 32, true)),
    });
  }
  const strtab = raw[shstrndx];
  if (!strtab) throw new BtfError(`section name table index ${shstrndx} out of range`);
  const names = slice(bytes, strtab.offset, strtab.size, 'the section name table');
  return raw.map((s, index) => ({
    index,
    name: cString(names, s.nameOff),
    type: s.type,
    flags: s.flags,
    data: s.type === SHT_NOBITS ? new Uint8Array(0) : slice(bytes, s.offset, s.size, `section ${index}`),
  }));
}

/**
 * The sections of an ELF64 little-endian file by name (the first of a name
 * wins; the unnamed null section is left out).
 * @throws BtfError on a file that is not ELF64 little-endian.
 */
export function elfSections(bytes: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const s of elfSectionHeaders(bytes)) if (s.name !== '' && !out.has(s.name)) out.set(s.name, s.data);
  return out;
}

/**
 * The symbols of the file's symbol table (SHT_SYMTAB), or none when it has none.
 * @throws BtfError on a file that is not ELF64 little-endian.
 */
export function elfSymbols(bytes: Uint8Array, sections: ElfSection[] = elfSectionHeaders(bytes)): ElfSymbol[] {
  const symtab = sections.find((s) => s.type === SHT_SYMTAB);
  if (!symtab) return [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const linkIndex = (() => {
    // sh_link of the symbol table names its string table.
    const shoff = Number(view.getBigUint64(0x28, true));
    return view.getUint32(shoff + symtab.index * SHDR_SIZE + 40, true);
  })();
  const strtab = sections[linkIndex];
  if (!strtab) throw new BtfError(`symbol string table index ${linkIndex} out of range`);
  const data = symtab.data;
  const sv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: ElfSymbol[] = [];
  for (let at = 0; at + SYM_SIZE <= data.length; at += SYM_SIZE) {
    const info = sv.getUint8(at + 4);
    out.push({
      name: cString(strtab.data, sv.getUint32(at, true)),
      type: info & 0xf,
      bind: info >> 4,
      section: sv.getUint16(at + 6, true),
      value: sv.getBigUint64(at + 8, true),
      size: sv.getBigUint64(at + 16, true),
    });
  }
  return out;
}
