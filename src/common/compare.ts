/**
 * Orders strings by UTF-16 code units (the order of `<`), the same on every
 * machine and locale. Preferred over `localeCompare`/`Intl.Collator` for the
 * names we sort (policy names, pin names, keys): no ICU collation data is
 * touched, which costs the daemon ~3 MB of resident memory, and no collator
 * runs per comparison.
 */
export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
