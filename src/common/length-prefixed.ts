/**
 * The record layout the kinds keep their JSON records in, inside map values
 * of a fixed size: a little-endian u32 byte length, then the UTF-8 text.
 */

/**
 * Encodes `text` into a buffer of `size` bytes. Throws RangeError naming
 * `what` when it does not fit.
 */
export function encodeLengthPrefixed(text: string, size: number, what: string): Buffer {
  const v = Buffer.alloc(size);
  const len = Buffer.byteLength(text);
  if (len > size - 4) throw new RangeError(`${what} of ${len} bytes exceeds ${size - 4}`);
  v.writeUInt32LE(len, 0);
  v.write(text, 4, 'utf8');
  return v;
}

/** Decodes what {@link encodeLengthPrefixed} wrote (a length past the buffer is cut to it). */
export function decodeLengthPrefixed(v: Buffer): string {
  const len = Math.min(v.readUInt32LE(0), v.length - 4);
  return v.toString('utf8', 4, 4 + len);
}

/** Parses a record's JSON text: the record when it is an object with `v: 1`, else why not (as text). */
export function parseVersionedJson<T extends { v: number }>(json: string): T | string {
  try {
    const r = JSON.parse(json) as T;
    return r && r.v === 1 ? r : 'unknown record format';
  } catch (err) {
    return `not JSON: ${(err as Error).message}`;
  }
}
