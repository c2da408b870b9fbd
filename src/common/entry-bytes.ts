/**
 * The bytes of a map read, kept to tell whether the kernel returned exactly
 * what it returned last time: a pass that reads a map whose bytes did not
 * change can reuse what it decoded from them instead of decoding every entry
 * again. The map is still read on every pass; only the decoding is saved.
 */
export class EntryBytes {
  #buf: Buffer;
  #len = 0;

  constructor(initial = 4096) {
    this.#buf = Buffer.allocUnsafe(initial);
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  /** Appends `bytes` as they are (fixed-size parts, e.g. keys). */
  add(bytes: Buffer): void {
    this.#room(bytes.length);
    bytes.copy(this.#buf, this.#len);
    this.#len += bytes.length;
  }

  /** Appends `bytes` with their length first (variable-size parts), so two sequences compare unambiguously. */
  addSized(bytes: Buffer): void {
    this.#room(4 + bytes.length);
    this.#buf.writeUInt32LE(bytes.length, this.#len);
    bytes.copy(this.#buf, this.#len + 4);
    this.#len += 4 + bytes.length;
  }

  /** The bytes appended so far (a view, valid until the next append). */
  view(): Buffer {
    return this.#buf.subarray(0, this.#len);
  }

  get length(): number {
    return this.#len;
  }

  /** True when both hold the same bytes. */
  equals(other: EntryBytes | undefined): boolean {
    return other !== undefined && other.#len === this.#len && this.#buf.subarray(0, this.#len).equals(other.#buf.subarray(0, other.#len));
  }
}
