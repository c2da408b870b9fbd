/**
 * Models of the packet filter for unit tests (not a test file itself): the
 * BPF program's lookups over compiled tables, and a plain first-match walk
 * over rules, to compare against each other.
 */
import { isMultiField, Match, NO_RULE, ProtoClass, ProtoIndex } from '../../src/kinds/packet-filter/layout.js';
import { parseCidr, prefixMask } from '../../src/policy/net/cidr.js';
import type { CompiledRuleset, CompileRule } from '../../src/kinds/packet-filter/compile.js';

/** The fields of a packet the filter looks at. */
export interface TestPacket {
  family: 4 | 6;
  proto: number;
  src: bigint;
  dst: bigint;
  sport: number;
  dport: number;
  /** A fragment: no TCP/UDP header to read ports from. */
  noPorts: boolean;
}

function hasPorts(p: TestPacket): boolean {
  return !p.noPorts && (p.proto === 6 || p.proto === 17);
}

function protoClass(p: TestPacket): number {
  if (p.proto === 6) return ProtoClass.tcp;
  if (p.proto === 17) return ProtoClass.udp;
  if ((p.family === 4 && p.proto === 1) || (p.family === 6 && p.proto === 58)) return ProtoClass.icmp;
  return ProtoClass.other;
}

function protoIndex(p: TestPacket): number {
  const c = protoClass(p);
  return c === ProtoClass.tcp ? ProtoIndex.tcp : c === ProtoClass.udp ? ProtoIndex.udp : c === ProtoClass.icmp ? ProtoIndex.icmp : ProtoIndex.other;
}

/** What bpf/packet_filter.c decides for `p` with `t` as the active generation. */
export function classify(t: CompiledRuleset, p: TestPacket): { slot: number; action: 'pass' | 'drop' } {
  const none = { cls: 0, first: [NO_RULE, NO_RULE, NO_RULE, NO_RULE] };
  const addrClass = (dim: number, address: bigint) => {
    let best: { length: number; cls: number; first: number[] } | undefined;
    for (const e of t.addr) {
      if (e.dim !== dim || e.family !== p.family) continue;
      if ((address & prefixMask(p.family, e.length)) !== e.address) continue;
      if (!best || e.length > best.length) best = e;
    }
    return best ?? none;
  };
  // port_classes holds one value per port: the blocks must not overlap.
  const portClass = (dim: number, port: number) => {
    const hits = t.port.filter((e) => e.dim === dim && port >> (16 - e.bits) === e.port >> (16 - e.bits));
    if (hits.length > 1) throw new Error(`port ${port} of dimension ${dim} is in ${hits.length} blocks`);
    return hits[0] ?? { cls: 0, first: [NO_RULE, NO_RULE] };
  };
  const lk = t.config.lookups;
  const pidx = protoIndex(p);
  let first = t.config.first[pidx]!;
  const take = (order: number | undefined) => {
    if (order !== undefined && order < first) first = order;
  };
  const srcC = lk & Match.SRC ? addrClass(0, p.src) : none;
  const dstC = lk & Match.DST ? addrClass(1, p.dst) : none;
  take(srcC.first[pidx]);
  take(dstC.first[pidx]);
  let sport = 0;
  let dport = 0;
  if (hasPorts(p)) {
    const sp = lk & Match.SPORT ? portClass(0, p.sport) : undefined;
    const dp = lk & Match.DPORT ? portClass(1, p.dport) : undefined;
    sport = sp?.cls ?? 0;
    dport = dp?.cls ?? 0;
    take(sp?.first[pidx & 1]);
    take(dp?.first[pidx & 1]);
  }
  const [src, dst, proto] = [srcC.cls, dstC.cls, protoClass(p)];
  const table = new Map(t.decisions.map((d) => [`${d.pattern},${d.proto},${d.src},${d.dst},${d.sport},${d.dport}`, d]));
  for (let pat = 0; pat < 32; pat++) {
    if (!(t.config.patterns & (1 << pat)) || !isMultiField(pat)) continue;
    if ((pat & Match.SRC && !src) || (pat & Match.DST && !dst) || (pat & Match.SPORT && !sport) || (pat & Match.DPORT && !dport)) continue;
    const k = [pat, pat & Match.PROTO ? proto : 0, pat & Match.SRC ? src : 0, pat & Match.DST ? dst : 0, pat & Match.SPORT ? sport : 0, pat & Match.DPORT ? dport : 0].join(',');
    take(table.get(k)?.order);
  }
  const rule = first < NO_RULE ? t.rules[first] : undefined;
  if (!rule) return { slot: 0, action: t.config.defaultAction === 1 ? 'drop' : 'pass' };
  return { slot: rule.slot, action: rule.action === 1 ? 'drop' : 'pass' };
}

function inPrefixes(list: readonly string[], family: 4 | 6, address: bigint): boolean {
  return list.some((text) => {
    const parsed = parseCidr(text);
    return parsed.ok && parsed.prefix.family === family && (address & prefixMask(family, parsed.prefix.length)) === parsed.prefix.address;
  });
}

/** Index of the first rule that matches `p`, or undefined. */
export function firstMatch(rules: readonly Omit<CompileRule, 'slot'>[], p: TestPacket): number | undefined {
  const i = rules.findIndex((r) => {
    if (r.protocol && ProtoClass[r.protocol] !== protoClass(p)) return false;
    if (r.srcPrefixes && !inPrefixes(r.srcPrefixes, p.family, p.src)) return false;
    if (r.dstPrefixes && !inPrefixes(r.dstPrefixes, p.family, p.dst)) return false;
    if (r.srcPorts && !(hasPorts(p) && r.srcPorts.some((x) => x.start <= p.sport && p.sport <= x.end))) return false;
    if (r.dstPorts && !(hasPorts(p) && r.dstPorts.some((x) => x.start <= p.dport && p.dport <= x.end))) return false;
    return true;
  });
  return i < 0 ? undefined : i;
}
