/**
 * Status of PacketFilter policies: conditions (Ready, Degraded, Failed, as
 * for PortSteering), and per interface the attachment (XDP mode, tcx or
 * cls_bpf, live ids) and every rule's packet and byte counters (and, in
 * audit mode, how many of them would have been dropped), computed from a
 * (dry-run) reconcile report and the kernel's counters.
 */
import type { PolicyView } from '../../reconciler/kind.js';
import type { PolicyStatus } from '../../reconciler/model.js';
import { renderStatusHead } from '../../reconciler/render.js';
import type { FilterCounters, ObservedFilter, ObservedFilters } from './store.js';
import type { FilterAction, FilterHook, FilterMode } from './document.js';
import type { DesiredFilter, DesiredFilters } from './model.js';
import { FilterStat } from './layout.js';

/** Counters of one rule (or of the default action) on one interface. */
export interface RuleCounters {
  /** Rule name; null for the default action. */
  rule: string | null;
  action: FilterAction | null;
  /** The mode of its drops (audit: counted as would-drop and passed); null when not known (no policy defines it). */
  mode: FilterMode | null;
  /** Every packet it decided, dropped, passed or would-drop. */
  packets: string;
  bytes: string;
  /** Of those, the packets an audited drop passed (would have been dropped in enforce mode). */
  wouldDropPackets: string;
  wouldDropBytes: string;
}

/** One interface a PacketFilter policy filters. */
export interface FilterInterfaceStatus {
  interface: string;
  ifindex: number;
  hook: FilterHook;
  /** How it is attached: an XDP link (mode native or generic), a tcx link, or cls_bpf. Null when not attached. */
  method: 'xdp' | 'tcx' | 'cls_bpf' | null;
  xdpMode: 'native' | 'generic' | null;
  /** Why XDP runs in generic mode (the driver refused native mode). */
  xdpModeReason: string | null;
  programId: number | null;
  linkId: number | null;
  attached: boolean;
  rules: RuleCounters[];
  /** The default action's counters, shared by the policies on this interface and hook. */
  default: RuleCounters;
  /** The filter's own counters (shared too): non-IP packets passed, packets without ports, sampled events lost. Null when not read. */
  stats: { notIp: string; noPorts: string; eventsLost: string } | null;
}

/** The PacketFilter fields of a policy's status. */
export interface FilterStatusDetails {
  hook: FilterHook | null;
  interfaces: FilterInterfaceStatus[];
}

/** Status of one PacketFilter policy. */
export type FilterPolicyStatus = PolicyStatus & FilterStatusDetails;

/** Counter reader: packets and bytes per slot of the filter in `dir`. */
export type FilterCounterReader = (dir: string, slots: number[]) => Map<number, FilterCounters>;
/** Reader of a filter's own statistics (not IP, no rule set, no ports, events lost), as src/bpf/filter-store.ts's readFilterStats. */
export type FilterStatsReader = (dir: string) => bigint[];

function interfaceStatus(
  obs: ObservedFilter,
  want: DesiredFilter | undefined,
  policy: string,
  counters: FilterCounterReader,
  stats: FilterStatsReader | undefined,
): FilterInterfaceStatus {
  const st = stats?.(obs.dir);
  const slots = obs.slots.filter((s) => s.policy === policy);
  const values = counters(obs.dir, [0, ...slots.map((s) => s.slot)]);
  const ruleOf = new Map((want?.rules ?? []).filter((r) => r.policy === policy).map((r) => [r.rule, r]));
  const order = new Map((want?.rules ?? []).map((r, i) => [r.rule, i]));
  const zero: FilterCounters = { packets: 0n, bytes: 0n, wouldDropPackets: 0n, wouldDropBytes: 0n };
  const row = (rule: string | null, slot: number, action: FilterAction | undefined, audit: boolean | undefined): RuleCounters => {
    const c = values.get(slot) ?? zero;
    return {
      rule,
      action: action ?? null,
      mode: audit === undefined ? null : audit ? 'audit' : 'enforce',
      packets: c.packets.toString(),
      bytes: c.bytes.toString(),
      wouldDropPackets: c.wouldDropPackets.toString(),
      wouldDropBytes: c.wouldDropBytes.toString(),
    };
  };
  const rec = obs.attachment;
  const xdpMode = want?.xdpProgs.find((x) => x.progId === obs.program?.id)?.mode;
  return {
    interface: rec?.ifname ?? want?.ifname ?? `ifindex ${obs.ifindex}`,
    ifindex: obs.ifindex,
    hook: obs.hook,
    method: obs.link?.attached ? obs.link.method : null,
    xdpMode: obs.hook === 'xdp' ? (xdpMode === 'native' || xdpMode === 'generic' ? xdpMode : (rec?.xdpMode ?? null)) : null,
    xdpModeReason: obs.hook === 'xdp' && rec?.nativeRefused ? `the driver refused native XDP: ${rec.nativeRefused}` : null,
    programId: obs.program?.id ?? null,
    linkId: obs.link?.attached && obs.link.id ? obs.link.id : null,
    attached: obs.link?.attached ?? false,
    rules: [...slots]
      .sort((a, b) => (order.get(a.rule) ?? Infinity) - (order.get(b.rule) ?? Infinity) || a.slot - b.slot)
      .map((s) => row(s.rule, s.slot, ruleOf.get(s.rule)?.action, ruleOf.get(s.rule)?.audit)),
    default: row(null, 0, want?.defaultAction, want?.defaultAudit),
    stats: st ? { notIp: String(st[FilterStat.notIp] ?? 0n), noPorts: String(st[FilterStat.noPorts] ?? 0n), eventsLost: String(st[FilterStat.eventsLost] ?? 0n) } : null,
  };
}

