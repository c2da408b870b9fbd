/**
 * From PacketFilter policies to desired filters: resolves each policy's
 * namespace and interface patterns against the interfaces that exist now
 * (through a {@link FilterResolver}, which reads the system), and merges the
 * policies that cover the same (namespace, interface, hook) into one filter
 * whose rules follow the documented match order: policies by name, rules in
 * the order written.
 */
import { hashSpec } from '../../common/spec-hash.js';
import { resolve } from 'node:path';
import type { InterfaceList } from '../../bpf/interfaces.js';
import { OWN_NETNS, type NetnsKeyResult } from '../../bpf/netns.js';
import { MAX_SLOTS, filterDir, type FilterAttachMethod } from './layout.js';
import { defaultVerdict, describeMatch, matchKey, ruleVerdict, verdictVerb, type FilterAction, type FilterMode, type PacketFilterPolicy } from './document.js';
import { isInterfaceGlob, matchesInterface } from '../../policy/net/interface-pattern.js';
import type { DesiredFilter, DesiredFilterPolicy, DesiredFilterRule, DesiredFilters } from './model.js';

/** Reads the system for desired filters; resolver.ts implements it. */
export interface FilterResolver {
  /** Pin-layout key of the namespace at `path`. */
  netnsKey(path: string): NetnsKeyResult;
  /** The interfaces of the namespace at `path`. */
  interfaces(path: string): InterfaceList;
  /** Tags of the filter programs we ship. */
  filterTags(): { xdp: string; tc: string };
  /** How tc hooks attach on this kernel: tcx (Linux 6.6+), else cls_bpf. */
  tcMethod(): Exclude<FilterAttachMethod, 'xdp'>;
}

/** Link types the filter parses (Ethernet framing). */
const SUPPORTED_LINK_TYPES = new Set(['ether', 'loopback']);

/** Hash of what defines a PacketFilter policy. */
export function filterSpecHash(p: PacketFilterPolicy): string {
  const spec = { netns: p.netns ?? null, interfaces: p.interfaces, hook: p.hook, mode: p.mode, defaultAction: p.defaultAction, rules: p.rules, sampleRate: p.sampleRate };
  return hashSpec(spec);
}

function filterRules(p: PacketFilterPolicy): DesiredFilterRule[] {
  return p.rules.map((r) => {
    const out: DesiredFilterRule = { policy: p.name, rule: r.name, action: r.action, audit: r.action === 'drop' && r.mode === 'audit', sample: p.sampleRate };
    if (r.protocol) out.protocol = r.protocol;
    if (r.srcPrefixes) out.srcPrefixes = r.srcPrefixes;
    if (r.dstPrefixes) out.dstPrefixes = r.dstPrefixes;
    if (r.srcPorts) out.srcPorts = r.srcPorts.map((x) => ({ start: x.start, end: x.end }));
    if (r.dstPorts) out.dstPorts = r.dstPorts.map((x) => ({ start: x.start, end: x.end }));
    return out;
  });
}

/**
 * Builds the desired filters. `failedFiles` are absolute paths of files that
 * failed to load: their policies' filters are kept as they are.
 */
