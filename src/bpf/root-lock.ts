/**
 * The flock on the pin root that serialises runs of the tool (a pass of the
 * daemon, `reconcile --once`, `destroy`), and the lock a daemon holds for its
 * whole life so that a second daemon on the same root refuses to start.
 */
import { Errno } from './constants.js';
import { createHash } from 'node:crypto';
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ErrnoError } from './errors.js';
import { OwnedFd } from './fd.js';
import { lib } from './native.js';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const EWOULDBLOCK = Errno.EWOULDBLOCK;

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

/**
 * The lock one daemon holds on a pin root for as long as it runs: an flock on
 * a file under /run/ebpf-policy (bpffs holds no regular files) that names the
 * root and the daemon's pid. A second daemon on the same root finds it taken
 * and refuses, naming the first; `reconcile --once` and `destroy` do not take
 * it (they serialise with the daemon's passes through {@link RootLock}).
 * Owns the file's fd; close() releases the lock.
 */
export class DaemonLock extends OwnedFd {
  private constructor(
    fd: number,
    readonly path: string,
  ) {
    super(fd, `daemon lock ${path}`);
  }

  /** The lock file of `root` in `dir`. */
  static pathFor(dir: string, root: string): string {
    return join(dir, `daemon-${createHash('sha256').update(root).digest('hex').slice(0, 16)}.lock`);
  }

  /**
   * Takes the lock of `root` without waiting. Returns the lock, or the pid
   * (when known) of the daemon that holds it.
   * @throws ErrnoError when the lock file cannot be created or locked for another reason.
   */
  static tryAcquire(dir: string, root: string): DaemonLock | { heldBy: number | null; path: string } {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const path = DaemonLock.pathFor(dir, root);
    const lock = new DaemonLock(openSync(path, 'a+', 0o644), path);
    const n = lib();
    if (n.flock(lock.fd, LOCK_EX | LOCK_NB) !== 0) {
      const errno = n.errno();
      lock.close();
      if (errno !== EWOULDBLOCK) throw new ErrnoError(errno, 'flock', path);
      return { heldBy: DaemonLock.holder(dir, root), path };
    }
    ftruncateSync(lock.fd, 0);
    writeSync(lock.fd, `${process.pid}\n${root}\n`);
    return lock;
  }

  /** The pid written by the daemon that holds (or last held) the lock of `root`, if any. */
  static holder(dir: string, root: string): number | null {
    try {
      const pid = Number(readFileSync(DaemonLock.pathFor(dir, root), 'utf8').split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  /** Whether a daemon holds the lock of `root` now (probes with a non-blocking flock). */
  static isHeld(dir: string, root: string): boolean {
    let fd: number;
    try {
      fd = openSync(DaemonLock.pathFor(dir, root), 'r');
    } catch {
      return false;
    }
    try {
      const n = lib();
      if (n.flock(fd, LOCK_EX | LOCK_NB) === 0) {
        n.flock(fd, LOCK_UN);
        return false;
      }
      return true;
    } finally {
      closeSync(fd);
    }
  }

  override close(): void {
    if (this.open) lib().flock(this.fd, LOCK_UN);
    super.close();
  }
}
