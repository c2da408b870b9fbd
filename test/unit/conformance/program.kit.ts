/**
 * The conformance kit of Program: random policies (each with a digest, a
 * program, maps whose signature changes now and then, declared entries and
 * targets of every attach kind; some of them kept because their object
 * cannot be read or has another digest), a fake kernel of the directories
 * under ROOT/programs that changes them as src/kinds/program/store.ts
 * changes the pins, and what a converged directory holds.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PIN_NAME } from '../../../src/bpf/bpffs.js';
import { programDir, programRecordOf, targetPinName, type AttachTarget, type EncodedEntry, type ProgramRecord } from '../../../src/kinds/program/layout.js';
import type { DesiredProgram, DesiredPrograms, ObjectMapSummary, ObservedLink, ObservedProgram, ObservedPrograms, ProgramOperation } from '../../../src/kinds/program/model.js';
import { entriesHash, mapsSignature } from '../../../src/kinds/program/object-file.js';
import type { PlanEnv } from '../../../src/reconciler/kind.js';
import { ROOT, registeredKind, type ConformanceKit, type Damage, type FakeKernel, type Scenario } from './kit.js';

/** The policy files of the random scenarios. */
export const PROGRAM_FILES = ['/p/one.yaml', '/p/two.yaml', '/p/three.yaml'];
/** The digest recorded by an older object (what an interrupted upgrade leaves in the record). */
export const OLD_SHA = 'ee'.repeat(32);

/**
 * A link as the fake kernel holds it: what observe reads, and the hook it is
 * attached to (`at`: the target as JSON), which observe cannot read but the
 * kernel knows. An attachment moved to another hook must be a new link there.
 */
type FakeLink = ObservedLink & { at?: string };

/** The maps of one object "build": `counts` changes size between builds a and b (another maps signature). */
function mapsOf(build: 'a' | 'b', withMeta: boolean): ObjectMapSummary[] {
  const maps: ObjectMapSummary[] = [
    { name: 'config', mapType: 2, keySize: 4, valueSize: 8, maxEntries: 1, keyType: 'u32', valueType: 'struct config{dport:u16@0/16,enabled:bool@16/8}/8' },
    { name: 'counts', mapType: 1, keySize: 8, valueSize: 16, maxEntries: build === 'a' ? 4096 : 1024, keyType: 'struct tuple{}/8', valueType: 'struct counter{}/16' },
    { name: 'events', mapType: 27, keySize: 0, valueSize: 0, maxEntries: 4096, keyType: '', valueType: '' },
  ];
  // A map libbpf names after a section (".rodata"): loaded, never pinned.
  if (withMeta) maps.push({ name: 'xdp_coun.rodata', mapType: 2, keySize: 4, valueSize: 4, maxEntries: 1, keyType: '', valueType: '' });
  return maps.sort((x, y) => (x.name < y.name ? -1 : 1));
}

/** A DesiredProgram, for examples and the plan's unit tests (fields not given: an xdp target on ifindex 2, build a, no entries, from /p/one.yaml). */
export function desiredProgram(name: string, extra: Partial<DesiredProgram> = {}): DesiredProgram {
  const maps = extra.maps ?? mapsOf('a', false);
  const entries = extra.entries ?? [];
  return {
    name,
    sourceFile: '/p/one.yaml',
    dir: programDir(ROOT, name),
    objectPath: '/p/xdp_counter.o',
    sha256: 'aa'.repeat(32),
    program: 'count_tuples',
    targets: [xdpTarget(2)],
    ...extra,
    maps,
    mapsSignature: mapsSignature(maps),
    entries,
    entriesHash: entriesHash(entries),
  };
}

/** The maps of build `b`: a `counts` of another size. */
export const MAPS_A = mapsOf('a', false);
export const MAPS_B = mapsOf('b', false);

