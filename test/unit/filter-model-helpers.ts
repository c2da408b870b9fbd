/**
 * Models of the packet filter for unit tests (not a test file itself): the
 * BPF program's lookups over compiled tables, and a plain first-match walk
 * over rules, to compare against each other.
 */
import { Match, ProtoClass } from '../../src/kinds/packet-filter/layout.js';
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

/** What bpf/packet_filter.c decides for `p` with `t` as the active generation. */
export function classify(t: CompiledRuleset, p: TestPacket): { slot: number; action: 'pass' | 'drop' } {
  const addrClass = (dim: number, address: bigint) => {
    let best: { length: number; cls: number } | undefined;
    for (const e of t.addr) {
      if (e.dim !== dim || e.family !== p.family) continue;
      if ((address & prefixMask(p.family, e.length)) !== e.address) continue;
      if (!best || e.length > best.length) best = e;
    }
    return best?.cls ?? 0;
  };
  const portClass = (dim: number, port: number) => {
    let best: { bits: number; cls: number } | undefined;
    for (const e of t.port) {
      if (e.dim !== dim || port >> (16 - e.bits) !== e.port >> (16 - e.bits)) continue;
      if (!best || e.bits > best.bits) best = e;
    }
    return best?.cls ?? 0;
  };
  const lk = t.config.lookups;
  const src = lk & Match.SRC ? addrClass(0, p.src) : 0;
  const dst = lk & Match.DST ? addrClass(1, p.dst) : 0;
  const sport = hasPorts(p) && lk & Match.SPORT ? portClass(0, p.sport) : 0;
  const dport = hasPorts(p) && lk & Match.DPORT ? portClass(1, p.dport) : 0;
  const proto = protoClass(p);
  const table = new Map(t.decisions.map((d) => [`${d.pattern},${d.proto},${d.src},${d.dst},${d.sport},${d.dport}`, d]));
  let best: { order: number; slot: number; action: number } | undefined;
  for (let pat = 0; pat < 32; pat++) {
    if (!(t.config.patterns & (1 << pat))) continue;
    if ((pat & Match.SRC && !src) || (pat & Match.DST && !dst) || (pat & Match.SPORT && !sport) || (pat & Match.DPORT && !dport)) continue;
    const k = [pat, pat & Match.PROTO ? proto : 0, pat & Match.SRC ? src : 0, pat & Match.DST ? dst : 0, pat & Match.SPORT ? sport : 0, pat & Match.DPORT ? dport : 0].join(',');
    const d = table.get(k);
    if (d && (!best || d.order < best.order)) best = d;
  }
  if (!best) return { slot: 0, action: t.config.defaultAction === 1 ? 'drop' : 'pass' };
  return { slot: best.slot, action: best.action === 1 ? 'drop' : 'pass' };
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
