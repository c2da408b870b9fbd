/**
 * The policy files that failed to load, as kinds ask about them: a file
 * failed when it is itself named, or when a directory it lies in is (a
 * `--policies` directory that vanished or cannot be read). Everything that
 * came from a failed path keeps its last applied state.
 */
import { sep } from 'node:path';

/** A set of failed absolute paths whose `has(file)` is also true for files below a failed directory. */
export class FailedPaths implements ReadonlySet<string> {
  readonly #paths: ReadonlySet<string>;
  readonly #dirs: readonly string[];

  constructor(paths: Iterable<string>) {
    this.#paths = new Set(paths);
    this.#dirs = [...this.#paths].map((p) => (p.endsWith(sep) ? p : p + sep));
  }

  /** Whether `file` failed, or lies below a path that failed. */
  has(file: string): boolean {
    return this.#paths.has(file) || this.#dirs.some((d) => file.startsWith(d));
  }

  get size(): number {
    return this.#paths.size;
  }

  forEach(fn: (value: string, key: string, set: ReadonlySet<string>) => void): void {
    for (const p of this.#paths) fn(p, p, this);
  }

  entries(): SetIterator<[string, string]> {
    return this.#paths.entries();
  }

  keys(): SetIterator<string> {
    return this.#paths.keys();
  }

  values(): SetIterator<string> {
    return this.#paths.values();
  }

  [Symbol.iterator](): SetIterator<string> {
    return this.#paths[Symbol.iterator]();
  }
}
