/**
 * Typed errors of the kernel layer. Everything above src/bpf/ can tell an
 * errno failure from a missing kernel feature from a verifier rejection, and
 * every error names the operation and the object it was about.
 */
import { getSystemErrorMap } from 'node:util';
import { ENOTSUPP } from './constants.js';

const errnoTable = getSystemErrorMap();

/** libbpf's own error codes (`enum libbpf_errno` in bpf/libbpf.h, from 4000). */
const LIBBPF_ERRNO: Record<number, [string, string]> = {
  4000: ['LIBBPF_ERRNO__LIBELF', 'Something wrong in libelf'],
  4001: ['LIBBPF_ERRNO__FORMAT', 'BPF object format invalid'],
  4002: ['LIBBPF_ERRNO__KVERSION', "Incorrect or no 'version' section"],
  4003: ['LIBBPF_ERRNO__ENDIAN', 'Endian mismatch'],
  4004: ['LIBBPF_ERRNO__INTERNAL', 'Internal error in libbpf'],
  4005: ['LIBBPF_ERRNO__RELOC', 'Relocation failed'],
  4006: ['LIBBPF_ERRNO__LOAD', 'Load program failure for unknown reason'],
  4007: ['LIBBPF_ERRNO__VERIFY', 'Kernel verifier blocks program loading'],
  4008: ['LIBBPF_ERRNO__PROG2BIG', 'Program too big'],
  4009: ['LIBBPF_ERRNO__KVER', 'Incorrect kernel version'],
  4010: ['LIBBPF_ERRNO__PROGTYPE', "Kernel doesn't support this program type"],
  4011: ['LIBBPF_ERRNO__WRNGPID', 'Wrong pid in netlink message'],
  4012: ['LIBBPF_ERRNO__INVSEQ', 'Invalid netlink sequence'],
  4013: ['LIBBPF_ERRNO__NLPARSE', 'netlink parsing error'],
};

/** Name (`ENOENT`) and description of an errno value. */
export function describeErrno(errno: number): { code: string; description: string } {
  if (errno === ENOTSUPP) return { code: 'ENOTSUPP', description: 'Operation not supported (kernel-internal ENOTSUPP)' };
  const entry = errnoTable.get(-errno) ?? LIBBPF_ERRNO[errno];
  return entry ? { code: entry[0], description: entry[1] } : { code: `E${errno}`, description: `errno ${errno}` };
}

/** Base class of every error thrown by src/bpf/. */
export class BpfError extends Error {
  override name = 'BpfError';
}

/** A system call or libbpf call failed with an errno. */
export class ErrnoError extends BpfError {
  override name = 'ErrnoError';
  /** Positive errno value. */
  readonly errno: number;
  /** Symbolic errno name, e.g. `EPERM`. */
  readonly code: string;
  /** What we tried to do, e.g. `bpf_obj_pin`. */
  readonly operation: string;
  /** The path, map, program or interface the operation was about. */
  readonly object: string | undefined;

  constructor(errno: number, operation: string, object?: string, options?: ErrorOptions) {
    const { code, description } = describeErrno(errno);
    super(`${operation}${object ? ` ${object}` : ''}: ${code} (${description})`, options);
    this.errno = errno;
    this.code = code;
    this.operation = operation;
    this.object = object;
  }
}

/** The running kernel lacks a feature we need. */
export class NotSupportedError extends BpfError {
  override name = 'NotSupportedError';
  constructor(
    readonly feature: string,
    readonly minimumKernel: string,
    options?: ErrorOptions,
  ) {
    super(`${feature} is not supported by this kernel (needs Linux ${minimumKernel} or newer)`, options);
  }
}

/** Loading a BPF object failed; `log` holds the verifier and libbpf output. */
export class LoadError extends ErrnoError {
  override name = 'LoadError';
  constructor(
    errno: number,
    object: string,
    readonly log: string,
    options?: ErrorOptions,
  ) {
    super(errno, 'bpf_object__load', object, options);
    const tail = log.trim().split('\n').slice(-30).join('\n');
    if (tail) this.message += `\nverifier log (last lines):\n${tail}`;
  }
}

/** Throws an ErrnoError when a libbpf-style return value is negative. Returns it otherwise. */
export function check(ret: number, errno: () => number, operation: string, object?: string): number {
  if (ret < 0) throw new ErrnoError(-ret > 0 && -ret < 4096 ? -ret : errno(), operation, object);
  return ret;
}
