/**
 * The PacketFilter kind: pass or drop packets on some interfaces of a network
 * namespace (XDP, TC ingress or TC egress) by ordered rules, with per-rule
 * counters and sampled drop events. In audit mode (spec.mode or a rule's
 * mode) a drop decision passes the packet, counted and reported as
 * would-drop, as ConnectPolicy's audit mode does for denies.
 */
import type { FilterPortSpec, PacketFilter, PacketFilterRule as RuleDocument } from '../../types/generated/packet-filter.js';
import { normalizeBase, normalizeNetnsPath, type DesiredPolicyBase, type Finding, type PolicyConflict, type PolicyKind, type PolicySource } from '../../policy/kind.js';
import { aggregatePrefixes, formatPrefix, parseCidrList } from '../../policy/net/cidr.js';
import { patternsOverlap } from '../../policy/net/interface-pattern.js';
import { filterPortToRange, formatPortRanges, mergePortRanges, type PortRange } from '../../policy/net/ports.js';
import { checkPortList, checkPrefixList, checkRuleList } from '../../policy/net/rule-checks.js';

/** Where a PacketFilter runs. */
export type FilterHook = 'xdp' | 'tc-ingress' | 'tc-egress';
/** What a rule (or the default) does with a packet. */
export type FilterAction = 'pass' | 'drop';
/** Whether drop decisions drop the packet (enforce) or are only counted and reported as would-drop (audit). */
export type FilterMode = 'enforce' | 'audit';

/** One normalized rule. Absent (undefined) match fields match everything. */
export interface PacketFilterRule {
  readonly name: string;
  readonly protocol: 'tcp' | 'udp' | 'icmp' | undefined;
  /** Canonical, aggregated prefixes (IPv4 first), as for PortSteering. */
  readonly srcPrefixes: readonly string[] | undefined;
  readonly dstPrefixes: readonly string[] | undefined;
  /** Sorted, merged port ranges. */
  readonly srcPorts: readonly PortRange[] | undefined;
  readonly dstPorts: readonly PortRange[] | undefined;
  readonly action: FilterAction;
  /** The effective mode: the rule's own, else spec.mode. It only matters for a drop rule. */
  readonly mode: FilterMode;
}

/** Normalized desired state of one PacketFilter policy, for the reconciler. */
export interface PacketFilterPolicy extends DesiredPolicyBase {
  readonly kind: 'PacketFilter';
  /** Normalized absolute path of the network namespace; undefined = the namespace ebpf-policy runs in. */
  readonly netns: string | undefined;
  /** Interface names and patterns, in the order written, without duplicates. */
  readonly interfaces: readonly string[];
  readonly hook: FilterHook;
  /** spec.mode: the mode of the default action and of rules without their own. */
  readonly mode: FilterMode;
  readonly defaultAction: FilterAction;
  readonly rules: readonly PacketFilterRule[];
  /** Report every Nth drop or would-drop; 0 = no events. */
  readonly sampleRate: number;
}

const KIND = 'PacketFilter';
type Path = (string | number)[];

/** Checks of one rule document that the schema cannot express. */
function checkRule(rule: RuleDocument, i: number): Finding[] {
  const at: Path = ['spec', 'rules', i];
  const findings: Finding[] = [];
  for (const field of ['srcPorts', 'dstPorts'] as const) {
    if (rule[field] === undefined) continue;
    if (rule.protocol === undefined)
      findings.push({ path: [...at, field], severity: 'error', message: `${field} needs "protocol: tcp" or "protocol: udp" (ports exist only for TCP and UDP)` });
    else if (rule.protocol === 'icmp')
      findings.push({ path: [...at, field], severity: 'error', message: `ICMP has no ports: remove ${field} or use protocol tcp or udp` });
    findings.push(...checkPortList(rule[field], [...at, field]));
  }
  findings.push(...checkPrefixList(rule.srcCidrs, [...at, 'srcCidrs']), ...checkPrefixList(rule.dstCidrs, [...at, 'dstCidrs']));
  if (rule.mode === 'audit' && rule.action === 'pass')
    findings.push({ path: [...at, 'mode'], severity: 'warning', message: 'a pass rule has nothing to audit: mode only changes what a drop rule does' });
  return findings;
}

