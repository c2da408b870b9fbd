/**
 * Drift detection between passes. After each pass the daemon records what
 * the kernel should look like (an {@link KernelExpectation}); the drift probe
 * looks again, cheaply, and names every difference. A difference does not
 * repair anything by itself: it requests a full pass, whose plan says what to
 * do and why.
 *
 * Also here: spotting that a policy waiting for something outside our
 * control (a target socket, a network namespace) can now make progress.
 */
import { listPins } from '../../bpf/bpffs.js';
import { probeDispatcher, type DispatcherProbe } from './probe.js';
import type { Resolver } from './desired.js';
import type { ObservedState } from '../../reconciler/model.js';
import type { PortSteeringPolicy } from '../../policy/index.js';

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

/** What the kernel should look like under the pin root after a pass. */
export interface KernelExpectation {
  root: string;
  /** Every pin under the root, sorted. */
  pins: string[];
  dispatchers: ExpectedDispatcher[];
}

/** What a probe saw. */
export interface KernelSight {
  pins: string[];
  dispatchers: Record<string, DispatcherProbe>;
}

/** The expectation for the state a pass observed (after it applied its changes). Pure. */
export function expectationFrom(root: string, observed: ObservedState, pins: string[]): KernelExpectation {
  return {
    root,
    pins: [...pins].sort(),
    dispatchers: observed.dispatchers.map((d) => ({
      key: d.key,
      dir: d.dir,
      link: d.link ? { id: d.link.id, progId: d.link.progId, attached: d.link.attached } : null,
      sockets: { ...d.sockets },
      policyOfDest: Object.fromEntries(d.records.map((r) => [r.destId, r.name])),
    })),
  };
}

/** Reads what {@link findDrift} compares: the pins, and each expected dispatcher's link and sockets. */
export function lookAtKernel(expected: KernelExpectation): KernelSight {
  const dispatchers: Record<string, DispatcherProbe> = {};
  for (const d of expected.dispatchers) dispatchers[d.dir] = probeDispatcher(d.dir, Object.keys(d.sockets).map(Number));
  return { pins: listPins(expected.root).sort(), dispatchers };
}

function some(list: string[], max = 3): string {
  return list.length <= max ? list.join(', ') : `${list.slice(0, max).join(', ')} and ${list.length - max} more`;
}

/** Names every difference between the expectation and what a probe saw; empty when there is none. Pure. */
export function findDrift(expected: KernelExpectation, seen: KernelSight): string[] {
  const out: string[] = [];
  const now = new Set(seen.pins);
  const before = new Set(expected.pins);
  const gone = expected.pins.filter((p) => !now.has(p));
  const added = seen.pins.filter((p) => !before.has(p));
  if (gone.length > 0) out.push(`pin${gone.length === 1 ? '' : 's'} removed: ${some(gone)}`);
  if (added.length > 0) out.push(`unexpected pin${added.length === 1 ? '' : 's'}: ${some(added)}`);
  for (const d of expected.dispatchers) {
    const probe = seen.dispatchers[d.dir];
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

/** A policy that could not be applied in full because something outside our control was missing. */
export interface WaitingPolicy {
  name: string;
  netnsPath: string;
  protocol: 'tcp' | 'udp';
  target: PortSteeringPolicy['target'];
  /** What it waits for. */
  waitsFor: 'netns' | 'target';
}

/** Names the waiting policies that can make progress now (their namespace or target appeared). */
export function unblockedPolicies(waiting: WaitingPolicy[], resolver: Resolver): string[] {
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
