/**
 * BPF links: the attachment of a program to a hook, owning one fd. A pinned
 * link keeps the program attached after the process exits; update() swaps
 * the program atomically, with no moment where the hook is empty.
 */
import { readFileSync } from 'node:fs';
import { AttachType, BPF_F_BEFORE, BPF_F_REPLACE, Perf, Syscall, XdpFlags, Errno } from './constants.js';
import { ErrnoError, NotSupportedError } from './errors.js';
import { OwnedFd } from './fd.js';
import { KernelObject, openByIdFd, openPinnedAs } from './kernel-object.js';
import { linkInfo, type LinkInfo } from './info.js';
import { lib } from './native.js';
import type { Program } from './program.js';

const EINVAL = Errno.EINVAL;

/** XDP attach mode: driver (native), generic (skb) or hardware offload. */
export type XdpMode = 'native' | 'generic' | 'offload';
/** tcx direction. */
export type TcxDirection = 'ingress' | 'egress';

/** A BPF link. Owns its fd; close() releases our reference (a pin keeps the link alive). */
export class Link extends KernelObject {
  /** Takes ownership of `fd`. */
  constructor(fd: number, label = 'link') {
    super(fd, label);
  }

  /** Opens a pinned link. Throws ErrnoError, or TypeError when the pin is not a link. */
  static fromPin(path: string): Link {
    return openPinnedAs(path, 'link', (fd, label) => new Link(fd, label));
  }

  /** Opens a link by kernel id. Throws ErrnoError (ENOENT when gone). */
  static fromId(id: number): Link {
    return new Link(openByIdFd('link', id), `link id ${id}`);
  }

  /** Attaches an sk_lookup program to the network namespace behind `netnsFd`. */
  static attachSkLookup(prog: Program, netnsFd: number, label = 'sk_lookup link'): Link {
    return create(prog, netnsFd, AttachType.SK_LOOKUP, 0, label);
  }

  /**
   * Attaches an XDP program to interface `ifindex`. Throws ErrnoError; EBUSY
   * or EEXIST mean another program already holds the interface.
   */
  static attachXdp(prog: Program, ifindex: number, mode: XdpMode, label = `xdp link ifindex ${ifindex}`): Link {
    const flags = { native: XdpFlags.DRV_MODE, generic: XdpFlags.SKB_MODE, offload: XdpFlags.HW_MODE }[mode];
    return create(prog, ifindex, AttachType.XDP, flags, label);
  }

  /**
   * Attaches a sched_cls program with tcx (Linux 6.6+), after the programs
   * already there, or in front of them with `first`. Throws NotSupportedError
   * on older kernels.
   */
  static attachTcx(prog: Program, ifindex: number, direction: TcxDirection, label = `tcx ${direction} link ifindex ${ifindex}`, first = false): Link {
    const type = direction === 'ingress' ? AttachType.TCX_INGRESS : AttachType.TCX_EGRESS;
    try {
      return create(prog, ifindex, type, first ? BPF_F_BEFORE : 0, label);
    } catch (err) {
      if (err instanceof ErrnoError && err.errno === EINVAL) throw new NotSupportedError('tcx links', '6.6', { cause: err });
      throw err;
    }
  }

  /** Attaches a cgroup program (e.g. AttachType.CGROUP_INET4_CONNECT) to the cgroup behind `cgroupFd`. */
  static attachCgroup(prog: Program, cgroupFd: number, attachType: number, label = 'cgroup link'): Link {
    return create(prog, cgroupFd, attachType, 0, label);
  }

  /**
   * Attaches a raw tracepoint program to the raw tracepoint `name` (e.g.
   * `sys_enter`): BPF_RAW_TRACEPOINT_OPEN, which returns a pinnable link.
   * Throws ErrnoError naming the tracepoint (ENOENT: no such tracepoint).
   */
  static attachRawTracepoint(prog: Program, name: string): Link {
    const fd = lib().bpf_raw_tracepoint_open(name, prog.fd);
    if (fd < 0) throw new ErrnoError(-fd, 'bpf_raw_tracepoint_open', `raw tracepoint ${name}`);
    return new Link(fd, `raw tracepoint link ${name}`);
  }