function normalizeRule(rule: RuleDocument, mode: FilterMode): PacketFilterRule {
  const prefixes = (list: readonly string[] | undefined) => (list === undefined ? undefined : aggregatePrefixes(parseCidrList(list)).map(formatPrefix));
  const ports = (list: readonly FilterPortSpec[] | undefined) => (list === undefined ? undefined : mergePortRanges(list.map(filterPortToRange)));
  return {
    name: rule.name,
    protocol: rule.protocol,
    srcPrefixes: prefixes(rule.srcCidrs),
    dstPrefixes: prefixes(rule.dstCidrs),
    srcPorts: ports(rule.srcPorts),
    dstPorts: ports(rule.dstPorts),
    action: rule.action,
    mode: rule.mode ?? mode,
  };
}

/** A key equal for two rules exactly when they match the same packets (after normalization). */
export function matchKey(rule: Pick<PacketFilterRule, 'protocol' | 'srcPrefixes' | 'dstPrefixes' | 'srcPorts' | 'dstPorts'>): string {
  return JSON.stringify([rule.protocol ?? '*', rule.srcPrefixes ?? '*', rule.dstPrefixes ?? '*', rule.srcPorts ?? '*', rule.dstPorts ?? '*']);
}

/** What a rule matches, in words: "tcp to port 23", "from 203.0.113.0/24", "every packet". */
export function describeMatch(rule: Pick<PacketFilterRule, 'protocol' | 'srcPrefixes' | 'dstPrefixes' | 'srcPorts' | 'dstPorts'>): string {
  const side = (prefixes: readonly string[] | undefined, ports: readonly PortRange[] | undefined): string => {
    const parts: string[] = [];
    if (prefixes) parts.push(prefixes.join(', '));
    if (ports) parts.push(`${ports.length === 1 && ports[0]!.start === ports[0]!.end ? 'port' : 'ports'} ${formatPortRanges(ports)}`);
    return parts.join(' ');
  };
  const from = side(rule.srcPrefixes, rule.srcPorts);
  const to = side(rule.dstPrefixes, rule.dstPorts);
  const text = [rule.protocol ?? '', from && `from ${from}`, to && `to ${to}`].filter(Boolean).join(' ');
  return text === '' ? 'every packet' : text;
}

/** What a rule does with the packets it matches, as a verb: "passes", "drops", "audits (would drop)". */
export function verdictVerb(rule: Pick<PacketFilterRule, 'action' | 'mode'>): string {
  return rule.action === 'pass' ? 'passes' : rule.mode === 'audit' ? 'audits (would drop)' : 'drops';
}

/** What a rule decides, "pass", "drop" or "would-drop": rules that match the same packets must agree on it. */
export function ruleVerdict(rule: Pick<PacketFilterRule, 'action' | 'mode'>): 'pass' | 'drop' | 'would-drop' {
  return rule.action === 'pass' ? 'pass' : rule.mode === 'audit' ? 'would-drop' : 'drop';
}

/** The default's verdict: its action in spec.mode. */
export function defaultVerdict(p: Pick<PacketFilterPolicy, 'defaultAction' | 'mode'>): 'pass' | 'drop' | 'would-drop' {
  return ruleVerdict({ action: p.defaultAction, mode: p.mode });
}

function describeNetns(netns: string | undefined): string {
  return netns === undefined ? 'the default network namespace' : `network namespace ${netns}`;
}

function describeSource(source: PolicySource): string {
  return `${source.file}:${source.line}:${source.column}`;
}

/** The first pair of patterns of `a` and `b` that can name the same interface, as text. */
function commonInterfaces(a: PacketFilterPolicy, b: PacketFilterPolicy): string | undefined {
  for (const x of a.interfaces)
    for (const y of b.interfaces)
      if (patternsOverlap(x, y)) return x === y ? `interface "${x}"` : `interfaces matching both "${x}" and "${y}"`;
  return undefined;
}

/**
 * Policies on the same network namespace and hook whose interface patterns
 * can name the same interface must agree: on the default action (and, for a
 * default drop, on its mode), and on the verdict (pass, drop, or would-drop
 * in audit mode) of rules that match exactly the same packets. Overlapping but
 * different matches are no conflict: the documented order decides.
 */
