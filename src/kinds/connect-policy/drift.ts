/**
 * ConnectPolicy's drift probe: after a pass, every hook's link should be
 * attached and run the pinned program, and every policy waiting for its
 * cgroup is watched; the probe opens each link pin and resolves each waiting
 * cgroup again, and names every difference. A difference repairs nothing by
 * itself: the daemon runs a full pass.
 */
import { join } from 'node:path';
import { resolveCgroup } from '../../bpf/cgroup.js';
import { tryOpen } from '../../bpf/kernel-object.js';
import { Link } from '../../bpf/link.js';
import type { DriftFindings } from '../../reconciler/kind.js';
import { GUARD_HOOKS, type GuardHook } from './layout.js';
import type { DesiredGuards } from './model.js';
import type { ObservedGuards } from './store.js';

/** What ConnectPolicy expects of the kernel after a pass. */
export interface GuardExpectation {
  links: Array<{ key: string; dir: string; hook: GuardHook; linkId: number; progId: number; cgroupPath: string }>;
  /** Policies whose cgroup is missing, by the cgroup they wait for. */
  waiting: Array<{ policy: string; cgroup: string }>;
}

/** The expectation for the state a pass left. Pure. */
export function guardExpectation(desired: DesiredGuards, observed: ObservedGuards): GuardExpectation {
  const links: GuardExpectation['links'] = [];
  for (const g of observed.guards) {
    if (g.error) continue;
    for (const hook of GUARD_HOOKS) {
      const l = g.hooks[hook].link;
      if (l?.attached) links.push({ key: g.key, dir: g.dir, hook, linkId: l.id, progId: l.progId, cgroupPath: g.guard?.cgroupPath ?? g.cgroupId });
    }
  }
  // Only a missing cgroup can appear; a policy refused for another reason (CgroupFull, an invalid file) waits for a policy change.
  const waiting = desired.policies.filter((p) => p.waitingForCgroup).map((p) => ({ policy: p.name, cgroup: p.cgroup }));
  return { links, waiting };
}

/** The probe: a detached or replaced link is drift; a waiting policy whose cgroup exists now is unblocked. */
export function probeGuards(expected: GuardExpectation): DriftFindings {
  const drift: string[] = [];
  for (const l of expected.links) {
    const what = `connect guard ${l.hook} on ${l.cgroupPath} (${l.key})`;
    using link = tryOpen(() => Link.fromPin(join(l.dir, l.hook, 'link')));
    if (!link) {
      drift.push(`${what}: its link pin is gone`);
      continue;
    }
    const i = link.info();
    if (!i.target.attached) drift.push(`${what}: link ${i.id} was detached (cgroup removed?)`);
    else if (i.id !== l.linkId || i.progId !== l.progId) drift.push(`${what}: link ${i.id} runs program ${i.progId}, not program ${l.progId} in link ${l.linkId}`);
  }
  const unblocked = expected.waiting.filter((w) => resolveCgroup(w.cgroup).ok).map((w) => w.policy);
  return { drift, unblocked };
}
