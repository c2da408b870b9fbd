/**
 * Rule compilation for the connect guard (pure): from the ordered rules of
 * every policy on a cgroup to the class tries, decision table and config of
 * one generation (bpf/connect_policy.h).
 *
 * Destination addresses and ports are partitioned into classes over the
 * rules of all the guard's policies (src/policy/net/rule-classes.ts). Per
 * policy, rules are grouped by pattern (which of protocol, destination and
 * port they constrain); for each (policy, pattern) the decision table maps
 * the class ids to the policy's first rule of that pattern that matches. A
 * connect costs one lookup per field and one per (policy, pattern) in use,
 * not one per rule.
 */
import type { PortRange } from '../../policy/net/ports.js';
import { addressClasses, portClasses } from '../../policy/net/rule-classes.js';
import { ActionCode, Match, MAX_ADDRS, MAX_DECISIONS, MAX_POLICIES, MAX_PORTS, PATTERN_END, ProtoClass, type AddrEntry, type DecisionEntry, type DecisionValue, type GuardConfig, type PortEntry } from './layout.js';

/** One rule of a policy, in the policy's match order, with its counter slot. Absent fields match everything. */
export interface GuardRule {
  protocol?: 'tcp' | 'udp';
  destinations?: readonly string[];
  ports?: readonly PortRange[];
  action: 'allow' | 'deny';
  audit: boolean;
  slot: number;
}

/** One policy of the guard: its rules and its default. */
export interface GuardPolicy {
  rules: readonly GuardRule[];
  defaultAction: 'allow' | 'deny';
  defaultAudit: boolean;
  defaultSlot: number;
  /** Report every Nth deny or would-deny (0 = never). */
  sample: number;
}

/** The tables of one generation. */
export interface CompiledGuard {
  addr: AddrEntry[];
  port: PortEntry[];
  decisions: DecisionEntry[];
  config: GuardConfig;
}

/** Thrown when the rules do not fit the maps; the message says why. */
export class GuardCompileError extends Error {
  override name = 'GuardCompileError';
}

/** The pattern (CP_MATCH_* bits) of a rule: the fields it constrains. */
export function guardRulePattern(r: Pick<GuardRule, 'protocol' | 'destinations' | 'ports'>): number {
  return (r.protocol ? Match.PROTO : 0) | (r.destinations ? Match.DST : 0) | (r.ports ? Match.PORT : 0);
}

function decisionValue(action: 'allow' | 'deny', audit: boolean, slot: number, sample: number, order: number): DecisionValue {
  return { order, slot, sample: action === 'deny' ? sample : 0, action: ActionCode[action], audit: action === 'deny' && audit };
}

/**
 * Most entries one generation may use of each table: both generations share
 * the maps (the old one stays until the next write), so each gets half.
 */
export const GENERATION_LIMITS = { decisions: MAX_DECISIONS / 2, addrs: MAX_ADDRS / 2, ports: MAX_PORTS / 2 } as const;

/**
 * Compiles the policies of one guard (index = policy index in the keys).
 * Throws GuardCompileError when there are more than MAX_POLICIES policies or
 * a table of the generation would exceed its {@link GENERATION_LIMITS}.
 */
