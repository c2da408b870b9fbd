/**
 * The Program kind's pins (layout.ts), seen and changed as plain data.
 * Observation returns plain objects; each mutation opens what it needs,
 * does one thing, and closes it before returning. The object's bytes are
 * read and their digest checked again right before every load, so what
 * runs is exactly the object the policy names.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { failpoint } from '../../common/failpoint.js';
import { ensureTracefs, listPins, PIN_NAME, removePinTree, unpin } from '../../bpf/bpffs.js';
import { attachToCgroup } from '../../bpf/cgroup.js';
import { Errno, MapType, PERCPU_MAP_TYPES } from '../../bpf/constants.js';
import { ErrnoError } from '../../bpf/errors.js';
import { tryOpen } from '../../bpf/kernel-object.js';
import { Link } from '../../bpf/link.js';
import { BpfMap } from '../../bpf/map.js';
import { Netns } from '../../bpf/netns.js';
import { loadObjectBytes } from '../../bpf/object.js';
import { mapPinPath } from '../../bpf/pinned-maps.js';
import { Program } from '../../bpf/program.js';
import { observePrograms as observeProgramPins, swapPinnedProgram } from '../../bpf/program-swap.js';
import { attachXdp } from '../../bpf/xdp-attach.js';
import { decodeProgramRecord, encodeProgramRecord, programRecordOf, META_MAP, META_VALUE_SIZE, PROGRAMS_DIR, type AttachTarget, type ProgramRecord } from './layout.js';
import type { DesiredProgram, ObservedLink, ObservedMap, ObservedProgram, ObservedPrograms } from './model.js';
export type { ObservedPrograms };
import { digestMismatch, readObjectBytes } from './object-file.js';

const ZERO_KEY = Buffer.alloc(4);

/** Reads every policy directory under ROOT/programs. A directory whose pins cannot be opened is reported unreadable, not missing. */
export function observePrograms(root: string): ObservedPrograms {
  const top = join(root, PROGRAMS_DIR);
  if (!existsSync(top)) return { programs: [] };
  const programs: ObservedProgram[] = [];
  for (const name of readdirSync(top).sort()) {
    const dir = join(top, name);
    try {
      programs.push(observeProgram(name, dir));
    } catch (err) {
      programs.push({ name, dir, maps: [], links: [], strays: [], unreadable: (err as Error).message });
    }
  }
  return { programs };
}

function observeProgram(name: string, dir: string): ObservedProgram {
  const o: ObservedProgram = { name, dir, maps: [], links: [], strays: [] };
  Object.assign(o, observeProgramPins(dir));
  for (const pin of readdirSync(dir).sort()) {
    if (pin === 'program' || pin === 'program_next') continue;
    if (pin === `map_${META_MAP}`) {
      using meta = tryOpen(() => BpfMap.fromPin(join(dir, pin)));
      const v = meta?.lookup(ZERO_KEY);
      const r = v ? decodeProgramRecord(v) : 'the record is empty';
      if (typeof r === 'string') o.recordProblem = r;
      else o.record = r;
    } else if (pin.startsWith('map_')) {
      using m = tryOpen(() => BpfMap.fromPin(join(dir, pin)));
      if (!m) continue;
      const i = m.info();
      o.maps.push({ name: pin.slice(4), id: i.id, mapType: i.type, keySize: i.keySize, valueSize: i.valueSize, maxEntries: i.maxEntries });
    } else if (pin.startsWith('link_') && !pin.endsWith('_next')) {
      using l = tryOpen(() => Link.fromPin(join(dir, pin)));
      if (!l) continue;
      const i = l.info();
      o.links.push({ pin, id: i.id, progId: i.progId, attached: i.target.attached });
    } else o.strays.push(pin);
  }
  return o;
}

/** The record of `dir`. Throws when there is no readable record. */
function readRecord(dir: string, meta?: BpfMap): ProgramRecord {
  using own = meta ? undefined : BpfMap.fromPin(mapPinPath(dir, META_MAP));
  const v = (meta ?? own!).lookup(ZERO_KEY);
  const r = v ? decodeProgramRecord(v) : 'the record is empty';
  if (typeof r === 'string') throw new Error(`${dir}: cannot read the program record: ${r}`);
  return r;
}

