/** Finding the cgroup v2 hierarchy, which cgroup BPF hooks attach to. */
import { readFileSync } from 'node:fs';

/**
 * Mount point of the cgroup2 filesystem (e.g. /sys/fs/cgroup, or
 * /sys/fs/cgroup/unified on hybrid systems), from /proc/self/mountinfo.
 * Throws Error when no cgroup2 is mounted.
 */
export function cgroup2Mount(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string {
  for (const line of mountinfo.split('\n')) {
    // "36 35 0:30 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw"
    const [left, right] = line.split(' - ');
    if (!left || !right || right.split(' ')[0] !== 'cgroup2') continue;
    const mountPoint = left.split(' ')[4];
    if (mountPoint) return mountPoint.replace(/\\040/g, ' ');
  }
  throw new Error('no cgroup2 filesystem is mounted (mount -t cgroup2 none /sys/fs/cgroup)');
}