  /**
   * Attaches a tracepoint program to `category/name` through a perf event
   * and a BPF_PERF_EVENT link (pinnable). Needs tracefs at
   * /sys/kernel/tracing. Throws ErrnoError naming the tracepoint.
   */
  static attachTracepoint(prog: Program, category: string, name: string, tracefs = '/sys/kernel/tracing'): Link {
    const idPath = `${tracefs}/events/${category}/${name}/id`;
    let tpId: number;
    try {
      tpId = Number(readFileSync(idPath, 'utf8').trim());
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ErrnoError(code === 'ENOENT' ? 2 : 13, 'read tracepoint id', `${category}:${name} (${idPath})`, { cause: err });
    }
    const attr = Buffer.alloc(Perf.ATTR_SIZE);
    attr.writeUInt32LE(Perf.TYPE_TRACEPOINT, 0); // type
    attr.writeUInt32LE(Perf.ATTR_SIZE, 4); // size
    attr.writeBigUInt64LE(BigInt(tpId), 8); // config
    attr.writeBigUInt64LE(1n, 16); // sample_period
    attr.writeBigUInt64LE(BigInt(Perf.SAMPLE_RAW), 24); // sample_type
    // read_format @32 and the flag bits @40 stay 0: the event starts enabled.
    attr.writeUInt32LE(1, 48); // wakeup_events
    const n = lib();
    const pfd = Number(n.syscall(Syscall.perf_event_open, 'void *', attr, 'int', -1, 'int', 0, 'int', -1, 'ulong', Perf.FLAG_FD_CLOEXEC));
    if (pfd < 0) throw new ErrnoError(n.errno(), 'perf_event_open', `tracepoint ${category}:${name}`);
    // The link holds its own reference to the perf event; ours goes at scope exit.
    using perf = new OwnedFd(pfd, `perf event ${category}:${name}`);
    return create(prog, perf.fd, AttachType.PERF_EVENT, 0, `tracepoint link ${category}:${name}`);
  }

  /** Kernel facts: id, type, program id and target. Throws ErrnoError. */
  info(): LinkInfo {
    return linkInfo(this.fd);
  }

  /**
   * Atomically replaces the link's program with `next`. With `expected`, the
   * kernel refuses (EPERM) when the current program is not that one, so a
   * concurrent writer cannot be overwritten blindly. The link id is kept.
   */
  update(next: Program, expected?: Program): void {
    const opts = Buffer.alloc(16);
    opts.writeBigUInt64LE(16n, 0);
    if (expected) {
      opts.writeUInt32LE(BPF_F_REPLACE, 8);
      opts.writeUInt32LE(expected.fd, 12);
    }
    const ret = lib().bpf_link_update(this.fd, next.fd, opts);
    if (ret < 0) throw new ErrnoError(-ret, 'bpf_link_update', this.label);
  }

  /** Detaches the link from its hook (even if pinned elsewhere). The fd stays open until close(). */
  detach(): void {
    const ret = lib().bpf_link_detach(this.fd);
    if (ret < 0) throw new ErrnoError(-ret, 'bpf_link_detach', this.label);
  }
}

function create(prog: Program, targetFd: number, attachType: number, flags: number, label: string): Link {
  const opts = Buffer.alloc(64);
  opts.writeBigUInt64LE(64n, 0);
  opts.writeUInt32LE(flags, 8);
  const fd = lib().bpf_link_create(prog.fd, targetFd, attachType, opts);
  if (fd < 0) throw new ErrnoError(-fd, 'bpf_link_create', label);
  return new Link(fd, label);
}
