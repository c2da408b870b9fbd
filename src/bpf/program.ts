/** A loaded BPF program, owning one fd. */
import { ProgType, constantName } from './constants.js';
import { ErrnoError } from './errors.js';
import { KernelObject, openByIdFd, openPinnedAs } from './kernel-object.js';
import { programInfo, type ProgramInfo } from './info.js';
import { addressOf, lib } from './native.js';

/** A loaded BPF program. Owns its fd; close() is idempotent. */
export class Program extends KernelObject {
  /** Takes ownership of `fd`. */
  constructor(fd: number, label = 'program') {
    super(fd, label);
  }

  /** Opens a pinned program. Throws ErrnoError, or TypeError when the pin is not a program. */
  static fromPin(path: string): Program {
    return openPinnedAs(path, 'program', (fd, label) => new Program(fd, label));
  }

  /** Opens a program by kernel id. Throws ErrnoError (ENOENT when gone). */
  static fromId(id: number): Program {
    return new Program(openByIdFd('prog', id), `program id ${id}`);
  }

  /** Kernel facts: id, type, name, tag, map ids. Throws ErrnoError. */
  info(): ProgramInfo {
    try {
      return programInfo(this.fd);
    } catch (err) {
      if (err instanceof ErrnoError) throw new ErrnoError(err.errno, 'program info', this.label, { cause: err });
      throw err;
    }
  }

  /**
   * Runs the program `repeat` times on a copy of `data` in the kernel
   * (BPF_PROG_TEST_RUN; XDP and tc programs take a frame). Returns the last
   * return value and the average nanoseconds per run. Throws ErrnoError.
   */
  testRun(data: Buffer, repeat = 1): { retval: number; durationNs: number } {
    const out = Buffer.alloc(data.length + 256);
    const opts = this.#runTest({ data, dataOut: out, repeat });
    return { retval: opts.readUInt32LE(56), durationNs: opts.readUInt32LE(64) };
  }

  /**
   * Runs the program once on a context only (BPF_PROG_TEST_RUN without
   * packet data: sk_lookup programs take a `struct bpf_sk_lookup`). Returns
   * the return value and the context as the kernel wrote it back (for
   * sk_lookup: the selected socket's cookie in its first 8 bytes). Throws
   * ErrnoError.
   */
  testRunContext(ctx: Buffer): { retval: number; ctxOut: Buffer } {
    const ctxIn = Buffer.from(ctx); // the kernel reads it; keep the caller's buffer untouched
    const ctxOut = Buffer.alloc(ctx.length);
    const opts = this.#runTest({ ctx: ctxIn, ctxOut, repeat: 1 });
    return { retval: opts.readUInt32LE(56), ctxOut: ctxOut.subarray(0, opts.readUInt32LE(52)) };
  }

  /** One BPF_PROG_TEST_RUN with `struct bpf_test_run_opts` (libbpf 1.1) filled from `io`; returns the opts as the kernel left them. */
  #runTest(io: { data?: Buffer; dataOut?: Buffer; ctx?: Buffer; ctxOut?: Buffer; repeat: number }): Buffer {
    const opts = Buffer.alloc(80);
    opts.writeBigUInt64LE(80n, 0); // sz
    if (io.data) {
      opts.writeBigUInt64LE(addressOf(io.data), 8); // data_in
      opts.writeUInt32LE(io.data.length, 24); // data_size_in
    }
    if (io.dataOut) {
      opts.writeBigUInt64LE(addressOf(io.dataOut), 16); // data_out
      opts.writeUInt32LE(io.dataOut.length, 28); // data_size_out
    }
    if (io.ctx) {
      opts.writeBigUInt64LE(addressOf(io.ctx), 32); // ctx_in
      opts.writeUInt32LE(io.ctx.length, 48); // ctx_size_in
    }
    if (io.ctxOut) {
      opts.writeBigUInt64LE(addressOf(io.ctxOut), 40); // ctx_out
      opts.writeUInt32LE(io.ctxOut.length, 52); // ctx_size_out
    }
    opts.writeInt32LE(io.repeat, 60); // repeat
    const ret = lib().bpf_prog_test_run_opts(this.fd, opts);
    if (ret < 0) throw new ErrnoError(-ret, 'bpf_prog_test_run_opts', this.label);
    return opts;
  }

  /** Readable program type, e.g. `sk_lookup`. */
  typeName(): string {
    return constantName(ProgType, this.info().type);
  }
}
