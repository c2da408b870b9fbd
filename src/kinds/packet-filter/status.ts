/**
 * Status of PacketFilter policies: conditions (Ready, Degraded, Failed, as
 * for PortSteering), and per interface the attachment (XDP mode, tcx or
 * cls_bpf, live ids) and every rule's packet and byte counters, computed from
 * a (dry-run) reconcile report and the kernel's counters.
 */
import { resolve } from 'node:path';
import type { ObservedFilter } from './store.js';
import type { FilterAction, FilterHook } from './document.js';
import type { DesiredFilter } from './model.js';
import type { ReconcileReport } from '../../reconciler/reconcile.js';
import type { Condition } from '../port-steering/status.js';

/** Counters of one rule (or of the default action) on one interface. */
export interface RuleCounters {
  /** Rule name; null for the default action. */
  rule: string | null;
  action: FilterAction | null;
  packets: string;
  bytes: string;
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

/** Status of one PacketFilter policy. */
export interface FilterPolicyStatus {
  name: string;
  kind: 'PacketFilter';
  sourceFile: string | null;
  netns: string | null;
  hook: FilterHook | null;
  conditions: Condition[];
  interfaces: FilterInterfaceStatus[];
}

/** Counter reader: packets and bytes per slot of the filter in `dir`. */
export type FilterCounterReader = (dir: string, slots: number[]) => Map<number, { packets: bigint; bytes: bigint }>;
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
  const actionOf = new Map((want?.rules ?? []).filter((r) => r.policy === policy).map((r) => [r.rule, r.action]));
  const order = new Map((want?.rules ?? []).map((r, i) => [r.rule, i]));
  const count = (slot: number) => values.get(slot) ?? { packets: 0n, bytes: 0n };
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
      .map((s) => ({ rule: s.rule, action: actionOf.get(s.rule) ?? null, packets: count(s.slot).packets.toString(), bytes: count(s.slot).bytes.toString() })),
    default: { rule: null, action: want?.defaultAction ?? null, packets: count(0).packets.toString(), bytes: count(0).bytes.toString() },
    stats: st ? { notIp: String(st[0] ?? 0n), noPorts: String(st[2] ?? 0n), eventsLost: String(st[3] ?? 0n) } : null,
  };
}

/** Builds every PacketFilter policy's status from a dry-run report. */
export function filterStatuses(r: ReconcileReport, counters: FilterCounterReader, stats?: FilterStatsReader): FilterPolicyStatus[] {
  const desired = r.desired.filters;
  const observed = r.observed.filters?.filters ?? [];
  const wantByKey = new Map((desired?.filters ?? []).map((f) => [f.key, f]));
  const pending = new Map<string, string[]>();
  for (const a of r.plan.actions) {
    if (!a.dispatcher?.startsWith('filter ') || a.kind === 'noop') continue;
    const key = a.dispatcher.slice('filter '.length);
    pending.set(key, [...(pending.get(key) ?? []), `${a.kind} ${a.object}`]);
  }
  const loadErrors = new Map<string, string>();
  for (const p of r.load.problems)
    if (p.severity === 'error' && !loadErrors.has(resolve(p.file))) loadErrors.set(resolve(p.file), `${p.file}:${p.line}:${p.column}: ${p.path}: ${p.message}`);

  const recorded = new Map<string, { sourceFile: string; filters: ObservedFilter[] }>();
  for (const f of observed)
    for (const p of f.policies) {
      const e = recorded.get(p.name) ?? { sourceFile: p.sourceFile, filters: [] };
      e.filters.push(f);
      recorded.set(p.name, e);
    }
  const names = new Set([...(desired?.policies ?? []).map((p) => p.name), ...recorded.keys()]);
  const out: FilterPolicyStatus[] = [];
  for (const name of [...names].sort()) {
    const d = desired?.policies.find((p) => p.name === name);
    const rec = recorded.get(name);
    const sourceFile = d?.sourceFile ?? rec?.sourceFile ?? null;
    const conditions: Condition[] = [];
    const loadError = sourceFile ? loadErrors.get(sourceFile) : undefined;
    const failed = r.plan.problems.filter((p) => p.policy === name && p.condition === 'Failed');
    if (loadError) conditions.push({ type: 'Failed', status: true, reason: 'InvalidPolicy', message: loadError });
    else if (failed.length) conditions.push({ type: 'Failed', status: true, reason: failed[0]!.reason, message: failed.map((p) => p.message).join('; ') });
    else if (!d) conditions.push({ type: 'Failed', status: true, reason: 'Removed', message: 'no policy file defines it any more; the next reconcile removes it' });
    const degraded = r.plan.problems.filter((p) => p.policy === name && p.condition === 'Degraded');
    if (degraded.length) conditions.push({ type: 'Degraded', status: true, reason: degraded[0]!.reason, message: degraded.map((p) => p.message).join('; ') });
    const mine = observed.filter((f) => f.policies.some((p) => p.name === name));
    const wantKeys = d?.filters ?? [];
    const todo = [...new Set([...wantKeys, ...mine.map((f) => f.key)])].flatMap((k) => pending.get(k) ?? []);
    const attached = wantKeys.every((k) => mine.some((f) => f.key === k && f.link?.attached));
    const ready = !conditions.some((c) => c.type === 'Failed') && todo.length === 0 && wantKeys.length > 0 && attached;
    conditions.unshift({
      type: 'Ready',
      status: ready,
      reason: ready ? 'Converged' : todo.length ? 'Pending' : wantKeys.length === 0 ? 'NoInterface' : 'NotConverged',
      message: ready
        ? `the kernel matches the policy on ${wantKeys.length} interface${wantKeys.length === 1 ? '' : 's'}`
        : todo.length
          ? `reconcile would ${todo.slice(0, 3).join('; ')}${todo.length > 3 ? ` and ${todo.length - 3} more` : ''}`
          : wantKeys.length === 0
            ? 'no interface to filter'
            : 'a filter is not attached',
    });
    out.push({
      name,
      kind: 'PacketFilter',
      sourceFile,
      netns: d?.netns ?? mine[0]?.attachment?.netns ?? null,
      hook: d?.hook ?? mine[0]?.hook ?? null,
      conditions,
      interfaces: mine.map((f) => interfaceStatus(f, wantByKey.get(f.key), name, counters, stats)),
    });
  }
  return out;
}

/** The readable status of PacketFilter policies. */
export function renderFilterStatusText(statuses: FilterPolicyStatus[]): string {
  const out: string[] = [];
  for (const s of statuses) {
    const flags = s.conditions.filter((c) => c.status).map((c) => c.type);
    out.push(`${s.name}  ${flags.length ? flags.join(',') : 'NotReady'}  PacketFilter ${s.hook ?? '-'}  netns ${s.netns ?? '(own)'}  ${s.sourceFile ?? ''}`);
    for (const c of s.conditions) if (c.status || c.type === 'Ready') out.push(`  ${c.type}=${c.status ? 'True' : 'False'} ${c.reason}: ${c.message}`);
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
        out.push(`    ${c.rule === null ? 'default' : `rule ${c.rule}`}${c.action ? ` (${c.action})` : ''}: ${c.packets} packets, ${c.bytes} bytes`);
      if (i.stats) out.push(`    not IP (passed): ${i.stats.notIp} packets; without ports: ${i.stats.noPorts}; events lost: ${i.stats.eventsLost}`);
    }
  }
  return out.join('\n');
}
