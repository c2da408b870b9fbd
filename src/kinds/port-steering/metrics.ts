/**
 * PortSteering's Prometheus metrics, read from the kernel at scrape time for
 * the dispatchers and bindings of the last pass.
 */
import type { MetricFamily, MetricSample } from '../../reconciler/kind.js';
import type { SteeringObserved } from './model.js';
import { readCounters } from './store.js';

const DISPATCHER_STATS = ['steered', 'no_socket', 'assign_error'] as const;

/** The families PortSteering exports. */
export const STEERING_METRICS: readonly MetricFamily[] = [
  {
    name: 'ebpf_policy_binding_hits_total',
    help: 'Connections (TCP) or packets (UDP) steered by each binding, read from the kernel',
    type: 'counter',
    labelNames: ['policy', 'binding', 'ports', 'prefix'],
  },
  {
    name: 'ebpf_policy_dispatcher_lookups_total',
    help: 'Dispatcher outcomes per network namespace: steered, no_socket (a binding matched but its socket is missing), assign_error',
    type: 'counter',
    labelNames: ['netns', 'result'],
  },
];

/** Reads the counters of the dispatchers the last pass left. */
export function collectSteeringMetrics(observed: SteeringObserved): Record<string, MetricSample[]> {
  const hits: MetricSample[] = [];
  const lookups: MetricSample[] = [];
  for (const d of observed.dispatchers) {
    if (d.error) continue;
    const bindings = d.records.flatMap((rec) => rec.bindings.map((b) => ({ policy: rec.name, b })));
    const counters = readCounters(d.dir, bindings.map((x) => x.b.id));
    for (const { policy, b } of bindings)
      hits.push({
        labels: { policy, binding: String(b.id), ports: b.start === b.end ? String(b.start) : `${b.start}-${b.end}`, prefix: b.prefix === '*' ? 'any' : b.prefix },
        value: Number(counters.hits.get(b.id) ?? 0n),
      });
    DISPATCHER_STATS.forEach((result, i) => lookups.push({ labels: { netns: d.key, result }, value: Number(counters.stats[i] ?? 0n) }));
  }
  return { ebpf_policy_binding_hits_total: hits, ebpf_policy_dispatcher_lookups_total: lookups };
}
