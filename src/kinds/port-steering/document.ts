/**
 * The PortSteering kind: steer connections to some ports (and destination
 * prefixes) of a network namespace to one socket.
 */
import type { PortSteering, PortSteeringTarget } from '../../types/generated/port-steering.js';
import { normalizeBase, normalizeNetnsPath, type DesiredPolicyBase, type Finding, type PolicyConflict, type PolicyKind, type PolicySource } from '../../policy/kind.js';
import {
  aggregatePrefixes,
  ALL_ADDRESSES,
  formatPrefix,
  parseCidr,
  prefixContains,
  type IpPrefix,
} from '../../policy/net/cidr.js';
import { parseListenAddress, type SocketAddress } from '../../policy/net/listen-address.js';
import {
  formatPortRanges,
  intersectPortRanges,
  MAX_PORT,
  mergePortRanges,
  portSpecToRange,
  rangeSize,
  type PortRange,
} from '../../policy/net/ports.js';

/** Where steered traffic goes. */
export type SteeringTarget =
  | ({ readonly type: 'listen' } & SocketAddress)
  | { readonly type: 'socket'; readonly pid: number; readonly fd: number };

/** Normalized desired state of one PortSteering policy, for the reconciler. */
export interface PortSteeringPolicy extends DesiredPolicyBase {
  readonly kind: 'PortSteering';
  /** Normalized absolute path of the network namespace; undefined = the namespace ebpf-policy runs in. */
  readonly netns: string | undefined;
  readonly protocol: 'tcp' | 'udp';
  /** Sorted, merged (non-overlapping, non-adjacent) inclusive port ranges. */
  readonly ports: readonly PortRange[];
  /**
   * Canonical destination prefixes ("10.0.0.0/8", "2001:db8::/32"): host bits
   * cleared, aggregated, IPv4 first then IPv6, sorted. Default "0.0.0.0/0" and "::/0".
   */
  readonly prefixes: readonly string[];
  readonly target: SteeringTarget;
}

const KIND = 'PortSteering';

function parsedPrefixes(addresses: readonly string[] | undefined): IpPrefix[] {
  if (addresses === undefined) return [...ALL_ADDRESSES];
  return addresses.flatMap((text) => {
    const parsed = parseCidr(text);
    return parsed.ok ? [parsed.prefix] : [];
  });
}

function describePorts(spec: number | string, range: PortRange): string {
  return typeof spec === 'number' ? String(spec) : `${range.start}-${range.end}`;
}

function checkPorts(ports: readonly (number | string)[]): Finding[] {
  const findings: Finding[] = [];
  const ranges = ports.map(portSpecToRange);
  const total = ranges.reduce((sum, r) => sum + rangeSize(r), 0);
  if (total > MAX_PORT) {
    findings.push({
      path: ['spec', 'ports'],
      severity: 'error',
      message: `the entries cover ${total} ports in total, more than ${MAX_PORT}; remove overlapping entries`,
    });
  }
  ranges.forEach((range, i) => {
    const j = ranges.findIndex((other, k) => k < i && other.start <= range.end && range.start <= other.end);
    if (j < 0) return;
    findings.push({
      path: ['spec', 'ports', i],
      severity: 'warning',
      message: `${describePorts(ports[i] as number | string, range)} overlaps spec.ports[${j}] (${describePorts(ports[j] as number | string, ranges[j] as PortRange)})`,
    });
  });
  return findings;
}

function checkAddresses(addresses: readonly string[]): Finding[] {
  const findings: Finding[] = [];
  const prefixes: (IpPrefix | undefined)[] = [];
  addresses.forEach((text, i) => {
    const parsed = parseCidr(text);
    if (!parsed.ok) {
      prefixes.push(undefined);
      return;
    }
    const prefix = parsed.prefix;
    prefixes.push(prefix);
    const path = ['spec', 'addresses', i];
    if (parsed.hostBitsSet) {
      findings.push({
        path,
        severity: 'warning',
        message: `"${text}" has host bits set; it means ${formatPrefix(prefix)}`,
      });
    }
    const j = prefixes.findIndex((other, k) => k < i && other !== undefined && prefixContains(other, prefix));
    if (j >= 0) {
      findings.push({
        path,
        severity: 'warning',
        message: `"${text}" is already covered by spec.addresses[${j}] (${addresses[j] as string})`,
      });
    }
  });
  return findings;
}

function normalizeTarget(target: PortSteeringTarget): SteeringTarget {
  if ('listen' in target) {
    const parsed = parseListenAddress(target.listen);
    if (!parsed.ok) throw new Error(`invalid listen address "${target.listen}": ${parsed.reason}`);
    return { type: 'listen', ...parsed.value };
  }
  return { type: 'socket', pid: target.pid, fd: target.fd };
}

function describeNetns(netns: string | undefined): string {
  return netns === undefined ? 'the default network namespace' : `network namespace ${netns}`;
}

function describeSource(source: PolicySource): string {
  return `${source.file}:${source.line}:${source.column}`;
}

