/**
 * Other processes' file descriptors: pidfd_open(2) and pidfd_getfd(2), which
 * libbpf does not wrap. Used to take a duplicate of a listening socket held
 * by a server we do not own, so it can be put into a sockmap.
 */
import { Syscall } from './constants.js';
import { ErrnoError } from './errors.js';
import { OwnedFd } from './fd.js';
import { lib } from './native.js';

/** A pidfd: a stable handle on a process that does not get reused like a pid. */
export class Pidfd extends OwnedFd {
  private constructor(
    fd: number,
    readonly pid: number,
  ) {
    super(fd, `pidfd ${pid}`);
  }

  /** pidfd_open(pid). Throws ErrnoError (ESRCH when the process does not exist). */
  static open(pid: number): Pidfd {
    const n = lib();
    const fd = Number(n.syscall(Syscall.pidfd_open, 'int', pid, 'uint', 0));
    if (fd < 0) throw new ErrnoError(n.errno(), 'pidfd_open', `pid ${pid}`);
    return new Pidfd(fd, pid);
  }

  /**
   * Duplicates the target process's fd `targetFd` into this process
   * (pidfd_getfd, Linux 5.6, needs ptrace access). The caller owns the result.
   * Throws ErrnoError (EBADF when the process has no such fd, EPERM without access).
   */
  getfd(targetFd: number, label = `fd ${targetFd} of pid ${this.pid}`): OwnedFd {
    const n = lib();
    const fd = Number(n.syscall(Syscall.pidfd_getfd, 'int', this.fd, 'int', targetFd, 'uint', 0));
    if (fd < 0) throw new ErrnoError(n.errno(), 'pidfd_getfd', label);
    return new OwnedFd(fd, label);
  }
}
