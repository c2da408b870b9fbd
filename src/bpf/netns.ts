/**
 * Network namespaces as fds. Attaching to a namespace (sk_lookup links) only
 * needs an fd of it, taken from /run/netns/NAME or /proc/PID/ns/net, so we
 * never have to enter one.
 */
import { fstatSync, openSync, statSync } from 'node:fs';
import { CLONE_NEWNET } from './constants.js';
import { ErrnoError } from './errors.js';
import { OwnedFd } from './fd.js';
import { lib } from './native.js';

/** The namespace this process runs in. */
export const OWN_NETNS = '/proc/self/ns/net';

/** An open network namespace. Owns its fd. */
export class Netns extends OwnedFd {
  /** Inode number: the namespace's identity, as BPF netns link info reports it. */
  readonly inode: number;

  private constructor(fd: number, readonly path: string) {
    super(fd, `netns ${path}`);
    this.inode = fstatSync(fd).ino;
  }

  /**
   * Opens the namespace at `path` (a bind mount such as /run/netns/web, or
   * /proc/PID/ns/net). Throws ErrnoError naming the path (ENOENT when it does
   * not exist), or Error when the path is not a network namespace.
   */
  static open(path: string = OWN_NETNS): Netns {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new ErrnoError(e.errno ? -e.errno : 2, 'open network namespace', path, { cause: err });
    }
    const ns = new Netns(fd, path);
    // Namespace files all live on the kernel's nsfs: a file on another device is no namespace.
    if (fstatSync(fd).dev !== statSync(OWN_NETNS).dev) {
      ns.close();
      throw new Error(`${path} is not a network namespace (expected /run/netns/NAME or /proc/PID/ns/net)`);
    }
    return ns;
  }

  /**
   * Runs `fn` with the calling thread inside this namespace, then returns to
   * the original one. Synchronous work only: Node's main thread is the one
   * switched, so do not await inside. Throws ErrnoError when setns fails.
   */
  enter<T>(fn: () => T): T {
    using original = Netns.open('/proc/thread-self/ns/net');
    const n = lib();
    if (n.setns(this.fd, CLONE_NEWNET) < 0) throw new ErrnoError(n.errno(), 'setns', this.path);
    try {
      return fn();
    } finally {
      if (n.setns(original.fd, CLONE_NEWNET) < 0) {
        // Staying in the wrong namespace would silently misdirect everything after: stop.
        process.stderr.write(`fatal: cannot return to the original network namespace (errno ${n.errno()})\n`);
        process.exit(70);
      }
    }
  }
}

/** Key of a network namespace in the pin layout: `ino-<inode of its nsfs file>`. */
export function netnsPinKey(inode: number | bigint): string {
  return `ino-${inode}`;
}

/** A namespace path resolved to its pin-layout key, or why it could not be. */
export type NetnsKeyResult = { ok: true; key: string } | { ok: false; reason: string };

/**
 * Resolves the namespace file at `path` (a bind mount such as
 * /run/netns/NAME, or /proc/PID/ns/net) to its pin-layout key. Never throws:
 * a missing path or a file that is no namespace is a reason.
 */
export function resolveNetnsKey(path: string): NetnsKeyResult {
  try {
    const st = statSync(path);
    if (st.dev !== statSync(OWN_NETNS).dev) return { ok: false, reason: `${path} is not a network namespace` };
    return { ok: true, key: netnsPinKey(st.ino) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, reason: `network namespace ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be opened (${code})`}` };
  }
}
