/**
 * A BPF map, owning one fd: element and batch operations on raw key/value
 * bytes. Encoding keys and values is the caller's business (see
 * dispatcher-layout.ts for the dispatcher's maps).
 */
import { ENOTSUPP, MapType, PERCPU_MAP_TYPES, UpdateFlags, constantName, Errno } from './constants.js';
import { ErrnoError } from './errors.js';
import { EntryBytes } from '../common/entry-bytes.js';
import { KernelObject, openByIdFd, openPinnedAs } from './kernel-object.js';
import { mapInfo, type MapInfo } from './info.js';
import { lib } from './native.js';
import { MappedArray } from './mapped-array.js';

const ENOENT = Errno.ENOENT;
const EINVAL = Errno.EINVAL;
const EOPNOTSUPP = Errno.EOPNOTSUPP;
const ENOSPC = Errno.ENOSPC;

/** Options of batch operations. */
export interface BatchOptions {
  /** BPF_ANY (default), BPF_NOEXIST or BPF_EXIST, applied to each element. */
  flags?: number;
  /** Elements per syscall (default 8192). */
  chunk?: number;
}

/** A BPF map. Owns its fd; close() is idempotent. */
export class BpfMap extends KernelObject {
  #info: MapInfo | undefined;
  #batchSupported: boolean | undefined;

  /** Takes ownership of `fd`. */
  constructor(fd: number, label = 'map') {
    super(fd, label);
  }

  /** Opens a pinned map. Throws ErrnoError, or TypeError when the pin is not a map. */
  static fromPin(path: string): BpfMap {
    return openPinnedAs(path, 'map', (fd, label) => new BpfMap(fd, label));
  }

  /**
   * Creates a map without a BPF object (e.g. an inner map of a map-in-map).
   * `flags` are BPF_F_* map flags (LPM tries need BPF_F_NO_PREALLOC). The
   * caller owns the returned map. Throws ErrnoError.
   */
  static create(spec: { type: number; name: string; keySize: number; valueSize: number; maxEntries: number; flags?: number }): BpfMap {
    const opts = Buffer.alloc(48); // struct bpf_map_create_opts, libbpf 1.1
    opts.writeBigUInt64LE(48n, 0); // sz
    opts.writeUInt32LE(spec.flags ?? 0, 28); // map_flags
    const fd = lib().bpf_map_create(spec.type, spec.name, spec.keySize, spec.valueSize, spec.maxEntries, opts);
    if (fd < 0) throw new ErrnoError(-fd, 'bpf_map_create', `${spec.name} (type ${constantName(MapType, spec.type)}, ${spec.maxEntries} entries)`);
    return new BpfMap(fd, `map ${spec.name}`);
  }

  /** Opens a map by kernel id. Throws ErrnoError (ENOENT when gone). */
  static fromId(id: number): BpfMap {
    return new BpfMap(openByIdFd('map', id), `map id ${id}`);
  }

  /** Kernel facts (cached: type, sizes and name never change). Throws ErrnoError. */
  info(): MapInfo {
    this.#info ??= mapInfo(this.fd);
    return this.#info;
  }

  /** Readable map type, e.g. `lpm_trie`. */
  typeName(): string {
    return constantName(MapType, this.info().type);
  }

  get keySize(): number {
    return this.info().keySize;
  }

  /**
   * Size of one value buffer as user space sees it: per-CPU maps hold one
   * 8-byte-aligned slot per possible CPU.
   */
  get valueSize(): number {
    const info = this.info();
    if (!PERCPU_MAP_TYPES.has(info.type)) return info.valueSize;
    return Math.ceil(info.valueSize / 8) * 8 * possibleCpus();
  }

