/**
 * The SyscallCounter kind: counts system calls per syscall, command, cgroup
 * or process from one raw tracepoint program shared by every policy, with
 * per-CPU counters in a per-policy LRU table; its pins live under
 * ROOT/syscalls.
 */
import type { DesiredPolicyBase } from '../../policy/kind.js';
import type { ReconcilerKind } from '../../reconciler/kind.js';
import { buildDesiredCounters } from './desired.js';
import { syscallCounterKind, type SyscallCounterPolicy } from './document.js';
import { counterExpectation, probeCounters, type CounterExpectation } from './drift.js';
import { COUNTER_DIR, counterDir } from './layout.js';
import { collectCounterMetrics, COUNTER_METRICS } from './metrics.js';
import type { DesiredCounters } from './model.js';
import { counterOptionsOf, executeCounter } from './ops.js';
import { planCounters } from './plan.js';
import { systemCounterResolver } from './resolver.js';
import { counterViews, renderCounterStatus } from './status.js';
import { observeCounters, readCounts, removeCounter, type ObservedCounters } from './store.js';

/** SyscallCounter, as the engine drives it. */
export const syscallCounter: ReconcilerKind<DesiredCounters, ObservedCounters, CounterExpectation> = {
  kind: 'SyscallCounter',
  document: syscallCounterKind,
  pinDir: COUNTER_DIR,
  desired: (policies: readonly DesiredPolicyBase[], env) => buildDesiredCounters(policies as SyscallCounterPolicy[], env.failedFiles, systemCounterResolver(counterOptionsOf(env).objectPath)),
  observe: observeCounters,
  plan: planCounters,
  execute: executeCounter,
  policies: ({ desired, observed, readCounters, top }) => counterViews(desired, observed, readCounters ? readCounts : undefined, top),
  renderStatus: renderCounterStatus,
  programTags: (desired) => (desired.policies.length > 0 ? [desired.tag] : []),
  teardown: (root) => removeCounter(counterDir(root)),
  drift: { expect: counterExpectation, probe: probeCounters },
  metrics: { families: COUNTER_METRICS, collect: collectCounterMetrics },
};
