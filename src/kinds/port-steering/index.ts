/**
 * The PortSteering kind: extra ports for a listening socket, steered by one
 * sk_lookup dispatcher per network namespace (pins under ROOT/netns).
 */
import type { DesiredPolicyBase } from '../../policy/kind.js';
import type { ReconcilerKind } from '../../reconciler/kind.js';
import { lastPlanMemo } from '../../reconciler/plan-memo.js';
import { buildDesired } from './desired.js';
import { portSteeringKind, type PortSteeringPolicy } from './document.js';
import { expectationFrom, probeSteering, type SteeringExpectation } from './drift.js';
import { collectSteeringMetrics, STEERING_METRICS } from './metrics.js';
import type { SteeringDesired, SteeringObserved } from './model.js';
import { observe } from './observe.js';
import { dispatcherObjectOf, executeSteering } from './ops.js';
import { planSteering } from './plan.js';
import { systemResolver } from './resolver.js';
import { renderSteeringStatus, steeringViews } from './status.js';
import { NETNS_DIR, readCounters } from './store.js';
import { portSteeringPolicyTest } from './policy-test.js';

/** PortSteering, as the engine drives it. */
export const portSteering: ReconcilerKind<SteeringDesired, SteeringObserved, SteeringExpectation> = {
  kind: 'PortSteering',
  document: portSteeringKind,
  pinDir: NETNS_DIR,
  desired: (policies: readonly DesiredPolicyBase[], env) => buildDesired(policies as PortSteeringPolicy[], systemResolver(dispatcherObjectOf(env)), env.failedFiles),
  observe,
  // Desire and observe hand back the same objects when nothing changed (see observe.ts, desired.ts).
  plan: lastPlanMemo(planSteering),
  execute: executeSteering,
  policies: ({ desired, observed, readCounters: read }) => steeringViews(desired, observed, read ? (dir, ids) => readCounters(dir, ids).hits : undefined),
  renderStatus: renderSteeringStatus,
  programTags: (desired) => (desired.dispatcherTag ? [desired.dispatcherTag] : []),
  drift: {
    expect: (desired, observed, env) => expectationFrom(desired, observed, env.failedFiles),
    probe: (expectation, env) => probeSteering(expectation, systemResolver(dispatcherObjectOf(env))),
  },
  metrics: { families: STEERING_METRICS, collect: (_desired, observed) => collectSteeringMetrics(observed) },
  policyTest: portSteeringPolicyTest,
};