/** The record of `dir`, changed by `change` and written back. Throws when there is no readable record. */
function updateRecord(dir: string, change: (r: ProgramRecord) => ProgramRecord | void): void {
  using meta = BpfMap.fromPin(mapPinPath(dir, META_MAP));
  const r = readRecord(dir, meta);
  meta.update(ZERO_KEY, encodeProgramRecord(change(r) ?? r));
}

/** Reads the object and checks its digest: what is loaded is what the policy names. Throws Error on a mismatch. */
function verifiedBytes(d: DesiredProgram): Buffer {
  const { bytes, sha256 } = readObjectBytes(d.objectPath);
  const mismatch = digestMismatch(d.objectPath, d.sha256, sha256);
  if (mismatch) throw new Error(mismatch);
  return bytes;
}

/** A value as the map takes it: per-CPU maps get the one value for every CPU. */
function mapValue(map: BpfMap, value: Buffer): Buffer {
  const info = map.info();
  if (!PERCPU_MAP_TYPES.has(info.type)) return value;
  const stride = Math.ceil(info.valueSize / 8) * 8;
  const out = Buffer.alloc(map.valueSize);
  for (let off = 0; off < out.length; off += stride) value.copy(out, off);
  return out;
}

/**
 * The targets of the links a load anew keeps: those the record names whose
 * link pin exists (none without a readable record). A replace keeps them,
 * so attachTarget swaps the new program into them in place: an interface
 * holds one XDP link, and an unpinned one is detached only after an RCU
 * grace period, so attaching anew right after unpinning fails with EBUSY.
 */
function keptLinks(dir: string): AttachTarget[] {
  if (!existsSync(dir)) return [];
  let targets: AttachTarget[];
  try {
    targets = readRecord(dir).targets;
  } catch {
    return [];
  }
  const pins = new Set(readdirSync(dir));
  return targets.filter((t) => pins.has(t.pin));
}

/**
 * Creates a program's pins: checks the digest, loads the object, pins the
 * program and the object's maps, creates the record, writes the declared
 * entries. Attachments are separate operations; the links of a previous
 * load that its record names are kept (still running the old program until
 * attachTarget updates them) and recorded, everything else a previous or
 * crashed run left in the directory is removed first; on failure nothing
 * stays. Throws ErrnoError, LoadError (with the verifier log), Error on a
 * digest mismatch.
 */
export function createProgram(d: DesiredProgram): void {
  const bytes = verifiedBytes(d);
  const kept = keptLinks(d.dir);
  if (existsSync(d.dir)) for (const pin of listPins(d.dir)) if (!kept.some((t) => pin === join(d.dir, t.pin))) unpin(pin);
  mkdirSync(d.dir, { recursive: true, mode: 0o750 });
  try {
    {
      using obj = loadObjectBytes(bytes, d.objectPath);
      for (const m of d.maps) if (PIN_NAME.test(m.name)) obj.map(m.name).pin(mapPinPath(d.dir, m.name));
      obj.program(d.program).pin(join(d.dir, 'program'));
    }
    {
      using meta = BpfMap.create({ type: MapType.ARRAY, name: 'policy_meta', keySize: 4, valueSize: META_VALUE_SIZE, maxEntries: 1 });
      // The entries are recorded when writeEntries below has written them.
      const record: ProgramRecord = { ...programRecordOf(d, kept), entriesHash: '', declaredKeys: [] };
      meta.update(ZERO_KEY, encodeProgramRecord(record));
      meta.pin(mapPinPath(d.dir, META_MAP));
    }
    failpoint('create-after-maps');
    writeEntries(d, []);
  } catch (err) {
    removeProgram(d.dir);
    throw err;
  }
}

/**
 * Writes the declared entries (one CPU's value to every CPU of per-CPU
 * maps), deletes `deleteKeys` (declared before, not now), and records them.
 * Entries the program wrote itself are left alone. Throws ErrnoError.
 */