/** An XDP target on `ifindex` of the own namespace (or of /run/netns/web). */
export function xdpTarget(ifindex: number, mode: 'auto' | 'native' | 'generic' = 'auto', netns: string | null = null): AttachTarget {
  const netnsKey = netns ? '4026532999' : '4026531840';
  return { kind: 'xdp', pin: targetPinName({ kind: 'xdp', netnsKey, ifindex }), netns, netnsPath: netns ?? '/proc/1/ns/net', ifname: `eth${ifindex}`, ifindex, mode };
}

/** A tcx target on `ifindex` of the own namespace. */
export function tcTarget(ifindex: number, direction: 'ingress' | 'egress'): AttachTarget {
  return { kind: 'tcx', pin: targetPinName({ kind: 'tcx', netnsKey: '4026531840', ifindex, direction }), netns: null, netnsPath: '/proc/1/ns/net', ifname: `eth${ifindex}`, ifindex, direction };
}

/** A tracepoint target. */
export function tracepointTarget(name = 'sys_enter_execve'): AttachTarget {
  return { kind: 'tracepoint', pin: targetPinName({ kind: 'tracepoint' }), category: 'syscalls', name };
}

/** A cgroup target (the id is its inode). */
export function cgroupTarget(cgroupPath = '/sys/fs/cgroup/app', type = 'connect4'): AttachTarget {
  return { kind: 'cgroup', pin: targetPinName({ kind: 'cgroup' }), cgroupPath, id: cgroupPath.length.toString(), type, attachType: type === 'connect4' ? 10 : 11 };
}

/** One random policy, as the generator draws it before it is built into the desired state. */
interface ProgramSpec {
  name: string;
  file: string;
  build: 'a' | 'b';
  sha: number;
  program: 'count_tuples' | 'count_all';
  entries: EncodedEntry[];
  targets: AttachTarget[];
  /** Why the resolver keeps what runs for it (its object cannot be read, or has another digest), if it does. */
  keep?: 'ObjectUnreadable' | 'DigestMismatch' | 'NetnsNotFound';
}

/** What a desired state was built from, to build it again with other files failed. */
const built = new WeakMap<DesiredPrograms, { specs: readonly ProgramSpec[]; failed: ReadonlySet<string> }>();

/** The desired programs of `specs` with `failed` files, as buildDesiredPrograms makes them (sorted by name; failed files and unresolvable policies kept). */
function desiredPrograms(specs: readonly ProgramSpec[], failed: Iterable<string> = []): DesiredPrograms {
  const failedSet = new Set(failed);
  const out: DesiredPrograms = { policies: [], keep: [], problems: [], status: [] };
  for (const s of [...specs].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    // The digest names the bytes: the build (its maps) and the variant; the path is the digest's.
    const sha = `${s.build === 'a' ? '0' : '1'}${s.sha}`.repeat(32);
    const objectPath = `/p/${s.build}${s.sha}.o`;
    out.status.push({ name: s.name, sourceFile: s.file, objectPath, program: s.program });
    const keep = failedSet.has(s.file) ? 'InvalidSourceFile' : s.keep;
    if (keep) {
      out.keep.push(s.name);
      out.problems.push({ policy: s.name, sourceFile: s.file, condition: keep === 'NetnsNotFound' ? 'Degraded' : 'Failed', reason: keep, message: 'kept' });
      continue;
    }
    out.policies.push(
      desiredProgram(s.name, {
        sourceFile: s.file,
        objectPath,
        sha256: sha,
        program: s.program,
        maps: mapsOf(s.build, s.sha % 2 === 1),
        entries: s.entries,
        targets: [...s.targets],
        // Every other variant declares its ring buffer for `events`.
        ...(s.sha % 2 === 0 ? { events: { map: 'events', type: 'struct event' } } : {}),
      }),
    );
  }
  built.set(out, { specs: [...specs], failed: failedSet });
  return out;
}

function rebuild(desired: DesiredPrograms, keep: (s: ProgramSpec) => boolean, files: readonly string[]): DesiredPrograms {
  const from = built.get(desired);
  if (!from) throw new Error('withFilesFailed: this desired state was not built by desiredPrograms()');
  return desiredPrograms(from.specs.filter(keep), [...from.failed, ...files]);
}

