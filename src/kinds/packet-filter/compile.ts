/**
 * Rule compilation for the packet filter (pure): from an ordered rule list
 * to the class tries and decision tables of bpf/packet_filter.h.
 *
 * For each field some rule constrains (source and destination address,
 * source and destination port) the values are partitioned into classes: two
 * values are in the same class when the same rules' prefixes (or port ranges)
 * contain them. A packet's class ids come from one lookup per field (a
 * longest-prefix match for addresses, an array index for ports). Rules are
 * grouped by pattern (which fields they constrain):
 *
 * - a rule that constrains no field but maybe the protocol goes into the
 *   config (`first`, per protocol);
 * - a rule that constrains one field (and maybe the protocol) goes into the
 *   class values of that field (`first`, per protocol): the class lookup
 *   already names the first such rule;
 * - for each pattern of two fields or more, the decision table maps the
 *   pattern's class ids to the first rule of that pattern that matches.
 *
 * The packet takes the first rule over all of them, so the per-packet work is
 * bounded by the number of multi-field patterns (at most 22, usually none),
 * not by the number of rules.
 */
import type { PortRange as Range } from '../../policy/net/ports.js';
import { addressClasses, portClasses } from '../../policy/net/rule-classes.js';
import {
  Dim,
  FilterActionCode,
  Match,
  MAX_DECISIONS,
  MAX_RULES,
  NO_RULE,
  ProtoClass,
  ProtoIndex,
  isMultiField,
  type AddrEntry,
  type DecisionEntry,
  type FilterConfig,
  type PortEntry,
  type RuleEntry,
} from './layout.js';

/** What a rule matches on. Absent fields match everything. */
export interface RuleMatch {
  protocol?: 'tcp' | 'udp' | 'icmp';
  srcPrefixes?: readonly string[];
  dstPrefixes?: readonly string[];
  srcPorts?: readonly Range[];
  dstPorts?: readonly Range[];
}

/** One rule in match order, with its counter slot. Absent fields match everything. */
export interface CompileRule extends RuleMatch {
  slot: number;
  action: 'pass' | 'drop';
  /** A drop is audited: counted as would-drop and reported, and the packet passes (default: enforced). */
  audit?: boolean;
  /** Report every Nth drop or would-drop (0 = never). */
  sample: number;
}

/** The tables of one generation. */
export interface CompiledRuleset {
  addr: AddrEntry[];
  port: PortEntry[];
  /** The multi-field patterns' decisions. */
  decisions: DecisionEntry[];
  /** What each rule does, by match order (the `rules` slice of the generation). */
  rules: RuleEntry[];
  config: FilterConfig;
}

/** Thrown when a rule set does not fit the maps; the message says why. */
export class CompileError extends Error {
  override name = 'CompileError';
}

/** The pattern (PF_MATCH_* bits) of a rule: the fields it constrains. */
export function rulePattern(r: Omit<CompileRule, 'slot' | 'action' | 'audit' | 'sample'>): number {
  return (
    (r.protocol ? Match.PROTO : 0) |
    (r.srcPrefixes ? Match.SRC : 0) |
    (r.dstPrefixes ? Match.DST : 0) |
    (r.srcPorts ? Match.SPORT : 0) |
    (r.dstPorts ? Match.DPORT : 0)
  );
}

/** The PF_PIDX_* a rule's protocol matches (all four without a protocol). */
function protoIndexes(protocol: CompileRule['protocol']): number[] {
  return protocol ? [ProtoIndex[protocol]] : [ProtoIndex.other, ProtoIndex.icmp, ProtoIndex.tcp, ProtoIndex.udp];
}

/** The first rule (smallest order) per protocol index, for each class of one field. */
class FirstRules {
  readonly #byClass = new Map<number, number[]>();

  note(cls: number, pidxs: readonly number[], order: number): void {
    let first = this.#byClass.get(cls);
    if (!first) this.#byClass.set(cls, (first = [NO_RULE, NO_RULE, NO_RULE, NO_RULE]));
    for (const p of pidxs) if (order < first[p]!) first[p] = order;
  }