export function writeEntries(d: DesiredProgram, deleteKeys: { map: string; key: string }[]): void {
  const opened = new Map<string, BpfMap>();
  const open = (name: string): BpfMap => {
    let m = opened.get(name);
    if (!m) opened.set(name, (m = BpfMap.fromPin(mapPinPath(d.dir, name))));
    return m;
  };
  try {
    for (const e of d.entries) {
      const m = open(e.map);
      m.update(Buffer.from(e.key, 'hex'), mapValue(m, Buffer.from(e.value, 'hex')));
    }
    for (const k of deleteKeys) open(k.map).delete(Buffer.from(k.key, 'hex'));
  } finally {
    for (const m of opened.values()) m.close();
  }
  updateRecord(d.dir, (r) => {
    r.entriesHash = d.entriesHash;
    r.declaredKeys = d.entries.map((e) => ({ map: e.map, key: e.key }));
  });
}

/** Records the policy file and the object's path (same digest): what decides whether a failed file keeps the pins. Throws ErrnoError, Error without a readable record. */
export function recordSource(dir: string, sourceFile: string, object: string): void {
  updateRecord(dir, (r) => {
    r.sourceFile = sourceFile;
    r.object = object;
  });
}

/** Creates the link of `target` for `prog`. The caller owns it. */
function attachLink(prog: Program, target: AttachTarget, label: string): Link {
  switch (target.kind) {
    case 'xdp':
      return attachXdp(prog, target.netnsPath, target.ifindex, target.ifname, target.mode, label).link;
    case 'tcx': {
      using ns = Netns.open(target.netnsPath);
      return ns.enter(() => Link.attachTcx(prog, target.ifindex, target.direction, label));
    }
    case 'tracepoint':
      ensureTracefs();
      return Link.attachTracepoint(prog, target.category, target.name);
    case 'cgroup':
      return attachToCgroup(prog, target.cgroupPath, BigInt(target.id), target.attachType, label);
  }
}

/** A readable name of a target, for labels and messages. */
export function describeTarget(t: AttachTarget): string {
  switch (t.kind) {
    case 'xdp':
      return `xdp on ${t.ifname}${t.netns ? ` in ${t.netns}` : ''}`;
    case 'tcx':
      return `tc ${t.direction} on ${t.ifname}${t.netns ? ` in ${t.netns}` : ''}`;
    case 'tracepoint':
      return `tracepoint ${t.category}:${t.name}`;
    case 'cgroup':
      return `cgroup ${t.type} on ${t.cgroupPath}`;
  }
}

/**
 * Attaches the pinned program as `target` and pins the link (through
 * `<pin>_next`, renamed over the old pin). A link that is still attached
 * but runs another program is updated in place instead. Records the target.
 * Throws ErrnoError, XdpConflictError.
 */
export function attachTarget(d: DesiredProgram, target: AttachTarget): void {
  using prog = Program.fromPin(join(d.dir, 'program'));
  const pin = join(d.dir, target.pin);
  using existing = tryOpen(() => Link.fromPin(pin));
  // Only a link at the same hook (as recorded) is updated in place: a changed hook (XDP mode, cgroup, attach type) needs a new link there.
  const recorded = readRecord(d.dir).targets.find((t) => t.pin === target.pin);
  const sameHook = recorded !== undefined && JSON.stringify(recorded) === JSON.stringify(target);
  if (existing && existing.info().target.attached && target.kind !== 'tracepoint' && sameHook) existing.update(prog);
  else {
    if (existing && !sameHook) {
      // Detach the old link first, synchronously: an interface holds one XDP link, and a link whose last
      // reference goes is released later by a kernel work item (a new XDP link would meet EEXIST until then).
      if (existing.info().target.attached) {
        try {
          existing.detach();
        } catch (err) {
          // Links without BPF_LINK_DETACH (perf events) go with their last reference below.
          if (!(err instanceof ErrnoError && err.errno === Errno.EOPNOTSUPP)) throw err;
        }
      }
      existing.close();
      unpin(pin);
    }
    using link = attachLink(prog, target, `${describeTarget(target)} of program ${d.name}`);
    unpin(`${pin}_next`);
    link.pin(`${pin}_next`);
    renameSync(`${pin}_next`, pin);
  }
  updateRecord(d.dir, (r) => {
    r.targets = [...r.targets.filter((t) => t.pin !== target.pin), target].sort((a, b) => (a.pin < b.pin ? -1 : 1));
  });
}

