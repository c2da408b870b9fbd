/**
 * The FilterResolver backed by the system: the interfaces of a namespace
 * (iproute2), the tags of the filter programs we ship, and whether tc hooks
 * attach with tcx (feature probe) or fall back to cls_bpf.
 */
import type { FilterResolver } from './desired.js';
import { Features, has } from '../../bpf/features.js';
import { FILTER_OBJECT, FILTER_PROGRAMS } from './layout.js';
import { listInterfaces, type InterfaceList } from '../../bpf/interfaces.js';
import type { FilterOptions } from './ops.js';
import { objectProgramTags } from '../../bpf/object.js';

/** Tags of the filter programs in `objectPath` (see objectProgramTags: loaded once per file version). */
export function filterObjectTags(objectPath: string): { xdp: string; tc: string } {
  const tags = objectProgramTags(objectPath);
  const xdp = tags[FILTER_PROGRAMS.xdp];
  const tc = tags[FILTER_PROGRAMS.tc];
  if (!xdp || !tc) throw new Error(`${objectPath} lacks ${FILTER_PROGRAMS.xdp} or ${FILTER_PROGRAMS.tc}`);
  return { xdp, tc };
}

/**
 * A FilterResolver for one reconcile pass (interface lists are memoized per
 * namespace path). `netnsKey` is the pass's namespace resolution.
 */
export function systemFilterResolver(netnsKey: FilterResolver['netnsKey'], options: FilterOptions = {}): FilterResolver {
  const lists = new Map<string, InterfaceList>();
  return {
    netnsKey,
    interfaces(path) {
      let l = lists.get(path);
      if (!l) lists.set(path, (l = listInterfaces(path)));
      return l;
    },
    filterTags: () => filterObjectTags(options.objectPath ?? FILTER_OBJECT),
    tcMethod: () => options.tcMethod ?? (has(Features.tcx) ? 'tcx' : 'cls_bpf'),
  };
}
