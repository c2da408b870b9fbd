/**
 * Reading BPF ring buffers from Node with libbpf's `ring_buffer` manager.
 *
 * Records are drained with `ring_buffer__consume`, called by us on the main
 * thread: libbpf invokes the sample callback synchronously inside that call,
 * so the JavaScript callback never runs on another thread, nothing blocks the
 * event loop (consume never waits), and there is no cross-thread queueing to
 * deadlock on. The price is polling: a record waits at most one poll
 * interval. (`ring_buffer__poll` would block the event loop in epoll_wait;
 * running it on a worker thread would make koffi marshal every callback back
 * to the main thread.)
 */
import { ErrnoError } from './errors.js';
import type { BpfMap } from './map.js';
import { lib, registerSampleCallback, type Ptr } from './native.js';

/** One ring buffer to read, and what to do with each record. */
export interface RingSource {
  /** The BPF_MAP_TYPE_RINGBUF map. Stays owned by the caller and must stay open while the reader lives. */
  map: BpfMap;
  /** Gets a copy of each record's bytes. Exceptions are caught and rethrown by consume(). */
  onRecord: (data: Buffer) => void;
}

/**
 * A libbpf ring_buffer manager over one or more ring buffer maps. Owns the
 * manager (its epoll fd and mmaps) and the registered callback; close()
 * frees both. Not an OwnedFd: libbpf owns the epoll fd.
 */
export class RingBufferReader implements Disposable {
  #rb: Ptr;
  #unregister: (() => void) | undefined;
  /** The first exception a callback threw during the current consume(). */
  readonly #failure: { error?: unknown };

  private constructor(rb: Ptr, unregister: () => void, failure: { error?: unknown }) {
    this.#rb = rb;
    this.#unregister = unregister;
    this.#failure = failure;
  }

  /**
   * Maps every source's ring into one manager. Throws ErrnoError (EINVAL
   * when a map is not a ring buffer), releasing whatever it set up.
   */
  static open(sources: readonly RingSource[]): RingBufferReader {
    if (sources.length === 0) throw new RangeError('RingBufferReader.open needs at least one ring buffer');
    const n = lib();
    const failure: { error?: unknown } = {};
    const cb = registerSampleCallback((ctx, data) => {
      const source = sources[Number(ctx) - 1];
      try {
        source?.onRecord(data);
        return 0;
      } catch (err) {
        failure.error ??= err;
        return -1; // stop this consume() call; the error is rethrown
      }
    });
    const rb = n.ring_buffer__new(sources[0]!.map.fd, cb.pointer, 1n, null);
    if (rb === null) {
      const errno = n.errno();
      cb.unregister();
      throw new ErrnoError(errno, 'ring_buffer__new', sources[0]!.map.label);
    }
    const reader = new RingBufferReader(rb, cb.unregister, failure);
    for (let i = 1; i < sources.length; i++) {
      const ret = n.ring_buffer__add(rb, sources[i]!.map.fd, cb.pointer, BigInt(i + 1));
      if (ret < 0) {
        reader.close();
        throw new ErrnoError(-ret, 'ring_buffer__add', sources[i]!.map.label);
      }
    }
    return reader;
  }

  /**
   * Hands every record available now to its source's callback, in the order
   * of the rings. Returns how many were consumed. Never waits. Throws what a
   * callback threw, or ErrnoError.
   */
  consume(): number {
    if (this.#rb === null) throw new Error('ring buffer reader: use after close');
    const ret = lib().ring_buffer__consume(this.#rb);
    const error = this.#failure.error;
    this.#failure.error = undefined;
    if (error !== undefined) throw error;
    if (ret < 0) throw new ErrnoError(-ret, 'ring_buffer__consume');
    return ret;
  }

  /** Frees the manager and the callback. Idempotent. */
  close(): void {
    if (this.#rb !== null) lib().ring_buffer__free(this.#rb);
    this.#rb = null;
    this.#unregister?.();
    this.#unregister = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A changing set of pinned ring buffers read as one (e.g. the event rings
 * of every filter or guard under a pin root, which come and go): `set` opens
 * the rings newly wanted and reopens the reader when the set changed. Owns
 * the maps it opened and the reader; close() releases them (idempotent).
 * @typeParam M what the caller keeps with each ring (names for its records).
 */
export class PinnedRingSet<M> implements Disposable {
  readonly #onRecord: (meta: M, data: Buffer) => void;
  #rings: Array<{ pin: string; meta: M; map: BpfMap }> = [];
  #reader: RingBufferReader | undefined;

  /** `onRecord` gets each record with its ring's current meta. */
  constructor(onRecord: (meta: M, data: Buffer) => void) {
    this.#onRecord = onRecord;
  }

  /** How many rings are read. */
  get count(): number {
    return this.#rings.length;
  }

  /**
   * Reads the rings pinned at `wanted` (in that order) from now on. When the
   * pins are the same as before only their meta is updated; else what is
   * queued is consumed, and the rings are reopened (a pin that vanished
   * meanwhile is skipped). Returns whether the set changed. Throws ErrnoError.
   */
  set(wanted: ReadonlyArray<{ pin: string; meta: M }>, open: (pin: string) => BpfMap): boolean {
    if (wanted.length === this.#rings.length && wanted.every((w, i) => w.pin === this.#rings[i]!.pin)) {
      wanted.forEach((w, i) => (this.#rings[i]!.meta = w.meta));
      return false;
    }
    this.consume();
    this.#closeRings();
    for (const w of wanted) {
      let map: BpfMap;
      try {
        map = open(w.pin);
      } catch {
        continue; // removed meanwhile
      }
      this.#rings.push({ pin: w.pin, meta: w.meta, map });
    }
    if (this.#rings.length > 0) {
      const rings = this.#rings;
      this.#reader = RingBufferReader.open(rings.map((r) => ({ map: r.map, onRecord: (data: Buffer) => this.#onRecord(r.meta, data) })));
    }
    return true;
  }

  /** Hands every record available now to the callback. Never waits. */
  consume(): void {
    this.#reader?.consume();
  }

  #closeRings(): void {
    this.#reader?.close();
    this.#reader = undefined;
    for (const r of this.#rings) r.map.close();
    this.#rings = [];
  }

  /** Closes the reader and the maps. Idempotent. */
  close(): void {
    this.#closeRings();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