  of(cls: number): number[] {
    return [...(this.#byClass.get(cls) ?? [NO_RULE, NO_RULE, NO_RULE, NO_RULE])];
  }
}

/** The class entries of one field, tagged with the field (source or destination). */
function withDim<E>(dim: 0 | 1, c: { entries: E[]; classesOf: Map<number, number[]> }): { entries: Array<E & { dim: 0 | 1 }>; classesOf: Map<number, number[]> } {
  return { entries: c.entries.map((e) => ({ ...e, dim })), classesOf: c.classesOf };
}

/**
 * Compiles rules (in match order) into the tables of one generation.
 * Throws CompileError when the decision table would exceed MAX_DECISIONS
 * entries (rules whose lists multiply: many prefixes times many port ranges
 * that other rules split into many classes), or when there are more than
 * MAX_RULES rules.
 */
export function compileRules(rules: readonly CompileRule[], defaults: { action: 'pass' | 'drop'; audit?: boolean; sample: number }): CompiledRuleset {
  const src = withDim(Dim.src, addressClasses(rules.map((r) => r.srcPrefixes)));
  const dst = withDim(Dim.dst, addressClasses(rules.map((r) => r.dstPrefixes)));
  const sport = withDim(Dim.src, portClasses(rules.map((r) => r.srcPorts)));
  const dport = withDim(Dim.dst, portClasses(rules.map((r) => r.dstPorts)));
  if (rules.length > MAX_RULES) throw new CompileError(`${rules.length} rules, more than the ${MAX_RULES} a filter holds`);
  const decisions = new Map<string, DecisionEntry>();
  // One-field rules, folded into the class values of their field; no-field rules into the config.
  const firsts = { src: new FirstRules(), dst: new FirstRules(), sport: new FirstRules(), dport: new FirstRules() };
  const noField = new FirstRules();
  let patterns = 0;
  rules.forEach((rule, order) => {
    const pattern = rulePattern(rule);
    const pidxs = protoIndexes(rule.protocol);
    if (!isMultiField(pattern)) {
      const field = rule.srcPrefixes ? 'src' : rule.dstPrefixes ? 'dst' : rule.srcPorts ? 'sport' : rule.dstPorts ? 'dport' : undefined;
      const classes = field === undefined ? [0] : ({ src, dst, sport, dport }[field].classesOf.get(order) ?? []);
      if (classes.length === 0) return; // an empty list matches nothing
      patterns = (patterns | (1 << pattern)) >>> 0;
      for (const cls of classes) (field === undefined ? noField : firsts[field]).note(cls, pidxs, order);
      return;
    }
    const axes: number[][] = [
      rule.protocol ? [ProtoClass[rule.protocol]] : [0],
      rule.srcPrefixes ? (src.classesOf.get(order) ?? []) : [0],
      rule.dstPrefixes ? (dst.classesOf.get(order) ?? []) : [0],
      rule.srcPorts ? (sport.classesOf.get(order) ?? []) : [0],
      rule.dstPorts ? (dport.classesOf.get(order) ?? []) : [0],
    ];
    const combos = axes.reduce((n, a) => n * a.length, 1);
    if (combos === 0) return; // an empty list matches nothing
    if (decisions.size + combos > MAX_DECISIONS)
      throw new CompileError(`the rules need more than ${MAX_DECISIONS} decision entries (rule ${order + 1} alone adds up to ${combos})`);
    patterns = (patterns | (1 << pattern)) >>> 0; // unsigned: pattern 31 (all five fields) is bit 31
    const action = FilterActionCode[rule.action];
    const sample = rule.action === 'drop' ? rule.sample : 0;
    const audit = rule.action === 'drop' && rule.audit === true;
    for (const proto of axes[0]!)
      for (const s of axes[1]!)
        for (const d of axes[2]!)
          for (const sp of axes[3]!)
            for (const dp of axes[4]!) {
              const key = `${pattern},${proto},${s},${d},${sp},${dp}`;
              if (!decisions.has(key))
                decisions.set(key, { pattern, proto, src: s, dst: d, sport: sp, dport: dp, order, slot: rule.slot, sample, action, audit });
            }
  });
  const lookups =
    (src.entries.length ? Match.SRC : 0) | (dst.entries.length ? Match.DST : 0) | (sport.entries.length ? Match.SPORT : 0) | (dport.entries.length ? Match.DPORT : 0);
  // Ports are read for TCP and UDP only: their class values keep those two.
  const portFirst = (f: FirstRules, cls: number) => {
    const first = f.of(cls);
    return [first[ProtoIndex.tcp]!, first[ProtoIndex.udp]!];
  };
  return {
    addr: [...src.entries.map((e) => ({ ...e, first: firsts.src.of(e.cls) })), ...dst.entries.map((e) => ({ ...e, first: firsts.dst.of(e.cls) }))],
    port: [...sport.entries.map((e) => ({ ...e, first: portFirst(firsts.sport, e.cls) })), ...dport.entries.map((e) => ({ ...e, first: portFirst(firsts.dport, e.cls) }))],
    decisions: [...decisions.values()],
    rules: rules.map((rule, order) => ({
      order,
      slot: rule.slot,
      sample: rule.action === 'drop' ? rule.sample : 0,
      action: FilterActionCode[rule.action],
      audit: rule.action === 'drop' && rule.audit === true,
    })),
    config: {
      first: noField.of(0),
      patterns,
      lookups,
      defaultAction: FilterActionCode[defaults.action],
      defaultAudit: defaults.action === 'drop' && defaults.audit === true,
      defaultSample: defaults.action === 'drop' ? defaults.sample : 0,
    },
  };
}
