/**
 * The FilterResolver backed by the system: the interfaces of a namespace
 * (iproute2), the tags of the filter programs we ship, and whether tc hooks
 * attach with tcx (feature probe) or fall back to cls_bpf.
 */
import { statSync } from 'node:fs';
import type { FilterResolver } from './desired.js';
import { Features, has } from '../../bpf/features.js';
import { FILTER_OBJECT, FILTER_PROGRAMS } from './layout.js';
import { listInterfaces, type InterfaceList } from '../../bpf/interfaces.js';
import type { FilterOptions } from '../kernel-port.js';
import { loadObject } from '../../bpf/object.js';

const tagCache = new Map<string, { mtimeMs: number; tags: { xdp: string; tc: string } }>();

/** Tags of the filter programs in `objectPath` (loads it once per file version to ask the kernel). */
export function filterObjectTags(objectPath: string): { xdp: string; tc: string } {
  const mtimeMs = statSync(objectPath).mtimeMs;
  const hit = tagCache.get(objectPath);
  if (hit && hit.mtimeMs === mtimeMs) return hit.tags;
  using obj = loadObject(objectPath);
  const tags = { xdp: obj.program(FILTER_PROGRAMS.xdp).info().tag, tc: obj.program(FILTER_PROGRAMS.tc).info().tag };
  tagCache.set(objectPath, { mtimeMs, tags });
  return tags;
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
