/**
 * `ebpf-policy test` for ConnectPolicy policies: each case is a real
 * connect() from a throwaway cgroup. The policy's rules are compiled as
 * reconcile compiles them (desired.ts, plan.ts's guardGeneration) and
 * written into a private load of the real guard object (its maps unpinned,
 * filled by store.ts's fillNewGuardMaps as createGuard fills the pins); the
 * guard's four programs are attached to a throwaway cgroup v2 directory with
 * cgroup links this run owns (never pinned). Each case runs a child process
 * moved into that cgroup and into a throwaway network namespace with only
 * `lo` up (so no packet leaves the machine), which makes the connect: EPERM
 * is the guard's deny, anything else (ENETUNREACH, ECONNREFUSED, ok) means
 * the guard allowed it. The deciding rule is the counter slot that moved,
 * and its would-deny counter tells an audited deny from an allow.
 * Nothing live is touched: no pin, no reconciled cgroup, no live link.
 */
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { attachToCgroup, cgroup2Mount, cgroupIdAt } from '../../bpf/cgroup.js';
import { Features, require as requireFeature } from '../../bpf/features.js';
import type { Link } from '../../bpf/link.js';
import type { BpfMap } from '../../bpf/map.js';
import { loadObject } from '../../bpf/object.js';
import type { DesiredPolicyBase, Finding } from '../../policy/kind.js';
import { outcomeMatches, type ConnectVerdict, type PolicyTestCase, type PolicyTestResult, type TestConnect } from '../../policy/policy-test.js';
import type { KindPolicyTest, PolicyTestEnv } from '../../reconciler/kind.js';
import { runBounded } from '../../sandbox/bounded-wait.js';
import { buildDesiredGuards, type GuardResolver } from './desired.js';
import type { ConnectPolicyPolicy } from './document.js';
import { GUARD_ATTACH_TYPES, GUARD_HOOKS, GUARD_MAPS, GUARD_OBJECT, GUARD_PROGRAMS } from './layout.js';
import { guardOptionsOf } from './ops.js';
import { guardGeneration } from './plan.js';
import { countersOf, fillNewGuardMaps, type GuardCounters } from './store.js';

/** The name a case's `rule` uses for the policy's default action. */
export const DEFAULT_RULE = 'default';

const CONNECT_VERDICTS: readonly string[] = ['allow', 'deny', 'would-deny'] satisfies ConnectVerdict[];

/** How long one case's child process may take (it makes one connect with a 2 s socket timeout). */
const CASE_BOUND_MS = 30_000;

/** Checks a case against a ConnectPolicy policy: a connect, verdict and/or rule, a rule the policy has. */
function checkConnectCase(c: PolicyTestCase, policy: DesiredPolicyBase): Finding[] {
  const p = policy as ConnectPolicyPolicy;
  const findings: Finding[] = [];
  const what = `"${p.name}" is a ConnectPolicy: a case is a connect {protocol, dst, dstPort} and expects a verdict (allow, deny, would-deny) and/or a rule`;
  if (c.connect === undefined) findings.push({ path: ['packet'], severity: 'error', message: `packet applies to PacketFilter and PortSteering policies; ${what}` });
  else if (c.connect.srcGiven)
    findings.push({ path: ['connect', 'src'], severity: 'warning', message: `src is not used: ConnectPolicy rules match destinations only, and the connect is made from a throwaway network namespace` });
  if (c.expect.steeredTo !== undefined) findings.push({ path: ['expect', 'steeredTo'], severity: 'error', message: `steeredTo applies to PortSteering policies; ${what}` });
  if (c.expect.verdict === undefined && c.expect.rule === undefined) findings.push({ path: ['expect'], severity: 'error', message: `a ConnectPolicy case expects a verdict (allow, deny, would-deny), a rule, or both` });
  else if (c.expect.verdict !== undefined && !CONNECT_VERDICTS.includes(c.expect.verdict))
    findings.push({ path: ['expect', 'verdict'], severity: 'error', message: `verdict ${c.expect.verdict} applies to PacketFilter policies; ${what}` });
  const names = p.rules.map((r) => r.name);
  if (c.expect.rule !== undefined && c.expect.rule !== DEFAULT_RULE && !names.includes(c.expect.rule))
    findings.push({
      path: ['expect', 'rule'],
      severity: 'error',
      message: `policy "${p.name}" has no rule "${c.expect.rule}" (its rules: ${names.join(', ') || 'none'}; "${DEFAULT_RULE}" for the default action)`,
    });
  return findings;
}

// The child: joins the cgroup, enters a new network namespace with lo up, then makes the connect.
const CHILD_SH = `echo $$ > "$1" && shift && exec unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh "$@"`;
const CLIENT_PY = String.raw`
import errno, json, socket, sys
proto, host, port = json.loads(sys.argv[1])
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM)
s.settimeout(2)
try:
    s.connect((host, port))
    r = 'ok'
except OSError as e:
    r = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
finally:
    s.close()
print(json.dumps(r))
`;

