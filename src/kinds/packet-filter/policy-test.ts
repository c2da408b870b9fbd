/**
 * `ebpf-policy test` for PacketFilter policies: the policy's rules compiled
 * as reconcile compiles them (desired.ts, compile.ts, layout.ts), written
 * into the maps of a private load of the real program (nothing pinned,
 * nothing attached), and each case's packet built into an Ethernet frame and
 * run through the entry point the policy attaches (`filter_xdp` for xdp,
 * `filter_tc` for tc-ingress and tc-egress) with BPF_PROG_TEST_RUN. The
 * decision comes from the program's return value, the rule from the counter
 * slot that moved.
 */
import { TcAction, XdpAction } from '../../bpf/constants.js';
import { BpfMap, possibleCpus } from '../../bpf/map.js';
import { loadObject } from '../../bpf/object.js';
import { buildFrame, IpProto, plainPacket } from '../../common/frame.js';
import type { DesiredPolicyBase, Finding } from '../../policy/kind.js';
import { parseIpAddress } from '../../policy/net/ip.js';
import { outcomeMatches, type PolicyTestCase, type PolicyTestResult, type TestOutcome, type TestPacket } from '../../policy/policy-test.js';
import type { KindPolicyTest, PolicyTestEnv } from '../../reconciler/kind.js';
import { compileRules } from './compile.js';
import { buildDesiredFilters, type FilterResolver } from './desired.js';
import type { PacketFilterPolicy } from './document.js';
import { COUNTER, DEFAULT_SLOT, FILTER_OBJECT, FILTER_PROGRAMS, encodeRuleset, u32 } from './layout.js';
import type { DesiredFilter } from './model.js';
import { filterOptionsOf } from './ops.js';
import { fillRuleset } from './store.js';

/** The name a case's `rule` uses for the default action. */
export const DEFAULT_RULE = 'default';

/** Checks a case's expectation against a PacketFilter policy: verdict and rule only, a rule the policy has. */
function checkFilterCase(c: PolicyTestCase, policy: DesiredPolicyBase): Finding[] {
  const p = policy as PacketFilterPolicy;
  const findings: Finding[] = [];
  if (c.expect.steeredTo !== undefined)
    findings.push({ path: ['expect', 'steeredTo'], severity: 'error', message: `steeredTo applies to PortSteering policies; "${p.name}" is a PacketFilter: expect a verdict (pass, drop) and a rule` });
  if (c.packet === undefined) findings.push({ path: ['connect'], severity: 'error', message: `connect applies to ConnectPolicy policies; "${p.name}" is a PacketFilter: give a packet` });
  if (c.expect.verdict === undefined && c.expect.rule === undefined)
    findings.push({ path: ['expect'], severity: 'error', message: `a PacketFilter case expects a verdict (pass, drop), a rule, or both` });
  else if (c.expect.verdict !== undefined && !['pass', 'drop', 'would-drop'].includes(c.expect.verdict))
    findings.push({ path: ['expect', 'verdict'], severity: 'error', message: `verdict ${c.expect.verdict} applies to ConnectPolicy policies; "${p.name}" is a PacketFilter: pass, drop or would-drop` });
  const names = p.rules.map((r) => r.name);
  if (c.expect.rule !== undefined && c.expect.rule !== DEFAULT_RULE && !names.includes(c.expect.rule))
    findings.push({
      path: ['expect', 'rule'],
      severity: 'error',
      message: `policy "${p.name}" has no rule "${c.expect.rule}" (its rules: ${names.join(', ')}; "${DEFAULT_RULE}" for the default action)`,
    });
  return findings;
}

/** The filter reconcile would build for `policy` alone on one interface that matches it (no system read). */
export function filterForPolicy(policy: PacketFilterPolicy): DesiredFilter {
  // The interface is named after the policy's first name or pattern, so that it matches as a literal.
  const ifname = policy.interfaces[0] ?? 'test0';
  const resolver: FilterResolver = {
    netnsKey: () => ({ ok: true, key: 'policy-test' }),
    interfaces: () => ({ ok: true, interfaces: [{ name: ifname, ifindex: 1, linkType: 'ether', xdp: [] }] }),
    filterTags: () => ({ xdp: '', tc: '' }),
    tcMethod: () => 'tcx',
  };
  const desired = buildDesiredFilters([{ ...policy, netns: undefined }], new Set(), '/nonexistent', resolver);
  const filter = desired.filters[0];
  if (!filter) throw new Error(`policy ${policy.name} gives no filter: ${desired.problems.map((p) => p.message).join('; ') || 'no reason given'}`);
  return filter;
}

