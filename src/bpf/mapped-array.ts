/**
 * A shared memory mapping of a BPF array created with BPF_F_MMAPABLE: its
 * values, read and written in place, without a syscall per element or per
 * batch. The program sees a write through the mapping as soon as the store
 * is done, exactly like a value written with bpf_map_update_elem (which is
 * a plain copy into the same memory for arrays): readers that must not see a
 * half-written range need the same care either way (e.g. write a generation
 * the program does not read, then switch it with one map update).
 */
import { MAP_SHARED, MapType, PROT_READ, PROT_WRITE, SC_PAGESIZE, constantName } from './constants.js';
import { ErrnoError } from './errors.js';
import { foreignView, lib } from './native.js';

const live = new Set<MappedArray>();

/** Labels of every mapping still open in this process (for leak checks in tests). */
export function liveMappings(): string[] {
  return [...live].map((m) => m.label);
}

/** Unmaps every mapping still open (test clean-up after a reported leak). */
export function closeAllMappings(): void {
  for (const m of [...live]) m.close();
}

let pageSize: number | undefined;
function page(): number {
  if (pageSize === undefined) {
    const n = lib();
    const ret = Number(n.sysconf(SC_PAGESIZE));
    if (ret <= 0) throw new ErrnoError(n.errno(), 'sysconf(_SC_PAGESIZE)');
    pageSize = ret;
  }
  return pageSize;
}

/** What a map must tell about itself to be mapped (BpfMap.info() gives it). */
export interface MappableMap {
  readonly fd: number;
  readonly label: string;
  info(): { type: number; valueSize: number; maxEntries: number };
}

/**
 * The values of a BPF_F_MMAPABLE array, mapped shared (read-write, or
 * read-only) into this process. Owns the mapping, not the map's fd: the
 * mapping keeps the map alive on its own, so the fd may be closed first.
 * close() unmaps it and is idempotent; `using` does it at scope exit.
 * After close() every access throws (the memory is gone: no view of it is
 * ever handed out, reads return copies).
 */
export class MappedArray implements Disposable {
  /** Description for errors and leak reports, e.g. `mapping of map /sys/fs/bpf/x/map_rules`. */
  readonly label: string;
  /** Bytes of one value, as the map declares it. */
  readonly valueSize: number;
  /** Distance between two values in the mapping: the value size rounded up to 8 (the kernel's elem_size). */
  readonly stride: number;
  /** Number of entries. */
  readonly maxEntries: number;
  readonly writable: boolean;
  #address: bigint;
  #length: number;
  #view: Buffer | undefined;

  private constructor(label: string, address: bigint, length: number, valueSize: number, maxEntries: number, writable: boolean) {
    this.label = label;
    this.#address = address;
    this.#length = length;
    this.valueSize = valueSize;
    this.stride = Math.ceil(valueSize / 8) * 8;
    this.maxEntries = maxEntries;
    this.writable = writable;
    this.#view = foreignView(address, length);
    live.add(this);
  }

  /**
   * Maps the values of `map` (an array map created with BPF_F_MMAPABLE), shared
   * and read-write unless `readOnly`. The caller owns the result and closes it.
   * Throws TypeError for a map that is not a plain array, ErrnoError from
   * mmap (EINVAL: the array lacks BPF_F_MMAPABLE; EPERM: a write mapping of
   * a frozen map) or from reading the map's info.
   */
  static map(map: MappableMap, options: { readOnly?: boolean } = {}): MappedArray {
    const info = map.info();
    if (info.type !== MapType.ARRAY) throw new TypeError(`${map.label}: only array maps can be mapped, not ${constantName(MapType, info.type)}`);
    const stride = Math.ceil(info.valueSize / 8) * 8;
    const ps = page();
    const length = Math.max(ps, Math.ceil((stride * info.maxEntries) / ps) * ps);
    const writable = !options.readOnly;
    const n = lib();
    const addr = n.mmap(null, length, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, map.fd, 0);
    // MAP_FAILED is (void *)-1.
    if (addr === null || addr === -1n || addr === 0xffffffffffffffffn) throw new ErrnoError(n.errno(), 'mmap', `${map.label} (${length} bytes${writable ? '' : ', read-only'})`);
    try {
      return new MappedArray(`mapping of ${map.label}`, addr, length, info.valueSize, info.maxEntries, writable);
    } catch (err) {
      n.munmap(addr, length);
      throw err;
    }
  }

  /** True until close() was called. */
  get open(): boolean {
    return this.#view !== undefined;
  }

  #range(first: number, count: number): Buffer {
    const view = this.#view;
    if (!view) throw new Error(`${this.label}: use after close`);
    if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 0 || first + count > this.maxEntries)
      throw new RangeError(`${this.label}: entries ${first}..${first + count - 1} out of range (${this.maxEntries} entries)`);
    return view;
  }

  /**
   * Copies the values of entries `first` .. `first + count - 1`, back to back
   * (valueSize bytes each, without the padding of the mapping). Throws
   * RangeError past the end, Error after close().
   */
  read(first: number, count: number): Buffer {
    const view = this.#range(first, count);
    const vs = this.valueSize;
    const st = this.stride;
    if (vs === st) return Buffer.from(view.subarray(first * st, (first + count) * st));
    const out = Buffer.alloc(count * vs);
    for (let i = 0; i < count; i++) view.copy(out, i * vs, (first + i) * st, (first + i) * st + vs);
    return out;
  }

  /**
   * Writes `values` (valueSize bytes each, back to back) into the entries
   * from `first` on. Each value is a plain store: a reader running at the
   * same time may see a value half written. Throws RangeError for values
   * that do not split into entries or run past the end, TypeError on a
   * read-only mapping, Error after close().
   */
  write(first: number, values: Buffer): void {
    const vs = this.valueSize;
    const count = values.length / vs;
    if (!Number.isInteger(count)) throw new RangeError(`${this.label}: ${values.length} value bytes do not split into values of ${vs}`);
    const view = this.#range(first, count);
    if (!this.writable) throw new TypeError(`${this.label}: mapped read-only`);
    const st = this.stride;
    if (vs === st) {
      values.copy(view, first * st);
      return;
    }
    for (let i = 0; i < count; i++) values.copy(view, (first + i) * st, i * vs, (i + 1) * vs);
  }

  /** Unmaps the values. Safe to call more than once. Throws ErrnoError when munmap fails (the mapping then counts as closed). */
  close(): void {
    if (!this.#view) return;
    this.#view = undefined;
    live.delete(this);
    const n = lib();
    const ret = n.munmap(this.#address, this.#length);
    if (ret < 0) throw new ErrnoError(n.errno(), 'munmap', this.label);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
