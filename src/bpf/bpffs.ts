/**
 * bpffs handling: making sure a pin root sits on a mounted bpffs (mounting
 * /sys/fs/bpf ourselves when it is missing, as other BPF daemons do),
 * creating pin directories, and removing pins.
 */
import { mkdirSync, readdirSync, rmdirSync, statfsSync, statSync, unlinkSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { BPF_FS_MAGIC, TRACEFS_MAGIC } from './constants.js';
import { ErrnoError } from './errors.js';
import { lib } from './native.js';
import { compareCodeUnits } from '../common/compare.js';

/** The conventional bpffs mount point. */
export const DEFAULT_BPFFS = '/sys/fs/bpf';
/** The conventional tracefs mount point. */
export const DEFAULT_TRACEFS = '/sys/kernel/tracing';

function nearestExisting(path: string): string {
  let p = resolve(path);
  for (;;) {
    try {
      statSync(p);
      return p;
    } catch {
      const up = dirname(p);
      if (up === p) return p;
      p = up;
    }
  }
}

/** True when `path` (or its nearest existing ancestor) lies on a bpffs. */
export function isOnBpffs(path: string): boolean {
  return statfsSync(nearestExisting(path)).type === BPF_FS_MAGIC;
}

function mountFs(type: 'bpf' | 'tracefs', target: string): void {
  mkdirSync(target, { recursive: true });
  const n = lib();
  if (n.mount(type, target, type, 0, 'mode=0700') < 0) {
    throw new ErrnoError(n.errno(), `mount -t ${type}`, target, {
      cause: new Error(`mount a ${type} filesystem at ${target} by hand (needs CAP_SYS_ADMIN): mount -t ${type} ${type} ${target}`),
    });
  }
}

/**
 * Makes sure `root` is on a bpffs and exists as a directory (mode 0750).
 * When it lies below /sys/fs/bpf and nothing is mounted there, mounts bpffs
 * at /sys/fs/bpf. Throws Error explaining what to do when `root` is
 * elsewhere and not on bpffs, ErrnoError when mounting fails.
 * Returns true when this call mounted bpffs.
 */
export function ensureBpffs(root: string): boolean {
  const abs = resolve(root);
  let mounted = false;
  if (!isOnBpffs(abs)) {
    if (abs === DEFAULT_BPFFS || abs.startsWith(`${DEFAULT_BPFFS}/`)) {
      mountFs('bpf', DEFAULT_BPFFS);
      mounted = true;
    } else {
      throw new Error(
        `pin root ${abs} is not on a bpffs: choose a directory under ${DEFAULT_BPFFS}, or mount one there first (mkdir -p ${abs} && mount -t bpf bpf ${abs})`,
      );
    }
  }
  mkdirSync(abs, { recursive: true, mode: 0o750 });
  return mounted;
}

/** Mounts tracefs at /sys/kernel/tracing when it is not there. Returns true when this call mounted it. */
export function ensureTracefs(path = DEFAULT_TRACEFS): boolean {
  try {
    if (statfsSync(path).type === TRACEFS_MAGIC) return false;
  } catch {
    // not there: mount below
  }
  mountFs('tracefs', path);
  return true;
}

/** Removes a pin. Returns false when there was none. Throws ErrnoError otherwise. */
export function unpin(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return false;
    throw new ErrnoError(e.errno ? -e.errno : 5, 'unpin', path, { cause: err });
  }
}

/** Every pin (file) below `dir`, depth first, paths absolute. Empty when `dir` is absent. */
export function listPins(dir: string): string[] {
  const out: string[] = [];
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw err;
  }
  for (const e of entries.sort((a, b) => compareCodeUnits(a.name, b.name))) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...listPins(p));
    else out.push(p);
  }
  return out;
}

/** Unpins everything below `dir` and removes the directories, `dir` included. Returns the pins removed. */
export function removePinTree(dir: string): string[] {
  const pins = listPins(dir);
  for (const p of pins) unpin(p);
  const dirs: string[] = [];
  const walk = (d: string): void => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(`${d}/${e.name}`);
    dirs.push(d);
  };
  walk(dir);
  for (const d of dirs) rmdirSync(d);
  return pins;
}

/**
 * bpffs refuses names with a dot (it reserves them, e.g. maps.debug): lookup
 * fails with EPERM. Pin names must match this.
 */
export const PIN_NAME = /^[A-Za-z0-9_-]+$/;

/**
 * Removes one pin, or a directory of pins with everything below it. Returns
 * the pins removed. Idempotent: a path that is already gone (e.g. a stray
 * `program_next` an upgrade in the same pass renamed away) removes nothing.
 */
export function removePinPath(path: string): string[] {
  let dir: boolean;
  try {
    dir = statSync(path).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return dir ? removePinTree(path) : unpin(path) ? [path] : [];
}