export function compileGuard(policies: readonly GuardPolicy[]): CompiledGuard {
  if (policies.length > MAX_POLICIES) throw new GuardCompileError(`${policies.length} policies on one cgroup, at most ${MAX_POLICIES}`);
  const all = policies.flatMap((p, policy) => p.rules.map((rule, order) => ({ rule, policy, order })));
  const dst = addressClasses(all.map((r) => r.rule.destinations));
  const port = portClasses(all.map((r) => r.rule.ports));
  const decisions = new Map<string, DecisionEntry>();
  const scan: GuardConfig['scan'] = [];
  policies.forEach((p, policy) => {
    const patterns = new Set<number>();
    all.forEach(({ rule, policy: owner, order }, index) => {
      if (owner !== policy) return;
      const pattern = guardRulePattern(rule);
      const axes: number[][] = [
        rule.protocol ? [ProtoClass[rule.protocol]] : [0],
        rule.destinations ? (dst.classesOf.get(index) ?? []) : [0],
        rule.ports ? (port.classesOf.get(index) ?? []) : [0],
      ];
      const combos = axes.reduce((n, a) => n * a.length, 1);
      if (combos === 0) return; // an empty list matches nothing
      if (decisions.size + combos > GENERATION_LIMITS.decisions)
        throw new GuardCompileError(`the rules need more than ${GENERATION_LIMITS.decisions} decision entries (rule ${order + 1} of policy ${policy + 1} alone adds up to ${combos})`);
      patterns.add(pattern);
      const value = decisionValue(rule.action, rule.audit, rule.slot, p.sample, order);
      for (const proto of axes[0]!)
        for (const d of axes[1]!)
          for (const pt of axes[2]!) {
            const key = `${policy},${pattern},${proto},${d},${pt}`;
            if (!decisions.has(key)) decisions.set(key, { policy, pattern, proto, dst: d, port: pt, ...value });
          }
    });
    for (const pattern of [...patterns].sort((a, b) => a - b)) scan.push({ policy, pattern });
    scan.push({ policy, pattern: PATTERN_END });
  });
  if (dst.entries.length > GENERATION_LIMITS.addrs)
    throw new GuardCompileError(`the rules need ${dst.entries.length} destination prefix entries, more than the ${GENERATION_LIMITS.addrs} a generation holds`);
  if (port.entries.length > GENERATION_LIMITS.ports)
    throw new GuardCompileError(`the rules need ${port.entries.length} port block entries, more than the ${GENERATION_LIMITS.ports} a generation holds`);
  return {
    addr: dst.entries,
    port: port.entries,
    decisions: [...decisions.values()],
    config: {
      lookups: (dst.entries.length ? Match.DST : 0) | (port.entries.length ? Match.PORT : 0),
      scan,
      defaults: policies.map((p) => decisionValue(p.defaultAction, p.defaultAudit, p.defaultSlot, p.sample, 0)),
    },
  };
}

/** The guard's decision for one connect, computed from the compiled tables as the program does (for tests). */
export function decideCompiled(
  c: CompiledGuard,
  connect: { family: 4 | 6; address: bigint; port: number; protocol: 'tcp' | 'udp' | 'other' },
): { allowed: boolean; decided: Array<{ policy: number; slot: number; verdict: 'allow' | 'deny' | 'would-deny' }> } {
  const longest = <E extends { cls: number }>(entries: E[], contains: (e: E) => boolean, length: (e: E) => number) =>
    entries.filter(contains).sort((a, b) => length(b) - length(a))[0]?.cls ?? 0;
  const bits = connect.family === 4 ? 32 : 128;
  const dstCls =
    c.config.lookups & Match.DST
      ? longest(
          c.addr,
          (e) => e.family === connect.family && (e.length === 0 || connect.address >> BigInt(bits - e.length) === e.address >> BigInt(bits - e.length)),
          (e) => e.length,
        )
      : 0;
  const portCls =
    c.config.lookups & Match.PORT && connect.protocol !== 'other'
      ? longest(c.port, (e) => connect.port >> (16 - e.bits) === e.port >> (16 - e.bits), (e) => e.bits)
      : 0;
  const proto = connect.protocol === 'other' ? 0 : ProtoClass[connect.protocol];
  const byKey = new Map(c.decisions.map((d) => [`${d.policy},${d.pattern},${d.proto},${d.dst},${d.port}`, d]));
  const decided: Array<{ policy: number; slot: number; verdict: 'allow' | 'deny' | 'would-deny' }> = [];
  let best: DecisionValue | undefined;
  let allowed = true;
  for (const e of c.config.scan) {
    if (e.pattern === PATTERN_END) {
      const d = best ?? c.config.defaults[e.policy]!;
      const verdict = d.action === ActionCode.allow ? 'allow' : d.audit ? 'would-deny' : 'deny';
      if (verdict === 'deny') allowed = false;
      decided.push({ policy: e.policy, slot: d.slot, verdict });
      best = undefined;
      continue;
    }
    if ((e.pattern & Match.DST && !dstCls) || (e.pattern & Match.PORT && !portCls)) continue;
    const key = `${e.policy},${e.pattern},${e.pattern & Match.PROTO ? proto : 0},${e.pattern & Match.DST ? dstCls : 0},${e.pattern & Match.PORT ? portCls : 0}`;
    const d = byKey.get(key);
    if (d && (!best || d.order < best.order)) best = d;
  }
  return { allowed, decided };
}
