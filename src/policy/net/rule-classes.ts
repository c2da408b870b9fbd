/**
 * Partitioning of rule match values into classes, shared by the kinds that
 * compile ordered rules into class tries and decision tables (pure).
 *
 * For one field (an address, a port), two values are in the same class when
 * the same rules' prefixes (or port ranges) contain them. A value's class id
 * then comes from one longest-prefix lookup, and a decision table keyed by
 * class ids names the first rule that matches, so the per-packet (or
 * per-connect) work does not grow with the number of rules.
 */
import { parseCidr, prefixMask, type IpPrefix } from './cidr.js';
import { portRangeBlocks, type PortRange } from './ports.js';

/** One entry of an address class trie: a prefix and the class of the values under it (that no longer prefix overrides). */
export interface AddressClassEntry {
  family: 4 | 6;
  /** Network address as an unsigned integer (32 or 128 bits). */
  address: bigint;
  length: number;
  cls: number;
}

/** One entry of a port class trie: a block of ports sharing their top `bits` bits. */
export interface PortClassEntry {
  port: number;
  bits: number;
  cls: number;
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
 * Address classes of one field: `lists[i]` are rule i's prefixes (undefined:
 * the rule does not constrain the field). Returns the trie entries and, per
 * rule, the class ids whose values its prefixes contain. Throws RangeError on
 * an invalid prefix.
 *
 * Each distinct prefix gets the class of every
 * rule whose prefixes contain it (its own and its ancestors'); a prefix whose
 * class equals its nearest ancestor's needs no entry of its own.
 */
export function addressClasses(lists: ReadonlyArray<readonly string[] | undefined>): { entries: AddressClassEntry[]; classesOf: Map<number, number[]> } {
  const rulesOf = new Map<string, { prefix: IpPrefix; rules: number[] }>();
  const lengths: Record<4 | 6, Set<number>> = { 4: new Set(), 6: new Set() };
  lists.forEach((list, rule) => {
    for (const text of list ?? []) {
      const parsed = parseCidr(text);
      if (!parsed.ok) throw new RangeError(`invalid prefix "${text}": ${parsed.reason}`);
      const key = prefixKey(parsed.prefix);
      const entry = rulesOf.get(key) ?? { prefix: parsed.prefix, rules: [] };
      if (entry.rules[entry.rules.length - 1] !== rule) entry.rules.push(rule);
      rulesOf.set(key, entry);
      lengths[parsed.prefix.family].add(parsed.prefix.length);
    }
  });
  const sortedLengths = { 4: [...lengths[4]].sort((a, b) => a - b), 6: [...lengths[6]].sort((a, b) => a - b) };
  const numbering = new ClassNumbering();
  const entries: AddressClassEntry[] = [];
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
    entries.push({ family: prefix.family, address: prefix.address, length: prefix.length, cls });
  }
  numbering.members.forEach((rules, cls) => {
    if (cls === 0) return;
    for (const r of rules) classesOf.set(r, [...(classesOf.get(r) ?? []), cls]);
  });
  return { entries, classesOf };
}

/**
 * Port classes of one field (`lists[i]` are rule i's ranges), as for
 * {@link addressClasses}: the ports split into maximal runs contained in
 * the same rules' ranges; each run becomes aligned port blocks.
 */
export function portClasses(lists: ReadonlyArray<readonly PortRange[] | undefined>): { entries: PortClassEntry[]; classesOf: Map<number, number[]> } {
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
  const entries: PortClassEntry[] = [];
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
  for (const run of runs) for (const b of portRangeBlocks(run.start, run.end)) entries.push({ port: b.port, bits: b.bits, cls: run.cls });
  const classesOf = new Map<number, number[]>();
  numbering.members.forEach((rules, cls) => {
    if (cls === 0) return;
    for (const r of rules) classesOf.set(r, [...(classesOf.get(r) ?? []), cls]);
  });
  return { entries, classesOf };
}