/**
 * Finds pairs of policies with the same protocol and netns whose port ranges
 * overlap on an identical destination prefix: the dispatcher could not tell
 * them apart. Nested prefixes (10.0.0.0/8 and 10.1.0.0/16) are no conflict:
 * the longer prefix wins, by the dispatcher's longest-prefix match. Within a
 * protocol and netns, the policies are grouped by prefix and a sweep over
 * each group's port ranges, sorted by start, finds the overlapping pairs:
 * neither every pair of policies nor every pair sharing ports (a thousand
 * policies on a thousand /32s with the same ports) is compared.
 */
function findOverlappingClaims(policies: readonly PortSteeringPolicy[]): PolicyConflict<PortSteeringPolicy>[] {
  const groups = new Map<string, number[]>();
  policies.forEach((policy, index) => {
    const key = `${policy.protocol}\u0000${policy.netns ?? ''}`;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [index]);
    else group.push(index);
  });
  const conflicts: PolicyConflict<PortSteeringPolicy>[] = [];
  for (const members of groups.values()) {
    if (members.length < 2) continue;
    const byPrefix = new Map<string, number[]>();
    for (const index of members) {
      for (const prefix of (policies[index] as PortSteeringPolicy).prefixes) {
        const sharing = byPrefix.get(prefix);
        if (sharing === undefined) byPrefix.set(prefix, [index]);
        else sharing.push(index);
      }
    }
    const pairs = new Set<number>();
    for (const sharing of byPrefix.values()) {
      if (sharing.length > 1) overlappingPortPairs(policies, sharing, pairs);
    }
    for (const pair of [...pairs].sort((a, b) => a - b)) {
      const earlier = policies[Math.floor(pair / policies.length)] as PortSteeringPolicy;
      const later = policies[pair % policies.length] as PortSteeringPolicy;
      const same = new Set(earlier.prefixes);
      const prefixes = later.prefixes.filter((p) => same.has(p));
      const ports = intersectPortRanges(earlier.ports, later.ports);
      conflicts.push({
        policy: later,
        path: ['spec', 'ports'],
        severity: 'error',
        message:
          `policy "${later.name}" overlaps policy "${earlier.name}" (${describeSource(earlier.source)}): ` +
          `both claim ${later.protocol} ${ports.length === 1 && ports[0]?.start === ports[0]?.end ? 'port' : 'ports'} ` +
          `${formatPortRanges(ports)} for ${prefixes.join(', ')} in ${describeNetns(later.netns)}`,
      });
    }
  }
  return conflicts;
}

/**
 * Adds to `pairs` (as lower index times policy count plus higher index) every
 * pair of the policies `members` whose port ranges overlap: a sweep over the
 * ranges sorted by start, keeping the ranges still open.
 */
function overlappingPortPairs(policies: readonly PortSteeringPolicy[], members: readonly number[], pairs: Set<number>): void {
  // Every port range of the members as its start, end and policy index (parallel arrays: no object per range).
  const starts: number[] = [];
  const ends: number[] = [];
  const owners: number[] = [];
  for (const index of members) {
    for (const range of (policies[index] as PortSteeringPolicy).ports) {
      starts.push(range.start);
      ends.push(range.end);
      owners.push(index);
    }
  }
  const order = Array.from(starts.keys()).sort((a, b) => (starts[a] as number) - (starts[b] as number));
  // The ranges still open at the current start, compacted in place as ranges end.
  const active: number[] = [];
  let open = 0;
  for (const current of order) {
    const start = starts[current] as number;
    const owner = owners[current] as number;
    let kept = 0;
    for (let a = 0; a < open; a++) {
      const other = active[a] as number;
      if ((ends[other] as number) < start) continue;
      active[kept++] = other;
      const otherOwner = owners[other] as number;
      if (otherOwner === owner) continue;
      pairs.add(Math.min(otherOwner, owner) * policies.length + Math.max(otherOwner, owner));
    }
    active[kept++] = current;
    open = kept;
  }
}

/** The PortSteering kind module. */
export const portSteeringKind: PolicyKind<PortSteering, PortSteeringPolicy> = {
  kind: KIND,
  schemaFile: 'port-steering.schema.json',

  check(document) {
    const findings = checkPorts(document.spec.ports);
    if (document.spec.addresses !== undefined) findings.push(...checkAddresses(document.spec.addresses));
    return findings;
  },

  normalize(document, source) {
    const { spec } = document;
    // The base's fields named rather than spread: spreading an object into a literal with more fields is
    // several times slower in V8 than the literal, and normalize runs once per policy loaded.
    const base = normalizeBase(KIND, document, source);
    return {
      kind: base.kind,
      name: base.name,
      labels: base.labels,
      source: base.source,
      netns: normalizeNetnsPath(spec.netns),
      protocol: spec.protocol,
      ports: mergePortRanges(spec.ports.map(portSpecToRange)),
      prefixes: aggregatePrefixes(parsedPrefixes(spec.addresses)).map(formatPrefix),
      target: normalizeTarget(spec.target),
    };
  },

  findConflicts: findOverlappingClaims,
};
