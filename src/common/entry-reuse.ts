/**
 * Decoding a large map read again without decoding what did not change.
 * Reads of one map return entries in an order that follows the map's
 * contents (for an LPM trie, a post-order walk of the trie: more specific
 * prefixes first), so a change of a few entries leaves long runs of equal
 * entries before it and after it. Those entries' decoded objects are taken
 * from the last read; only the entries between them are decoded.
 */

/** A map read: `count` keys back to back, and their values back to back. */
export interface EntryRun {
  keys: Buffer;
  values: Buffer;
  count: number;
}

/**
 * The decoded entries of `now`, reusing `lastDecoded` (the decoded entries of
 * `last`, same order) for the leading and trailing entries whose key and value
 * bytes both are the same in both reads; `decode(i)` decodes entry i of `now`.
 * Returns `lastDecoded` itself when the two reads are equal. Decoded entries
 * must never be mutated: they are shared between reads.
 */
export function decodeReusing<T>(
  now: EntryRun,
  last: EntryRun | undefined,
  lastDecoded: readonly T[] | undefined,
  keySize: number,
  valueSize: number,
  decode: (i: number) => T,
): readonly T[] {
  if (last === undefined || lastDecoded === undefined || lastDecoded.length !== last.count) return Array.from({ length: now.count }, (_, i) => decode(i));
  if (now.count === last.count && now.keys.equals(last.keys) && now.values.equals(last.values)) return lastDecoded;
  const most = Math.min(now.count, last.count);
  const head = Math.min(commonHead(now.keys, last.keys, keySize, most), commonHead(now.values, last.values, valueSize, most));
  const tailMost = most - head;
  const tail = Math.min(commonTail(now.keys, last.keys, keySize, tailMost), commonTail(now.values, last.values, valueSize, tailMost));
  const out: T[] = lastDecoded.slice(0, head);
  for (let i = head; i < now.count - tail; i++) out.push(decode(i));
  for (let i = last.count - tail; i < last.count; i++) out.push(lastDecoded[i] as T);
  return out;
}

/** Block size for comparing runs of entries with one memcmp. */
const BLOCK = 4096;

/** How many leading entries (of `size` bytes, at most `most`) `a` and `b` share. */
export function commonHead(a: Buffer, b: Buffer, size: number, most: number): number {
  const perBlock = Math.max(1, Math.floor(BLOCK / size));
  let i = 0;
  while (i + perBlock <= most && a.compare(b, i * size, (i + perBlock) * size, i * size, (i + perBlock) * size) === 0) i += perBlock;
  while (i < most && a.compare(b, i * size, (i + 1) * size, i * size, (i + 1) * size) === 0) i++;
  return i;
}

/** How many trailing entries (of `size` bytes, at most `most`) `a` and `b` share. */
export function commonTail(a: Buffer, b: Buffer, size: number, most: number): number {
  const perBlock = Math.max(1, Math.floor(BLOCK / size));
  const na = a.length / size;
  const nb = b.length / size;
  let t = 0;
  const same = (from: number, n: number) => a.compare(b, (nb - from - n) * size, (nb - from) * size, (na - from - n) * size, (na - from) * size) === 0;
  while (t + perBlock <= most && same(t, perBlock)) t += perBlock;
  while (t < most && same(t, 1)) t++;
  return t;
}
