/**
 * Status of ConnectPolicy policies: conditions, the cgroup and its links,
 * and per rule (and the default) how many connects it decided, denied, and
 * would have denied in audit mode, read from the guard's per-CPU counters.
 */
import type { PolicyView } from '../../reconciler/kind.js';
import type { PolicyStatus } from '../../reconciler/model.js';
import { renderStatusHead } from '../../reconciler/render.js';
import type { ConnectAction, ConnectMode } from './document.js';
import { GUARD_HOOKS, type GuardHook } from './layout.js';
import type { DesiredGuard, DesiredGuards } from './model.js';
import type { GuardCounters, ObservedGuard, ObservedGuards } from './store.js';

/** Counters of one rule (or of the policy's default). */
export interface ConnectRuleCounters {
  /** Rule name; null for the default. */
  rule: string | null;
  action: ConnectAction | null;
  mode: ConnectMode | null;
  connects: string;
  denies: string;
  wouldDeny: string;
}

/** The ConnectPolicy fields of a policy's status. */
export interface ConnectStatusDetails {
  /** spec.cgroup as written, and the cgroup it resolves to. */
  cgroup: string | null;
  cgroupPath: string | null;
  cgroupId: string | null;
  mode: ConnectMode | null;
  /** Link ids per hook (null: not attached). */
  links: Record<GuardHook, number | null>;
  rules: ConnectRuleCounters[];
  default: ConnectRuleCounters | null;
}

/** Status of one ConnectPolicy policy. */
export type ConnectPolicyStatus = PolicyStatus & ConnectStatusDetails;

/** Counter reader: the counters per slot of the guard in `dir`. */
export type GuardCounterReader = (dir: string, slots: number[]) => Map<number, GuardCounters>;

const ZERO: GuardCounters = { connects: 0n, denies: 0n, wouldDeny: 0n };

function countersOf(obs: ObservedGuard, want: DesiredGuard | undefined, policy: string, read: GuardCounterReader | undefined): Pick<ConnectStatusDetails, 'rules' | 'default'> {
  const slots = obs.slots.filter((s) => s.policy === policy);
  const values = read?.(obs.dir, slots.map((s) => s.slot)) ?? new Map<number, GuardCounters>();
  const p = want?.policies.find((x) => x.name === policy);
  const order = new Map((p?.rules ?? []).map((r, i) => [r.rule, i]));
  const row = (rule: string, slot: number): ConnectRuleCounters => {
    const c = values.get(slot) ?? ZERO;
    const r = p?.rules.find((x) => x.rule === rule);
    const action = rule === '' ? (p?.defaultAction ?? null) : (r?.action ?? null);
    const audit = rule === '' ? p?.defaultAudit : r?.audit;
    return { rule: rule === '' ? null : rule, action, mode: audit === undefined ? null : audit ? 'audit' : 'enforce', connects: String(c.connects), denies: String(c.denies), wouldDeny: String(c.wouldDeny) };
  };
  const def = slots.find((s) => s.rule === '');
  return {
    rules: slots
      .filter((s) => s.rule !== '')
      .sort((a, b) => (order.get(a.rule) ?? Infinity) - (order.get(b.rule) ?? Infinity) || a.slot - b.slot)
      .map((s) => row(s.rule, s.slot)),
    default: def ? row('', def.slot) : null,
  };
}

/** Every ConnectPolicy policy (desired, or only recorded in a guard) as a status view; counters read when a reader is given. */
export function guardViews(desired: DesiredGuards, observed: ObservedGuards, read: GuardCounterReader | undefined): PolicyView[] {
  const guards = observed.guards.filter((g) => !g.error);
  const wantByKey = new Map(desired.guards.map((g) => [g.key, g]));
  const names = [...new Set([...desired.policies.map((p) => p.name), ...guards.flatMap((g) => g.policies.map((p) => p.name))])].sort();
  return names.map((name) => {
    const d = desired.policies.find((p) => p.name === name);
    const mine = guards.find((g) => (d?.guard ? g.key === d.guard : g.policies.some((p) => p.name === name)));
    const recorded = mine?.policies.find((p) => p.name === name);
    const attached = mine !== undefined && GUARD_HOOKS.every((h) => mine.hooks[h].link?.attached);
    const links = Object.fromEntries(GUARD_HOOKS.map((h) => [h, mine?.hooks[h].link?.attached ? mine.hooks[h].link!.id : null])) as Record<GuardHook, number | null>;
    const details: ConnectStatusDetails = {
      cgroup: d?.cgroup ?? null,
      cgroupPath: d?.cgroupPath ?? mine?.guard?.cgroupPath ?? null,
      cgroupId: mine?.cgroupId ?? null,
      mode: d?.mode ?? null,
      links,
      ...(mine && recorded ? countersOf(mine, mine ? wantByKey.get(mine.key) : undefined, name, read) : { rules: [], default: null }),
    };
    return {
      name,
      sourceFile: d?.sourceFile ?? recorded?.sourceFile ?? null,
      netns: null,
      desired: d !== undefined,
      domains: [...new Set([d?.guard, mine?.key].filter((k): k is string => k !== undefined))].map((k) => `connect ${k}`),
      notReady: d && !d.guard ? { reason: 'NoCgroup', message: 'no cgroup to guard' } : !attached || !recorded ? { reason: 'NotConverged', message: 'the guard is not attached to every hook' } : undefined,
      readyMessage: `the kernel guards the connects of cgroup ${details.cgroupPath}`,
      details: { ...details },
    };
  });
}

/** The readable status of ConnectPolicy policies. */
export function renderGuardStatus(statuses: readonly PolicyStatus[]): string[] {
  const out: string[] = [];
  for (const s of statuses as readonly ConnectPolicyStatus[]) {
    out.push(...renderStatusHead(s, `ConnectPolicy ${s.mode ?? '-'}  cgroup ${s.cgroupPath ?? s.cgroup ?? '-'}  ${s.sourceFile ?? ''}`));
    const links = GUARD_HOOKS.map((h) => `${h} ${s.links[h] ?? '-'}`).join(', ');
    out.push(`  cgroup id ${s.cgroupId ?? '-'}; links: ${links}`);
    for (const c of [...s.rules, ...(s.default ? [s.default] : [])])
      out.push(
        `    ${c.rule === null ? 'default' : `rule ${c.rule}`}${c.action ? ` (${c.action}${c.mode === 'audit' && c.action === 'deny' ? ', audit' : ''})` : ''}: ${c.connects} connects, ${c.denies} denied, ${c.wouldDeny} would be denied`,
      );
  }
  return out;
}
