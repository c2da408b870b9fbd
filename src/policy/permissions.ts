/**
 * sshd-StrictModes-like checks on policy files and directories: whoever can
 * write a policy controls what ebpf-policy does to the kernel, so policies
 * must be writable only by root or by the user running the command (as sshd
 * accepts files owned by root or by the user logging in). A daemon running as
 * root therefore still requires root-owned files; a CI job running `validate`
 * as an ordinary user accepts its own checkout.
 */
import { statSync } from 'node:fs';
import { dirname } from 'node:path';

/** The parts of fs.Stats the check needs. */
export interface OwnershipStat {
  readonly mode: number;
  readonly uid: number;
}

/**
 * Decides whether a policy file or directory may be trusted.
 * @param realPath absolute path with symbolic links resolved.
 * @returns undefined if trusted, else the explanation of why not.
 */
export type TrustCheck = (realPath: string, type: 'file' | 'directory') => string | undefined;

/** Options of {@link createStrictModesCheck}; the defaults are the production rules. */
export interface StrictModesOptions {
  /**
   * The user running the command, trusted besides root. Default:
   * process.geteuid() (the user whose rights the command acts with).
   */
  readonly uid?: number;
  /** How to stat a path (follows symbolic links). Default: fs.statSync. */
  readonly stat?: (path: string) => OwnershipStat;
}

const GROUP_WRITE = 0o020;
const OTHER_WRITE = 0o002;
const STICKY = 0o1000;

/** Formats a mode like chmod: "0644", "01777". */
export function formatMode(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;
}

/** "root", or "root or you (uid 1000)". */
function trustedOwners(invoking: number): string {
  return invoking === 0 ? 'root' : `root or you (uid ${invoking})`;
}

/**
 * Creates the permission check used when loading policies. A path is
 * refused if it (or, for the paths containing it, any parent directory up
 * to "/") is not owned by root or by the invoking user, or is writable by
 * group or others.
 * Parent directories that are sticky (like /tmp) may be writable by others,
 * since others cannot rename or replace entries they do not own there.
 * Results are cached for the lifetime of the returned function.
 */
export function createStrictModesCheck(options: StrictModesOptions = {}): TrustCheck {
  const invoking = options.uid ?? process.geteuid?.() ?? 0;
  const trusted = [0, invoking];
  const owners = trustedOwners(invoking);
  const stat = options.stat ?? ((path: string) => statSync(path));
  const cache = new Map<string, string | undefined>();

  const problemsOf = (path: string, isParent: boolean): string[] => {
    let st: OwnershipStat;
    try {
      st = stat(path);
    } catch (error) {
      return [`cannot stat: ${(error as NodeJS.ErrnoException).code ?? String(error)}`];
    }
    const reasons: string[] = [];
    if (!trusted.includes(st.uid)) reasons.push(`owned by uid ${st.uid}, not ${owners}`);
    const writable = [st.mode & GROUP_WRITE ? 'group' : '', st.mode & OTHER_WRITE ? 'others' : ''].filter(Boolean);
    const stickyParent = isParent && (st.mode & STICKY) !== 0;
    if (writable.length > 0 && !stickyParent) {
      reasons.push(`mode ${formatMode(st.mode)} is writable by ${writable.join(' and ')}`);
    }
    return reasons;
  };

  const checkParents = (path: string): string | undefined => {
    const parent = dirname(path);
    if (parent === path) return undefined;
    const key = `parent:${parent}`;
    if (!cache.has(key)) {
      const reasons = problemsOf(parent, true);
      cache.set(
        key,
        reasons.length > 0 ? `bad ownership or modes for directory ${parent}: ${reasons.join(', ')}` : checkParents(parent),
      );
    }
    return cache.get(key);
  };

  return (realPath, type) => {
    const key = `${type}:${realPath}`;
    if (!cache.has(key)) {
      const reasons = problemsOf(realPath, false);
      const own = reasons.length > 0 ? `bad ownership or modes for ${type} ${realPath}: ${reasons.join(', ')}` : undefined;
      const parents = own === undefined ? checkParents(realPath) : undefined;
      const found = own ?? (parents === undefined ? undefined : `${parents} (a parent of ${realPath})`);
      cache.set(
        key,
        found === undefined
          ? undefined
          : `${found}; refusing to load policies from it: make it owned by ${owners} and not writable by group or others, or pass --insecure-policy-perms`,
      );
    }
    return cache.get(key);
  };
}
