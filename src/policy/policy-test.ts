/**
 * PolicyTest documents: cases (a packet or a connection, and what must
 * happen to it) for one policy of the same --policies set. They are
 * validated like the kinds' documents but never reconciled; `ebpf-policy
 * test` runs them through the tested policy's real program (see
 * docs/policy-tests.md). This module knows no kind: what fits a kind's
 * policy is asked of a {@link PolicyTestChecker} the registry hands in.
 */
import type { PolicyTest, PolicyTestCase as CaseDocument } from '../types/generated/policy-test.js';
import { closestMatch } from './describe.js';
import { normalizeBase, type DesiredPolicyBase, type Finding, type PolicyConflict, type PolicyKind, type PolicySource } from './kind.js';
import { formatIpAddress, parseIpAddress, type IpFamily } from './net/ip.js';

/** The documents' `kind` value. */
export const POLICY_TEST_KIND = 'PolicyTest';

/** Source port of a TCP or UDP case that gives none. */
export const DEFAULT_SOURCE_PORT = 40000;

/**
 * What a packet filter does with a packet: `would-drop` is a drop by a rule
 * (or default) in audit mode, which passes the packet and counts it.
 */
export type TestVerdict = 'pass' | 'drop' | 'would-drop' | ConnectVerdict;

/**
 * What a connect guard does with a connect: `would-deny` is a deny by a rule
 * (or default) in audit mode, which lets the connect go ahead and counts it.
 */
export type ConnectVerdict = 'allow' | 'deny' | 'would-deny';

/** A case's outgoing connect, normalized (ConnectPolicy). */
export interface TestConnect {
  readonly protocol: 'tcp' | 'udp';
  readonly family: IpFamily;
  /** Canonical text of the destination address. */
  readonly dst: string;
  readonly dstPort: number;
  /** Given in the document but not used (the kind's check warns). */
  readonly srcGiven: boolean;
}

/** A case's packet, normalized: one family, canonical addresses, ports only for tcp and udp. */
export interface TestPacket {
  readonly protocol: 'tcp' | 'udp' | 'icmp';
  readonly family: IpFamily;
  /** Canonical text of the addresses (`2001:db8::1`). */
  readonly src: string;
  readonly dst: string;
  /** Present exactly for tcp and udp (srcPort defaults to {@link DEFAULT_SOURCE_PORT}; dstPort may be absent). */
  readonly srcPort?: number;
  readonly dstPort?: number;
}

/** What a case expects; which fields apply depends on the tested policy's kind. */
export interface TestExpectation {
  readonly verdict?: TestVerdict;
  readonly rule?: string;
  readonly steeredTo?: string;
}

/** One normalized case. */
export interface PolicyTestCase {
  readonly name: string;
  /** 0-based position in spec.cases. */
  readonly index: number;
  /** The packet (PacketFilter, PortSteering); absent when the case gives a connect. */
  readonly packet?: TestPacket;
  /** The outgoing connect (ConnectPolicy); absent when the case gives a packet. */
  readonly connect?: TestConnect;
  readonly expect: TestExpectation;
}

/** Normalized PolicyTest document. */
export interface PolicyTestPolicy extends DesiredPolicyBase {
  readonly kind: typeof POLICY_TEST_KIND;
  /** metadata.name of the policy under test. */
  readonly policy: string;
  readonly cases: readonly PolicyTestCase[];
}

/** What the program did with one case (the fields that apply to the kind). */
export interface TestOutcome {
  readonly verdict?: TestVerdict;
  readonly rule?: string;
  readonly steeredTo?: string;
}

/** The result of one case. `error`: the case could not be run (e.g. the target socket does not exist here). */
export interface PolicyTestResult {
  readonly name: string;
  readonly index: number;
  readonly status: 'pass' | 'fail' | 'error';
  readonly expect: TestExpectation;
  /** What the program did; absent when the case could not run. */
  readonly actual?: TestOutcome;
  /** Why the case could not run. */
  readonly error?: string;
}

/** A kind's offline check of a case against one of its policies: findings with paths relative to the case. */
export interface PolicyTestChecker {
  check(testCase: PolicyTestCase, policy: DesiredPolicyBase): Finding[];
}

type Path = (string | number)[];

function isPolicyTest(p: DesiredPolicyBase): p is PolicyTestPolicy {
  return p.kind === POLICY_TEST_KIND;
}

/** Checks of one case's packet that need no policy: one address family, no ports for ICMP. */
function checkPacket(c: CaseDocument, at: Path): Finding[] {
  const findings: Finding[] = [];
  if ((c.packet === undefined) === (c.connect === undefined))
    findings.push({
      path: at,
      severity: 'error',
      message: `a case gives exactly one of packet (PacketFilter, PortSteering) and connect (ConnectPolicy); this one gives ${c.packet ? 'both' : 'neither'}`,
    });
  if (c.packet === undefined) return findings;
  const src = parseIpAddress(c.packet.src);
  const dst = parseIpAddress(c.packet.dst);
  if (src && dst && src.family !== dst.family)
    findings.push({
      path: [...at, 'packet', 'dst'],
      severity: 'error',
      message: `an IPv${src.family} source (${c.packet.src}) cannot send to an IPv${dst.family} destination (${c.packet.dst}): use addresses of one family`,
    });
  if (c.packet.protocol === 'icmp')
    for (const field of ['srcPort', 'dstPort'] as const)
      if (c.packet[field] !== undefined)
        findings.push({ path: [...at, 'packet', field], severity: 'error', message: `ICMP has no ports: remove ${field} or use protocol tcp or udp` });
  return findings;
}

