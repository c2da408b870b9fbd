/**
 * Reading a pinned map's contents as JSON, decoded by the BTF the kernel
 * holds for it (the object's BTF, given at load): no object file is needed,
 * so what is shown is what the kernel has. Maps without BTF key/value types
 * show hex.
 */
import { kernelBtfBytes } from '../../bpf/info.js';
import { tryOpen } from '../../bpf/kernel-object.js';
import { BpfMap } from '../../bpf/map.js';
import { Program } from '../../bpf/program.js';
import { parseBtf, type Btf } from '../../btf/btf.js';
import { codecFor, rawCodec, type Codec } from '../../btf/codec.js';
import { PERCPU_MAP_TYPES } from '../../bpf/constants.js';

/** Entries of one map, decoded; `truncated` when there were more than the limit. */
export interface MapContents {
  entries: { key: unknown; value: unknown }[];
  truncated: boolean;
}

const btfCache = new Map<number, Btf>();

/** The kernel's BTF object `id`, parsed (cached: a BTF object never changes). Throws ErrnoError or BtfError. */
export function kernelBtf(id: number): Btf {
  let b = btfCache.get(id);
  if (!b) btfCache.set(id, (b = parseBtf(kernelBtfBytes(id))));
  return b;
}

/** The BTF of a pinned program (its object's), or undefined when it has none. */
export function programBtf(pin: string): Btf | undefined {
  using p = tryOpen(() => Program.fromPin(pin));
  const id = p?.info().btfId;
  return id ? kernelBtf(id) : undefined;
}

function codecs(map: BpfMap): { key: Codec; value: Codec; perCpu: boolean } {
  const i = map.info();
  const btf = i.btfId ? kernelBtf(i.btfId) : undefined;
  const key = btf && i.btfKeyTypeId ? codecFor(btf, i.btfKeyTypeId) : rawCodec(i.keySize);
  const value = btf && i.btfValueTypeId ? codecFor(btf, i.btfValueTypeId) : rawCodec(i.valueSize);
  return { key, value, perCpu: PERCPU_MAP_TYPES.has(i.type) };
}

/**
 * The first `limit` entries of the map pinned at `pin`, decoded. Per-CPU
 * values are listed per CPU. Throws ErrnoError.
 */
export function readMapContents(pin: string, limit = 100): MapContents {
  using map = BpfMap.fromPin(pin);
  const c = codecs(map);
  const entries: MapContents['entries'] = [];
  let truncated = false;
  const stride = Math.ceil(c.value.size / 8) * 8;
  map.forEachEntry((k, v) => {
    if (entries.length >= limit) {
      truncated = true;
      return;
    }
    const key = c.key.decode(k);
    const value = c.perCpu ? Array.from({ length: v.length / stride }, (_, cpu) => c.value.decode(v.subarray(cpu * stride, cpu * stride + c.value.size))) : c.value.decode(v);
    entries.push({ key, value });
  });
  return { entries, truncated };
}
