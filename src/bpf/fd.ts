/**
 * File descriptor ownership. Every fd this project opens is owned by exactly
 * one {@link OwnedFd} (or subclass); `close()` is idempotent and `using`
 * declarations release it at scope exit.
 */
import { F_DUPFD_CLOEXEC } from './constants.js';
import { ErrnoError } from './errors.js';
import { lib } from './native.js';

const live = new Set<OwnedFd>();

/** Owns one open file descriptor. */
export class OwnedFd implements Disposable {
  #fd: number;
  /** Short description for errors and leak reports, e.g. `map bindings`. */
  readonly label: string;

  /** Takes ownership of `fd`: the caller must not close it. */
  constructor(fd: number, label: string) {
    if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`invalid fd ${fd} for ${label}`);
    this.#fd = fd;
    this.label = label;
    live.add(this);
  }

  /** The raw descriptor. Throws when already closed. Do not close it yourself. */
  get fd(): number {
    if (this.#fd < 0) throw new Error(`${this.label}: use after close`);
    return this.#fd;
  }

  /** True until close() was called. */
  get open(): boolean {
    return this.#fd >= 0;
  }

  /** Closes the descriptor. Safe to call more than once. */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    live.delete(this);
    lib().close(fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Duplicates a raw fd the caller does not own (close-on-exec) and returns the copy's number. */
  static dupRaw(fd: number, label: string): number {
    const n = lib();
    const copy = n.fcntl(fd, F_DUPFD_CLOEXEC, 'int', 3);
    if (copy < 0) throw new ErrnoError(n.errno(), 'fcntl(F_DUPFD_CLOEXEC)', label);
    return copy;
  }
}

/** Labels of every fd-owning object still open in this process (for leak checks in tests). */
export function liveFds(): string[] {
  return [...live].map((o) => `${o.label} (fd ${o.fd})`);
}

/** Closes every fd-owning object still open (test clean-up after a reported leak). */
export function closeAllLive(): void {
  for (const o of [...live]) o.close();
}
