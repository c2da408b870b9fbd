/**
 * PacketFilter's Prometheus metrics, read from the kernel at scrape time for
 * the filters of the last pass: every rule's packets and bytes (and the
 * default action's) by verdict (pass, drop, or would-drop in audit mode), how XDP is attached, and other tools' XDP programs
 * found on filtered interfaces.
 */
import type { MetricFamily, MetricSample } from '../../reconciler/kind.js';
import { DEFAULT_SLOT } from './layout.js';
import type { DesiredFilters } from './model.js';
import { readFilterCounters, type ObservedFilters } from './store.js';

/** The families PacketFilter exports. */
export const FILTER_METRICS: readonly MetricFamily[] = [
  {
    name: 'ebpf_policy_filter_packets_total',
    help: 'Packets that matched each rule (rule "" is the default action) of a filter, by verdict: pass, drop, or would-drop (a drop in audit mode, passed), read from the kernel',
    type: 'counter',
    labelNames: ['policy', 'rule', 'action', 'interface', 'hook', 'netns', 'verdict'],
  },
  {
    name: 'ebpf_policy_filter_bytes_total',
    help: 'Bytes of the packets that matched each rule (rule "" is the default action) of a filter, by verdict: pass, drop, or would-drop (a drop in audit mode, passed), read from the kernel',
    type: 'counter',
    labelNames: ['policy', 'rule', 'action', 'interface', 'hook', 'netns', 'verdict'],
  },
  {
    name: 'ebpf_policy_filter_attached',
    help: '1 for each attached filter, labelled with how it is attached (xdp native/generic, tcx, cls_bpf)',
    type: 'gauge',
    labelNames: ['interface', 'hook', 'netns', 'method', 'xdp_mode'],
  },
  {
    name: 'ebpf_policy_filter_attach_conflicts',
    help: "Other tools' XDP programs on an interface a PacketFilter policy wants (the filter is not attached there, or shares it)",
    type: 'gauge',
    labelNames: ['interface', 'netns'],
  },
];

/** Reads the counters of the filters the last pass left. */
export function collectFilterMetrics(desired: DesiredFilters, observed: ObservedFilters): Record<string, MetricSample[]> {
  const packets: MetricSample[] = [];
  const bytes: MetricSample[] = [];
  const attached: MetricSample[] = [];
  const conflicts: MetricSample[] = [];
  const wantByKey = new Map(desired.filters.map((f) => [f.key, f]));
  for (const f of observed.filters) {
    if (f.error) continue;
    const want = wantByKey.get(f.key);
    const ifname = f.attachment?.ifname ?? want?.ifname ?? `ifindex ${f.ifindex}`;
    const where = { interface: ifname, hook: f.hook, netns: f.netnsKey };
    const counters = readFilterCounters(f.dir, [DEFAULT_SLOT, ...f.slots.map((s) => s.slot)]);
    const actionOf = new Map((want?.rules ?? []).map((r) => [`${r.policy}\u0000${r.rule}`, r.action]));
    const rows = [
      { policy: f.policies.map((p) => p.name).join(','), rule: '', action: want?.defaultAction ?? '', slot: DEFAULT_SLOT },
      ...f.slots.map((s) => ({ policy: s.policy, rule: s.rule, action: actionOf.get(`${s.policy}\u0000${s.rule}`) ?? '', slot: s.slot })),
    ];
    for (const r of rows) {
      const c = counters.get(r.slot) ?? { packets: 0n, bytes: 0n, wouldDropPackets: 0n, wouldDropBytes: 0n };
      const labels = (verdict: string) => ({ policy: r.policy, rule: r.rule, action: r.action, ...where, verdict });
      // A pass rule only passes; a drop rule drops, or passes as would-drop in audit mode (both series exist,
      // so a switch between modes does not make one appear). Summed over verdicts: every packet the rule decided.
      if (r.action === 'pass') {
        packets.push({ labels: labels('pass'), value: Number(c.packets) });
        bytes.push({ labels: labels('pass'), value: Number(c.bytes) });
      } else {
        const verdict = r.action === 'drop' ? 'drop' : '';
        packets.push({ labels: labels(verdict), value: Number(c.packets - c.wouldDropPackets) });
        bytes.push({ labels: labels(verdict), value: Number(c.bytes - c.wouldDropBytes) });
        packets.push({ labels: labels('would-drop'), value: Number(c.wouldDropPackets) });
        bytes.push({ labels: labels('would-drop'), value: Number(c.wouldDropBytes) });
      }
    }
    if (f.link?.attached)
      attached.push({
        labels: { ...where, method: f.link.method, xdp_mode: f.hook === 'xdp' ? (f.attachment?.xdpMode ?? '') : '' },
        value: 1,
      });
  }
  for (const w of desired.filters) {
    const ours = new Set(observed.filters.filter((f) => f.key === w.key).flatMap((f) => [f.program?.id, f.link?.progId]));
    const foreign = w.hook === 'xdp' ? w.xdpProgs.filter((x) => !ours.has(x.progId)).length : 0;
    if (foreign > 0) conflicts.push({ labels: { interface: w.ifname, netns: w.netnsKey }, value: foreign });
  }
  return {
    ebpf_policy_filter_packets_total: packets,
    ebpf_policy_filter_bytes_total: bytes,
    ebpf_policy_filter_attached: attached,
    ebpf_policy_filter_attach_conflicts: conflicts,
  };
}