const ENTRIES: EncodedEntry[] = [
  { map: 'config', key: '00000000', value: '0000000001000000' },
  { map: 'config', key: '00000000', value: '901f000001000000' },
  { map: 'counts', key: '0a00000150000600', value: '00'.repeat(16) },
  { map: 'counts', key: '0a00000251000600', value: '01'.repeat(16) },
];

const arbTargets: fc.Arbitrary<AttachTarget[]> = fc.oneof(
  // XDP or tc on some interfaces (none: no interface matches yet), of the own namespace or another.
  fc
    .record({ ifs: fc.subarray([2, 3, 4]), mode: fc.constantFrom('auto' as const, 'native' as const, 'generic' as const), netns: fc.constantFrom(null, '/run/netns/web') })
    .map(({ ifs, mode, netns }) => ifs.map((i) => xdpTarget(i, mode, netns))),
  fc.record({ ifs: fc.subarray([2, 3]), direction: fc.constantFrom('ingress' as const, 'egress' as const) }).map(({ ifs, direction }) => ifs.map((i) => tcTarget(i, direction))),
  fc.constantFrom('sys_enter_execve', 'sys_enter_openat').map((n) => [tracepointTarget(n)]),
  // A cgroup hook, or none (the cgroup does not exist yet).
  fc.oneof(
    fc.record({ path: fc.constantFrom('/sys/fs/cgroup/app', '/sys/fs/cgroup/db'), type: fc.constantFrom('connect4', 'connect6') }).map(({ path, type }) => [cgroupTarget(path, type)]),
    fc.constant<AttachTarget[]>([]),
  ),
);

const arbSpec = (name: string): fc.Arbitrary<ProgramSpec> =>
  fc
    .record({
      file: fc.constantFrom(...PROGRAM_FILES),
      build: fc.constantFrom('a' as const, 'b' as const),
      sha: fc.integer({ min: 1, max: 4 }),
      program: fc.constantFrom('count_tuples' as const, 'count_all' as const),
      // Entries of distinct keys (two values of config key 0 would be one entry).
      entries: fc.subarray([0, 2, 3]).chain((ix) => fc.tuple(...ix.map((i) => (i === 0 ? fc.constantFrom(ENTRIES[0]!, ENTRIES[1]!) : fc.constant(ENTRIES[i]!))))),
      targets: arbTargets,
      keep: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('ObjectUnreadable' as const, 'DigestMismatch' as const, 'NetnsNotFound' as const) }),
    })
    .map((r) => ({ name, ...r, ...(r.keep ? { keep: r.keep } : { keep: undefined }) }));

const NAMES = ['a', 'b', 'c'];

/** Random Program policies (a subset of a, b, c). */
const arbSpecs: fc.Arbitrary<ProgramSpec[]> = fc.subarray(NAMES).chain((names) => fc.tuple(...names.map(arbSpec)));

const arbScenario: fc.Arbitrary<Scenario<DesiredPrograms>> = arbSpecs.map((specs) => ({
  desired: desiredPrograms(specs),
  files: [...new Set(specs.map((s) => s.file))].sort(),
}));

/** Thrown where the kernel or the store would fail. */
class FakeKernelError extends Error {
  override name = 'FakeKernelError';
}

function maxId(s: ObservedPrograms): number {
  return Math.max(0, ...s.programs.flatMap((o) => [o.program?.id ?? 0, o.programNext?.id ?? 0, ...o.maps.map((m) => m.id), ...o.links.flatMap((l) => [l.id, l.progId])]));
}

const byPin = (a: { pin: string }, b: { pin: string }) => (a.pin < b.pin ? -1 : a.pin > b.pin ? 1 : 0);

/** The hook a target attaches to (a link there runs where the target says). */
function hookOf(t: AttachTarget): string {
  return JSON.stringify(t);
}

