/**
 * Leak checks of the kernel tests: every program, map and link created during
 * a test must be reachable from a pin of ours (or gone).
 */
import assert from 'node:assert/strict';
import { listPins } from '../../src/bpf/bpffs.js';
import { BpfMap } from '../../src/bpf/map.js';
import { Link } from '../../src/bpf/link.js';
import { Program } from '../../src/bpf/program.js';
import { bpftoolIds, eventually } from './harness.js';

/** Ids of every program, map and link bpftool lists now. */
export type KernelObjects = Record<'prog' | 'map' | 'link', Set<number>>;

/** What bpftool lists now (take it before a test creates anything). */
export function kernelObjects(): KernelObjects {
  return { prog: bpftoolIds('prog'), map: bpftoolIds('map'), link: bpftoolIds('link') };
}

/** Every kernel object id a pin under `root` reaches: the pinned object, a program's maps, a link's program, a map-in-map's inner maps. */
export function reachable(root: string): Set<number> {
  const ids = new Set<number>();
  for (const pin of listPins(root)) {
    const name = pin.split('/').pop()!;
    if (name.startsWith('program')) {
      using p = Program.fromPin(pin);
      const i = p.info();
      ids.add(i.id);
      for (const m of i.mapIds) ids.add(m);
    } else if (name.startsWith('link')) {
      using l = Link.fromPin(pin);
      const i = l.info();
      ids.add(i.id);
      ids.add(i.progId);
    } else {
      using m = BpfMap.fromPin(pin);
      const i = m.info();
      ids.add(i.id);
      // ARRAY_OF_MAPS (12) and HASH_OF_MAPS (13): the inner maps they hold.
      if (i.type === 12 || i.type === 13) for (const [, v] of m.entries()) ids.add(v.readUInt32LE(0));
    }
  }
  return ids;
}

/** Fails unless every program, map and link created since `before` is reachable from a pin under `root`. */
export async function assertNothingLeaked(before: KernelObjects, root: string, where: string): Promise<void> {
  const leaked = () => {
    const reach = reachable(root);
    return (['prog', 'map', 'link'] as const).flatMap((k) => [...bpftoolIds(k)].filter((id) => !before[k].has(id) && !reach.has(id)).map((id) => `${k} ${id}`));
  };
  // A program or map whose last reference went is freed after an RCU grace period: give it time; a leak stays.
  assert.ok(await eventually(() => leaked().length === 0, 10_000), `${where}: objects of ours no pin reaches: ${leaked().join(', ')}`);
}

