/**
 * A Program policy's object file, read once and checked: its bytes, their
 * SHA-256 digest, and what its BTF declares (programs, maps, types). Pure
 * file reading: used by `validate` (as any user) and by the resolver.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { hashSpec } from '../../common/spec-hash.js';
import { AttachType } from '../../bpf/constants.js';
import { codecFor, CodecError } from '../../btf/codec.js';
import { structLayout } from '../../btf/layout.js';
import { readObjectInfo, type ObjectInfo } from '../../btf/object-info.js';
import type { ProgramAttach } from '../../types/generated/program.js';
import type { EncodedEntry } from './layout.js';
import { META_MAP } from './layout.js';
import type { ObjectMapSummary } from './model.js';

/** BPF_MAP_TYPE_RINGBUF (linux/bpf.h). */
const MAP_TYPE_RINGBUF = 27;

/** An object file as read: bytes, digest and declarations. */
export interface ObjectFile {
  path: string;
  bytes: Buffer;
  sha256: string;
  info: ObjectInfo;
}

/** The object's absolute path: `object` as the policy names it, relative to the policy file's directory. */
export function resolveObjectPath(object: string, sourceFile: string): string {
  return isAbsolute(object) ? object : resolve(dirname(resolve(sourceFile)), object);
}

/** SHA-256 of `bytes`, lowercase hex. */
export function sha256Of(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Reads the file and its digest. Throws Error naming the file (ENOENT, EACCES, ...). */
export function readObjectBytes(path: string): { bytes: Buffer; sha256: string } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read the object ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return { bytes, sha256: sha256Of(bytes) };
}

/** Why `actual` is not the digest the policy requires, or undefined when it is. */
export function digestMismatch(path: string, required: string, actual: string): string | undefined {
  return actual === required ? undefined : `${path} has sha256 ${actual}, but the policy requires ${required}: the object is refused (if the new object is intended, put its digest in spec.sha256)`;
}

/** Reads and parses the object at `path`. Throws Error naming the file when it cannot be read or is no BPF object with BTF. */
export function readObjectFile(path: string): ObjectFile {
  const { bytes, sha256 } = readObjectBytes(path);
  let info: ObjectInfo;
  try {
    info = readObjectInfo(bytes, path);
  } catch (err) {
    throw new Error(`${path} is not a BPF object with BTF (compile it with clang -g -O2 -target bpf): ${(err as Error).message}`, { cause: err });
  }
  return { path, bytes, sha256, info };
}

const cache = new Map<string, { stamp: string; file: ObjectFile }>();

/**
 * {@link readObjectFile}, remembered per file version (device, inode, size,
 * modification and change times in nanoseconds) for the life of the
 * process, so that a pass over unchanged objects reads none of them. Every
 * operation that loads an object still reads its bytes and checks their
 * digest again. Throws as readObjectFile does.
 */
