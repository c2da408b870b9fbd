/**
 * Common base of Program, BpfMap and Link: an owned fd that refers to a BPF
 * kernel object, which can be pinned to bpffs and reopened by pin or id.
 */
import { ErrnoError } from './errors.js';
import { OwnedFd } from './fd.js';
import { lib } from './native.js';
import type { ObjectKind } from './info.js';

/** An owned fd of a BPF program, map or link. */
export abstract class KernelObject extends OwnedFd {
  /** Pins the object at `path` (on bpffs). The pin keeps it alive after close(). Throws ErrnoError (EEXIST if taken). */
  pin(path: string): void {
    const n = lib();
    const ret = n.bpf_obj_pin(this.fd, path);
    if (ret < 0) throw new ErrnoError(-ret, 'bpf_obj_pin', `${this.label} at ${path}`);
  }
}

/** Opens a pinned object and returns its new fd (the caller owns it). Throws ErrnoError (ENOENT if no pin). */
export function openPinnedFd(path: string): number {
  const n = lib();
  const fd = n.bpf_obj_get(path);
  if (fd < 0) throw new ErrnoError(-fd, 'bpf_obj_get', path);
  return fd;
}

/** Opens an object by kernel id and returns its new fd (the caller owns it). Throws ErrnoError (ENOENT if gone). */
export function openByIdFd(kind: ObjectKind, id: number): number {
  const n = lib();
  const open = { prog: n.bpf_prog_get_fd_by_id, map: n.bpf_map_get_fd_by_id, link: n.bpf_link_get_fd_by_id }[kind];
  const fd = open(id);
  if (fd < 0) throw new ErrnoError(-fd, `bpf_${kind}_get_fd_by_id`, `id ${id}`);
  return fd;
}

/**
 * Runs `open` and returns what it opened, or undefined when there is nothing
 * to open: the pin (or id) does not exist (ENOENT), or the pin is not an
 * object of the kind asked for (a TypeError from {@link openPinnedAs}).
 * Every other error (EPERM, EMFILE, ENOMEM, ...) is thrown: it says nothing
 * about whether the object exists, and must never be read as "missing".
 */
export function tryOpen<T>(open: () => T): T | undefined {
  try {
    return open();
  } catch (err) {
    if (err instanceof ErrnoError && err.code === 'ENOENT') return undefined;
    if (err instanceof TypeError && / is not a BPF (program|map|link)$/.test(err.message)) return undefined;
    throw err;
  }
}

/**
 * Opens the pin at `path` as a `what` (program, map, link): wraps the new fd
 * with `make`, and checks with `info()` that the pin really is one.
 * Throws ErrnoError from bpf_obj_get, or TypeError when the pin is something
 * else; the fd is closed on failure.
 */
export function openPinnedAs<T extends KernelObject & { info(): unknown }>(
  path: string,
  what: 'program' | 'map' | 'link',
  make: (fd: number, label: string) => T,
): T {
  const obj = make(openPinnedFd(path), `${what} ${path}`);
  try {
    obj.info();
  } catch (err) {
    obj.close();
    throw new TypeError(`${path} is not a BPF ${what}`, { cause: err });
  }
  return obj;
}
