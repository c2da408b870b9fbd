/**
 * From loaded policy documents to the desired state: resolves each policy's
 * namespace and target through a {@link Resolver} (which reads the system),
 * and names the files whose state must be kept because they failed.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import type { PacketFilterPolicy, PolicyLoadResult, PortSteeringPolicy } from '../../policy/index.js';
import { buildDesiredFilters, type FilterResolver } from '../packet-filter/desired.js';
import type { DesiredState, DesiredSteering, ResolvedTarget } from '../../reconciler/model.js';

/** Reads the system for the desired state; src/bpf/resolver.ts implements it. */
export interface Resolver {
  /** Pin-layout key of the namespace at `path`. */
  netnsKey(path: string): { ok: true; key: string } | { ok: false; reason: string };
  /** The socket a target names, in the namespace at `netnsPath`. */
  target(netnsPath: string, protocol: 'tcp' | 'udp', target: PortSteeringPolicy['target']): ResolvedTarget;
  /** Tag of the dispatcher program that should run. */
  dispatcherTag(): string;
  /** What PacketFilter policies need (absent: they are not resolved, and their filters not planned). */
  filters?: FilterResolver;
}

/** The namespace ebpf-policy runs in. */
export const OWN_NETNS_PATH = '/proc/self/ns/net';

/** How a target is written in records and diffs. */
export function targetText(t: PortSteeringPolicy['target']): string {
  if (t.type === 'listen') return `listen ${t.family === 6 ? `[${t.address}]` : t.address}:${t.port}`;
  return `pid ${t.pid} fd ${t.fd}`;
}

/** Hash of what defines a PortSteering policy (independent of how its target resolves). */
export function specHash(p: PortSteeringPolicy): string {
  const spec = { netns: p.netns ?? null, protocol: p.protocol, ports: p.ports, prefixes: p.prefixes, target: targetText(p.target) };
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16);
}

/** Builds the desired state: PortSteering policies, and PacketFilter policies when the resolver can resolve them. */
export function buildDesired(load: PolicyLoadResult, root: string, resolver: Resolver): DesiredState {
  const failedFiles = [...new Set(load.problems.filter((p) => p.severity === 'error').map((p) => resolve(p.file)))].sort();
  const policies: DesiredSteering[] = [];
  for (const policy of load.policies) {
    if (policy.kind !== 'PortSteering') continue;
    const p = policy as PortSteeringPolicy;
    const netnsPath = p.netns ?? OWN_NETNS_PATH;
    const netnsKey = resolver.netnsKey(netnsPath);
    policies.push({
      name: p.name,
      sourceFile: resolve(p.source.file),
      netns: p.netns,
      netnsPath,
      netnsKey,
      protocol: p.protocol,
      ports: p.ports.map((r) => ({ start: r.start, end: r.end })),
      prefixes: [...p.prefixes],
      targetText: targetText(p.target),
      target: netnsKey.ok ? resolver.target(netnsPath, p.protocol, p.target) : { ok: false, reason: netnsKey.reason },
      specHash: specHash(p),
    });
  }
  const filterPolicies = load.policies.filter((p): p is PacketFilterPolicy => p.kind === 'PacketFilter');
  const filters = resolver.filters ? buildDesiredFilters(filterPolicies, new Set(failedFiles), root, resolver.filters) : undefined;
  return { root, dispatcherTag: resolver.dispatcherTag(), policies, failedFiles, ...(filters ? { filters } : {}) };
}
