/**
 * `spec.cgroup` paths shared by the kinds that name a cgroup v2 directory
 * (ConnectPolicy, SyscallCounter): normalization, and the check beyond the
 * schema's "cgroup-path" format (which refuses "..", NUL and empty paths).
 */
import { posix } from 'node:path';
import type { PathSegment } from './json-path.js';
import type { Finding } from './kind.js';

/** posix.normalize without a trailing slash: "/sys/fs/cgroup//app/" is "/sys/fs/cgroup/app", "./app" is "app". */
export function normalizeCgroupPath(path: string): string {
  const normalized = posix.normalize(path);
  return normalized.length > 1 && normalized.endsWith('/') ? normalized.slice(0, -1) : normalized;
}

/**
 * A warning at `path` when `cgroup` is not normalized (other than a trailing
 * slash, dropped silently), naming the directory it is read as.
 */
export function checkCgroupPath(cgroup: string, path: readonly PathSegment[]): Finding[] {
  const normalized = normalizeCgroupPath(cgroup);
  const written = cgroup.length > 1 && cgroup.endsWith('/') ? cgroup.slice(0, -1) : cgroup;
  if (normalized === written) return [];
  const where = cgroup.startsWith('/') ? 'the cgroup directory' : 'the cgroup directory (relative to the cgroup2 mount)';
  return [{ path, severity: 'warning', message: `"${cgroup}" is not a normalized path; it means ${where} "${normalized}"` }];
}
