/**
 * Checks shared by the kinds whose ordered rules match on addresses and
 * ports (PacketFilter, ConnectPolicy): redundant prefix and port entries,
 * duplicate rule names and rules that can never decide anything.
 */
import { formatPath, type PathSegment } from '../json-path.js';
import type { Finding } from '../kind.js';
import { formatPrefix, parseCidr, prefixContains, type IpPrefix } from './cidr.js';
import { filterPortToRange, formatPortRanges } from './ports.js';

/**
 * Warnings for a list of CIDR prefixes: host bits set, and a prefix covered
 * by an earlier one of the list. `canonical` maps each parsed prefix (and
 * its text) to the addresses it is matched as (e.g. an IPv4-mapped IPv6
 * prefix to IPv4), or to undefined to skip an entry reported otherwise; by
 * default the prefix itself. Invalid texts are skipped (the schema reports
 * them).
 */
export function checkPrefixList(
  list: readonly string[] | undefined,
  path: readonly PathSegment[],
  canonical: (prefix: IpPrefix, text: string) => IpPrefix | undefined = (prefix) => prefix,
): Finding[] {
  const findings: Finding[] = [];
  const seen: (IpPrefix | undefined)[] = [];
  (list ?? []).forEach((text, i) => {
    const parsed = parseCidr(text);
    const prefix = parsed.ok ? canonical(parsed.prefix, text) : undefined;
    seen.push(prefix);
    if (!parsed.ok || prefix === undefined) return;
    if (parsed.hostBitsSet)
      findings.push({ path: [...path, i], severity: 'warning', message: `"${text}" has host bits set; it means ${formatPrefix(prefix)}` });
    const j = seen.findIndex((other, k) => k < i && other !== undefined && prefixContains(other, prefix));
    if (j >= 0)
      findings.push({ path: [...path, i], severity: 'warning', message: `"${text}" is already covered by ${formatPath([...path, j])} (${list![j]})` });
  });
  return findings;
}

/** Warnings for port entries (PacketFilter syntax) overlapping an earlier entry of the list. */
export function checkPortList(list: readonly (number | string)[] | undefined, path: readonly PathSegment[]): Finding[] {
  const ranges = (list ?? []).map(filterPortToRange);
  const findings: Finding[] = [];
  ranges.forEach((r, i) => {
    const j = ranges.findIndex((o, k) => k < i && o.start <= r.end && r.start <= o.end);
    if (j >= 0)
      findings.push({ path: [...path, i], severity: 'warning', message: `${formatPortRanges([r])} overlaps ${formatPath([...path, j])} (${formatPortRanges([ranges[j]!])})` });
  });
  return findings;
}

/** How {@link checkRuleList} looks at one kind's rules. */
export interface RuleListChecks<R> {
  /** Findings of one rule on its own (its path is `[...path, index]`). */
  check(rule: R, index: number): Finding[];
  /** Equal for two rules exactly when they match the same traffic; called only for rules without errors. */
  matchKey(rule: R): string;
  /** What rules match, plural, for messages: "packets", "connects". */
  readonly matched: string;
}

/**
 * Checks an ordered rule list: a rule name used twice (error), each rule's
 * own findings, and a rule matching exactly what an earlier rule matches
 * (warning: it never decides anything).
 */
export function checkRuleList<R extends { readonly name: string }>(rules: readonly R[], path: readonly PathSegment[], checks: RuleListChecks<R>): Finding[] {
  const findings: Finding[] = [];
  const names = new Map<string, number>();
  const matches = new Map<string, number>();
  rules.forEach((rule, i) => {
    const first = names.get(rule.name);
    if (first !== undefined)
      findings.push({ path: [...path, i, 'name'], severity: 'error', message: `duplicate rule name "${rule.name}": also ${formatPath([...path, first])}` });
    else names.set(rule.name, i);
    const ruleFindings = checks.check(rule, i);
    findings.push(...ruleFindings);
    if (ruleFindings.some((f) => f.severity === 'error')) return;
    const key = checks.matchKey(rule);
    const earlier = matches.get(key);
    if (earlier !== undefined)
      findings.push({
        path: [...path, i],
        severity: 'warning',
        message: `rule "${rule.name}" never decides anything: rule "${rules[earlier]!.name}" (${formatPath([...path, earlier])}) matches the same ${checks.matched} first`,
      });
    else matches.set(key, i);
  });
  return findings;
}
