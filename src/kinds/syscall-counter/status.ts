/**
 * Status of SyscallCounter policies: conditions, what each counts, and its
 * largest counts (the top N keys, summed over CPUs), named: syscall names
 * from this machine's table, cgroup ids as paths.
 */
import { cgroupPathOfId } from '../../bpf/cgroup.js';
import { syscallTable } from '../../policy/syscalls/table.js';
import type { PolicyView } from '../../reconciler/kind.js';
import type { PolicyStatus } from '../../reconciler/model.js';
import { renderStatusHead } from '../../reconciler/render.js';
import type { GroupByField } from './document.js';
import type { DesiredCounters } from './model.js';
import type { CountEntry, ObservedCounters } from './store.js';

/** Default number of keys listed per policy. */
export const DEFAULT_TOP = 10;

/** One count, named by the fields the policy groups by (the others null). */
export interface SyscallCount {
  syscall: string | null;
  comm: string | null;
  cgroup: string | null;
  pid: number | null;
  count: string;
}

/** The SyscallCounter fields of a policy's status. */
export interface CounterStatusDetails {
  /** Syscall names counted, or ["*"]. */
  syscalls: string[];
  groupBy: GroupByField[];
  cgroup: string | null;
  slot: number | null;
  programId: number | null;
  linkId: number | null;
  /** Distinct keys in the table now, and the sum of every count. */
  keys: number | null;
  total: string | null;
  /** The largest counts, most first (`status --top N`). */
  top: SyscallCount[];
}

/** Status of one SyscallCounter policy. */
export type CounterPolicyStatus = PolicyStatus & CounterStatusDetails;

/** Reader of a slot's count table by its id (store.ts's readCounts). */
export type CountReader = (tableId: number) => CountEntry[];

/** A syscall's name on this machine, or its number as text. */
export function syscallNameOf(nr: number): string {
  const t = syscallTable();
  return (t.ok ? t.byNumber.get(nr) : undefined) ?? `#${nr}`;
}

/** Names the keys of a table's counts, largest first, the first `top` of them. */
export function topCounts(entries: readonly CountEntry[], groupBy: readonly GroupByField[], top: number, cgroupPath: (id: bigint) => string): SyscallCount[] {
  const by = new Set(groupBy);
  return [...entries]
    .sort((a, b) => (a.count === b.count ? 0 : a.count > b.count ? -1 : 1))
    .slice(0, top)
    .map((e) => ({
      syscall: by.has('syscall') ? syscallNameOf(e.key.syscall) : null,
      comm: by.has('comm') ? e.key.comm : null,
      cgroup: by.has('cgroup') ? cgroupPath(e.key.cgroupId) : null,
      pid: by.has('pid') ? e.key.pid : null,
      count: String(e.count),
    }));
}

/** Every SyscallCounter policy (desired, or only recorded) as a status view; counts read when a reader is given. */
export function counterViews(desired: DesiredCounters, observed: ObservedCounters, read: CountReader | undefined, top = DEFAULT_TOP): PolicyView[] {
  const c = observed.counter && !observed.counter.error ? observed.counter : undefined;
  const names = [...new Set([...desired.status.map((p) => p.name), ...(c?.policies ?? []).map((p) => p.name)])].sort();
  const paths = new Map<bigint, string>();
  const cgroupPath = (id: bigint) => paths.get(id) ?? paths.set(id, cgroupPathOfId(id) ?? `cgroup id ${id}`).get(id)!;
  return names.map((name) => {
    const d = desired.status.find((p) => p.name === name);
    const rec = c?.policies.find((p) => p.name === name);
    const slot = rec ? c?.slots.find((s) => s.slot === rec.slot) : undefined;
    const entries = slot?.table && read ? read(slot.table.id) : undefined;
    const syscalls = d?.syscalls ?? rec?.syscalls ?? [];
    const groupBy = [...(d?.groupBy ?? rec?.groupBy ?? [])];
    const details: CounterStatusDetails = {
      syscalls: syscalls === 'all' ? ['*'] : syscalls.map(syscallNameOf),
      groupBy,
      cgroup: d?.cgroup ?? rec?.cgroupPath ?? null,
      slot: rec?.slot ?? null,
      programId: c?.program?.id ?? null,
      linkId: c?.link?.id ?? null,
      keys: entries ? entries.length : null,
      total: entries ? String(entries.reduce((s, e) => s + e.count, 0n)) : null,
      top: entries ? topCounts(entries, groupBy, top, cgroupPath) : [],
    };
    const running = rec !== undefined && slot?.config.inUse === true && c?.link !== undefined;
    return {
      name,
      sourceFile: d?.sourceFile ?? rec?.sourceFile ?? null,
      netns: null,
      desired: d !== undefined,
      domains: ['syscalls'],
      notReady: d && !d.applied ? { reason: d.waitingForCgroup ? 'NoCgroup' : 'NotApplied', message: d.waitingForCgroup ? 'its cgroup does not exist' : 'not counting' } : !running ? { reason: 'NotConverged', message: 'the counter does not count it yet' } : undefined,
      readyMessage: `the kernel counts ${details.syscalls.join(', ')} by ${groupBy.join(', ')}`,
      details: { ...details },
    };
  });
}

function keyText(k: SyscallCount): string {
  return [k.syscall, k.comm !== null ? `comm=${k.comm}` : null, k.cgroup !== null ? `cgroup=${k.cgroup}` : null, k.pid !== null ? `pid=${k.pid}` : null].filter((x) => x !== null).join(' ') || '(all)';
}

/** The readable status of SyscallCounter policies. */
export function renderCounterStatus(statuses: readonly PolicyStatus[]): string[] {
  const out: string[] = [];
  for (const s of statuses as readonly CounterPolicyStatus[]) {
    out.push(...renderStatusHead(s, `SyscallCounter ${s.syscalls.join(',')} by ${s.groupBy.join(',')}${s.cgroup ? `  cgroup ${s.cgroup}` : ''}  ${s.sourceFile ?? ''}`));
    out.push(`  slot ${s.slot ?? '-'}, program ${s.programId ?? '-'}, link ${s.linkId ?? '-'}; ${s.keys ?? '-'} keys, ${s.total ?? '-'} calls`);
    for (const k of s.top) out.push(`    ${k.count.padStart(10)}  ${keyText(k)}`);
  }
  return out;
}
