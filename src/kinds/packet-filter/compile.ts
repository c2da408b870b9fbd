/**
 * Rule compilation for the packet filter (pure): from an ordered rule list
 * to the class tries and decision tables of bpf/packet_filter.h.
 *
 * For each field some rule constrains (source and destination address,
 * source and destination port) the values are partitioned into classes: two
 * values are in the same class when the same rules' prefixes (or port ranges)
 * contain them. A packet's class ids come from one longest-prefix lookup per
 * field. Rules are grouped by pattern (which fields they constrain); for each
 * pattern the decision table maps the pattern's class ids to the first rule
 * of that pattern that matches. The packet takes the first rule over all
 * patterns, so the per-packet work is bounded by the number of patterns
 * (at most 32), not by the number of rules.
 */
import { portRangeBlocks, type PortRange as Range } from '../../policy/net/ports.js';
import {
  Dim,
  FilterActionCode,
  Match,
  MAX_DECISIONS,
  ProtoClass,
  type AddrEntry,
  type DecisionEntry,
  type FilterConfig,
  type PortEntry,
} from './layout.js';
import { parseCidr, prefixMask, type IpPrefix } from '../../policy/net/cidr.js';

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
  /** Report every Nth drop (0 = never). */
  sample: number;
}

/** The tables of one generation. */
export interface CompiledRuleset {
  addr: AddrEntry[];
  port: PortEntry[];
  decisions: DecisionEntry[];
  config: FilterConfig;
}

/** Thrown when a rule set does not fit the maps; the message says why. */
export class CompileError extends Error {
  override name = 'CompileError';
}

/** The pattern (PF_MATCH_* bits) of a rule: the fields it constrains. */
export function rulePattern(r: Omit<CompileRule, 'slot' | 'action' | 'sample'>): number {
  return (
    (r.protocol ? Match.PROTO : 0) |
    (r.srcPrefixes ? Match.SRC : 0) |
    (r.dstPrefixes ? Match.DST : 0) |
    (r.srcPorts ? Match.SPORT : 0) |
    (r.dstPorts ? Match.DPORT : 0)
  );
}

/** Class ids by the set of rules they stand for (a canonical text of the sorted rule indexes). */
class ClassNumbering {
  readonly #ids = new Map<string, number>();
  /** For each class id (index), the rules it contains. */
  readonly members: number[][] = [[]];

  id(rules: number[]): number {
    const key = rules.join(',');
    let id = this.#ids.get(key);
    if (id === undefined) {
      id = this.members.length;
      this.#ids.set(key, id);
      this.members.push(rules);
    }
    return id;
  }
}

function prefixKey(p: IpPrefix): string {
  return `${p.family}/${p.length}/${p.address.toString(16)}`;
}

/**
 * Address classes of one field. Each distinct prefix gets the class of every
 * rule whose prefixes contain it (its own and its ancestors'); a prefix whose
 * class equals its nearest ancestor's needs no entry of its own.
 */
function addressClasses(dim: 0 | 1, lists: Array<readonly string[] | undefined>): { entries: AddrEntry[]; classesOf: Map<number, number[]> } {
  const rulesOf = new Map<string, { prefix: IpPrefix; rules: number[] }>();
  const lengths: Record<4 | 6, Set<number>> = { 4: new Set(), 6: new Set() };
  lists.forEach((list, rule) => {
    for (const text of list ?? []) {
      const parsed = parseCidr(text);
      if (!parsed.ok) throw new CompileError(`invalid prefix "${text}": ${parsed.reason}`);
      const key = prefixKey(parsed.prefix);
      const entry = rulesOf.get(key) ?? { prefix: parsed.prefix, rules: [] };
      if (entry.rules[entry.rules.length - 1] !== rule) entry.rules.push(rule);
      rulesOf.set(key, entry);
      lengths[parsed.prefix.family].add(parsed.prefix.length);
    }
  });
  const sortedLengths = { 4: [...lengths[4]].sort((a, b) => a - b), 6: [...lengths[6]].sort((a, b) => a - b) };
  const numbering = new ClassNumbering();
  const entries: AddrEntry[] = [];
  const classesOf = new Map<number, number[]>();
  const ancestors = (prefix: IpPrefix) =>
    sortedLengths[prefix.family]
      .filter((len) => len < prefix.length)
      .flatMap((len) => rulesOf.get(prefixKey({ family: prefix.family, length: len, address: prefix.address & prefixMask(prefix.family, len) })) ?? []);
  for (const { prefix, rules: own } of rulesOf.values()) {
    const above = ancestors(prefix);
    const inherited = new Set(above.flatMap((a) => a.rules));
    // Same rules as the nearest ancestor: the ancestor's entry already gives this class.
    if (above.length > 0 && own.every((r) => inherited.has(r))) continue;
    for (const r of own) inherited.add(r);
    const cls = numbering.id([...inherited].sort((a, b) => a - b));
    entries.push({ dim, family: prefix.family, address: prefix.address, length: prefix.length, cls });
  }
  numbering.members.forEach((rules, cls) => {
    if (cls === 0) return;
    for (const r of rules) classesOf.set(r, [...(classesOf.get(r) ?? []), cls]);
  });
  return { entries, classesOf };
}

