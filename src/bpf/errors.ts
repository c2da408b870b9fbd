/**
 * Typed errors of the kernel layer. Everything above src/bpf/ can tell an
 * errno failure from a missing kernel feature from a verifier rejection, and
 * every error names the operation and the object it was about.
 */
import { getSystemErrorMap } from 'node:util';
import { ENOTSUPP } from './constants.js';

const errnoTable = getSystemErrorMap();

/** Name (`ENOENT`) and description of an errno value. */
export function describeErrno(errno: number): { code: string; description: string } {
  if (errno === ENOTSUPP) return { code: 'ENOTSUPP', description: 'Operation not supported (kernel-internal ENOTSUPP)' };
  const entry = errnoTable.get(-errno);
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
