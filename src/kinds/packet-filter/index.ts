/**
 * The PacketFilter kind: ordered drop/pass rules with counters on XDP, tc
 * ingress and tc egress, one filter per (network namespace, interface, hook)
 * with its pins under ROOT/filters.
 */
import { resolveNetnsKey } from '../../bpf/netns.js';
import type { DesiredPolicyBase } from '../../policy/kind.js';
import type { ReconcilerKind } from '../../reconciler/kind.js';
import { buildDesiredFilters } from './desired.js';
import { packetFilterKind, type PacketFilterPolicy } from './document.js';
import { filterExpectation, probeFilters, type FilterExpectation } from './drift.js';
import { openFilterEvents } from './events.js';
import { FILTERS_DIR } from './layout.js';
import { collectFilterMetrics, FILTER_METRICS } from './metrics.js';
import type { DesiredFilters } from './model.js';
import { executeFilter, filterOptionsOf } from './ops.js';
import { planFilters } from './plan.js';
import { packetFilterPolicyTest } from './policy-test.js';
import { systemFilterResolver } from './resolver.js';
import { filterViews, renderFilterStatus } from './status.js';
import { observeFilters, readFilterCounters, readFilterStats, removeAllFilters, type ObservedFilters } from './store.js';

/** PacketFilter, as the engine drives it. */
export const packetFilter: ReconcilerKind<DesiredFilters, ObservedFilters, FilterExpectation> = {
  kind: 'PacketFilter',
  document: packetFilterKind,
  pinDir: FILTERS_DIR,
  desired: (policies: readonly DesiredPolicyBase[], env) => {
    const namespaces = new Map<string, ReturnType<typeof resolveNetnsKey>>();
    const netnsKey = (path: string) => namespaces.get(path) ?? namespaces.set(path, resolveNetnsKey(path)).get(path)!;
    return buildDesiredFilters(policies as PacketFilterPolicy[], env.failedFiles, env.root, systemFilterResolver(netnsKey, filterOptionsOf(env)));
  },
  observe: observeFilters,
  plan: planFilters,
  execute: executeFilter,
  policies: ({ desired, observed, readCounters }) =>
    filterViews(desired, observed, readCounters ? readFilterCounters : undefined, readCounters ? readFilterStats : undefined),
  renderStatus: renderFilterStatus,
  programTags: (desired) => (desired.filters.length > 0 ? [desired.tags.xdp, desired.tags.tc] : []),
  teardown: removeAllFilters,
  drift: { expect: filterExpectation, probe: probeFilters },
  events: { open: openFilterEvents },
  metrics: { families: FILTER_METRICS, collect: collectFilterMetrics },
  policyTest: packetFilterPolicyTest,
};
