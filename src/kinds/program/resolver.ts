/** The ProgramResolver backed by the system: object files, namespaces, interfaces (iproute2), cgroups. */
import { resolveCgroup } from '../../bpf/cgroup.js';
import { listInterfaces, type InterfaceList } from '../../bpf/interfaces.js';
import { OWN_NETNS, resolveNetnsKey } from '../../bpf/netns.js';
import type { ProgramResolver } from './desired.js';
import { readObjectFileCached } from './object-file.js';

/** A ProgramResolver for one pass (interface lists memoized per namespace). */
export function systemProgramResolver(): ProgramResolver {
  const lists = new Map<string, InterfaceList>();
  return {
    object: readObjectFileCached,
    netnsKey: resolveNetnsKey,
    interfaces(path) {
      let l = lists.get(path);
      if (!l) lists.set(path, (l = listInterfaces(path)));
      return l;
    },
    cgroup: (spec) => resolveCgroup(spec),
    ownNetns: OWN_NETNS,
  };
}