export function buildDesiredFilters(
  policies: readonly PacketFilterPolicy[],
  failedFiles: ReadonlySet<string>,
  root: string,
  resolver: FilterResolver,
): DesiredFilters {
  const out: DesiredFilters = { tags: { xdp: '', tc: '' }, filters: [], policies: [], keepNetns: [], keepPolicies: [], problems: [] };
  if (policies.length === 0) return out;
  out.tags = resolver.filterTags();
  const interfacesOf = new Map<string, InterfaceList>();
  const groups = new Map<string, { filter: Omit<DesiredFilter, 'policies' | 'rules' | 'defaultAction' | 'defaultAudit' | 'defaultSample'>; members: PacketFilterPolicy[] }>();
  const sorted = [...policies].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const statusOf = new Map<string, DesiredFilterPolicy>();

  for (const p of sorted) {
    const sourceFile = resolve(p.source.file);
    const status: DesiredFilterPolicy = { name: p.name, sourceFile, netns: p.netns, hook: p.hook, interfaces: p.interfaces, filters: [], skipped: [] };
    statusOf.set(p.name, status);
    out.policies.push(status);
    const problem = (condition: 'Failed' | 'Degraded', reason: string, message: string) =>
      out.problems.push({ policy: p.name, sourceFile, condition, reason, message });
    if (failedFiles.has(sourceFile)) {
      out.keepPolicies.push(p.name);
      problem('Failed', 'InvalidSourceFile', `${sourceFile} has errors; the policy keeps its last applied state until the file is fixed`);
      continue;
    }
    const netnsPath = p.netns ?? OWN_NETNS;
    const key = resolver.netnsKey(netnsPath);
    if (!key.ok) {
      out.keepPolicies.push(p.name);
      problem('Failed', 'NetnsNotFound', key.reason);
      continue;
    }
    let list = interfacesOf.get(netnsPath);
    if (!list) interfacesOf.set(netnsPath, (list = resolver.interfaces(netnsPath)));
    if (!list.ok) {
      out.keepNetns.push(key.key);
      problem('Failed', 'InterfacesUnavailable', list.reason);
      continue;
    }
    let matched = 0;
    for (const iface of list.interfaces) {
      const literal = p.interfaces.includes(iface.name);
      if (!literal && !p.interfaces.some((pat) => isInterfaceGlob(pat) && matchesInterface(pat, iface.name))) continue;
      if (!SUPPORTED_LINK_TYPES.has(iface.linkType)) {
        const reason = `link type ${iface.linkType}: the filter parses Ethernet frames only`;
        status.skipped.push({ ifname: iface.name, reason });
        if (literal) problem('Degraded', 'UnsupportedInterface', `interface ${iface.name} is not filtered (${reason})`);
        continue;
      }
      matched++;
      const gkey = `${key.key}/${p.hook}-${iface.ifindex}`;
      let g = groups.get(gkey);
      if (!g) {
        g = {
          filter: {
            key: gkey,
            dir: filterDir(root, key.key, p.hook, iface.ifindex),
            netnsKey: key.key,
            netns: p.netns,
            netnsPath,
            ifname: iface.name,
            ifindex: iface.ifindex,
            hook: p.hook,
            method: p.hook === 'xdp' ? 'xdp' : resolver.tcMethod(),
            xdpProgs: iface.xdp.map((x) => ({ ...x })),
          },
          members: [],
        };
        groups.set(gkey, g);
      }
      g.members.push(p);
    }
    if (matched === 0)
      problem('Degraded', 'NoInterface', `no interface of ${p.netns ?? 'the default network namespace'} matches ${p.interfaces.map((i) => `"${i}"`).join(', ')} (yet): nothing to filter`);
  }

  for (const { filter, members } of [...groups.values()].sort((a, b) => (a.filter.key < b.filter.key ? -1 : 1))) {
    const accepted: PacketFilterPolicy[] = [];
    const seen = new Map<string, { policy: string; rule: string; action: FilterAction; mode: FilterMode }>();
    let slots = 1;
    for (const p of members) {
      const sourceFile = resolve(p.source.file);
      const first = accepted[0];
      const where = `on ${filter.hook} of ${filter.ifname}`;
      let conflict: string | undefined;
      let reason = 'Conflict';
      if (first && first.defaultAction !== p.defaultAction)
        conflict = `policy "${p.name}" (defaultAction ${p.defaultAction}) and policy "${first.name}" (defaultAction ${first.defaultAction}) both filter ${where}: they disagree on the default action`;
      else if (first && defaultVerdict(first) !== defaultVerdict(p))
        conflict = `policy "${p.name}" (mode ${p.mode}) and policy "${first.name}" (mode ${first.mode}) both filter ${where} with defaultAction drop: they disagree on its mode`;
      for (const r of p.rules) {
        if (conflict) break;
        const other = seen.get(matchKey(r));
        if (other && other.policy !== p.name && ruleVerdict(other) !== ruleVerdict(r))
          conflict = `rule "${r.name}" of policy "${p.name}" ${verdictVerb(r)} ${describeMatch(r)}, but rule "${other.rule}" of policy "${other.policy}" ${verdictVerb(other)} the same packets ${where}`;
      }
      if (!conflict && slots + p.rules.length > MAX_SLOTS) {
        reason = 'FilterFull';
        conflict = `the policies ${[...accepted, p].map((x) => x.name).join(', ')} have ${slots - 1 + p.rules.length} rules ${where}, more than the ${MAX_SLOTS - 1} a filter holds`;
      }
      if (conflict) {
        out.problems.push({ policy: p.name, sourceFile, condition: 'Failed', reason, message: `${conflict}; ${p.name} is not applied there` });
        continue;
      }
      accepted.push(p);
      slots += p.rules.length;
      for (const r of p.rules) if (!seen.has(matchKey(r))) seen.set(matchKey(r), { policy: p.name, rule: r.name, action: r.action, mode: r.mode });
    }
    if (accepted.length === 0) continue;
    const dropSamples = accepted.filter((p) => p.sampleRate > 0).map((p) => p.sampleRate);
    out.filters.push({
      ...filter,
      policies: accepted.map((p) => ({ name: p.name, sourceFile: resolve(p.source.file), specHash: filterSpecHash(p) })),
      rules: accepted.flatMap(filterRules),
      defaultAction: accepted[0]!.defaultAction,
      defaultAudit: accepted[0]!.defaultAction === 'drop' && accepted[0]!.mode === 'audit',
      defaultSample: dropSamples.length ? Math.min(...dropSamples) : 0,
    });
    for (const p of accepted) statusOf.get(p.name)!.filters.push(filter.key);
  }
  return out;
}
