/** The CounterResolver backed by the system: cgroups, and the tag of the counter program we ship. */
import { resolveCgroup } from '../../bpf/cgroup.js';
import { objectProgramTags } from '../../bpf/object.js';
import type { CounterResolver } from './desired.js';
import { COUNTER_OBJECT, COUNTER_PROGRAM } from './layout.js';

/** A CounterResolver for one pass. */
export function systemCounterResolver(objectPath = COUNTER_OBJECT): CounterResolver {
  const cgroups = new Map<string, ReturnType<typeof resolveCgroup>>();
  return {
    cgroup: (spec) => cgroups.get(spec) ?? cgroups.set(spec, resolveCgroup(spec)).get(spec)!,
    tag: () => {
      const tag = objectProgramTags(objectPath)[COUNTER_PROGRAM];
      if (!tag) throw new Error(`${objectPath} lacks ${COUNTER_PROGRAM}`);
      return tag;
    },
  };
}
