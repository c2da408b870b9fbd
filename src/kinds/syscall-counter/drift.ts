/**
 * SyscallCounter's drift probe: after a pass, the counter's link should be
 * pinned and run the pinned program, and policies waiting for their cgroup
 * are watched; the probe opens the link pin and resolves each waiting cgroup
 * again. A difference repairs nothing by itself: the daemon runs a full pass.
 */
import { join } from 'node:path';
import { resolveCgroup } from '../../bpf/cgroup.js';
import { tryOpen } from '../../bpf/kernel-object.js';
import { Link } from '../../bpf/link.js';
import type { DriftFindings } from '../../reconciler/kind.js';
import type { DesiredCounters } from './model.js';
import type { ObservedCounters } from './store.js';

/** What SyscallCounter expects of the kernel after a pass. */
export interface CounterExpectation {
  link?: { dir: string; id: number; progId: number };
  waiting: Array<{ policy: string; cgroup: string }>;
}

/** The expectation for the state a pass left. Pure. */
export function counterExpectation(desired: DesiredCounters, observed: ObservedCounters): CounterExpectation {
  const c = observed.counter;
  const link = c && !c.error && c.link ? { dir: c.dir, id: c.link.id, progId: c.link.progId } : undefined;
  const waiting = desired.status.filter((p) => p.waitingForCgroup && p.cgroup !== null).map((p) => ({ policy: p.name, cgroup: p.cgroup! }));
  return { ...(link ? { link } : {}), waiting };
}

/** The probe: a removed or replaced link is drift; a waiting policy whose cgroup exists now is unblocked. */
export function probeCounters(expected: CounterExpectation): DriftFindings {
  const drift: string[] = [];
  if (expected.link) {
    using link = tryOpen(() => Link.fromPin(join(expected.link!.dir, 'link')));
    if (!link) drift.push('syscall counter: its link pin is gone');
    else {
      const i = link.info();
      if (i.id !== expected.link.id || i.progId !== expected.link.progId)
        drift.push(`syscall counter: link ${i.id} runs program ${i.progId}, not program ${expected.link.progId} in link ${expected.link.id}`);
    }
  }
  const unblocked = expected.waiting.filter((w) => resolveCgroup(w.cgroup).ok).map((w) => w.policy);
  return { drift, unblocked };
}
