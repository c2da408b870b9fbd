/**
 * Plain data of the reconciler for PacketFilter policies: the desired
 * filters (one per network namespace, interface and hook, with the rules of
 * every policy that covers it, in match order), and the operations of a plan.
 * The observed side is store.ts's ObservedFilters.
 */
import type { AttachSpec, FilterAttachMethod, FilterPolicyRecord, RulesetWrite, AttachmentRecord, ObservedFilters } from './store.js';
import type { FilterAction, FilterHook } from './document.js';
import type { RuleMatch } from './compile.js';

export type { ObservedFilters };

/** One rule of a filter, in match order. Absent match fields match everything. */
export interface DesiredFilterRule extends RuleMatch {
  policy: string;
  rule: string;
  action: FilterAction;
  /** A drop of this rule is audited: counted and reported as would-drop, and the packet passes. */
  audit: boolean;
  /** Report every Nth drop or would-drop (0 = never): the policy's events.sampleRate. */
  sample: number;
}

/** The filter one (namespace, interface, hook) should run. */
export interface DesiredFilter {
  /** `<netns key>/<hook>-<ifindex>`, as ObservedFilter.key. */
  key: string;
  /** Its pin directory, ROOT/filters/<netns key>/<hook>-<ifindex>. */
  dir: string;
  netnsKey: string;
  /** The namespace as written by the policies (undefined = our own). */
  netns: string | undefined;
  netnsPath: string;
  ifname: string;
  ifindex: number;
  hook: FilterHook;
  method: FilterAttachMethod;
  /** XDP programs the interface runs now (ours or another tool's). */
  xdpProgs: Array<{ mode: 'native' | 'generic' | 'offload'; progId: number }>;
  /** The policies it serves, in match order (by name). */
  policies: Array<{ name: string; sourceFile: string; specHash: string }>;
  rules: DesiredFilterRule[];
  defaultAction: FilterAction;
  /** The default's drops are audited (the policies' spec.mode is audit). */
  defaultAudit: boolean;
  defaultSample: number;
}

/** A PacketFilter policy as resolved, for status. */
export interface DesiredFilterPolicy {
  name: string;
  sourceFile: string;
  netns: string | undefined;
  hook: FilterHook;
  interfaces: readonly string[];
  /** Keys of the filters it is part of. */
  filters: string[];
  /** Matching interfaces left out, and why (e.g. not Ethernet). */
  skipped: Array<{ ifname: string; reason: string }>;
}

/** What the reconciler wants for PacketFilter policies. */
export interface DesiredFilters {
  /** Tags of the programs we ship, by entry point. */
  tags: { xdp: string; tc: string };
  filters: DesiredFilter[];
  policies: DesiredFilterPolicy[];
  /**
   * Keys of namespaces whose filters must be kept as they are (their
   * interfaces could not be listed), and names of policies whose filters
   * must be kept (their file failed to validate, or their namespace cannot
   * be resolved right now).
   */
  keepNetns: string[];
  keepPolicies: string[];
  /** Problems found while resolving (namespaces, interfaces, conflicts between globs). */
  problems: Array<{ policy: string; sourceFile?: string; condition: 'Failed' | 'Degraded'; reason: string; message: string }>;
}

/** The operations of a plan for filters (the `op` of an Action). */
export type FilterOperation =
  | { type: 'createFilter'; dir: string; spec: AttachSpec; rules: RulesetWrite; policies: FilterPolicyRecord[] }
  | { type: 'writeFilterRules'; dir: string; gen: number; rules: RulesetWrite }
  | { type: 'writeFilterRecords'; dir: string; upserts: Array<FilterPolicyRecord | AttachmentRecord>; deletes: string[] }
  | { type: 'replaceFilterProgram'; dir: string; expectedProgId: number }
  | { type: 'finishUpgrade'; dir: string }
  | { type: 'attachFilter'; dir: string; spec: AttachSpec; previous?: AttachmentRecord }
  | { type: 'removeFilter'; dir: string }
  | { type: 'removeStray'; path: string }
  | { type: 'none' };