/** Detaches a target: unpins its link (the kernel detaches it) and drops it from the record. */
export function detachTarget(dir: string, pin: string): void {
  unpin(join(dir, pin));
  if (existsSync(mapPinPath(dir, META_MAP))) updateRecord(dir, (r) => void (r.targets = r.targets.filter((t) => t.pin !== pin)));
}

/**
 * Swaps a new object's program in, keeping the pinned maps and their
 * contents (the plan only upgrades when the maps' signature is unchanged):
 * the object is loaded with the pinned maps, its program pinned as
 * program_next and put into every link with BPF_LINK_UPDATE (refused by the
 * kernel unless the link still runs `expectedProgId`); a tracepoint's perf
 * link cannot be updated, so a new link replaces it (for an instant both
 * run). Global variables (.data, .bss) start anew. Throws ErrnoError,
 * LoadError, Error on a digest mismatch.
 */
export function upgradeProgram(d: DesiredProgram, expectedProgId: number): void {
  const bytes = verifiedBytes(d);
  const reuse: Record<string, BpfMap> = {};
  try {
    for (const m of d.maps) if (PIN_NAME.test(m.name)) reuse[m.name] = BpfMap.fromPin(mapPinPath(d.dir, m.name));
    using obj = loadObjectBytes(bytes, d.objectPath, { reuseMaps: reuse });
    const next = obj.program(d.program);
    let targets: AttachTarget[] = [];
    updateRecord(d.dir, (r) => void (targets = r.targets));
    {
      // A plan made against another program than the one pinned is stale: refuse rather than swap from the wrong one.
      using pinned = Program.fromPin(join(d.dir, 'program'));
      const id = pinned.info().id;
      if (id !== expectedProgId) throw new Error(`${d.dir}: the pinned program is ${id}, not ${expectedProgId} as planned: plan again`);
    }
    swapPinnedProgram(d.dir, next, () => {
      using old = Program.fromId(expectedProgId);
      for (const t of targets) {
        const pin = join(d.dir, t.pin);
        using link = tryOpen(() => Link.fromPin(pin));
        if (!link) continue; // re-attached by the same pass (LinkMissing)
        const info = link.info();
        // A detached link cannot be updated (ENOLINK), one running another program is refused (EPERM): the same pass attaches the first anew (LinkDetached) and updates the second (LinkRunsOtherProgram).
        if (t.kind !== 'tracepoint' && (!info.target.attached || info.progId !== expectedProgId)) continue;
        if (t.kind === 'tracepoint') {
          using fresh = attachLink(next, t, `${describeTarget(t)} of program ${d.name}`);
          unpin(`${pin}_next`);
          fresh.pin(`${pin}_next`);
          renameSync(`${pin}_next`, pin);
        } else link.update(next, old);
      }
    });
  } finally {
    for (const m of Object.values(reuse)) m.close();
  }
  // The new object's record; the entries written and the attachments made stay as recorded.
  updateRecord(d.dir, (r) => ({ ...programRecordOf(d, r.targets), entriesHash: r.entriesHash, declaredKeys: r.declaredKeys }));
}

/** Removes a program's directory: its links detach, the kernel frees the rest. Returns the pins removed. */
export function removeProgram(dir: string): string[] {
  const pins = existsSync(dir) ? removePinTree(dir) : [];
  try {
    if (readdirSync(dirname(dir)).length === 0) rmdirSync(dirname(dir));
  } catch {
    // not empty, or raced: leave it
  }
  return pins;
}

/** Entry counts of a program's pinned maps (ring buffers and others without keys: undefined). */
export function countEntries(dir: string, maps: readonly ObservedMap[]): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  for (const m of maps) {
    if (m.keySize === 0) {
      out[m.name] = undefined;
      continue;
    }
    using map = tryOpen(() => BpfMap.fromPin(mapPinPath(dir, m.name)));
    out[m.name] = map ? countKeys(map) : undefined;
  }
  return out;
}

function countKeys(map: BpfMap): number | undefined {
  try {
    let n = 0;
    map.forEachEntry(() => void n++);
    return n;
  } catch {
    return undefined;
  }
}

/** The links of `o` keyed by pin. */
export function linksByPin(o: ObservedProgram): Map<string, ObservedLink> {
  return new Map(o.links.map((l) => [l.pin, l]));
}
