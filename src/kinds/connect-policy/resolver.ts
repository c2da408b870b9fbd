/**
 * The GuardResolver backed by the system: cgroups from the cgroup2 mounts,
 * and the tags of the guard programs we ship.
 */
import { resolveCgroup } from '../../bpf/cgroup.js';
import { objectProgramTags } from '../../bpf/object.js';
import type { GuardResolver } from './desired.js';
import { GUARD_HOOKS, GUARD_OBJECT, GUARD_PROGRAMS, type GuardHook } from './layout.js';

/** Tags of the guard programs in `objectPath` (loaded once per file version). */
export function guardObjectTags(objectPath: string): Record<GuardHook, string> {
  const tags = objectProgramTags(objectPath);
  const out = {} as Record<GuardHook, string>;
  for (const hook of GUARD_HOOKS) {
    const tag = tags[GUARD_PROGRAMS[hook]];
    if (!tag) throw new Error(`${objectPath} lacks ${GUARD_PROGRAMS[hook]}`);
    out[hook] = tag;
  }
  return out;
}

/** A GuardResolver for one pass (cgroups resolved once per spelling). */
export function systemGuardResolver(objectPath = GUARD_OBJECT): GuardResolver {
  const cgroups = new Map<string, ReturnType<typeof resolveCgroup>>();
  return {
    cgroup: (spec) => cgroups.get(spec) ?? cgroups.set(spec, resolveCgroup(spec)).get(spec)!,
    tags: () => guardObjectTags(objectPath),
  };
}