/** The directories under ROOT/programs in memory, changed as src/kinds/program/store.ts changes the pins. */
export const programFake: FakeKernel<DesiredPrograms, ObservedPrograms> = {
  unobservable: [],
  apply(observed, actions) {
    const s: ObservedPrograms = structuredClone(observed);
    let nextId = maxId(s) + 1;
    const find = (dir: string): ObservedProgram | undefined => s.programs.find((o) => o.dir === dir);
    const at = (dir: string, op: string): ObservedProgram => {
      const o = find(dir);
      if (!o) throw new FakeKernelError(`${op}: no ${dir} (ENOENT)`);
      if (o.unreadable) throw new FakeKernelError(`${op}: the pins of ${dir} cannot be read (${o.unreadable})`);
      return o;
    };
    // updateRecord: throws when there is no readable record.
    const record = (o: ObservedProgram, op: string): ProgramRecord => {
      if (!o.record) throw new FakeKernelError(`${op}: ${o.dir}: cannot read the program record: ${o.recordProblem ?? 'no map_meta (ENOENT)'}`);
      return o.record;
    };
    const mapPin = (o: ObservedProgram, name: string, op: string) => {
      if (!o.maps.some((m) => m.name === name)) throw new FakeKernelError(`${op}: ${o.dir}/map_${name} is missing (ENOENT)`);
    };
    const dropStray = (o: ObservedProgram, name: string) => {
      o.strays = o.strays.filter((x) => x !== name);
    };
    const newLink = (progId: number, t: AttachTarget): FakeLink => ({ pin: t.pin, id: nextId++, progId, attached: true, at: hookOf(t) });
    const setLink = (o: ObservedProgram, l: FakeLink) => {
      o.links = [...o.links.filter((x) => x.pin !== l.pin), l].sort(byPin);
      dropStray(o, `${l.pin}_next`);
    };
    for (const a of actions) {
      const op = a.op as ProgramOperation;
      switch (op.type) {
        case 'createProgram': {
          // verifiedBytes, then whatever the directory held is removed but the links its record names (an unreadable one cannot be), the maps and the program pinned, the record and the entries written.
          const d = op.desired;
          const old = find(d.dir);
          if (old?.unreadable) throw new FakeKernelError(`createProgram: the pins of ${d.dir} cannot be read (${old.unreadable})`);
          // The links the old record names are kept (and recorded), still running what they ran.
          const keptTargets = (old?.record?.targets ?? []).filter((t) => old!.links.some((l) => l.pin === t.pin));
          for (const e of d.entries) if (!d.maps.some((m) => m.name === e.map)) throw new FakeKernelError(`createProgram: the object has no map ${e.map}`);
          const o: ObservedProgram = {
            name: d.name,
            dir: d.dir,
            record: { v: 1, sha256: d.sha256, program: d.program, object: d.objectPath, sourceFile: d.sourceFile, mapsSignature: d.mapsSignature, entriesHash: d.entriesHash, declaredKeys: d.entries.map((e) => ({ map: e.map, key: e.key })), targets: keptTargets, ...(d.events ? { events: d.events } : {}) },
            program: { id: nextId++, tag: d.sha256.slice(0, 16) },
            maps: d.maps.filter((m) => PIN_NAME.test(m.name)).map((m) => ({ name: m.name, id: nextId++, mapType: m.mapType, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries })),
            links: (old?.links ?? []).filter((l) => keptTargets.some((t) => t.pin === l.pin)),
            strays: [],
          };
          s.programs = [...s.programs.filter((x) => x.dir !== d.dir), o].sort((x, y) => (x.name < y.name ? -1 : 1));
          break;
        }
        case 'upgradeProgram': {
          // The object loaded with the pinned maps; program_next pinned and swapped into every link of the record
          // (BPF_LINK_UPDATE with BPF_F_REPLACE: refused unless the link runs expectedProgId; a detached link: ENOLINK);
          // a tracepoint gets a new link; then program_next renamed over program and the record written.
          const d = op.desired;
          const o = at(d.dir, op.type);
          for (const m of d.maps) if (PIN_NAME.test(m.name)) mapPin(o, m.name, op.type);
          const r = record(o, op.type);
          if (!o.program) throw new FakeKernelError(`upgradeProgram: ${d.dir}/program is missing (ENOENT)`);
          if (o.program.id !== op.expectedProgId) throw new FakeKernelError(`upgradeProgram: the pinned program is ${o.program.id}, not ${op.expectedProgId} as planned`);
          const next = { id: nextId++, tag: d.sha256.slice(0, 16) };
          const links = o.links as FakeLink[];
          for (const t of r.targets) {
            const l = links.find((x) => x.pin === t.pin);
            if (!l) continue;
            if (t.kind === 'tracepoint') setLink(o, newLink(next.id, t));
            // Skipped: a detached link (ENOLINK) and one running another program (EPERM with BPF_F_REPLACE).
            else if (l.attached && l.progId === op.expectedProgId) l.progId = next.id;
          }
          o.program = next;
          delete o.programNext;
          Object.assign(r, { sha256: d.sha256, program: d.program, object: d.objectPath, sourceFile: d.sourceFile, mapsSignature: d.mapsSignature });
          if (d.events) r.events = d.events;
          else delete r.events;
          break;
        }
        case 'writeEntries': {
          const d = op.desired;
          const o = at(d.dir, op.type);
          for (const e of [...d.entries, ...op.deleteKeys]) mapPin(o, e.map, op.type);
          const r = record(o, op.type);
          r.entriesHash = d.entriesHash;
          r.declaredKeys = d.entries.map((e) => ({ map: e.map, key: e.key }));
          break;
        }
        case 'recordSource': {
          const r = record(at(op.dir, op.type), op.type);
          r.sourceFile = op.sourceFile;
          r.object = op.object;
          break;
        }
        case 'attachTarget': {
          // The pinned program; an attached link of this pin at the recorded hook (not a tracepoint's) has its program updated in place, else a new link is pinned as <pin>_next and renamed over <pin>.
          const d = op.desired;
          const t = op.target;
          const o = at(d.dir, op.type);
          if (!o.program) throw new FakeKernelError(`attachTarget: ${d.dir}/program is missing (ENOENT)`);
          const r = record(o, op.type);
          const existing = (o.links as FakeLink[]).find((l) => l.pin === t.pin);
          // Updated in place only at the hook the record names for it; else the old link is unpinned (detached) and a new one made.
          const recorded = r.targets.find((x) => x.pin === t.pin);
          if (existing && existing.attached && t.kind !== 'tracepoint' && recorded && hookOf(recorded) === hookOf(t)) existing.progId = o.program.id;
          else setLink(o, newLink(o.program.id, t));
          r.targets = [...r.targets.filter((x) => x.pin !== t.pin), t].sort(byPin);
          break;
        }
        case 'detachTarget': {
          const o = at(op.dir, op.type);
          o.links = o.links.filter((l) => l.pin !== op.pin);
          if (o.record || o.recordProblem) {
            const r = record(o, op.type);
            r.targets = r.targets.filter((x) => x.pin !== op.pin);
          }
          break;
        }
        case 'finishUpgrade': {
          const o = at(op.dir, op.type);
          if (!o.programNext) throw new FakeKernelError(`finishUpgrade: ${op.dir}/program_next is missing (ENOENT)`);
          o.program = o.programNext;
          delete o.programNext;
          break;
        }
        case 'removeStray': {
          // removePinPath: a pin that is gone already is fine.
          const dir = op.path.slice(0, op.path.lastIndexOf('/'));
          const pin = op.path.slice(dir.length + 1);
          const o = find(dir);
          if (!o) break;
          if (o.unreadable) throw new FakeKernelError(`removeStray: the pins of ${dir} cannot be read (${o.unreadable})`);
          if (pin === 'program_next') {
            if (o.programNext && o.links.some((l) => l.attached && l.progId === o.programNext!.id)) throw new FakeKernelError(`removeStray: ${op.path} is the program the links run`);
            delete o.programNext;
          } else if (pin === 'program' || pin.startsWith('map_') || o.links.some((l) => l.pin === pin)) throw new FakeKernelError(`removeStray: ${op.path} is part of the program, not stray`);
          dropStray(o, pin);
          break;
        }
        case 'removeProgram': {
          const o = at(op.dir, op.type);
          s.programs = s.programs.filter((x) => x !== o);
          break;
        }
        case 'none':
          break;
        default:
          throw new FakeKernelError(`Program has no operation ${(op as { type: string }).type}`);
      }
    }
    return s;
  },
};

