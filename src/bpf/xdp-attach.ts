/**
 * Attaching an XDP program the way every kind does: as a link, in native
 * (driver) mode when the driver takes it, else in generic mode; never over
 * another tool's program. Shared by the kinds that attach XDP programs.
 */
import { Errno } from './constants.js';
import { describeErrno, ErrnoError } from './errors.js';
import { Link } from './link.js';
import { Netns } from './netns.js';
import type { Program } from './program.js';

/** Raised when another program holds the interface's XDP hook: we never replace it. */
export class XdpConflictError extends ErrnoError {
  override name = 'XdpConflictError';
}

/** How an XDP attachment was asked for: native with generic fallback (`auto`), or one mode only. */
export type XdpAttachMode = 'auto' | 'native' | 'generic';

/** A new XDP link and the mode it runs in. */
export interface XdpAttachment {
  link: Link;
  mode: 'native' | 'generic';
  /** Why native mode was refused, when `auto` fell back to generic. */
  nativeRefused?: string;
}

const { EBUSY, EEXIST, ENODEV } = Errno;

/**
 * Attaches `prog` to interface `ifindex` (named `ifname`) of the network
 * namespace at `netnsPath`. With `auto`, native mode is tried first and
 * generic mode is used when the driver refuses. The caller owns the link.
 * Throws XdpConflictError when another XDP program holds the interface
 * (EBUSY/EEXIST), ErrnoError otherwise (ENODEV: no such interface).
 */
export function attachXdp(prog: Program, netnsPath: string, ifindex: number, ifname: string, mode: XdpAttachMode, label: string): XdpAttachment {
  using ns = Netns.open(netnsPath);
  const conflict = (err: unknown): never => {
    if (err instanceof ErrnoError && (err.errno === EBUSY || err.errno === EEXIST))
      throw new XdpConflictError(err.errno, 'attach XDP', `${ifname}: another XDP program is attached (not ours): not replacing it`, { cause: err });
    throw err;
  };
  return ns.enter(() => {
    let nativeRefused: string | undefined;
    if (mode !== 'generic') {
      try {
        return { link: Link.attachXdp(prog, ifindex, 'native', label), mode: 'native' as const };
      } catch (err) {
        if (mode === 'native' || !(err instanceof ErrnoError) || err.errno === EBUSY || err.errno === EEXIST || err.errno === ENODEV) return conflict(err);
        nativeRefused = `${err.code} (${describeErrno(err.errno).description})`;
      }
    }
    try {
      return { link: Link.attachXdp(prog, ifindex, 'generic', label), mode: 'generic' as const, ...(nativeRefused ? { nativeRefused } : {}) };
    } catch (err) {
      return conflict(err);
    }
  });
}
