/**
 * The maps a kind pins in its directory, by the convention every kind's
 * layout follows: map NAME of an object is pinned as DIR/map_NAME.
 */
import { join } from 'node:path';
import { tryOpen } from './kernel-object.js';
import { BpfMap } from './map.js';

/** Path of the pin of map `name` in `dir`. */
export function mapPinPath(dir: string, name: string): string {
  return join(dir, `map_${name}`);
}

/**
 * Opens DIR/map_NAME for each of `names`, runs `fn` with them by name, and
 * closes them again (also when `fn` throws). Throws ErrnoError when a pin
 * cannot be opened (ENOENT when it is missing).
 */
export function withPinnedMaps<T>(dir: string, names: readonly string[], fn: (maps: Record<string, BpfMap>) => T): T {
  const maps: Record<string, BpfMap> = {};
  try {
    for (const n of names) maps[n] = BpfMap.fromPin(mapPinPath(dir, n));
    return fn(maps);
  } finally {
    for (const m of Object.values(maps)) m.close();
  }
}

/** Key and value sizes a map must have, and its BPF_F_* map flags when given (e.g. BPF_F_MMAPABLE: a map without it is of another layout). */
export interface MapSizes {
  key: number;
  value: number;
  flags?: number;
}

/** The pinned maps of a directory as observed: those open, those missing, those of another layout. Owns the open maps. */
export interface ObservedPinnedMaps<N extends string> extends Disposable {
  maps: Partial<Record<N, BpfMap>>;
  /** Names whose pin does not exist (only ENOENT reads as missing, see tryOpen). */
  missing: N[];
  /** `map NAME (key K/K', value V/V' bytes)` for each map whose sizes are not those of `layout`, `map NAME (flags 0xF/0xF')` for one whose flags are not. */
  mismatched: string[];
  close(): void;
}

/**
 * Opens every pinned map of `names` in `dir` that exists and compares the
 * sizes (and flags, where given) of those `layout` names. Errors other than a missing pin are thrown
 * (after closing what was opened). The caller closes the result.
 */
export function openPinnedMaps<N extends string>(dir: string, names: readonly N[], layout: Partial<Record<N, MapSizes>>): ObservedPinnedMaps<N> {
  const maps: Partial<Record<N, BpfMap>> = {};
  const close = () => {
    for (const m of Object.values<BpfMap | undefined>(maps)) m?.close();
  };
  const out: ObservedPinnedMaps<N> = { maps, missing: [], mismatched: [], close, [Symbol.dispose]: close };
  try {
    for (const n of names) {
      const map = tryOpen(() => BpfMap.fromPin(mapPinPath(dir, n)));
      if (map) maps[n] = map;
      else out.missing.push(n);
    }
    for (const [name, size] of Object.entries<MapSizes | undefined>(layout)) {
      const info = size ? maps[name as N]?.info() : undefined;
      if (info && size && (info.keySize !== size.key || info.valueSize !== size.value))
        out.mismatched.push(`map ${name} (key ${info.keySize}/${size.key}, value ${info.valueSize}/${size.value} bytes)`);
      else if (info && size?.flags !== undefined && info.flags !== size.flags)
        out.mismatched.push(`map ${name} (flags 0x${info.flags.toString(16)}/0x${size.flags.toString(16)})`);
    }
  } catch (err) {
    close();
    throw err;
  }
  return out;
}
