/**
 * Map entries laid out back to back (all keys in one buffer, all values in
 * another), as batch updates take them.
 */

/** Entries of one map, keys and values back to back. */
export interface PackedEntries {
  keys: Buffer;
  values: Buffer;
  count: number;
}

/** Packs `list` with one key and one value encoder. */
export function packEntries<T>(list: readonly T[], key: (e: T) => Buffer, value: (e: T) => Buffer): PackedEntries {
  return { keys: Buffer.concat(list.map(key)), values: Buffer.concat(list.map(value)), count: list.length };
}

/** Splits packed entries into [key, value] pairs (views, no copies). */
export function* splitEntries(e: PackedEntries): Generator<[Buffer, Buffer]> {
  if (e.count === 0) return;
  const ks = e.keys.length / e.count;
  const vs = e.values.length / e.count;
  for (let i = 0; i < e.count; i++) yield [e.keys.subarray(i * ks, (i + 1) * ks), e.values.subarray(i * vs, (i + 1) * vs)];
}
