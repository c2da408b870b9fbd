/**
 * The Program kind's pins: one directory per policy under ROOT/programs.
 *
 *   ROOT/programs/<policy>/program          the running program
 *   ROOT/programs/<policy>/program_next     only during an upgrade
 *   ROOT/programs/<policy>/map_<name>       every map the object declares in .maps
 *   ROOT/programs/<policy>/link_<target>    one link per attachment (see {@link targetPinName})
 *   ROOT/programs/<policy>/map_meta         our record of what was applied (digest, program,
 *                                           map signature, declared entries, events): a one-entry
 *                                           array created by us, not by the object
 *
 * The record lives with the pins and dies with them: the kernel stays the
 * source of truth for what runs (ids, links), the record says which object
 * and declaration it came from.
 */
import { join } from 'node:path';
import { encodeLengthPrefixed, decodeLengthPrefixed, parseVersionedJson } from '../../common/length-prefixed.js';
import type { DesiredProgram } from './model.js';

/** The directory under the root that the Program kind owns. */
export const PROGRAMS_DIR = 'programs';
/** The name of our record map (pinned as map_meta); a map of the object with this name is refused. */
export const META_MAP = 'meta';
/** Bytes of the record's one value: a u32 length and JSON text. */
export const META_VALUE_SIZE = 65536;

/** ROOT/programs/<policy>. */
export function programDir(root: string, policy: string): string {
  return join(root, PROGRAMS_DIR, policy);
}

/** Where a program is attached, resolved against the system. */
export type AttachTarget =
  | { kind: 'xdp'; pin: string; netns: string | null; netnsPath: string; ifname: string; ifindex: number; mode: 'auto' | 'native' | 'generic' }
  | { kind: 'tcx'; pin: string; netns: string | null; netnsPath: string; ifname: string; ifindex: number; direction: 'ingress' | 'egress' }
  | { kind: 'tracepoint'; pin: string; category: string; name: string }
  | { kind: 'cgroup'; pin: string; cgroupPath: string; id: string; type: string; attachType: number };

/**
 * The pin name of a target's link: link_xdp_<netns key>_<ifindex>,
 * link_tc-ingress_<netns key>_<ifindex>, link_tracepoint, link_cgroup.
 * Interface names can hold characters pins cannot, so the index is used.
 */
export function targetPinName(t: { kind: AttachTarget['kind']; netnsKey?: string; ifindex?: number; direction?: string }): string {
  switch (t.kind) {
    case 'xdp':
      return `link_xdp_${t.netnsKey}_${t.ifindex}`;
    case 'tcx':
      return `link_tc-${t.direction}_${t.netnsKey}_${t.ifindex}`;
    case 'tracepoint':
      return 'link_tracepoint';
    case 'cgroup':
      return 'link_cgroup';
  }
}

/** One map entry the policy declares, encoded: key and value in hex (value as the program sees it, one CPU's worth). */
export interface EncodedEntry {
  map: string;
  key: string;
  value: string;
}

/** What was applied, as recorded in map_meta. */
export interface ProgramRecord {
  v: 1;
  /** The object's digest and the program that runs. */
  sha256: string;
  program: string;
  /** The object's file when it was applied (for messages only), and the policy file. */
  object: string;
  sourceFile: string;
  /** Signature of the object's maps (names, types, sizes, BTF layouts): equal signatures keep the pinned maps on upgrade. */
  mapsSignature: string;
  /** Hash of the declared entries last written, and their keys (to delete those no longer declared). */
  entriesHash: string;
  declaredKeys: { map: string; key: string }[];
  /** The attachments made, by link pin name. */
  targets: AttachTarget[];
  events?: { map: string; type: string };
}

/**
 * The record of `d` once it runs: its object, program and maps' signature,
 * its declared entries written, attached at `targets` (default: every
 * target it wants).
 */
export function programRecordOf(d: DesiredProgram, targets: AttachTarget[] = d.targets): ProgramRecord {
  return {
    v: 1,
    sha256: d.sha256,
    program: d.program,
    object: d.objectPath,
    sourceFile: d.sourceFile,
    mapsSignature: d.mapsSignature,
    entriesHash: d.entriesHash,
    declaredKeys: d.entries.map((e) => ({ map: e.map, key: e.key })),
    targets,
    ...(d.events ? { events: d.events } : {}),
  };
}

/** Encodes a record into the meta map's value. Throws RangeError when it does not fit. */
export function encodeProgramRecord(r: ProgramRecord): Buffer {
  return encodeLengthPrefixed(JSON.stringify(r), META_VALUE_SIZE, 'program record');
}

/** Decodes the meta map's value: the record, or why it cannot be read. */
export function decodeProgramRecord(v: Buffer): ProgramRecord | string {
  return parseVersionedJson<ProgramRecord>(decodeLengthPrefixed(v));
}
