/**
 * PortSteering's drift probe. After each pass the daemon takes an
 * expectation of what the dispatchers should look like; the probe looks
 * again, cheaply (a link and a few sockmap slots per dispatcher, no binding
 * or record map), and names every difference. A difference repairs nothing by
 * itself: the daemon runs a full pass, whose plan says what to do and why.
 *
 * Also here: spotting that a policy waiting for something outside our
 * control (a target socket, a network namespace) can make progress now.
 */
import type { DriftFindings } from '../../reconciler/kind.js';
import type { Resolver } from './desired.js';
import type { SteeringTarget } from './document.js';
import type { SteeringDesired, SteeringObserved } from './model.js';
import { probeDispatcher, type DispatcherProbe } from './probe.js';

/** What one dispatcher should look like. */
export interface ExpectedDispatcher {
  key: string;
  dir: string;
  link: DispatcherProbe['link'];
  /** Cookie per destination id of the recorded policies (null = empty slot). */
  sockets: Record<number, string | null>;
  /** Which policy a destination id serves (for messages). */
  policyOfDest: Record<number, string>;
}

/** A policy that could not be applied in full because something outside our control was missing. */
export interface WaitingPolicy {
  name: string;
  netnsPath: string;
  protocol: 'tcp' | 'udp';
  target: SteeringTarget;
  /** What it waits for. */
  waitsFor: 'netns' | 'target';
}

/** What PortSteering expects of the kernel after a pass. */
export interface SteeringExpectation {
  dispatchers: ExpectedDispatcher[];
  waiting: WaitingPolicy[];
}

/** The expectation for the state a pass left (its settled observed state). Pure. */
export function expectationFrom(desired: SteeringDesired, observed: SteeringObserved, failedFiles: ReadonlySet<string> = new Set()): SteeringExpectation {
  const waiting: WaitingPolicy[] = [];
  for (const p of desired.policies) {
    if (failedFiles.has(p.sourceFile)) continue;
    const w = { name: p.name, netnsPath: p.netnsPath, protocol: p.protocol, target: p.targetSpec };
    if (!p.netnsKey.ok) waiting.push({ ...w, waitsFor: 'netns' });
    else if (!p.target.ok) waiting.push({ ...w, waitsFor: 'target' });
  }
  return {
    waiting,
    dispatchers: observed.dispatchers
      .filter((d) => !d.error)
      .map((d) => ({
        key: d.key,
        dir: d.dir,
        link: d.link ? { id: d.link.id, progId: d.link.progId, attached: d.link.attached } : null,
        sockets: { ...d.sockets },
        policyOfDest: Object.fromEntries(d.records.map((r) => [r.destId, r.name])),
      })),
  };
}

/** Reads what {@link findDrift} compares: each expected dispatcher's link and sockets. */
export function lookAtDispatchers(expected: SteeringExpectation): Record<string, DispatcherProbe> {
  const out: Record<string, DispatcherProbe> = {};
  for (const d of expected.dispatchers) out[d.dir] = probeDispatcher(d.dir, Object.keys(d.sockets).map(Number));
  return out;
}

/** Names every difference between the expectation and what a probe saw; empty when there is none. Pure. */
export function findDrift(expected: SteeringExpectation, seen: Record<string, DispatcherProbe>): string[] {
  const out: string[] = [];
  for (const d of expected.dispatchers) {
    const probe = seen[d.dir];
    if (!probe) continue;
    const was = d.link;
    const is = probe.link;
    if (was && !is) out.push(`dispatcher ${d.key}: the link pin is gone`);
    else if (was && is && was.attached && !is.attached) out.push(`dispatcher ${d.key}: link ${is.id} was detached`);
    else if (was && is && (was.id !== is.id || was.progId !== is.progId))
      out.push(`dispatcher ${d.key}: link ${was.id} (program ${was.progId}) is now link ${is.id} (program ${is.progId})`);
    for (const [id, cookie] of Object.entries(d.sockets)) {
      const nowCookie = probe.sockets[Number(id)] ?? null;
      if (nowCookie === cookie) continue;
      const policy = d.policyOfDest[Number(id)] ?? `destination ${id}`;
      if (nowCookie === null) out.push(`policy ${policy}: its socket (cookie ${cookie}) left the sockmap (target closed or restarted?)`);
      else out.push(`policy ${policy}: the sockmap holds socket ${nowCookie}, not ${cookie ?? 'nothing'}`);
    }
  }
  return out;
}

/** Names the waiting policies that can make progress now (their namespace or target appeared). */
export function unblockedPolicies(waiting: readonly WaitingPolicy[], resolver: Pick<Resolver, 'netnsKey' | 'target'>): string[] {
  const out: string[] = [];
  for (const w of waiting) {
    if (w.waitsFor === 'netns') {
      if (resolver.netnsKey(w.netnsPath).ok) out.push(`policy ${w.name}: network namespace ${w.netnsPath} appeared`);
    } else if (resolver.target(w.netnsPath, w.protocol, w.target).ok) {
      out.push(`policy ${w.name}: its target is there now`);
    }
  }
  return out;
}

/** The probe: a look at the dispatchers, and at what waiting policies wait for. */
export function probeSteering(expected: SteeringExpectation, resolver: Pick<Resolver, 'netnsKey' | 'target'>): DriftFindings {
  return {
    drift: findDrift(expected, lookAtDispatchers(expected)),
    unblocked: expected.waiting.length > 0 ? unblockedPolicies(expected.waiting, resolver) : [],
  };
}
