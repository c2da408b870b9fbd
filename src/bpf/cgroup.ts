/** Finding the cgroup v2 hierarchy, which cgroup BPF hooks attach to, and attaching to a cgroup. */
import { constants, fstatSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, posix } from 'node:path';
import { Errno } from './constants.js';
import { ErrnoError } from './errors.js';
import { OwnedFd } from './fd.js';
import { Link } from './link.js';
import type { Program } from './program.js';

/** Every cgroup2 mount point in /proc/self/mountinfo, in mount order. */
export function cgroup2Mounts(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    // "36 35 0:30 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw"
    const [left, right] = line.split(' - ');
    if (!left || !right || right.split(' ')[0] !== 'cgroup2') continue;
    const mountPoint = left.split(' ')[4];
    if (mountPoint) out.push(mountPoint.replace(/\\040/g, ' '));
  }
  return out;
}

/**
 * Mount point of the cgroup2 filesystem (e.g. /sys/fs/cgroup, or
 * /sys/fs/cgroup/unified on hybrid systems), from /proc/self/mountinfo.
 * Throws Error when no cgroup2 is mounted.
 */
export function cgroup2Mount(mountinfo?: string): string {
  const first = cgroup2Mounts(mountinfo)[0];
  if (first === undefined) throw new Error('no cgroup2 filesystem is mounted (mount -t cgroup2 none /sys/fs/cgroup)');
  return first;
}

/** A cgroup v2 directory and its id (the directory's inode number, as bpf_get_current_cgroup_id and link info report it). */
export type CgroupResolution = { ok: true; path: string; id: bigint } | { ok: false; reason: string; missing: boolean };

/**
 * Resolves a cgroup as a policy names it: an absolute path inside a cgroup2
 * mount, or a path relative to the (first) cgroup2 mount. Never throws: a
 * missing cgroup (`missing: true`), a path outside cgroup2 or no cgroup2 at
 * all is a reason.
 */
export function resolveCgroup(spec: string, mountinfo?: string): CgroupResolution {
  const mounts = cgroup2Mounts(mountinfo);
  if (mounts.length === 0) return { ok: false, missing: false, reason: 'no cgroup2 filesystem is mounted (mount -t cgroup2 none /sys/fs/cgroup)' };
  const path = isAbsolute(spec) ? posix.normalize(spec) : join(mounts[0]!, spec);
  const inside = mounts.find((m) => path === m || path.startsWith(m.endsWith('/') ? m : `${m}/`));
  if (!inside)
    return { ok: false, missing: false, reason: `${path} is not in a cgroup v2 hierarchy (cgroup2 is mounted at ${mounts.join(', ')}): write it relative to that mount or under it` };
  try {
    const st = statSync(path, { bigint: true });
    if (!st.isDirectory()) return { ok: false, missing: false, reason: `${path} is not a directory` };
    return { ok: true, path, id: st.ino };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: false, missing: true, reason: `cgroup ${path} does not exist (yet)` };
    return { ok: false, missing: false, reason: `cgroup ${path}: ${(err as Error).message}` };
  }
}

/** The id of the cgroup directory at `path`, or undefined when there is none. Never throws. */
export function cgroupIdAt(path: string): bigint | undefined {
  try {
    return statSync(path, { bigint: true }).ino;
  } catch {
    return undefined;
  }
}

/**
 * Attaches `prog` to the cgroup at `path` with a cgroup link of `attachType`
 * (multi-attach: other programs on the cgroup stay). Refuses (ESTALE) when
 * the directory is no longer the cgroup `expectedId` (it was removed and
 * created again). Throws ErrnoError.
 */
export function attachToCgroup(prog: Program, path: string, expectedId: bigint, attachType: number, label: string): Link {
  using dir = openCgroupDir(path, expectedId);
  return Link.attachCgroup(prog, dir.fd, attachType, label);
}

/**
 * Opens the cgroup directory at `path` (e.g. to put it into a cgroup array
 * map). Refuses (ESTALE) when it is no longer the cgroup `expectedId`. The
 * caller owns the fd. Throws ErrnoError.
 */
export function openCgroupDir(path: string, expectedId: bigint): OwnedFd {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ErrnoError(code === 'ENOENT' ? Errno.ENOENT : code === 'ENOTDIR' ? Errno.ENOTDIR : Errno.EACCES, 'open cgroup', path, { cause: err });
  }
  const dir = new OwnedFd(fd, `cgroup ${path}`);
  const id = fstatSync(dir.fd, { bigint: true }).ino;
  if (id !== expectedId) {
    dir.close();
    throw new ErrnoError(Errno.ESTALE, 'open cgroup', `${path} is cgroup ${id} now, not ${expectedId} (removed and created again)`);
  }
  return dir;
}

/**
 * The path of the cgroup with id `id` (its directory's inode number), found
 * by walking the cgroup2 mounts breadth first; undefined when it is gone or
 * not among the first `limit` directories. For naming cgroups in events.
 */
export function cgroupPathOfId(id: bigint, limit = 20000, mountinfo?: string): string | undefined {
  const queue = cgroup2Mounts(mountinfo);
  let seen = 0;
  while (queue.length > 0 && seen < limit) {
    const dir = queue.shift()!;
    seen++;
    try {
      if (statSync(dir, { bigint: true }).ino === id) return dir;
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) queue.push(join(dir, e.name));
    } catch {
      // removed while walking
    }
  }
  return undefined;
}