/** The kinds of damage {@link damagePrograms} does. */
const PROGRAM_DAMAGES = [
  'link-detached', // a link's target went away and came back (an interface deleted and created again): the link is detached
  'link-pin-missing', // a link pin was removed (the attachment is gone)
  'link-runs-other', // a link of ours runs another program (someone updated it)
  'program-next-before-swap', // an upgrade interrupted before the swap: program_next that nothing runs
  'program-next-after-swap', // an upgrade interrupted after the swap: the links run program_next, the record names the older object
  'record-unreadable', // map_meta holds a record this version cannot read
  'stray-link-next', // link_*_next of an interrupted attach
  'dir-unreadable', // a pin of the directory cannot be opened (not ENOENT): left alone
  'map-missing', // a map pin was removed
  'old-object', // the record names an older object with the same maps (an upgrade is due)
  'crashed-create', // a directory a crashed create left, of a policy no file defines: maps only, no record
];

/** The observed state after `damages`, as observePrograms would read it (a copy; the input is not changed). */
function damagePrograms(observed: ObservedPrograms, damages: readonly Damage[]): ObservedPrograms {
  const s = structuredClone(observed);
  for (const { what, target } of damages) {
    if (what === 'crashed-create') {
      const name = `zz${target}`;
      if (s.programs.some((o) => o.name === name)) continue;
      s.programs.push({ name, dir: programDir(ROOT, name), maps: [{ name: 'counts', id: maxId(s) + 1, mapType: 1, keySize: 8, valueSize: 16, maxEntries: 4096 }], links: [], strays: [] });
      s.programs.sort((x, y) => (x.name < y.name ? -1 : 1));
      continue;
    }
    const readable = s.programs.filter((o) => !o.unreadable);
    const o = readable[target % Math.max(1, readable.length)];
    if (!o) continue;
    const link = o.links[target % Math.max(1, o.links.length)] as FakeLink | undefined;
    switch (what) {
      case 'link-detached':
        if (link) link.attached = false;
        break;
      case 'link-pin-missing':
        if (link) o.links = o.links.filter((l) => l !== link);
        break;
      case 'link-runs-other':
        if (link?.attached) link.progId = 90000 + target;
        break;
      case 'program-next-before-swap':
        if (!o.programNext) o.programNext = { id: maxId(s) + 1, tag: 'ffffffffffffffff' };
        break;
      case 'program-next-after-swap': {
        // The old program stays pinned as program; the record still names the object it came from.
        if (o.programNext || !o.program || !o.record) break;
        const next = { id: maxId(s) + 1, tag: o.program.tag };
        for (const l of o.links) if (l.attached && l.progId === o.program.id) l.progId = next.id;
        o.programNext = next;
        o.program = { id: o.program.id, tag: 'dddddddddddddddd' };
        o.record.sha256 = OLD_SHA;
        break;
      }
      case 'record-unreadable':
        delete o.record;
        o.recordProblem = 'unsupported version 2';
        break;
      case 'stray-link-next': {
        const pin = `${link?.pin ?? 'link_xdp_4026531840_9'}_next`;
        if (!o.strays.includes(pin)) o.strays = [...o.strays, pin].sort();
        break;
      }
      case 'dir-unreadable':
        s.programs[s.programs.indexOf(o)] = { name: o.name, dir: o.dir, maps: [], links: [], strays: [], unreadable: `${o.dir}/map_counts: EACCES` };
        break;
      case 'map-missing':
        if (o.maps.length > 0) o.maps = o.maps.filter((_, i) => i !== target % o.maps.length);
        break;
      case 'old-object':
        if (o.record) o.record.sha256 = OLD_SHA;
        break;
      default:
        throw new Error(`no damage ${what}`);
    }
  }
  return s;
}

