/**
 * The Program kind's plain data: what the policies want (resolved against
 * the system), what the pins hold, and the operations of a plan.
 */
import type { PlanProblem } from '../../reconciler/model.js';
import type { AttachTarget, EncodedEntry, ProgramRecord } from './layout.js';

/** One map of the object, as its signature sees it. */
export interface ObjectMapSummary {
  name: string;
  mapType: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** Names and layouts of its BTF key and value types (empty when it has none). */
  keyType: string;
  valueType: string;
}

/** One Program policy, resolved. */
export interface DesiredProgram {
  name: string;
  sourceFile: string;
  dir: string;
  /** Absolute path of the object file and the digest it must have. */
  objectPath: string;
  sha256: string;
  program: string;
  maps: ObjectMapSummary[];
  mapsSignature: string;
  entries: EncodedEntry[];
  entriesHash: string;
  targets: AttachTarget[];
  events?: { map: string; type: string };
}

/** The desired state of every Program policy. */
export interface DesiredPrograms {
  policies: DesiredProgram[];
  /** Policies whose pins stay as they are (their file failed, or they cannot be resolved now). */
  keep: string[];
  problems: PlanProblem[];
  /** Every policy loaded, with where it came from (for status, also when not applied). */
  status: { name: string; sourceFile: string; objectPath: string; program: string }[];
}

/** A pinned link as observed. */
export interface ObservedLink {
  pin: string;
  id: number;
  progId: number;
  attached: boolean;
}

/** A pinned map as observed. */
export interface ObservedMap {
  name: string;
  id: number;
  mapType: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/** One policy directory as observed. */
export interface ObservedProgram {
  name: string;
  dir: string;
  /** The record, when readable; `recordProblem` says why not otherwise. */
  record?: ProgramRecord;
  recordProblem?: string;
  program?: { id: number; tag: string };
  programNext?: { id: number; tag: string };
  maps: ObservedMap[];
  links: ObservedLink[];
  /** Pins an operation of ours left behind (link_*_next) or that we do not know. */
  strays: string[];
  /** Why the directory could not be read (a pin other than missing failed to open): left alone. */
  unreadable?: string;
}

/** Every Program directory under the root. */
export interface ObservedPrograms {
  programs: ObservedProgram[];
}

/** The Program kind's operations. */
export type ProgramOperation =
  | { type: 'createProgram'; desired: DesiredProgram }
  | { type: 'upgradeProgram'; desired: DesiredProgram; expectedProgId: number }
  | { type: 'writeEntries'; desired: DesiredProgram; deleteKeys: { map: string; key: string }[] }
  | { type: 'recordSource'; dir: string; sourceFile: string; object: string }
  | { type: 'attachTarget'; desired: DesiredProgram; target: AttachTarget }
  | { type: 'detachTarget'; dir: string; pin: string }
  | { type: 'finishUpgrade'; dir: string }
  | { type: 'removeStray'; path: string }
  | { type: 'removeProgram'; dir: string }
  | { type: 'none' };
