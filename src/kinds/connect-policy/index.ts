/**
 * The ConnectPolicy kind: allow or deny outgoing connects (and unconnected
 * UDP sends) of the processes in a cgroup by ordered rules, with audit mode,
 * per-rule counters and sampled events; one guard per cgroup with its pins
 * under ROOT/connect.
 */
import type { DesiredPolicyBase } from '../../policy/kind.js';
import type { ReconcilerKind } from '../../reconciler/kind.js';
import { buildDesiredGuards } from './desired.js';
import { connectPolicyKind, type ConnectPolicyPolicy } from './document.js';
import { guardExpectation, probeGuards, type GuardExpectation } from './drift.js';
import { openGuardEvents } from './events.js';
import { GUARD_HOOKS, GUARDS_DIR } from './layout.js';
import { collectGuardMetrics, GUARD_METRICS } from './metrics.js';
import type { DesiredGuards } from './model.js';
import { executeGuard, guardOptionsOf } from './ops.js';
import { planGuards } from './plan.js';
import { connectPolicyTest } from './policy-test.js';
import { systemGuardResolver } from './resolver.js';
import { guardViews, renderGuardStatus } from './status.js';
import { observeGuards, readGuardCounters, type ObservedGuards } from './store.js';

/** ConnectPolicy, as the engine drives it. */
export const connectPolicy: ReconcilerKind<DesiredGuards, ObservedGuards, GuardExpectation> = {
  kind: 'ConnectPolicy',
  document: connectPolicyKind,
  pinDir: GUARDS_DIR,
  desired: (policies: readonly DesiredPolicyBase[], env) =>
    buildDesiredGuards(policies as ConnectPolicyPolicy[], env.failedFiles, env.root, systemGuardResolver(guardOptionsOf(env).objectPath)),
  observe: observeGuards,
  plan: planGuards,
  execute: executeGuard,
  policies: ({ desired, observed, readCounters }) => guardViews(desired, observed, readCounters ? readGuardCounters : undefined),
  renderStatus: renderGuardStatus,
  programTags: (desired) => (desired.guards.length > 0 ? GUARD_HOOKS.map((h) => desired.tags[h]) : []),
  drift: { expect: guardExpectation, probe: probeGuards },
  events: { open: openGuardEvents },
  metrics: { families: GUARD_METRICS, collect: collectGuardMetrics },
  policyTest: connectPolicyTest,
};