/** The names of the directories a pass leaves as they are: unreadable, kept by the resolver, or of a failed file no loaded file defines. */
function keptNames(desired: DesiredPrograms, s: ObservedPrograms, failed: ReadonlySet<string>): Set<string> {
  const loaded = new Set(desired.status.map((p) => p.name));
  const wanted = new Set(desired.policies.map((p) => p.name));
  return new Set(
    s.programs
      .filter((o) => !wanted.has(o.name) && (o.unreadable !== undefined || desired.keep.includes(o.name) || (o.record !== undefined && failed.has(o.record.sourceFile) && !loaded.has(o.name))))
      .map((o) => o.name),
  );
}

function assertProgramsConverged(desired: DesiredPrograms, s: ObservedPrograms, env: PlanEnv): void {
  const kept = keptNames(desired, s, env.failedFiles);
  const unreadable = new Set(s.programs.filter((o) => o.unreadable).map((o) => o.name));
  assert.deepEqual(
    s.programs.map((o) => o.name),
    [...new Set([...desired.policies.map((p) => p.name), ...kept])].sort(),
    'a directory for each policy applied, and for those kept, and no other',
  );
  for (const d of desired.policies) {
    const o = s.programs.find((x) => x.name === d.name)!;
    if (unreadable.has(d.name)) continue; // left as it is
    const what = `program ${d.name}`;
    assert.equal(o.dir, d.dir, `${what}: where the layout says`);
    assert.deepEqual([o.recordProblem, o.programNext, o.strays], [undefined, undefined, []], `${what}: complete and clean`);
    assert.ok(o.program, `${what}: a program`);
    assert.deepEqual(
      o.record,
      programRecordOf(d, [...d.targets].sort(byPin)),
      `${what}: the record of what runs`,
    );
    assert.deepEqual(
      o.maps.map((m) => [m.name, m.mapType, m.keySize, m.valueSize, m.maxEntries]),
      d.maps.filter((m) => PIN_NAME.test(m.name)).map((m) => [m.name, m.mapType, m.keySize, m.valueSize, m.maxEntries]),
      `${what}: the object's maps, pinned`,
    );
    assert.deepEqual(
      (o.links as FakeLink[]).map((l) => ({ pin: l.pin, attached: l.attached, progId: l.progId, at: l.at })),
      [...d.targets].sort(byPin).map((t) => ({ pin: t.pin, attached: true, progId: o.program!.id, at: hookOf(t) })),
      `${what}: one attached link per target, at its hook, running the program`,
    );
  }
}

/** Program's conformance kit. */
export const programKit: ConformanceKit<DesiredPrograms, ObservedPrograms> = {
  kind: registeredKind<DesiredPrograms, ObservedPrograms>('Program'),
  empty: () => ({ programs: [] }),
  none: () => desiredPrograms([]),
  arbScenario,
  withFilesFailed: (desired, files) => rebuild(desired, (s) => !files.includes(s.file), files),
  withFilesInvalid: (desired, files) => rebuild(desired, () => true, files),
  damages: PROGRAM_DAMAGES,
  damage: damagePrograms,
  fake: programFake,
  assertConverged: assertProgramsConverged,
  heldFrom(observed, failed, desired) {
    const takenOver = new Set(desired.status.filter((p) => !failed.has(p.sourceFile)).map((p) => p.name));
    const movedIntoFailed = new Set(desired.status.filter((p) => failed.has(p.sourceFile)).map((p) => p.name));
    return observed.programs.filter((o) => o.record && ((failed.has(o.record.sourceFile) && !takenOver.has(o.name)) || movedIntoFailed.has(o.name)));
  },
  knownBugs: [],
};