function findFilterConflicts(policies: readonly PacketFilterPolicy[]): PolicyConflict<PacketFilterPolicy>[] {
  const groups = new Map<string, PacketFilterPolicy[]>();
  for (const p of policies) {
    const key = `${p.netns ?? ''}\u0000${p.hook}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  const conflicts: PolicyConflict<PacketFilterPolicy>[] = [];
  const byMatch = new Map<PacketFilterPolicy, Map<string, { rule: PacketFilterRule; index: number }>>();
  const matchesOf = (p: PacketFilterPolicy) => {
    let m = byMatch.get(p);
    if (!m) {
      m = new Map();
      p.rules.forEach((rule, index) => {
        const k = matchKey(rule);
        if (!m!.has(k)) m!.set(k, { rule, index });
      });
      byMatch.set(p, m);
    }
    return m;
  };
  for (const members of groups.values()) {
    for (let j = 1; j < members.length; j++) {
      const later = members[j]!;
      for (let i = 0; i < j; i++) {
        const earlier = members[i]!;
        const where = commonInterfaces(earlier, later);
        if (where === undefined) continue;
        const context = `on ${later.hook} of ${where} in ${describeNetns(later.netns)}`;
        if (earlier.defaultAction !== later.defaultAction)
          conflicts.push({
            policy: later,
            path: ['spec', 'defaultAction'],
            severity: 'error',
            message: `policy "${later.name}" (defaultAction ${later.defaultAction}) and policy "${earlier.name}" (${describeSource(earlier.source)}, defaultAction ${earlier.defaultAction}) filter ${context} but disagree on the default action`,
          });
        else if (defaultVerdict(earlier) !== defaultVerdict(later))
          conflicts.push({
            policy: later,
            path: ['spec', 'mode'],
            severity: 'error',
            message: `policy "${later.name}" (mode ${later.mode}) and policy "${earlier.name}" (${describeSource(earlier.source)}, mode ${earlier.mode}) filter ${context} with defaultAction drop but disagree on its mode`,
          });
        const theirs = matchesOf(earlier);
        const reported = new Set<string>();
        later.rules.forEach((rule, index) => {
          const k = matchKey(rule);
          const other = theirs.get(k);
          if (other === undefined || ruleVerdict(other.rule) === ruleVerdict(rule) || reported.has(k)) return;
          reported.add(k);
          conflicts.push({
            policy: later,
            path: ['spec', 'rules', index],
            severity: 'error',
            message: `rule "${rule.name}" of policy "${later.name}" ${verdictVerb(rule)} ${describeMatch(rule)}, but rule "${other.rule.name}" of policy "${earlier.name}" (${describeSource(earlier.source)}) ${verdictVerb(other.rule)} the same packets ${context}`,
          });
        });
      }
    }
  }
  return conflicts;
}

/** The PacketFilter kind module. */
export const packetFilterKind: PolicyKind<PacketFilter, PacketFilterPolicy> = {
  kind: KIND,
  schemaFile: 'packet-filter.schema.json',

  check(document) {
    const { spec } = document;
    const findings: Finding[] = [];
    spec.interfaces.forEach((name, i) => {
      const j = spec.interfaces.indexOf(name);
      if (j < i) findings.push({ path: ['spec', 'interfaces', i], severity: 'warning', message: `"${name}" is already listed as spec.interfaces[${j}]` });
    });
    const mode = spec.mode ?? 'enforce';
    findings.push(...checkRuleList(spec.rules, ['spec', 'rules'], { check: checkRule, matchKey: (rule) => matchKey(normalizeRule(rule, mode)), matched: 'packets' }));
    if (spec.events !== undefined && spec.defaultAction !== 'drop' && !spec.rules.some((r) => r.action === 'drop'))
      findings.push({ path: ['spec', 'events'], severity: 'warning', message: 'nothing is ever dropped (no drop rule, defaultAction pass), so no event will be reported' });
    return findings;
  },

  normalize(document, source) {
    const { spec } = document;
    const mode = spec.mode ?? 'enforce';
    return {
      ...normalizeBase(KIND, document, source),
      netns: normalizeNetnsPath(spec.netns),
      interfaces: [...new Set(spec.interfaces)],
      hook: spec.hook,
      mode,
      defaultAction: spec.defaultAction ?? 'pass',
      rules: spec.rules.map((rule) => normalizeRule(rule, mode)),
      sampleRate: spec.events?.sampleRate ?? 0,
    };
  },

  findConflicts: findFilterConflicts,
};
