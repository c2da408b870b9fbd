/** A loaded BPF program, owning one fd. */
import { ProgType, constantName } from './constants.js';
import { ErrnoError } from './errors.js';
import { KernelObject, openByIdFd, openPinnedFd } from './kernel-object.js';
import { programInfo, type ProgramInfo } from './info.js';

/** A loaded BPF program. Owns its fd; close() is idempotent. */
export class Program extends KernelObject {
  /** Takes ownership of `fd`. */
  constructor(fd: number, label = 'program') {
    super(fd, label);
  }

  /** Opens a pinned program. Throws ErrnoError, or TypeError when the pin is not a program. */
  static fromPin(path: string): Program {
    const p = new Program(openPinnedFd(path), `program ${path}`);
    try {
      p.info();
    } catch (err) {
      p.close();
      throw new TypeError(`${path} is not a BPF program`, { cause: err });
    }
    return p;
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

  /** Readable program type, e.g. `sk_lookup`. */
  typeName(): string {
    return constantName(ProgType, this.info().type);
  }
}