/**
 * Port classes of one field: the ports split into maximal runs contained in
 * the same rules' ranges; each run becomes aligned port blocks.
 */
function portClasses(dim: 0 | 1, lists: Array<readonly Range[] | undefined>): { entries: PortEntry[]; classesOf: Map<number, number[]> } {
  const events = new Map<number, { add: number[]; remove: number[] }>();
  const at = (port: number) => {
    let e = events.get(port);
    if (!e) events.set(port, (e = { add: [], remove: [] }));
    return e;
  };
  lists.forEach((list, rule) => {
    for (const r of list ?? []) {
      at(r.start).add.push(rule);
      at(r.end + 1).remove.push(rule);
    }
  });
  const numbering = new ClassNumbering();
  const entries: PortEntry[] = [];
  const active = new Map<number, number>(); // rule -> how many of its ranges cover the run
  const bounds = [...events.keys()].sort((a, b) => a - b);
  const runs: Array<{ start: number; end: number; cls: number }> = [];
  for (let i = 0; i < bounds.length; i++) {
    const port = bounds[i]!;
    const e = events.get(port)!;
    for (const r of e.add) active.set(r, (active.get(r) ?? 0) + 1);
    for (const r of e.remove) {
      const n = (active.get(r) ?? 0) - 1;
      if (n <= 0) active.delete(r);
      else active.set(r, n);
    }
    const next = bounds[i + 1];
    if (next === undefined || active.size === 0 || port > 65535) continue;
    const cls = numbering.id([...active.keys()].sort((a, b) => a - b));
    const last = runs[runs.length - 1];
    if (last && last.cls === cls && last.end === port - 1) last.end = Math.min(next - 1, 65535);
    else runs.push({ start: port, end: Math.min(next - 1, 65535), cls });
  }
  for (const run of runs) for (const b of portRangeBlocks(run.start, run.end)) entries.push({ dim, port: b.port, bits: b.bits, cls: run.cls });
  const classesOf = new Map<number, number[]>();
  numbering.members.forEach((rules, cls) => {
    if (cls === 0) return;
    for (const r of rules) classesOf.set(r, [...(classesOf.get(r) ?? []), cls]);
  });
  return { entries, classesOf };
}

/**
 * Compiles rules (in match order) into the tables of one generation.
 * Throws CompileError when the decision table would exceed MAX_DECISIONS
 * entries (rules whose lists multiply: many prefixes times many port ranges
 * that other rules split into many classes).
 */
export function compileRules(rules: readonly CompileRule[], defaults: { action: 'pass' | 'drop'; sample: number }): CompiledRuleset {
  const src = addressClasses(Dim.src, rules.map((r) => r.srcPrefixes));
  const dst = addressClasses(Dim.dst, rules.map((r) => r.dstPrefixes));
  const sport = portClasses(Dim.src, rules.map((r) => r.srcPorts));
  const dport = portClasses(Dim.dst, rules.map((r) => r.dstPorts));
  const decisions = new Map<string, DecisionEntry>();
  let patterns = 0;
  rules.forEach((rule, order) => {
    const pattern = rulePattern(rule);
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
    patterns |= 1 << pattern;
    const action = FilterActionCode[rule.action];
    const sample = rule.action === 'drop' ? rule.sample : 0;
    for (const proto of axes[0]!)
      for (const s of axes[1]!)
        for (const d of axes[2]!)
          for (const sp of axes[3]!)
            for (const dp of axes[4]!) {
              const key = `${pattern},${proto},${s},${d},${sp},${dp}`;
              if (!decisions.has(key))
                decisions.set(key, { pattern, proto, src: s, dst: d, sport: sp, dport: dp, order, slot: rule.slot, sample, action });
            }
  });
  const lookups =
    (src.entries.length ? Match.SRC : 0) | (dst.entries.length ? Match.DST : 0) | (sport.entries.length ? Match.SPORT : 0) | (dport.entries.length ? Match.DPORT : 0);
  return {
    addr: [...src.entries, ...dst.entries],
    port: [...sport.entries, ...dport.entries],
    decisions: [...decisions.values()],
    config: {
      patterns,
      lookups,
      defaultAction: FilterActionCode[defaults.action],
      defaultSample: defaults.action === 'drop' ? defaults.sample : 0,
    },
  };
}