  #checkKey(key: Buffer): void {
    if (key.length !== this.keySize) throw new RangeError(`${this.label}: key has ${key.length} bytes, map wants ${this.keySize}`);
  }

  #checkValue(value: Buffer): void {
    if (value.length !== this.valueSize)
      throw new RangeError(`${this.label}: value has ${value.length} bytes, map wants ${this.valueSize}`);
  }

  /** The value at `key`, or undefined when absent. Throws ErrnoError for other failures. */
  lookup(key: Buffer): Buffer | undefined {
    this.#checkKey(key);
    const value = Buffer.alloc(this.valueSize);
    const ret = lib().bpf_map_lookup_elem(this.fd, key, value);
    if (ret === 0) return value;
    if (-ret === ENOENT) return undefined;
    throw new ErrnoError(-ret, 'bpf_map_lookup_elem', this.label);
  }

  /**
   * Reads the value at `key` into `value` (of valueSize bytes, reused by the
   * caller across many lookups); false when absent. Throws ErrnoError for
   * other failures.
   */
  lookupInto(key: Buffer, value: Buffer): boolean {
    this.#checkKey(key);
    if (value.length !== this.valueSize) throw new RangeError(`${this.label}: value buffer has ${value.length} bytes, map values have ${this.valueSize}`);
    const ret = lib().bpf_map_lookup_elem(this.fd, key, value);
    if (ret === 0) return true;
    if (-ret === ENOENT) return false;
    throw new ErrnoError(-ret, 'bpf_map_lookup_elem', this.label);
  }

  /** Sets `key` to `value` (flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST). Throws ErrnoError. */
  update(key: Buffer, value: Buffer, flags: number = UpdateFlags.ANY): void {
    this.#checkKey(key);
    this.#checkValue(value);
    const ret = lib().bpf_map_update_elem(this.fd, key, value, flags);
    if (ret < 0) throw new ErrnoError(-ret, 'bpf_map_update_elem', this.label);
  }

  /**
   * Stores a socket in a sockmap/sockhash at `key`. Sockmaps take the socket's
   * fd as value on update (and return its cookie on lookup). Throws ErrnoError.
   */
  updateSocket(key: Buffer, socketFd: number, flags: number = UpdateFlags.ANY): void {
    this.#checkKey(key);
    const value = Buffer.alloc(this.info().valueSize);
    if (value.length === 8) value.writeBigUInt64LE(BigInt(socketFd));
    else value.writeUInt32LE(socketFd);
    const ret = lib().bpf_map_update_elem(this.fd, key, value, flags);
    if (ret < 0) throw new ErrnoError(-ret, 'bpf_map_update_elem(socket)', this.label);
  }

  /** Deletes `key`. Returns false when it was absent. Throws ErrnoError for other failures. */
  delete(key: Buffer): boolean {
    this.#checkKey(key);
    const ret = lib().bpf_map_delete_elem(this.fd, key);
    if (ret === 0) return true;
    if (-ret === ENOENT) return false;
    throw new ErrnoError(-ret, 'bpf_map_delete_elem', this.label);
  }

  /** Iterates the keys (a snapshot of a moving target, as the kernel gives it). Throws ErrnoError. */
  *keys(): Generator<Buffer> {
    const n = lib();
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const ret = n.bpf_map_get_next_key(this.fd, prev, next);
      if (-ret === ENOENT) return;
      if (ret < 0) throw new ErrnoError(-ret, 'bpf_map_get_next_key', this.label);
      yield next;
      prev = next;
    }
  }

  /** All entries as [key, value] pairs (copies), read with batch lookups where the map supports them. */
  entries(): Array<[Buffer, Buffer]> {
    const out: Array<[Buffer, Buffer]> = [];
    this.forEachEntry((k, v) => out.push([Buffer.from(k), Buffer.from(v)]));
    return out;
  }

  /**
   * Calls `fn` for every entry with views of the key and value bytes, valid
   * only during the call (no copies: for large maps). Uses batch lookups
   * where the map supports them. Throws ErrnoError.
   */
  forEachEntry(fn: (key: Buffer, value: Buffer) => void): void {
    const ks = this.keySize;
    const vs = this.valueSize;
    this.forEachBatch((keys, values, count) => {
      for (let i = 0; i < count; i++) fn(keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs));
    });
  }

  /**
   * Calls `fn` with runs of entries as the kernel hands them out: `count`
   * keys back to back in `keys`, their values back to back in `values`
   * (views valid only during the call). Uses batch lookups where the map
   * supports them, else one entry per call. Throws ErrnoError.
   */
  forEachBatch(fn: (keys: Buffer, values: Buffer, count: number) => void): void {
    if (this.#batchSupported !== false && this.#lookupBatch(fn)) return;
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value) fn(key, value, 1);
    }
  }

  /**
   * Every entry, copied into two buffers of its own: keys back to back, values
   * back to back, in the kernel's order. `expected` (entries) sizes the
   * buffers up front, e.g. the count of the last read; they grow as needed.
   * For large maps: no object or view per entry. Throws ErrnoError.
   */
  readAll(expected = 0): { keys: Buffer; values: Buffer; count: number } {
    const ks = this.keySize;
    const vs = this.valueSize;
    const keys = new EntryBytes(Math.max(1, expected) * ks);
    const values = new EntryBytes(Math.max(1, expected) * vs);
    let count = 0;
    this.forEachBatch((k, v, n) => {
      keys.add(k.subarray(0, n * ks));
      values.add(v.subarray(0, n * vs));
      count += n;
    });
    return { keys: keys.view(), values: values.view(), count };
  }

  /**
   * Maps this array's values into memory (see {@link MappedArray}): the map
   * must be a BPF_MAP_TYPE_ARRAY created with BPF_F_MMAPABLE. The caller owns
   * the mapping and closes it; it stays valid after this map is closed.
   * Throws TypeError for another map type, ErrnoError from mmap (EINVAL for
   * an array without BPF_F_MMAPABLE).
   */
  mmap(options: { readOnly?: boolean } = {}): MappedArray {
    return MappedArray.map(this, options);
  }

  /** True when the last batch call told us this map type has no batch operations. */
  get usesPerElementFallback(): boolean {
    return this.#batchSupported === false;
  }

  /**
   * Writes `keys.length / keySize` elements. `keys` and `values` are the
   * elements' bytes back to back. Uses BPF_MAP_UPDATE_BATCH in chunks and
   * falls back to one update per element when the map type lacks batch ops.
   * Throws ErrnoError naming the index of the element that failed.
   */
  updateBatch(keys: Buffer, values: Buffer, options: BatchOptions = {}): void {
    const ks = this.keySize;
    const vs = this.valueSize;
    const count = keys.length / ks;
    if (!Number.isInteger(count) || values.length !== count * vs)
      throw new RangeError(`${this.label}: batch of ${keys.length} key bytes and ${values.length} value bytes does not split into elements`);
    const flags = options.flags ?? UpdateFlags.ANY;
    const chunk = options.chunk ?? 8192;
    const opts = batchOpts(flags);
    const n = lib();
    const cnt = Buffer.alloc(4);
    let done = 0;
    while (done < count && this.#batchSupported !== false) {
      const todo = Math.min(chunk, count - done);
      cnt.writeUInt32LE(todo);
      const ret = n.bpf_map_update_batch(
        this.fd,
        keys.subarray(done * ks, (done + todo) * ks),
        values.subarray(done * vs, (done + todo) * vs),
        cnt,
        opts,
      );
      const applied = cnt.readUInt32LE(0);
      if (ret < 0 && this.#batchSupported === undefined && isNoBatch(-ret, applied, todo)) {
        this.#batchSupported = false;
        break;
      }
      this.#batchSupported = true;
      if (ret < 0) throw new ErrnoError(-ret, 'bpf_map_update_batch', `${this.label} (element ${done + applied})`);
      done += todo;
    }
    for (; done < count; done++) {
      const ret = n.bpf_map_update_elem(this.fd, keys.subarray(done * ks, (done + 1) * ks), values.subarray(done * vs, (done + 1) * vs), flags);
      if (ret < 0) throw new ErrnoError(-ret, 'bpf_map_update_elem', `${this.label} (element ${done})`);
    }
  }

  /**
   * Deletes the elements whose keys are back to back in `keys`. Keys that are
   * absent are ignored. Returns how many were deleted. Throws ErrnoError.
   */
  deleteBatch(keys: Buffer, options: Pick<BatchOptions, 'chunk'> = {}): number {
    const ks = this.keySize;
    const count = keys.length / ks;
    if (!Number.isInteger(count)) throw new RangeError(`${this.label}: ${keys.length} key bytes do not split into keys of ${ks}`);
    const chunk = options.chunk ?? 8192;
    const n = lib();
    const opts = batchOpts(0);
    const cnt = Buffer.alloc(4);
    let done = 0;
    let deleted = 0;
    while (done < count && this.#batchSupported !== false) {
      const todo = Math.min(chunk, count - done);
      cnt.writeUInt32LE(todo);
      const ret = n.bpf_map_delete_batch(this.fd, keys.subarray(done * ks, (done + todo) * ks), cnt, opts);
      const applied = cnt.readUInt32LE(0);
      if (ret < 0 && this.#batchSupported === undefined && isNoBatch(-ret, applied, todo)) {
        this.#batchSupported = false;
        break;
      }
      this.#batchSupported = true;
      deleted += applied;
      if (ret < 0 && -ret === ENOENT) {
        // The kernel stops at the first absent key: skip it and go on.
        done += applied + 1;
        continue;
      }
      if (ret < 0) throw new ErrnoError(-ret, 'bpf_map_delete_batch', `${this.label} (element ${done + applied})`);
      done += todo;
    }
    for (; done < count; done++) if (this.delete(keys.subarray(done * ks, (done + 1) * ks))) deleted++;
    return deleted;
  }

  /**
   * Reads every entry with BPF_MAP_LOOKUP_BATCH; false when the map type
   * lacks it. Buffers start small and grow (x8) while calls come back full,
   * up to 8192 entries or ~4 MiB, so reading a map with a handful of entries
   * needs a few KiB, not megabytes. The buffers come from a small pool kept
   * between reads (see {@link scratch}): a pass that reads megabytes of
   * records every few seconds neither zeroes nor faults them in again.
   */
  #lookupBatch(fn: (keys: Buffer, values: Buffer, count: number) => void): boolean {
    const n = lib();
    const ks = this.keySize;
    const vs = this.valueSize;
    const info = this.info();
    const cap = Math.max(1, Math.min(info.maxEntries, 8192, Math.floor((4 << 20) / (ks + vs))));
    let chunk = Math.min(cap, 64);
    // Hash maps use a bucket cursor; 8 bytes covers every kernel's batch token.
    const inBatch = Buffer.alloc(Math.max(8, ks));
    const outBatch = Buffer.alloc(Math.max(8, ks));
    let keys = scratch.take(chunk * ks);
    let values = scratch.take(chunk * vs);
    const grow = (): void => {
      chunk = Math.min(cap, chunk * 8);
      scratch.give(keys);
      scratch.give(values);
      keys = scratch.take(chunk * ks);
      values = scratch.take(chunk * vs);
    };
    const cnt = Buffer.alloc(4);
    let first = true;
    try {
      for (;;) {
        cnt.writeUInt32LE(chunk);
        const ret = n.bpf_map_lookup_batch(this.fd, first ? null : inBatch, outBatch, keys, values, cnt, batchOpts(0));
        const got = cnt.readUInt32LE(0);
        if (ret < 0 && first && isNoBatch(-ret, got, chunk)) {
          this.#batchSupported = false;
          return false;
        }
        if (ret < 0 && -ret === ENOSPC && chunk < cap) {
          grow(); // a hash bucket holds more entries than the buffer: retry the same cursor with more room
          continue;
        }
        if (ret < 0 && -ret !== ENOENT) throw new ErrnoError(-ret, 'bpf_map_lookup_batch', this.label);
        if (got > 0) fn(keys, values, got);
        if (ret < 0) return true; // ENOENT: that was the last batch
        outBatch.copy(inBatch);
        first = false;
        if (got === chunk && chunk < cap) grow();
      }
    } finally {
      scratch.give(keys);
      scratch.give(values);
    }
  }
}