/** Makes one connect from a child process in `cgroupDir` (and a throwaway netns); returns "ok" or the errno name. Throws on a child failure. */
function connectFrom(cgroupDir: string, c: TestConnect): string {
  const args = ['-c', CHILD_SH, 'sh', join(cgroupDir, 'cgroup.procs'), 'python3', '-c', CLIENT_PY, JSON.stringify([c.protocol, c.dst, c.dstPort])];
  const r = runBounded('sh', args, {}, CASE_BOUND_MS);
  if (r.status !== 0) throw new Error(`the connecting child process exited ${r.status ?? r.signal}: ${r.stderr.trim() || 'no message'}`);
  return JSON.parse(r.stdout) as string;
}

/** Blocks the thread for `ms` (the runner is synchronous). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Removes the throwaway cgroup, waiting up to 5 s for the kernel to let its exited processes go. */
function removeCgroup(dir: string): void {
  for (let i = 0; ; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || i >= 250) {
        let procs = '';
        try {
          procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim();
        } catch {
          // unreadable: say nothing about them
        }
        throw new Error(`the test cgroup ${dir} could not be removed in 5 s${procs ? ` (processes: ${procs})` : ''}`, { cause: err });
      }
      sleepSync(20);
    }
  }
}

let runs = 0;

/** Runs the cases with real connects from a throwaway cgroup guarded by a private load. Throws NotSupportedError, LoadError, ErrnoError. */
function runConnectCases(policy: DesiredPolicyBase, cases: readonly PolicyTestCase[], env: PolicyTestEnv): PolicyTestResult[] {
  requireFeature(Features.cgroupSockAddr);
  requireFeature(Features.sockAddrLoop);
  const p = policy as ConnectPolicyPolicy;
  const objectPath = guardOptionsOf(env).objectPath ?? GUARD_OBJECT;
  const cgroupDir = join(cgroup2Mount(), `ebpf-policy-test-${process.pid}-${runs++}-${p.name}`.slice(0, 200));
  mkdirSync(cgroupDir);
  try {
    const id = cgroupIdAt(cgroupDir);
    if (id === undefined) throw new Error(`the test cgroup ${cgroupDir} vanished while the test ran`);
    // The guard reconcile would build for this policy alone, on the throwaway cgroup.
    const resolver: GuardResolver = { cgroup: () => ({ ok: true, path: cgroupDir, id }), tags: () => ({ connect4: '', connect6: '', sendmsg4: '', sendmsg6: '' }) };
    const desired = buildDesiredGuards([p], new Set(), '/nonexistent', resolver);
    const guard = desired.guards[0];
    if (!guard) throw new Error(`policy ${p.name} gives no guard: ${desired.problems.map((x) => x.message).join('; ') || 'no reason given'}`);
    const { write } = guardGeneration(guard, [], 0);
    const ruleOfSlot = new Map(write.newSlots.map((s) => [s.slot, s.rule === '' ? DEFAULT_RULE : s.rule]));
    const slots = [...ruleOfSlot.keys()];
    using obj = loadObject(objectPath);
    const maps: Record<string, BpfMap> = Object.fromEntries(GUARD_MAPS.map((n) => [n, obj.map(n)]));
    const records = guard.policies.map((x) => ({ v: 1 as const, name: x.name, sourceFile: x.sourceFile, specHash: x.specHash }));
    fillNewGuardMaps(maps, { v: 1, cgroupPath: cgroupDir, cgroupId: String(id) }, write, records);
    const links: Link[] = [];
    try {
      for (const hook of GUARD_HOOKS) links.push(attachToCgroup(obj.program(GUARD_PROGRAMS[hook]), cgroupDir, id, GUARD_ATTACH_TYPES[hook], `${hook} link on test cgroup ${cgroupDir}`));
      return cases.map((c) => {
        const before = countersOf(maps.rule_stats, slots);
        let seen: string;
        try {
          seen = connectFrom(cgroupDir, c.connect!); // check() refuses a case without a connect
        } catch (err) {
          return { name: c.name, index: c.index, status: 'error', expect: c.expect, error: (err as Error).message };
        }
        const after = countersOf(maps.rule_stats, slots);
        const moved = (s: number, f: keyof GuardCounters) => after.get(s)![f] > before.get(s)![f];
        const decided = slots.filter((s) => moved(s, 'connects'));
        if (decided.length !== 1)
          return { name: c.name, index: c.index, status: 'error', expect: c.expect, error: `the connect ended ${seen} but ${decided.length} counter slots moved (expected one): cannot name the deciding rule` };
        const slot = decided[0]!;
        const verdict: ConnectVerdict = seen === 'EPERM' ? 'deny' : moved(slot, 'wouldDeny') ? 'would-deny' : 'allow';
        const actual = { verdict, rule: ruleOfSlot.get(slot)! };
        return { name: c.name, index: c.index, status: outcomeMatches(c.expect, actual) ? 'pass' : 'fail', expect: c.expect, actual };
      });
    } finally {
      for (const l of links) l.close();
    }
  } finally {
    removeCgroup(cgroupDir);
  }
}

/** ConnectPolicy's `ebpf-policy test` support. */
export const connectPolicyTest: KindPolicyTest = { check: checkConnectCase, run: runConnectCases };
