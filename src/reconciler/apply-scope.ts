/**
 * Handles a kind keeps open for the rest of one apply, so that an object it
 * writes once per policy (a map of a dispatcher, say) is opened once per
 * pass rather than once per action. The engine makes one scope per kind per
 * apply and closes it, with everything kept in it, when the apply ends.
 */
import type { ApplyScope } from './kind.js';

/** An {@link ApplyScope} that owns what it keeps; `close()` (idempotent) disposes all of it. */
export class HandleScope implements ApplyScope, Disposable {
  #handles = new Map<string, Disposable>();

  keep<T extends Disposable>(key: string, open: () => T): T {
    let handle = this.#handles.get(key);
    if (handle === undefined) {
      handle = open();
      this.#handles.set(key, handle);
    }
    return handle as T;
  }

  forget(prefix: string): void {
    // Deleting the entry being visited is safe while iterating a Map.
    for (const [key, handle] of this.#handles) {
      if (!key.startsWith(prefix)) continue;
      this.#handles.delete(key);
      handle[Symbol.dispose]();
    }
  }

  /** Disposes every handle kept (each once, even when one of them throws: the first error is rethrown after). */
  close(): void {
    const all = [...this.#handles.values()];
    this.#handles.clear();
    let first: unknown;
    for (const handle of all) {
      try {
        handle[Symbol.dispose]();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
