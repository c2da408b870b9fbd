/**
 * The ConnectPolicy kind, document half: allow or deny the outgoing
 * connections of the processes of a cgroup v2 (and of its descendant
 * cgroups) by ordered rules on protocol, destination prefixes and
 * destination ports, at the cgroup connect4/connect6 hooks and, for UDP
 * sends without connect(), sendmsg4/sendmsg6. A denied connect() or
 * sendto() fails with EPERM; in audit mode it is counted and reported and
 * goes ahead.
 *
 * Within one policy the first matching rule decides. Policies never
 * conflict: {@link connectPolicyKind}'s `findConflicts` finds nothing,
 * because several policies on the same cgroup all apply (each is its own
 * program in the cgroup's program list) and a connect goes ahead only when
 * every one of them allows it, so a deny in either wins. The same holds for
 * the programs of other tools on the cgroup and for policies on ancestor
 * cgroups.
 *
 * IPv4-mapped IPv6 destinations (a connect6 to ::ffff:a.b.c.d) are matched
 * as the IPv4 address, so IPv4-mapped prefixes in a policy are normalized to
 * the IPv4 prefix they stand for.
 */
import type { ConnectPolicy, ConnectPolicyRule as RuleDocument } from '../../types/generated/connect-policy.js';
import { checkCgroupPath, normalizeCgroupPath } from '../../policy/cgroup-path.js';
import { normalizeBase, type DesiredPolicyBase, type Finding, type PolicyKind } from '../../policy/kind.js';
import { aggregatePrefixes, ALL_ADDRESSES, formatPrefix, isShortMappedCidr, mappedToIPv4, parseCidr, parseCidrList, type IpPrefix } from '../../policy/net/cidr.js';
import { filterPortToRange, formatPortRanges, mergePortRanges, type PortRange } from '../../policy/net/ports.js';
import { checkPortList, checkPrefixList, checkRuleList } from '../../policy/net/rule-checks.js';

/** What a rule (or the default) decides for a connect. */
export type ConnectAction = 'allow' | 'deny';
/** Whether deny decisions fail the call (enforce) or are only counted and reported (audit). */
export type ConnectMode = 'enforce' | 'audit';

/** One normalized rule. Absent (undefined) match fields match everything. */
export interface ConnectRule {
  readonly name: string;
  readonly action: ConnectAction;
  /** undefined = any protocol */
  readonly protocol: 'tcp' | 'udp' | undefined;
  /** Canonical, aggregated prefixes (IPv4 first) as PacketFilter's; undefined = any destination. IPv4-mapped IPv6 prefixes (::ffff:0:0/96 and longer) are normalized to the IPv4 prefix they stand for. */
  readonly destinations: readonly string[] | undefined;
  /** Sorted, merged port ranges; undefined = any port. */
  readonly ports: readonly PortRange[] | undefined;
  /** The effective mode: the rule's own, else spec.mode. */
  readonly mode: ConnectMode;
}

/** Normalized desired state of one ConnectPolicy policy, for the reconciler. */
export interface ConnectPolicyPolicy extends DesiredPolicyBase {
  readonly kind: 'ConnectPolicy';
  /** spec.cgroup normalized with posix.normalize (trailing slash removed); absolute or relative to the cgroup2 mount, as written. */
  readonly cgroup: string;
  readonly mode: ConnectMode;
  readonly defaultAction: ConnectAction;
  readonly rules: readonly ConnectRule[];
  /** Report every Nth denied or audited connect; 0 = no events. */
  readonly sampleRate: number;
}

const KIND = 'ConnectPolicy';
type Path = (string | number)[];
type MatchFields = Pick<ConnectRule, 'protocol' | 'destinations' | 'ports'>;

/** The prefix as matched: IPv4-mapped IPv6 prefixes become IPv4. */
function matchedAs(prefix: IpPrefix): IpPrefix {
  return mappedToIPv4(prefix) ?? prefix;
}

/** Findings about IPv4-mapped IPv6 destinations: matched as IPv4 (warning), or shorter than /96 (error). */
function checkMapped(list: readonly string[], path: Path): Finding[] {
  const findings: Finding[] = [];
  list.forEach((text, i) => {
    if (isShortMappedCidr(text)) {
      findings.push({
        path: [...path, i],
        severity: 'error',
        message: `"${text}" is an IPv4-mapped address with a prefix shorter than /96: it would mix IPv4-mapped and other IPv6 addresses; write the IPv4 prefix (a.b.c.d/n) instead`,
      });
      return;
    }
    const parsed = parseCidr(text);
    const v4 = parsed.ok ? mappedToIPv4(parsed.prefix) : undefined;
    if (v4 !== undefined)
      findings.push({ path: [...path, i], severity: 'warning', message: `"${text}" is an IPv4-mapped IPv6 prefix: it is matched as IPv4 ${formatPrefix(v4)}` });
  });
  return findings;
}