/**
 * Buffers for batch reads, kept between reads: at most two (a read's keys and
 * values), of at most {@link SCRATCH_KEEP} bytes each, so what stays is bounded.
 * A buffer is handed out once at a time (a read inside another read's callback
 * gets its own); its bytes are whatever the last read left (only what the
 * kernel wrote is ever looked at).
 */
const SCRATCH_KEEP = 4 << 20;
const scratch = {
  free: [] as Buffer[],
  take(size: number): Buffer {
    const i = this.free.findIndex((b) => b.length >= size); // smallest first
    if (i >= 0) return this.free.splice(i, 1)[0]!.subarray(0, size);
    return Buffer.allocUnsafeSlow(Math.max(size, 4096));
  },
  give(b: Buffer): void {
    const whole = Buffer.from(b.buffer, b.byteOffset, b.buffer.byteLength - b.byteOffset);
    if (whole.length > SCRATCH_KEEP) return;
    this.free.push(whole);
    this.free.sort((x, y) => y.length - x.length);
    this.free.length = Math.min(this.free.length, 2); // the two largest
    this.free.reverse();
  },
};

function batchOpts(elemFlags: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0); // sz
  b.writeBigUInt64LE(BigInt(elemFlags), 8);
  return b;
}

/**
 * Whether a failed first batch call means "this map type has no batch
 * operations" (the kernel answers ENOTSUPP without touching the count), as
 * opposed to an element that failed (the count then says how many went in).
 * EINVAL with the count untouched is what kernels without the command say.
 */
function isNoBatch(errno: number, count: number, requested: number): boolean {
  if (errno === ENOTSUPP || errno === EOPNOTSUPP) return true;
  return errno === EINVAL && (count === requested || count === 0);
}

let cpus: number | undefined;
/** Number of possible CPUs (per-CPU map value slots). */
export function possibleCpus(): number {
  cpus ??= lib().libbpf_num_possible_cpus();
  if (cpus <= 0) throw new ErrnoError(-cpus, 'libbpf_num_possible_cpus');
  return cpus;
}

/** Sums a per-CPU u64 value buffer into one bigint. */
export function sumPerCpuU64(value: Buffer): bigint {
  let sum = 0n;
  for (let off = 0; off + 8 <= value.length; off += 8) sum += value.readBigUInt64LE(off);
  return sum;
}