export function readObjectFileCached(path: string): ObjectFile {
  let stamp: string;
  try {
    const st = statSync(path, { bigint: true });
    stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch {
    return readObjectFile(path); // throws the readable error
  }
  const hit = cache.get(path);
  if (hit?.stamp === stamp) return hit.file;
  const file = readObjectFile(path);
  cache.set(path, { stamp, file });
  return file;
}

/** The section prefixes (libbpf's names) a program attached as `attach` may have, and what they are for. */
const CGROUP_SECTIONS: Record<string, { sections: string[]; attachType: number }> = {
  ingress: { sections: ['cgroup_skb/ingress'], attachType: AttachType.CGROUP_INET_INGRESS },
  egress: { sections: ['cgroup_skb/egress'], attachType: AttachType.CGROUP_INET_EGRESS },
  sock_create: { sections: ['cgroup/sock_create', 'cgroup/sock'], attachType: AttachType.CGROUP_INET_SOCK_CREATE },
  connect4: { sections: ['cgroup/connect4'], attachType: AttachType.CGROUP_INET4_CONNECT },
  connect6: { sections: ['cgroup/connect6'], attachType: AttachType.CGROUP_INET6_CONNECT },
  sendmsg4: { sections: ['cgroup/sendmsg4'], attachType: AttachType.CGROUP_UDP4_SENDMSG },
  sendmsg6: { sections: ['cgroup/sendmsg6'], attachType: AttachType.CGROUP_UDP6_SENDMSG },
  recvmsg4: { sections: ['cgroup/recvmsg4'], attachType: AttachType.CGROUP_UDP4_RECVMSG },
  recvmsg6: { sections: ['cgroup/recvmsg6'], attachType: AttachType.CGROUP_UDP6_RECVMSG },
  bind4: { sections: ['cgroup/bind4'], attachType: AttachType.CGROUP_INET4_BIND },
  bind6: { sections: ['cgroup/bind6'], attachType: AttachType.CGROUP_INET6_BIND },
  getpeername4: { sections: ['cgroup/getpeername4'], attachType: AttachType.CGROUP_INET4_GETPEERNAME },
  getpeername6: { sections: ['cgroup/getpeername6'], attachType: AttachType.CGROUP_INET6_GETPEERNAME },
  getsockname4: { sections: ['cgroup/getsockname4'], attachType: AttachType.CGROUP_INET4_GETSOCKNAME },
  getsockname6: { sections: ['cgroup/getsockname6'], attachType: AttachType.CGROUP_INET6_GETSOCKNAME },
  sockops: { sections: ['sockops'], attachType: AttachType.CGROUP_SOCK_OPS },
  sysctl: { sections: ['cgroup/sysctl'], attachType: AttachType.CGROUP_SYSCTL },
  getsockopt: { sections: ['cgroup/getsockopt'], attachType: AttachType.CGROUP_GETSOCKOPT },
  setsockopt: { sections: ['cgroup/setsockopt'], attachType: AttachType.CGROUP_SETSOCKOPT },
};

/** The attach type of a cgroup hook named in spec.attach.cgroup.type. */
export function cgroupAttachType(type: string): number {
  const t = CGROUP_SECTIONS[type];
  if (!t) throw new Error(`unknown cgroup hook ${type}`);
  return t.attachType;
}

/** The attach kind of `attach` (its one key). */
export function attachKind(attach: ProgramAttach): 'xdp' | 'tc' | 'tracepoint' | 'cgroup' {
  return (Object.keys(attach) as ('xdp' | 'tc' | 'tracepoint' | 'cgroup')[])[0]!;
}

/** Section names libbpf gives a program of each attach kind (what libbpf 1.1 loads as that program type). */
function sectionsFor(attach: ProgramAttach): { ok: (section: string) => boolean; expected: string } {
  if (attach.xdp) return { ok: (s) => /^xdp(\.frags)?$/.test(s) || /^xdp(\.frags)?\/(?!devmap|cpumap)/.test(s), expected: 'SEC("xdp")' };
  if (attach.tc) return { ok: (s) => /^(tc|classifier)(\/.*)?$/.test(s), expected: 'SEC("tc")' };
  if (attach.tracepoint) {
    const { category, name } = attach.tracepoint;
    return { ok: (s) => /^(tracepoint|tp)(\/.*)?$/.test(s), expected: `SEC("tracepoint/${category}/${name}")` };
  }
  const type = attach.cgroup!.type;
  const sections = CGROUP_SECTIONS[type]!.sections;
  return { ok: (s) => sections.includes(s), expected: sections.map((x) => `SEC("${x}")`).join(' or ') };
}

/** A problem with an object against its policy, at a path of the policy's spec. */
export interface ObjectProblem {
  path: (string | number)[];
  message: string;
}

/** Checks the object against the policy: the program exists and suits the attachment, the maps named exist. */
export function checkObjectAgainstSpec(file: ObjectFile, spec: { program: string; attach: ProgramAttach; maps?: Record<string, unknown[]>; events?: { map: string; type?: string } }): ObjectProblem[] {
  const problems: ObjectProblem[] = [];
  const program = file.info.programs.find((p) => p.name === spec.program);
  if (!program) {
    problems.push({ path: ['spec', 'program'], message: `${file.path} has no program "${spec.program}" (it has: ${file.info.programs.map((p) => p.name).join(', ') || 'none'})` });
  } else {
    const want = sectionsFor(spec.attach);
    if (!want.ok(program.section))
      problems.push({ path: ['spec', 'attach', attachKind(spec.attach)], message: `program "${spec.program}" is in section "${program.section}", which does not attach as ${attachKind(spec.attach)}: expected ${want.expected}` });
  }
  if (file.info.maps.some((m) => m.name === META_MAP)) problems.push({ path: ['spec', 'object'], message: `${file.path} declares a map named "${META_MAP}", a name the Program kind keeps for its own record: rename it` });
  for (const name of Object.keys(spec.maps ?? {}))
    if (!file.info.maps.some((m) => m.name === name))
      problems.push({ path: ['spec', 'maps', name], message: `${file.path} has no map "${name}" (it has: ${file.info.maps.map((m) => m.name).join(', ') || 'none'})`, });
  if (spec.events) {
    const found = eventsOf(file.info, spec.events);
    if (typeof found === 'string') problems.push({ path: ['spec', 'events'], message: found });
  }
  return problems;
}

/** The events ring buffer and its record struct, or why they are not usable. */
export function eventsOf(info: ObjectInfo, events: { map: string; type?: string }): { map: string; type: string } | string {
  const map = info.maps.find((m) => m.name === events.map);
  if (!map) return `the object has no map "${events.map}" (it has: ${info.maps.map((m) => m.name).join(', ') || 'none'})`;
  if (map.mapType !== MAP_TYPE_RINGBUF) return `map "${events.map}" is not a ring buffer (BPF_MAP_TYPE_RINGBUF)`;
  const candidates = events.type ? [events.type] : [...new Set(['event', events.map, events.map.replace(/s$/, '')])];
  for (const name of candidates) if (info.btf.find(name, 'struct')) return { map: events.map, type: name };
  return events.type ? `the object's BTF has no struct ${events.type}` : `the object's BTF has no struct named ${candidates.map((c) => `"${c}"`).join(' or ')}: name the record type in spec.events.type`;
}

/** Encodes the declared entries by the maps' BTF types; problems name the entry's path. */
export function encodeEntries(info: ObjectInfo, maps: Record<string, { key: unknown; value: unknown }[]> | undefined): { entries: EncodedEntry[]; problems: ObjectProblem[] } {
  const entries: EncodedEntry[] = [];
  const problems: ObjectProblem[] = [];
  for (const [name, list] of Object.entries(maps ?? {})) {
    const map = info.maps.find((m) => m.name === name);
    if (!map) continue; // reported by checkObjectAgainstSpec
    if (map.keyType === undefined || map.valueType === undefined) {
      problems.push({ path: ['spec', 'maps', name], message: `map "${name}" has no BTF key and value types (declare it with __type(key, ...) and __type(value, ...)): its entries cannot be typed` });
      continue;
    }
    const keyCodec = codecFor(info.btf, map.keyType);
    const valueCodec = codecFor(info.btf, map.valueType);
    const seen = new Set<string>();
    list.forEach((entry, i) => {
      try {
        const key = Buffer.from(keyCodec.encode(entry.key, 'key')).toString('hex');
        const value = Buffer.from(valueCodec.encode(entry.value, 'value')).toString('hex');
        if (seen.has(key)) problems.push({ path: ['spec', 'maps', name, i, 'key'], message: `the same key as an earlier entry of map "${name}"` });
        seen.add(key);
        entries.push({ map: name, key, value });
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
        const prefix = `${err.path}: `;
        problems.push({ path: ['spec', 'maps', name, i, ...pathSegments(err.path)], message: err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message });
      }
    });
    if (list.length > map.maxEntries) problems.push({ path: ['spec', 'maps', name], message: `${list.length} entries, but map "${name}" holds at most ${map.maxEntries}` });
  }
  return { entries, problems };
}

/** "value.addr[2]" → ['value', 'addr', 2]. */
function pathSegments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}

/** The maps the object declares, with what decides whether pinned maps can be kept across an upgrade. */
export function mapSummaries(info: ObjectInfo): ObjectMapSummary[] {
  const layout = (id: number | undefined): string => {
    if (id === undefined) return '';
    const t = info.btf.resolve(id);
    if (t.kind !== 'struct' && t.kind !== 'union') return info.btf.typeName(id);
    const l = structLayout(info.btf, id);
    return `${info.btf.typeName(id)}{${l.fields.map((f) => `${f.name}:${f.type}@${f.offset}/${f.size}`).join(',')}}/${l.size}`;
  };
  return info.maps
    .map((m) => ({ name: m.name, mapType: m.mapType, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries, keyType: layout(m.keyType), valueType: layout(m.valueType) }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** One hash of the map summaries: equal signatures mean an upgrade keeps the pinned maps. */
export function mapsSignature(maps: readonly ObjectMapSummary[]): string {
  return hashSpec(maps);
}

/** Hash of the declared entries. */
export function entriesHash(entries: readonly EncodedEntry[]): string {
  return hashSpec(entries);
}
