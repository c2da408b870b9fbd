/**
 * SyscallCounter's Prometheus metrics, read from the kernel at scrape time:
 * `ebpf_policy_syscalls_total{policy,syscall,comm,cgroup,pid}` for the
 * largest keys of each policy (at most {@link METRIC_KEYS_PER_POLICY}; labels
 * a policy does not group by are ""), and the number of distinct keys per
 * policy. The cap keeps a policy grouped by pid from exporting thousands of
 * series: the keys beyond it are only in `status` (and their sum in
 * `ebpf_policy_syscalls_other_total`).
 */
import { cgroupPathOfId } from '../../bpf/cgroup.js';
import type { MetricFamily, MetricSample } from '../../reconciler/kind.js';
import type { DesiredCounters } from './model.js';
import { topCounts } from './status.js';
import { readCounts, type ObservedCounters } from './store.js';

/** At most this many series of ebpf_policy_syscalls_total per policy (its largest counts). */
export const METRIC_KEYS_PER_POLICY = 500;

/** The families SyscallCounter exports. */
export const COUNTER_METRICS: readonly MetricFamily[] = [
  {
    name: 'ebpf_policy_syscalls_total',
    help: `System calls counted by each SyscallCounter policy per key (its ${METRIC_KEYS_PER_POLICY} largest keys; labels it does not group by are empty), read from the kernel`,
    type: 'counter',
    labelNames: ['policy', 'syscall', 'comm', 'cgroup', 'pid'],
  },
  {
    name: 'ebpf_policy_syscalls_other_total',
    help: `System calls counted by each SyscallCounter policy under keys beyond its ${METRIC_KEYS_PER_POLICY} largest`,
    type: 'counter',
    labelNames: ['policy'],
  },
  {
    name: 'ebpf_policy_syscall_keys',
    help: 'Distinct keys in each SyscallCounter policy table (at most its maxKeys: the least recently used are evicted beyond)',
    type: 'gauge',
    labelNames: ['policy'],
  },
];

/** Reads the counts of the policies the last pass left. */
export function collectCounterMetrics(_desired: DesiredCounters, observed: ObservedCounters): Record<string, MetricSample[]> {
  const totals: MetricSample[] = [];
  const other: MetricSample[] = [];
  const keys: MetricSample[] = [];
  const c = observed.counter;
  const paths = new Map<bigint, string>();
  const cgroupPath = (id: bigint) => paths.get(id) ?? paths.set(id, cgroupPathOfId(id) ?? `cgroup id ${id}`).get(id)!;
  for (const rec of c && !c.error ? c.policies : []) {
    const slot = c!.slots.find((s) => s.slot === rec.slot);
    if (!slot?.table) continue;
    const entries = readCounts(slot.table.id);
    const top = topCounts(entries, rec.groupBy, METRIC_KEYS_PER_POLICY, cgroupPath);
    for (const k of top)
      totals.push({ labels: { policy: rec.name, syscall: k.syscall ?? '', comm: k.comm ?? '', cgroup: k.cgroup ?? '', pid: k.pid === null ? '' : String(k.pid) }, value: Number(k.count) });
    const all = entries.reduce((s, e) => s + e.count, 0n);
    const shown = top.reduce((s, k) => s + BigInt(k.count), 0n);
    other.push({ labels: { policy: rec.name }, value: Number(all - shown) });
    keys.push({ labels: { policy: rec.name }, value: entries.length });
  }
  return { ebpf_policy_syscalls_total: totals, ebpf_policy_syscalls_other_total: other, ebpf_policy_syscall_keys: keys };
}