function normalizeCase(c: CaseDocument, index: number): PolicyTestCase {
  if (c.packet === undefined) {
    const to = parseIpAddress(c.connect!.dst)!;
    const connect: TestConnect = { protocol: c.connect!.protocol, family: to.family, dst: formatIpAddress(to.family, to.value), dstPort: c.connect!.dstPort, srcGiven: c.connect!.src !== undefined };
    return { name: c.name, index, connect, expect: { ...c.expect } };
  }
  const src = parseIpAddress(c.packet.src)!;
  const dst = parseIpAddress(c.packet.dst)!;
  const l4 = c.packet.protocol !== 'icmp';
  const packet: TestPacket = {
    protocol: c.packet.protocol,
    family: src.family,
    src: formatIpAddress(src.family, src.value),
    dst: formatIpAddress(dst.family, dst.value),
    ...(l4 ? { srcPort: c.packet.srcPort ?? DEFAULT_SOURCE_PORT } : {}),
    ...(l4 && c.packet.dstPort !== undefined ? { dstPort: c.packet.dstPort } : {}),
  };
  return { name: c.name, index, packet, expect: { ...c.expect } };
}

/**
 * The PolicyTest document type as a {@link PolicyKind}, so that loading and
 * validation accept it beside the kinds. `checkerOf(kind)` is the tested
 * kind's case check, or undefined when `ebpf-policy test` cannot run that
 * kind's policies.
 */
export function createPolicyTestKind(checkerOf: (kind: string) => PolicyTestChecker | undefined): PolicyKind<PolicyTest, PolicyTestPolicy> {
  return {
    kind: POLICY_TEST_KIND,
    schemaFile: 'policy-test.schema.json',
    check(document) {
      const findings: Finding[] = [];
      const names = new Map<string, number>();
      document.spec.cases.forEach((c, i) => {
        const at: Path = ['spec', 'cases', i];
        findings.push(...checkPacket(c, at));
        const earlier = names.get(c.name);
        if (earlier !== undefined)
          findings.push({ path: [...at, 'name'], severity: 'error', message: `duplicate case name "${c.name}" (also case ${earlier + 1}): results are reported by name` });
        else names.set(c.name, i);
      });
      return findings;
    },
    normalize(document, source: PolicySource) {
      return { ...normalizeBase(POLICY_TEST_KIND, document, source), policy: document.spec.policy, cases: document.spec.cases.map(normalizeCase) };
    },
    findConflicts: () => [],
    crossCheck(own, all, invalidNames) {
      const problems: PolicyConflict<PolicyTestPolicy>[] = [];
      const tested = all.filter((p) => !isPolicyTest(p));
      const byName = new Map(tested.map((p) => [p.name, p]));
      for (const t of own) {
        const target = byName.get(t.policy);
        if (target === undefined) {
          const known = tested.map((p) => p.name).sort();
          let message: string;
          if (all.some((p) => p.name === t.policy)) message = `spec.policy "${t.policy}" names a PolicyTest document; it must name a policy (known policies: ${known.join(', ') || 'none'})`;
          else if (invalidNames.has(t.policy)) message = `spec.policy "${t.policy}" names a policy that has errors; fix it first`;
          else {
            const hint = closestMatch(t.policy, known);
            message = `unknown policy "${t.policy}" in spec.policy (known policies: ${known.join(', ') || 'none'}${hint ? `; did you mean "${hint}"?` : ''})`;
          }
          problems.push({ policy: t, path: ['spec', 'policy'], severity: 'error', message });
          continue;
        }
        const checker = checkerOf(target.kind);
        if (checker === undefined) {
          problems.push({
            policy: t,
            path: ['spec', 'policy'],
            severity: 'warning',
            message: `policy "${target.name}" is a ${target.kind}: ebpf-policy test cannot run ${target.kind} cases yet`,
          });
          continue;
        }
        for (const c of t.cases)
          for (const f of checker.check(c, target)) problems.push({ ...f, policy: t, path: ['spec', 'cases', c.index, ...f.path] });
      }
      return problems;
    },
  };
}

/** Describes an expectation or an outcome in one line: `verdict drop, rule block-telnet`. */
export function describeOutcome(o: TestOutcome | TestExpectation): string {
  const parts: string[] = [];
  if (o.verdict !== undefined) parts.push(`verdict ${o.verdict}`);
  if (o.rule !== undefined) parts.push(`rule ${o.rule}`);
  if (o.steeredTo !== undefined) parts.push(`steered to ${o.steeredTo}`);
  return parts.join(', ') || 'nothing';
}

/** Whether `actual` satisfies `expect`: every expected field is equal (fields not expected are not compared). */
export function outcomeMatches(expect: TestExpectation, actual: TestOutcome): boolean {
  return (
    (expect.verdict === undefined || expect.verdict === actual.verdict) &&
    (expect.rule === undefined || expect.rule === actual.rule) &&
    (expect.steeredTo === undefined || expect.steeredTo === actual.steeredTo)
  );
}
