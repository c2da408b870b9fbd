/**
 * The flock on the pin root that serialises runs of the tool (a pass of the
 * daemon, `reconcile --once`, `destroy`).
 */
import { openSync } from 'node:fs';
import { ErrnoError } from './errors.js';
import { OwnedFd } from './fd.js';
import { lib } from './native.js';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const EWOULDBLOCK = 11;

/**
 * An exclusive flock on the pin root directory, serialising runs of the
 * tool. Owns the directory fd; close() releases the lock.
 */
export class RootLock extends OwnedFd {
  private constructor(fd: number, root: string) {
    super(fd, `lock on ${root}`);
  }

  /**
   * Takes the lock, waiting up to `timeoutMs` for another run to finish.
   * Throws ErrnoError (EWOULDBLOCK) naming the root when it stays taken.
   */
  static async acquire(root: string, timeoutMs = 30_000): Promise<RootLock> {
    const n = lib();
    const lock = new RootLock(openSync(root, 'r'), root);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (n.flock(lock.fd, LOCK_EX | LOCK_NB) === 0) return lock;
      const errno = n.errno();
      if (errno !== EWOULDBLOCK || Date.now() > deadline) {
        lock.close();
        throw new ErrnoError(errno, 'flock', `${root} (another ebpf-policy run holds it)`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  override close(): void {
    if (this.open) lib().flock(this.fd, LOCK_UN);
    super.close();
  }
}
