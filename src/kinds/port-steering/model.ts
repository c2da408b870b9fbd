/**
 * Plain data of the PortSteering kind: the desired state (policies with
 * namespaces and targets resolved), the observed dispatchers (from the pins
 * under ROOT/netns), and the operations of its plan.
 */
import type { SteeringTarget } from './document.js';
import type { ObservedDispatcher } from './store.js';
import type { PackedBindings } from './bindings.js';

/** An inclusive port range. */
export interface Range {
  start: number;
  end: number;
}

/** A resolved steering target: a socket some process holds, and its cookie. */
export type ResolvedTarget =
  | { ok: true; pid: number; fd: number; cookie: string }
  | { ok: false; reason: string };

/** One PortSteering policy, ready to plan. */
export interface DesiredSteering {
  name: string;
  /** Absolute path of the file the policy came from. */
  sourceFile: string;
  /** The namespace path as written (undefined = our own). */
  netns: string | undefined;
  /** Path to open the namespace with (netns, or /proc/self/ns/net). */
  netnsPath: string;
  /** Pin-layout key of the namespace (`ino-N`), or why it could not be resolved. */
  netnsKey: { ok: true; key: string } | { ok: false; reason: string };
  protocol: 'tcp' | 'udp';
  ports: Range[];
  prefixes: string[];
  /** The target as written, e.g. `listen 127.0.0.1:8080` or `pid 1234 fd 3`. */
  targetText: string;
  /** The target as normalized from the document (to resolve it again). */
  targetSpec: SteeringTarget;
  target: ResolvedTarget;
  /** Hash of everything above that defines the policy (not the resolution). */
  specHash: string;
}

/** What PortSteering wants. */
export interface SteeringDesired {
  /** Tag of the dispatcher program we ship (what a live program must have); '' when no policy and no failed file could need one. */
  dispatcherTag: string;
  policies: DesiredSteering[];
}

/** One binding of a policy: a port range on a prefix ('*' = every address, both families). */
export interface RecordedBinding {
  id: number;
  start: number;
  end: number;
  prefix: string;
}

/** What we remember about an applied policy, stored in the dispatcher's `policies` map. */
export interface PolicyRecord {
  v: 1;
  name: string;
  sourceFile: string;
  netns: string | null;
  specHash: string;
  protocol: 'tcp' | 'udp';
  targetText: string;
  destId: number;
  bindings: RecordedBinding[];
}

/** A dispatcher as observed (see ObservedDispatcher in the store), with records parsed and sockets looked up. */
export interface ObservedDispatcherState extends Omit<ObservedDispatcher, 'records'> {
  records: PolicyRecord[];
  /** Records that could not be parsed (name and why): treated as foreign and removed. */
  badRecords: Array<{ name: string; reason: string }>;
  /** Cookie per destination id of the records (null = empty slot). */
  sockets: Record<number, string | null>;
}

/** Everything under ROOT/netns. */
export interface SteeringObserved {
  dispatchers: ObservedDispatcherState[];
  /** Entries under ROOT/netns that are not part of the layout. */
  stray: string[];
}

/** The kernel operations of a PortSteering plan (the `op` of its actions). */
export type SteeringOperation =
  | { type: 'createDispatcher'; dir: string; netnsPath: string }
  | { type: 'replaceProgram'; dir: string; expectedProgId: number }
  | { type: 'finishUpgrade'; dir: string }
  | { type: 'relink'; dir: string; netnsPath: string }
  | { type: 'writeRecord'; dir: string; record: PolicyRecord }
  | { type: 'putSocket'; dir: string; destId: number; pid: number; fd: number }
  | { type: 'resetCounters'; dir: string; bindingIds: number[] }
  /** Entries packed as the batch update takes them (`entries.count` of them). */
  | { type: 'upsertBindings'; dir: string; entries: PackedBindings }
  | { type: 'deleteBindings'; dir: string; keys: string[] }
  | { type: 'deleteSocket'; dir: string; destId: number }
  | { type: 'deleteRecord'; dir: string; name: string }
  | { type: 'removeDispatcher'; dir: string }
  | { type: 'removeStray'; path: string }
  | { type: 'none' };

