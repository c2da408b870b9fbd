/**
 * The events of Program policies: each policy's declared ring buffer, its
 * records decoded by the BTF the kernel holds for the program (no object
 * file needed), read with a {@link PinnedRingSet}.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tryOpen } from '../../bpf/kernel-object.js';
import { BpfMap } from '../../bpf/map.js';
import { mapPinPath } from '../../bpf/pinned-maps.js';
import { PinnedRingSet } from '../../bpf/ringbuf.js';
import { codecFor, type Codec } from '../../btf/codec.js';
import type { EventStream, KindEvent } from '../../reconciler/kind.js';
import { decodeProgramRecord, META_MAP, PROGRAMS_DIR } from './layout.js';
import { programBtf } from './map-contents.js';

interface Source {
  policy: string;
  /** Undefined when the program's BTF lacks the record type: records show as hex. */
  codec: Codec | undefined;
}

/** The `events` stream of the Program kind (of one policy, when named). Owns its rings; close() releases them. */
export function openProgramEvents(root: string, policy?: string): EventStream {
  let pending: KindEvent[] = [];
  const rings = new PinnedRingSet<Source>((src, data) => {
    const value = src.codec ? src.codec.decode(data.subarray(0, Math.min(data.length, src.codec.size))) : data.toString('hex');
    const time = new Date().toISOString();
    pending.push({ text: `${time} ${src.policy} ${JSON.stringify(value)}`, json: { time, policy: src.policy, event: value } });
  });
  const refresh = (): void => {
    const top = join(root, PROGRAMS_DIR);
    const wanted: { pin: string; meta: Source }[] = [];
    for (const name of existsSync(top) ? readdirSync(top).sort() : []) {
      if (policy !== undefined && name !== policy) continue;
      const dir = join(top, name);
      using meta = tryOpen(() => BpfMap.fromPin(mapPinPath(dir, META_MAP)));
      const v = meta?.lookup(Buffer.alloc(4));
      const r = v ? decodeProgramRecord(v) : undefined;
      if (!r || typeof r === 'string' || !r.events) continue;
      const btf = programBtf(join(dir, 'program'));
      const type = btf?.find(r.events.type, 'struct');
      const pin = mapPinPath(dir, r.events.map);
      if (!existsSync(pin)) continue;
      wanted.push({ pin, meta: { policy: name, codec: btf && type ? codecFor(btf, type.id) : undefined } });
    }
    rings.set(wanted, (pin) => BpfMap.fromPin(pin));
  };
  try {
    refresh();
  } catch (err) {
    rings.close();
    throw err;
  }
  return {
    get sources() {
      return rings.count;
    },
    poll() {
      rings.consume();
      const out = pending;
      pending = [];
      return out;
    },
    refresh,
    close: () => rings.close(),
  };
}
