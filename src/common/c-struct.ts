/**
 * C structs as the hand-written encoders of src/kinds/ assume them: the
 * object that declares each, its size, and every field's byte offset and
 * size. The encoders read their offsets from these tables, and the layout
 * guard (test/unit/bpf-layouts.test.ts) compares the tables with the
 * structs in the objects' BTF, so an encoder cannot drift from its C header
 * unnoticed.
 */

/** One field: byte offset from the start of the struct and size in bytes. */
export interface CField {
  readonly offset: number;
  readonly size: number;
}

/** A C struct as an encoder assumes it. */
export interface CStruct<F extends string = string> {
  /** The compiled object whose BTF declares the struct (a path, e.g. from `builtBpfObject`). */
  readonly object: string;
  /** The C struct's name, without `struct `. */
  readonly struct: string;
  readonly size: number;
  /** Every member of the C struct, in any order (padding members such as `pad` included). */
  readonly fields: Readonly<Record<F, CField>>;
  /** The struct is (or is stored as) a map key: it must have no padding holes, which would make equal keys differ. */
  readonly mapKey: boolean;
}

/**
 * Declares the layout an encoder assumes for `struct` of `object`.
 * @throws RangeError when a field lies outside `size` (a typo in the table).
 */
export function cStruct<F extends string>(
  object: string,
  struct: string,
  size: number,
  fields: Record<F, readonly [offset: number, size: number]>,
  options: { mapKey?: boolean } = {},
): CStruct<F> {
  const out = {} as Record<F, CField>;
  for (const name of Object.keys(fields) as F[]) {
    const [offset, fieldSize] = fields[name];
    if (offset < 0 || fieldSize <= 0 || offset + fieldSize > size) throw new RangeError(`struct ${struct}: field ${name} (${offset}+${fieldSize}) lies outside its ${size} bytes`);
    out[name] = { offset, size: fieldSize };
  }
  return { object, struct, size, fields: out, mapKey: options.mapKey ?? false };
}