/** Inner map layouts, as store.ts creates them for a generation (bpf/packet_filter.h). */
/** Packets and, of them, audited would-drops counted per slot (summed over CPUs, struct pf_counter). */
function packetCounts(stats: BpfMap, slots: number): { packets: bigint; wouldDrop: bigint }[] {
  const stride = stats.valueSize / possibleCpus();
  const F = COUNTER.fields;
  return Array.from({ length: slots }, (_, slot) => {
    const v = stats.lookup(u32(slot));
    const n = { packets: 0n, wouldDrop: 0n };
    for (let off = 0; v && off + COUNTER.size <= v.length; off += stride) {
      n.packets += v.readBigUInt64LE(off + F.packets.offset);
      n.wouldDrop += v.readBigUInt64LE(off + F.would_drop_packets.offset);
    }
    return n;
  });
}

function addressBytes(text: string): number[] {
  const a = parseIpAddress(text)!;
  const n = a.family === 4 ? 4 : 16;
  return Array.from({ length: n }, (_, i) => Number((a.value >> BigInt(8 * (n - 1 - i))) & 0xffn));
}

/** The Ethernet frame of a case's packet. */
export function caseFrame(p: TestPacket): Buffer {
  const proto = p.protocol === 'tcp' ? IpProto.tcp : p.protocol === 'udp' ? IpProto.udp : p.family === 4 ? IpProto.icmp : IpProto.icmpv6;
  return buildFrame(plainPacket({ family: p.family, proto, src: addressBytes(p.src), dst: addressBytes(p.dst), sport: p.srcPort ?? 0, dport: p.dstPort ?? 0 }));
}

/** Runs the cases through the policy's real program with private maps. Throws LoadError, ErrnoError. */
function runFilterCases(policy: DesiredPolicyBase, cases: readonly PolicyTestCase[], env: PolicyTestEnv): PolicyTestResult[] {
  const p = policy as PacketFilterPolicy;
  const filter = filterForPolicy(p);
  const compiled = compileRules(
    filter.rules.map((r, i) => ({ ...r, slot: i + 1 })),
    { action: filter.defaultAction, sample: filter.defaultSample },
  );
  const slots = filter.rules.map((r, i) => ({ slot: i + 1, policy: r.policy, rule: r.rule }));
  const xdp = p.hook === 'xdp';
  using obj = loadObject(filterOptionsOf(env).objectPath ?? FILTER_OBJECT);
  // Slot 0 (the default) and every rule's slot start at zero, as createFilter and writeFilterRules leave them.
  fillRuleset((name) => obj.map(name), 1, { encoded: encodeRuleset(compiled), newSlots: [{ slot: DEFAULT_SLOT, policy: '', rule: '' }, ...slots], staleSlots: [] });
  const prog = obj.program(xdp ? FILTER_PROGRAMS.xdp : FILTER_PROGRAMS.tc);
  const stats = obj.map('rule_stats');
  return cases.map((c) => {
    const before = packetCounts(stats, slots.length + 1);
    const { retval } = prog.testRun(caseFrame(c.packet!)); // check() refuses a case without a packet
    const after = packetCounts(stats, slots.length + 1);
    const moved = after.map((n, slot) => (n.packets !== before[slot]!.packets ? slot : -1)).filter((s) => s >= 0);
    const audited = moved.length === 1 && after[moved[0]!]!.wouldDrop !== before[moved[0]!]!.wouldDrop;
    const returned = xdp
      ? retval === XdpAction.DROP ? 'drop' : retval === XdpAction.PASS ? 'pass' : undefined
      : retval === TcAction.SHOT ? 'drop' : (retval | 0) === TcAction.UNSPEC || retval === TcAction.OK ? 'pass' : undefined; // passes with TC_ACT_UNSPEC (tcx: next program)
    const verdict = returned === 'pass' && audited ? 'would-drop' : returned;
    if (verdict === undefined || moved.length > 1)
      return { name: c.name, index: c.index, status: 'error', expect: c.expect, error: `unexpected result of the program: return value ${retval}, counter slots moved: ${moved.join(', ') || 'none'}` };
    const slot = moved[0];
    const actual: TestOutcome = { verdict, ...(slot === undefined ? {} : { rule: slot === DEFAULT_SLOT ? DEFAULT_RULE : filter.rules[slot - 1]!.rule }) };
    return { name: c.name, index: c.index, status: outcomeMatches(c.expect, actual) ? 'pass' : 'fail', expect: c.expect, actual };
  });
}

/** PacketFilter's `ebpf-policy test` support. */
export const packetFilterPolicyTest: KindPolicyTest = { check: checkFilterCase, run: runFilterCases };