/** Checks of one rule document that the schema cannot express. */
function checkRule(rule: RuleDocument, i: number): Finding[] {
  const at: Path = ['spec', 'rules', i];
  const findings: Finding[] = [];
  if (rule.ports !== undefined) {
    if (rule.protocol === undefined || rule.protocol === 'any') {
      const instead = rule.protocol === undefined ? '' : ', not "protocol: any"';
      findings.push({ path: [...at, 'ports'], severity: 'error', message: `ports needs "protocol: tcp" or "protocol: udp"${instead} (ports exist only for TCP and UDP)` });
    }
    findings.push(...checkPortList(rule.ports, [...at, 'ports']));
  }
  if (rule.destinations !== undefined) {
    const path = [...at, 'destinations'];
    findings.push(...checkMapped(rule.destinations, path));
    const canonical = (prefix: IpPrefix, text: string): IpPrefix | undefined => (isShortMappedCidr(text) ? undefined : matchedAs(prefix));
    findings.push(...checkPrefixList(rule.destinations, path, canonical));
  }
  return findings;
}

function normalizeRule(rule: RuleDocument, mode: ConnectMode): ConnectRule {
  return {
    name: rule.name,
    action: rule.action,
    protocol: rule.protocol === 'any' ? undefined : rule.protocol,
    destinations: rule.destinations === undefined ? undefined : aggregatePrefixes(parseCidrList(rule.destinations).map(matchedAs)).map(formatPrefix),
    ports: rule.ports === undefined ? undefined : mergePortRanges(rule.ports.map(filterPortToRange)),
    mode: rule.mode ?? mode,
  };
}

const ANY_DESTINATION = JSON.stringify(ALL_ADDRESSES.map(formatPrefix));

/**
 * A key equal for two rules exactly when they match the same connects (after
 * normalization). Destinations covering every IPv4 and IPv6 address
 * ("0.0.0.0/0" and "::/0") are the same as none.
 */
export function connectMatchKey(rule: MatchFields): string {
  const destinations = rule.destinations === undefined || JSON.stringify(rule.destinations) === ANY_DESTINATION ? '*' : rule.destinations;
  return JSON.stringify([rule.protocol ?? '*', destinations, rule.ports ?? '*']);
}

/** What a rule matches, in words: "tcp to 10.0.0.5/32 port 3128", "every connect". */
export function describeConnectMatch(rule: MatchFields): string {
  const to: string[] = [];
  if (rule.destinations) to.push(rule.destinations.join(', '));
  if (rule.ports) to.push(`${rule.ports.length === 1 && rule.ports[0]!.start === rule.ports[0]!.end ? 'port' : 'ports'} ${formatPortRanges(rule.ports)}`);
  if (to.length === 0) return rule.protocol === undefined ? 'every connect' : `every ${rule.protocol} connect`;
  return [rule.protocol, 'to', ...to].filter((part) => part !== undefined).join(' ');
}

/** The ConnectPolicy kind module (document half). */
export const connectPolicyKind: PolicyKind<ConnectPolicy, ConnectPolicyPolicy> = {
  kind: KIND,
  schemaFile: 'connect-policy.schema.json',

  check(document) {
    const { spec } = document;
    const rules = spec.rules ?? [];
    const mode = spec.mode ?? 'enforce';
    const findings: Finding[] = [...checkCgroupPath(spec.cgroup, ['spec', 'cgroup'])];
    findings.push(...checkRuleList(rules, ['spec', 'rules'], { check: checkRule, matchKey: (rule) => connectMatchKey(normalizeRule(rule, mode)), matched: 'connects' }));
    if (spec.events !== undefined && spec.defaultAction !== 'deny' && !rules.some((r) => r.action === 'deny'))
      findings.push({ path: ['spec', 'events'], severity: 'warning', message: 'nothing is ever denied or audited (no deny rule, defaultAction allow), so no event will be reported' });
    return findings;
  },

  normalize(document, source) {
    const { spec } = document;
    const mode = spec.mode ?? 'enforce';
    return {
      ...normalizeBase(KIND, document, source),
      cgroup: normalizeCgroupPath(spec.cgroup),
      mode,
      defaultAction: spec.defaultAction ?? 'allow',
      rules: (spec.rules ?? []).map((rule) => normalizeRule(rule, mode)),
      sampleRate: spec.events?.sampleRate ?? 0,
    };
  },

  /** Never any: policies on the same cgroup all apply, and a deny in either wins. */
  findConflicts() {
    return [];
  },
};
