/**
 * System call names and numbers, for the kinds whose documents name system
 * calls (SyscallCounter). Only the x86_64 table is known: it is generated
 * from the kernel's UAPI headers into x86_64.ts (`npm run gen:syscalls`).
 * Names are the kernel's, without the "sys_" prefix of its functions
 * ("execve", not "sys_execve").
 */
import { editDistance } from '../describe.js';
import { X86_64_SYSCALLS } from './x86_64.js';

/** The system call table of one architecture, or why there is none. */
export type SyscallTable =
  | {
      readonly ok: true;
      /** Name to number. */
      readonly byName: ReadonlyMap<string, number>;
      /** Number to name (numbers without a system call are absent). */
      readonly byNumber: ReadonlyMap<number, string>;
      /** The highest system call number. */
      readonly maxNr: number;
    }
  | { readonly ok: false; readonly reason: string };

let x86_64: SyscallTable | undefined;

/**
 * The system call table of `arch` (a Node.js `process.arch` value). Known
 * for "x64" only; for other architectures the result says why not.
 */
export function syscallTable(arch: string = process.arch): SyscallTable {
  if (arch !== 'x64') return { ok: false, reason: `syscall names are known for x86_64 only (this is ${arch})` };
  x86_64 ??= {
    ok: true,
    byName: new Map(X86_64_SYSCALLS.map(([name, nr]) => [name, nr])),
    byNumber: new Map(X86_64_SYSCALLS.map(([name, nr]) => [nr, name])),
    maxNr: Math.max(...X86_64_SYSCALLS.map(([, nr]) => nr)),
  };
  return x86_64;
}

/** Prefixes people copy from kernel function, tracepoint and macro names. */
const STRIPPED_PREFIXES = ['__x64_sys_', '__ia32_sys_', '__se_sys_', '__do_sys_', '__sys_', 'sys_', '__nr_', 'nr_', 'sys_enter_', 'sys_exit_'];
/** Shortest name offered completions ("exec" → "execve"): shorter ones would match too much. */
const MIN_COMPLETED_LENGTH = 3;

/**
 * The x86_64 system call names closest to `name`, at most `n`, closest
 * first (ties by name): names within a typo's reach (edit distance at most
 * a third of the name's length, at least 1, counting swaps of neighbours
 * as one edit), names it is the beginning of ("execv" → "execveat"), and
 * the name without a prefix such as "sys_" or "__x64_sys_" ("sys_execve" →
 * "execve", first). Empty when nothing is close. A known name is its own
 * closest name.
 */
export function closestSyscalls(name: string, n = 3): string[] {
  const names = X86_64_SYSCALLS.map(([candidate]) => candidate);
  const lower = name.toLowerCase();
  const variants = [lower, ...STRIPPED_PREFIXES.filter((p) => lower.startsWith(p) && lower.length > p.length).map((p) => lower.slice(p.length))];
  const score = new Map<string, number>();
  for (const [v, variant] of variants.entries()) {
    const reach = Math.max(1, Math.floor(variant.length / 3));
    for (const candidate of names) {
      // The distance is at least the difference in length: skip hopeless candidates without the quadratic table.
      const typo = Math.abs(candidate.length - variant.length) <= reach ? editDistance(variant, candidate) : Infinity;
      const completes = variant.length >= MIN_COMPLETED_LENGTH && candidate.startsWith(variant);
      if (typo > reach && !completes) continue;
      // (For a completion, the edit distance is the number of letters added.)
      let distance = completes ? candidate.length - variant.length : typo;
      // A prefix-stripped variant that is a name outranks every guess about the name as written.
      if (v > 0 && distance === 0) distance = -1;
      score.set(candidate, Math.min(score.get(candidate) ?? Infinity, distance));
    }
  }
  return [...score]
    .sort(([a, da], [b, db]) => da - db || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, Math.max(0, n))
    .map(([candidate]) => candidate);
}
