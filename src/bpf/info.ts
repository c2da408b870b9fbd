/**
 * Introspection: what the kernel says about a program, map or link
 * (BPF_OBJ_GET_INFO_BY_FD), and enumeration of every id in the system
 * (BPF_*_GET_NEXT_ID). Layouts follow `struct bpf_prog_info`,
 * `struct bpf_map_info` and `struct bpf_link_info` of `linux/bpf.h`.
 */
import { BPF_OBJ_NAME_LEN, BPF_TAG_SIZE, LinkType, constantName } from './constants.js';
import { ErrnoError } from './errors.js';
import { addressOf, lib } from './native.js';

/** What the kernel reports about a loaded program. */
export interface ProgramInfo {
  id: number;
  type: number;
  name: string;
  /** Hash of the translated instructions, hex; equal tags mean equal bytecode. */
  tag: string;
  mapIds: number[];
  /** Instructions the verifier processed to accept it (`verified_insns`, Linux 5.16+; 0 before). */
  verifiedInsns: number;
  /** Size of the translated (xlated) and of the JIT-compiled program, in bytes. */
  xlatedBytes: number;
  jitedBytes: number;
  /** Boot-time nanoseconds at load. */
  loadTime: bigint;
  btfId: number;
}

/** What the kernel reports about a map. */
export interface MapInfo {
  id: number;
  type: number;
  name: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** The BTF object describing the map's key and value (0: none), and their type ids in it (0: none). */
  btfId: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

/** Where a link is attached. `attached: false` means the target went away (netns gone, interface removed, detached). */
export type LinkTarget =
  | { kind: 'netns'; netnsIno: number; attachType: number; attached: boolean }
  | { kind: 'xdp'; ifindex: number; attached: boolean }
  | { kind: 'tcx'; ifindex: number; attachType: number; attached: boolean }
  | { kind: 'cgroup'; cgroupId: bigint; attachType: number; attached: boolean }
  | { kind: 'perf_event'; attached: boolean }
  | { kind: 'other'; linkType: number; attached: boolean };

/** What the kernel reports about a link. */
export interface LinkInfo {
  id: number;
  type: number;
  typeName: string;
  progId: number;
  target: LinkTarget;
}

const PROG_INFO_SIZE = 232;
const MAP_INFO_SIZE = 88;
const LINK_INFO_SIZE = 48;

function getInfo(fd: number, buf: Buffer, what: string): Buffer {
  const n = lib();
  const len = Buffer.alloc(4);
  len.writeUInt32LE(buf.length);
  const ret = n.bpf_obj_get_info_by_fd(fd, buf, len);
  if (ret < 0) throw new ErrnoError(-ret, 'bpf_obj_get_info_by_fd', what);
  return buf;
}

function cString(buf: Buffer, offset: number, max: number): string {
  const end = buf.indexOf(0, offset);
  return buf.toString('utf8', offset, end < 0 || end > offset + max ? offset + max : end);
}

/** Reads program info, including its map ids. Throws ErrnoError. */
export function programInfo(fd: number): ProgramInfo {
  const first = getInfo(fd, Buffer.alloc(PROG_INFO_SIZE), `program fd ${fd}`);
  const nrMaps = first.readUInt32LE(52);
  let mapIds: number[] = [];
  if (nrMaps > 0) {
    const ids = Buffer.alloc(nrMaps * 4);
    const again = Buffer.alloc(PROG_INFO_SIZE);
    again.writeUInt32LE(nrMaps, 52);
    again.writeBigUInt64LE(addressOf(ids), 56);
    getInfo(fd, again, `program fd ${fd}`);
    mapIds = Array.from({ length: Math.min(nrMaps, again.readUInt32LE(52)) }, (_, i) => ids.readUInt32LE(i * 4));
  }
  return {
    type: first.readUInt32LE(0),
    id: first.readUInt32LE(4),
    tag: first.subarray(8, 8 + BPF_TAG_SIZE).toString('hex'),
    loadTime: first.readBigUInt64LE(40),
    name: cString(first, 64, BPF_OBJ_NAME_LEN),
    btfId: first.readUInt32LE(128),
    mapIds,
    // Offsets of struct bpf_prog_info (linux/bpf.h), read with offsetof by a compiled program.
    jitedBytes: first.readUInt32LE(16),
    xlatedBytes: first.readUInt32LE(20),
    verifiedInsns: first.readUInt32LE(216),
  };
}

/** Reads map info. Throws ErrnoError. */
export function mapInfo(fd: number): MapInfo {
  const b = getInfo(fd, Buffer.alloc(MAP_INFO_SIZE), `map fd ${fd}`);
  return {
    type: b.readUInt32LE(0),
    id: b.readUInt32LE(4),
    keySize: b.readUInt32LE(8),
    valueSize: b.readUInt32LE(12),
    maxEntries: b.readUInt32LE(16),
    flags: b.readUInt32LE(20),
    name: cString(b, 24, BPF_OBJ_NAME_LEN),
    btfId: b.readUInt32LE(64),
    btfKeyTypeId: b.readUInt32LE(68),
    btfValueTypeId: b.readUInt32LE(72),
  };
}

const BTF_INFO_SIZE = 32;

/**
 * The raw BTF (the `.BTF` section format) of the kernel BTF object `btfId`,
 * e.g. a map's or program's (`MapInfo.btfId`): what the loader gave the
 * kernel, so maps can be decoded without their object file. Throws
 * ErrnoError (ENOENT when no such BTF object is loaded).
 */
export function kernelBtfBytes(btfId: number): Buffer {
  const n = lib();
  const fd = n.bpf_btf_get_fd_by_id(btfId);
  if (fd < 0) throw new ErrnoError(-fd, 'bpf_btf_get_fd_by_id', `BTF id ${btfId}`);
  try {
    const first = getInfo(fd, Buffer.alloc(BTF_INFO_SIZE), `BTF id ${btfId}`);
    const size = first.readUInt32LE(8);
    const data = Buffer.alloc(size);
    const again = Buffer.alloc(BTF_INFO_SIZE);
    again.writeBigUInt64LE(addressOf(data), 0);
    again.writeUInt32LE(size, 8);
    getInfo(fd, again, `BTF id ${btfId}`);
    return data;
  } finally {
    n.close(fd);
  }
}

/** Reads link info and decodes its target. Throws ErrnoError. */
export function linkInfo(fd: number): LinkInfo {
  const b = getInfo(fd, Buffer.alloc(LINK_INFO_SIZE), `link fd ${fd}`);
  const type = b.readUInt32LE(0);
  let target: LinkTarget;
  switch (type) {
    case LinkType.NETNS: {
      const netnsIno = b.readUInt32LE(16);
      target = { kind: 'netns', netnsIno, attachType: b.readUInt32LE(20), attached: netnsIno !== 0 };
      break;
    }
    case LinkType.XDP: {
      const ifindex = b.readUInt32LE(16);
      target = { kind: 'xdp', ifindex, attached: ifindex !== 0 };
      break;
    }
    case LinkType.TCX: {
      // struct { __u32 ifindex; __u32 attach_type; } tcx (Linux 6.6)
      const ifindex = b.readUInt32LE(16);
      target = { kind: 'tcx', ifindex, attachType: b.readUInt32LE(20), attached: ifindex !== 0 };
      break;
    }
    case LinkType.CGROUP: {
      const cgroupId = b.readBigUInt64LE(16);
      target = { kind: 'cgroup', cgroupId, attachType: b.readUInt32LE(24), attached: cgroupId !== 0n };
      break;
    }
    case LinkType.PERF_EVENT:
      target = { kind: 'perf_event', attached: true };
      break;
    default:
      target = { kind: 'other', linkType: type, attached: true };
  }
  return { type, typeName: constantName(LinkType, type), id: b.readUInt32LE(4), progId: b.readUInt32LE(8), target };
}

/** Kinds of kernel objects that have ids. */
export type ObjectKind = 'prog' | 'map' | 'link';

/** Every id of `kind` currently alive in the kernel, ascending. Throws ErrnoError on errors other than the end. */
export function allIds(kind: ObjectKind): number[] {
  const n = lib();
  const next = { prog: n.bpf_prog_get_next_id, map: n.bpf_map_get_next_id, link: n.bpf_link_get_next_id }[kind];
  const out = Buffer.alloc(4);
  const ids: number[] = [];
  let id = 0;
  for (;;) {
    const ret = next(id, out);
    if (ret < 0) {
      if (-ret === 2 /* ENOENT: no more */) return ids;
      throw new ErrnoError(-ret, `bpf_${kind}_get_next_id`);
    }
    id = out.readUInt32LE(0);
    ids.push(id);
  }
}
