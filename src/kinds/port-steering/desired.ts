/**
 * From loaded policy documents to the desired state: resolves each policy's
 * namespace and target through a {@link Resolver} (which reads the system),
 * and names the files whose state must be kept because they failed.
 */
import { hashSpec } from '../../common/spec-hash.js';
import { resolve } from 'node:path';
import { OWN_NETNS, type NetnsKeyResult } from '../../bpf/netns.js';
import type { PortSteeringPolicy } from './document.js';
import type { DesiredSteering, ResolvedTarget, SteeringDesired } from './model.js';

/** Reads the system for the desired state; resolver.ts implements it. */
export interface Resolver {
  /** Pin-layout key of the namespace at `path`. */
  netnsKey(path: string): NetnsKeyResult;
  /** The socket a target names, in the namespace at `netnsPath`. */
  target(netnsPath: string, protocol: 'tcp' | 'udp', target: PortSteeringPolicy['target']): ResolvedTarget;
  /** Tag of the dispatcher program that should run. */
  dispatcherTag(): string;
}


/** How a target is written in records and diffs. */
export function targetText(t: PortSteeringPolicy['target']): string {
  if (t.type === 'listen') return `listen ${t.family === 6 ? `[${t.address}]` : t.address}:${t.port}`;
  return `pid ${t.pid} fd ${t.fd}`;
}

/** Hash of what defines a PortSteering policy (independent of how its target resolves). */
export function specHash(p: PortSteeringPolicy): string {
  let hash = specHashes.get(p);
  if (hash === undefined) {
    const spec = { netns: p.netns ?? null, protocol: p.protocol, ports: p.ports, prefixes: p.prefixes, target: targetText(p.target) };
    hash = hashSpec(spec);
    specHashes.set(p, hash);
  }
  return hash;
}

/** Hashes by normalized policy: validation hands out the same (never mutated) objects again for unchanged documents. */
const specHashes = new WeakMap<PortSteeringPolicy, string>();

/**
 * Resolves PortSteering policies: each with its namespace's pin key and its
 * target socket. The dispatcher's tag (which loads the object once to learn
 * it) is only asked for when something may need a dispatcher: a policy, or a
 * file that failed to load (its policies keep their dispatcher). Otherwise
 * the plan can only remove dispatchers, and the tag is ''.
 */
export function buildDesired(policies: readonly PortSteeringPolicy[], resolver: Resolver, failedFiles: ReadonlySet<string> = new Set()): SteeringDesired {
  const tagWanted = policies.length > 0 || failedFiles.size > 0;
  let tag: string | undefined;
  const dispatcherTag = (): string => (tag ??= tagWanted ? resolver.dispatcherTag() : '');
  // The same policy objects as last time: every distinct namespace and target is resolved again (as
  // always, once per pass), and when each resolves as it did, the desired state is the last one.
  const last = lastBuild;
  if (last !== undefined && last.policies.length === policies.length && policies.every((p, i) => p === last.policies[i])) {
    const same = last.targets.every((t) => {
      const netnsKey = resolver.netnsKey(t.netnsPath);
      if (!sameKey(t.netnsKey, netnsKey)) return false;
      return !netnsKey.ok || sameTarget(t.resolved, resolver.target(t.netnsPath, t.protocol, t.target));
    });
    if (same && dispatcherTag() === last.desired.dispatcherTag) return last.desired;
  }
  const targets = new Map<string, ResolvedOnce>();
  const out: DesiredSteering[] = [];
  let same = lastDesired !== undefined && lastDesired.policies.length === policies.length;
  for (const p of policies) {
    const netnsPath = p.netns ?? OWN_NETNS;
    const netnsKey = resolver.netnsKey(netnsPath);
    const target: ResolvedTarget = netnsKey.ok ? resolver.target(netnsPath, p.protocol, p.target) : { ok: false, reason: netnsKey.reason };
    // The same policy object (validation hands out the same one for an unchanged document) resolved the same way: the same entry.
    const known = built.get(p);
    let d: DesiredSteering;
    if (known !== undefined && sameKey(known.netnsKey, netnsKey) && sameTarget(known.target, target)) d = known;
    else {
      d = {
        name: p.name,
        sourceFile: resolve(p.source.file),
        netns: p.netns,
        netnsPath,
        netnsKey,
        protocol: p.protocol,
        ports: p.ports.map((r) => ({ start: r.start, end: r.end })),
        prefixes: [...p.prefixes],
        targetText: targetText(p.target),
        targetSpec: p.target,
        target,
        specHash: specHash(p),
      };
      built.set(p, d);
    }
    if (same && lastDesired!.policies[out.length] !== d) same = false;
    out.push(d);
    const key = resolutionKey(p, netnsPath);
    if (!targets.has(key)) targets.set(key, { netnsPath, protocol: p.protocol, target: p.target, netnsKey, resolved: target });
  }
  // Every entry the same as last time: the same desired state (what is computed from it, the plan, can be reused).
  if (!(same && lastDesired!.dispatcherTag === dispatcherTag())) lastDesired = { dispatcherTag: dispatcherTag(), policies: out };
  lastBuild = { policies: [...policies], targets: [...targets.values()], desired: lastDesired! };
  return lastDesired!;
}

/** A namespace and target as resolved in the last call, once for every policy naming them. */
interface ResolvedOnce {
  netnsPath: string;
  protocol: 'tcp' | 'udp';
  target: PortSteeringPolicy['target'];
  netnsKey: DesiredSteering['netnsKey'];
  resolved: ResolvedTarget;
}

/** The last call: its policy objects, the distinct namespaces and targets they name, as resolved, and its result. */
let lastBuild: { policies: readonly PortSteeringPolicy[]; targets: readonly ResolvedOnce[]; desired: SteeringDesired } | undefined;

/** Which namespace, protocol and target a policy resolves, as text (kept by policy object). */
function resolutionKey(p: PortSteeringPolicy, netnsPath: string): string {
  let k = resolutionKeys.get(p);
  if (k === undefined) {
    k = `${netnsPath}\u0000${p.protocol}\u0000${JSON.stringify(p.target)}`;
    resolutionKeys.set(p, k);
  }
  return k;
}
const resolutionKeys = new WeakMap<PortSteeringPolicy, string>();

/** Entries by normalized policy (never mutated), and the last desired state. */
const built = new WeakMap<PortSteeringPolicy, DesiredSteering>();
let lastDesired: SteeringDesired | undefined;

function sameKey(a: DesiredSteering['netnsKey'], b: DesiredSteering['netnsKey']): boolean {
  return a === b || (a.ok && b.ok ? a.key === b.key : !a.ok && !b.ok && a.reason === b.reason);
}

function sameTarget(a: ResolvedTarget, b: ResolvedTarget): boolean {
  if (a === b) return true;
  if (a.ok && b.ok) return a.pid === b.pid && a.fd === b.fd && a.cookie === b.cookie;
  return !a.ok && !b.ok && a.reason === b.reason;
}
