/** Helpers of the SyscallCounter kernel tests: policy documents, a real process in a test cgroup, counts read through status. */
import assert from 'node:assert/strict';
import type { CounterPolicyStatus, SyscallCount } from '../../src/kinds/syscall-counter/status.js';
import { computeStatuses, reconcileOnce } from '../../src/manager.js';
import { runBounded } from '../../src/sandbox/bounded-wait.js';
import type { TestCgroup } from './connect-policy-helpers.js';
import type { PolicyDir } from './reconcile-helpers.js';

/** Writes `NAME.json` with one SyscallCounter document. */
export function writeCounter(dir: PolicyDir, name: string, spec: { syscalls: string[]; groupBy?: string[]; cgroup?: string; maxKeys?: number }): void {
  dir.writeRaw(`${name}.json`, JSON.stringify({ apiVersion: 'ebpf-policy/v1', kind: 'SyscallCounter', metadata: { name }, spec }));
}

/** The statuses of the SyscallCounter policies, counts read (all keys). */
export async function counterStatuses(pinDir: string, dir: PolicyDir): Promise<Map<string, CounterPolicyStatus>> {
  const r = await reconcileOnce({ root: pinDir, policyPaths: [dir.path], dryRun: true, insecurePermissions: true, reportDir: null });
  return new Map(computeStatuses(r, true, { top: 1000 }).filter((s) => s.kind === 'SyscallCounter').map((s) => [s.name, s as CounterPolicyStatus]));
}

/** Counts by key text ("execve python3", "getppid /sys/fs/cgroup/x"). */
export function keyed(top: readonly SyscallCount[]): Record<string, number> {
  return Object.fromEntries(top.map((k) => [[k.syscall, k.comm, k.cgroup, k.pid].filter((x) => x !== null).join(' '), Number(k.count)]));
}

/** A shell moves itself into `cg`, then execs python3, which runs `script`. Returns python's pid. */
export function inCgroup(cg: TestCgroup, script: string): number {
  const r = runBounded('sh', ['-c', `echo $$ > ${cg.path}/cgroup.procs && exec /usr/bin/python3 -c '${script}'`], {}, 30_000);
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout.trim().split('\n').pop());
}

/** How many children SCRIPT starts (each execs /usr/bin/true once). */
export const EXECS = 7;
/** EXECS children that exec /bin/true, then getppid 25 times; prints the pid. */
export const SCRIPT = `import os, subprocess\nfor _ in range(${EXECS}): subprocess.run(["/usr/bin/true"], check=True)\nfor _ in range(25): os.getppid()\nprint(os.getpid())`;

