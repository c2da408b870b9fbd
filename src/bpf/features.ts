/**
 * Cached feature probes, so callers get a NotSupportedError naming the
 * feature and the minimum kernel instead of an opaque EINVAL.
 */
import { AttachType, MapType, ProgType, Errno } from './constants.js';
import { NotSupportedError } from './errors.js';
import { lib } from './native.js';

/** A feature we may depend on, with the first kernel that has it. */
export interface Feature {
  name: string;
  minimumKernel: string;
  probe: () => boolean;
}

const ENODEV = Errno.ENODEV;

function progType(type: number): () => boolean {
  return () => lib().libbpf_probe_bpf_prog_type(type, null) === 1;
}

function mapType(type: number): () => boolean {
  return () => lib().libbpf_probe_bpf_map_type(type, null) === 1;
}

function helper(progTypeId: number, helperId: number): () => boolean {
  return () => lib().libbpf_probe_bpf_helper(progTypeId, helperId, null) === 1;
}

/** bpf_func_id values (linux/bpf.h, __BPF_FUNC_MAPPER) of the helpers we probe. */
const Helper = { loop: 181 } as const;

/** tcx: a sched_cls link on ifindex 0 fails with ENODEV where tcx exists, EINVAL where the attach type is unknown. */
function probeTcx(): boolean {
  const n = lib();
  // BPF_MOV64_IMM(r0, 0); BPF_EXIT_INSN()
  const insns = Buffer.from([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
  const prog = n.bpf_prog_load(ProgType.SCHED_CLS, 'probe_tcx', 'GPL', insns, 2, null);
  if (prog < 0) return false;
  try {
    const link = n.bpf_link_create(prog, 0, AttachType.TCX_INGRESS, null);
    if (link >= 0) {
      n.close(link);
      return true;
    }
    return -link === ENODEV;
  } finally {
    n.close(prog);
  }
}

/** The features the project knows how to probe. */
export const Features = {
  skLookup: { name: 'sk_lookup programs', minimumKernel: '5.9', probe: progType(ProgType.SK_LOOKUP) },
  xdp: { name: 'XDP programs', minimumKernel: '4.8', probe: progType(ProgType.XDP) },
  lpmTrie: { name: 'LPM trie maps', minimumKernel: '4.11', probe: mapType(MapType.LPM_TRIE) },
  sockmap: { name: 'sockmap maps', minimumKernel: '4.14', probe: mapType(MapType.SOCKMAP) },
  ringbuf: { name: 'ring buffer maps', minimumKernel: '5.8', probe: mapType(MapType.RINGBUF) },
  tcx: { name: 'tcx links', minimumKernel: '6.6', probe: probeTcx },
  rawTracepoint: { name: 'raw tracepoint programs (SyscallCounter)', minimumKernel: '4.17', probe: progType(ProgType.RAW_TRACEPOINT) },
  cgroupSockAddr: { name: 'cgroup sock_addr programs (connect and sendmsg hooks)', minimumKernel: '4.17', probe: progType(ProgType.CGROUP_SOCK_ADDR) },
  sockAddrLoop: { name: 'the bpf_loop helper in cgroup sock_addr programs', minimumKernel: '5.17', probe: helper(ProgType.CGROUP_SOCK_ADDR, Helper.loop) },
} satisfies Record<string, Feature>;

const cache = new Map<Feature, boolean>();

/** True when the running kernel has `feature` (probed once per process). */
export function has(feature: Feature): boolean {
  let v = cache.get(feature);
  if (v === undefined) {
    v = feature.probe();
    cache.set(feature, v);
  }
  return v;
}

/** Throws NotSupportedError unless the running kernel has `feature`. */
export function require(feature: Feature): void {
  if (!has(feature)) throw new NotSupportedError(feature.name, feature.minimumKernel);
}