/** Every PacketFilter policy (desired, or only recorded in a filter) as a status view; counters read when readers are given. */
export function filterViews(
  desired: DesiredFilters,
  observed: ObservedFilters,
  counters: FilterCounterReader | undefined,
  stats?: FilterStatsReader,
): PolicyView[] {
  const filters = observed.filters.filter((f) => !f.error);
  const wantByKey = new Map(desired.filters.map((f) => [f.key, f]));
  const recorded = new Map<string, { sourceFile: string; filters: ObservedFilter[] }>();
  for (const f of filters)
    for (const p of f.policies) {
      const e = recorded.get(p.name) ?? { sourceFile: p.sourceFile, filters: [] };
      e.filters.push(f);
      recorded.set(p.name, e);
    }
  const names = [...new Set([...desired.policies.map((p) => p.name), ...recorded.keys()])].sort();
  return names.map((name) => {
    const d = desired.policies.find((p) => p.name === name);
    const rec = recorded.get(name);
    const mine = filters.filter((f) => f.policies.some((p) => p.name === name));
    const wantKeys = d?.filters ?? [];
    const attached = wantKeys.every((k) => mine.some((f) => f.key === k && f.link?.attached));
    const details: FilterStatusDetails = {
      hook: d?.hook ?? mine[0]?.hook ?? null,
      interfaces: mine.map((f) => interfaceStatus(f, wantByKey.get(f.key), name, counters ?? (() => new Map()), counters ? stats : undefined)),
    };
    return {
      name,
      sourceFile: d?.sourceFile ?? rec?.sourceFile ?? null,
      netns: d?.netns ?? mine[0]?.attachment?.netns ?? null,
      desired: d !== undefined,
      domains: [...new Set([...wantKeys, ...mine.map((f) => f.key)])].map((k) => `filter ${k}`),
      notReady:
        wantKeys.length === 0 ? { reason: 'NoInterface', message: 'no interface to filter' } : !attached ? { reason: 'NotConverged', message: 'a filter is not attached' } : undefined,
      readyMessage: `the kernel matches the policy on ${wantKeys.length} interface${wantKeys.length === 1 ? '' : 's'}`,
      details: { ...details },
    };
  });
}

/** The readable status of PacketFilter policies. */
export function renderFilterStatus(statuses: readonly PolicyStatus[]): string[] {
  const out: string[] = [];
  for (const s of statuses as readonly FilterPolicyStatus[]) {
    out.push(...renderStatusHead(s, `PacketFilter ${s.hook ?? '-'}  netns ${s.netns ?? '(own)'}  ${s.sourceFile ?? ''}`));
    for (const i of s.interfaces) {
      const how = !i.attached
        ? 'not attached'
        : i.method === 'xdp'
          ? `XDP ${i.xdpMode ?? '?'} mode${i.xdpModeReason ? ` (${i.xdpModeReason})` : ''}`
          : i.method === 'tcx'
            ? 'tcx link'
            : 'cls_bpf filter (no tcx)';
      out.push(`  interface ${i.interface} (ifindex ${i.ifindex}) ${i.hook}: ${how}, program ${i.programId ?? '-'}, link ${i.linkId ?? '-'}`);
      for (const c of [...i.rules, i.default])
        out.push(
          `    ${c.rule === null ? 'default' : `rule ${c.rule}`}${c.action ? ` (${c.action}${c.mode === 'audit' && c.action === 'drop' ? ', audit' : ''})` : ''}: ${c.packets} packets, ${c.bytes} bytes` +
            (c.action === 'drop' && (c.mode === 'audit' || c.wouldDropPackets !== '0') ? `, ${c.wouldDropPackets} would be dropped (${c.wouldDropBytes} bytes)` : ''),
        );
      if (i.stats) out.push(`    not IP (passed): ${i.stats.notIp} packets; without ports: ${i.stats.noPorts}; events lost: ${i.stats.eventsLost}`);
    }
  }
  return out;
}
