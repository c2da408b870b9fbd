/**
 * The SyscallCounter kind, document half: count system calls, by name from
 * the x86_64 system call table (or "*" for all of them), grouped by any of
 * the system call, the calling thread's command name, its cgroup and its
 * process id, optionally only those of the processes of a cgroup v2 subtree,
 * in a table of at most `maxKeys` keys (least recently used keys evicted).
 *
 * Counters never conflict: {@link syscallCounterKind}'s `findConflicts`
 * finds nothing, because several counters may count the same system calls
 * of the same processes, each keeping its own counts.
 */
import type { SyscallCounter } from '../../types/generated/syscall-counter.js';
import { checkCgroupPath, normalizeCgroupPath } from '../../policy/cgroup-path.js';
import { normalizeBase, type DesiredPolicyBase, type Finding, type PolicyKind } from '../../policy/kind.js';
import { closestSyscalls, syscallTable } from '../../policy/syscalls/table.js';

/** A field counts are grouped by. */
export type GroupByField = 'syscall' | 'comm' | 'cgroup' | 'pid';
/** groupBy fields in their canonical order. */
export const GROUP_BY_FIELDS: readonly GroupByField[] = ['syscall', 'comm', 'cgroup', 'pid'];
/** spec.maxKeys when absent. */
export const DEFAULT_MAX_KEYS = 10240;

/** Normalized desired state of one SyscallCounter policy, for the reconciler. */
export interface SyscallCounterPolicy extends DesiredPolicyBase {
  readonly kind: 'SyscallCounter';
  /** Syscall numbers counted, ascending and distinct; 'all' for "*". */
  readonly syscalls: readonly number[] | 'all';
  /** groupBy in canonical order (GROUP_BY_FIELDS order), distinct; default ['syscall']. */
  readonly groupBy: readonly GroupByField[];
  /** spec.cgroup normalized with posix.normalize (trailing slash dropped), or undefined. */
  readonly cgroup: string | undefined;
  readonly maxKeys: number;
}

const KIND = 'SyscallCounter';
const ALL = '*';
/** The architecture named in messages, for Node's "x64". */
const ARCH_NAME = 'x86_64';

/** Errors for names not in the system call table, with the closest names; one error when there is no table. */
function checkSyscalls(syscalls: readonly string[]): Finding[] {
  const named = syscalls.some((name) => name !== ALL);
  const table = syscallTable();
  if (!table.ok) return named ? [{ path: ['spec', 'syscalls'], severity: 'error', message: `${table.reason}: only "*" can be counted here` }] : [];
  const findings: Finding[] = [];
  syscalls.forEach((name, i) => {
    if (name === ALL || table.byName.has(name)) return;
    const closest = closestSyscalls(name);
    const hint = closest.length === 0 ? '' : `: did you mean ${closest.map((c) => `"${c}"`).join(', ')}?`;
    findings.push({ path: ['spec', 'syscalls', i], severity: 'error', message: `unknown system call "${name}" on ${ARCH_NAME}${hint}` });
  });
  const all = syscalls.indexOf(ALL);
  if (all >= 0 && named)
    findings.push({ path: ['spec', 'syscalls', all], severity: 'warning', message: '"*" counts every system call: the names listed with it are redundant' });
  return findings;
}

/** How many distinct keys grouping by syscall alone makes, when known. */
function syscallKeys(syscalls: readonly string[]): number | undefined {
  if (!syscalls.includes(ALL)) return syscalls.length;
  const table = syscallTable();
  return table.ok ? table.byName.size : undefined;
}

/** groupBy in canonical order, distinct. */
function canonicalGroupBy(groupBy: readonly GroupByField[] | undefined): GroupByField[] {
  const given = new Set(groupBy ?? ['syscall']);
  return GROUP_BY_FIELDS.filter((field) => given.has(field));
}

/** The SyscallCounter kind module (document half). */
export const syscallCounterKind: PolicyKind<SyscallCounter, SyscallCounterPolicy> = {
  kind: KIND,
  schemaFile: 'syscall-counter.schema.json',

  check(document) {
    const { spec } = document;
    const findings = checkSyscalls(spec.syscalls);
    if (spec.cgroup !== undefined) findings.push(...checkCgroupPath(spec.cgroup, ['spec', 'cgroup']));
    const groupBy = spec.groupBy ?? ['syscall'];
    const pid = groupBy.indexOf('pid');
    if (pid >= 0 && spec.maxKeys === undefined)
      findings.push({
        path: ['spec', 'groupBy', pid],
        severity: 'warning',
        message: `grouping by pid makes a key per process, and process ids churn: the default maxKeys (${DEFAULT_MAX_KEYS}) fills up and the least recently used keys are evicted with their counts; set spec.maxKeys`,
      });
    // Grouped by syscall alone, the number of keys is known: more than maxKeys means evictions.
    const keys = groupBy.length === 1 && groupBy[0] === 'syscall' ? syscallKeys(spec.syscalls) : undefined;
    if (spec.maxKeys !== undefined && keys !== undefined && keys > spec.maxKeys)
      findings.push({
        path: ['spec', 'maxKeys'],
        severity: 'warning',
        message: `${keys} system calls are counted, one key each, but maxKeys is ${spec.maxKeys}: the least recently used keys are evicted with their counts`,
      });
    return findings;
  },

  normalize(document, source) {
    const { spec } = document;
    const table = syscallTable();
    // check() has made sure that names come with a table that has every one of them.
    const byName = table.ok ? table.byName : new Map<string, number>();
    const syscalls = spec.syscalls.includes(ALL) ? 'all' : [...new Set(spec.syscalls.flatMap((name) => byName.get(name) ?? []))].sort((x, y) => x - y);
    return {
      ...normalizeBase(KIND, document, source),
      syscalls,
      groupBy: canonicalGroupBy(spec.groupBy),
      cgroup: spec.cgroup === undefined ? undefined : normalizeCgroupPath(spec.cgroup),
      maxKeys: spec.maxKeys ?? DEFAULT_MAX_KEYS,
    };
  },

  /**
   * Never any: several counters may count the same system calls of the same
   * processes (even with the same groupBy and cgroup); each keeps its own
   * counts.
   */
  findConflicts() {
    return [];
  },
};
