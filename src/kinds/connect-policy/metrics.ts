/**
 * ConnectPolicy's Prometheus metrics, read from the kernel at scrape time
 * for the guards of the last pass: per rule (rule "" is a policy's default)
 * the connects it decided, by verdict, and whether each hook is attached.
 * Cardinality: one series per (policy, rule, verdict) and per (cgroup, hook).
 */
import type { MetricFamily, MetricSample } from '../../reconciler/kind.js';
import { GUARD_HOOKS } from './layout.js';
import type { DesiredGuards } from './model.js';
import { readGuardCounters, type ObservedGuards } from './store.js';

/** The families ConnectPolicy exports. */
export const GUARD_METRICS: readonly MetricFamily[] = [
  {
    name: 'ebpf_policy_connects_total',
    help: 'Connects (and UDP datagrams sent without connect) each ConnectPolicy rule decided (rule "" is the default), by verdict: allow, deny, or would-deny (audit mode)',
    type: 'counter',
    labelNames: ['policy', 'rule', 'verdict', 'cgroup'],
  },
  {
    name: 'ebpf_policy_connect_guard_attached',
    help: '1 for each hook of a connect guard whose cgroup link is attached',
    type: 'gauge',
    labelNames: ['cgroup', 'hook'],
  },
];

/** Reads the counters of the guards the last pass left. */
export function collectGuardMetrics(_desired: DesiredGuards, observed: ObservedGuards): Record<string, MetricSample[]> {
  const connects: MetricSample[] = [];
  const attached: MetricSample[] = [];
  for (const g of observed.guards) {
    if (g.error) continue;
    const cgroup = g.guard?.cgroupPath ?? g.cgroupId;
    const counters = readGuardCounters(g.dir, g.slots.map((s) => s.slot));
    for (const s of g.slots) {
      const c = counters.get(s.slot) ?? { connects: 0n, denies: 0n, wouldDeny: 0n };
      const labels = (verdict: string) => ({ policy: s.policy, rule: s.rule, verdict, cgroup });
      connects.push({ labels: labels('allow'), value: Number(c.connects - c.denies - c.wouldDeny) });
      connects.push({ labels: labels('deny'), value: Number(c.denies) });
      connects.push({ labels: labels('would-deny'), value: Number(c.wouldDeny) });
    }
    for (const hook of GUARD_HOOKS) if (g.hooks[hook].link?.attached) attached.push({ labels: { cgroup, hook }, value: 1 });
  }
  return { ebpf_policy_connects_total: connects, ebpf_policy_connect_guard_attached: attached };
}
