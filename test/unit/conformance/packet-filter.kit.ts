/**
 * The conformance kit of PacketFilter: random policies (resolved with a
 * fake resolver: fixed interfaces, namespaces and program tags), a fake
 * kernel of the filters under ROOT/filters, and what a converged filter
 * holds.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { InterfaceInfo } from '../../../src/bpf/interfaces.js';
import { compileRules } from '../../../src/kinds/packet-filter/compile.js';
import { buildDesiredFilters, type FilterResolver } from '../../../src/kinds/packet-filter/desired.js';
import type { PacketFilterPolicy, PacketFilterRule } from '../../../src/kinds/packet-filter/document.js';
import { FILTER_MAPS, encodeRuleset, parseFilterDirName, encodedFingerprint, type FilterMapName } from '../../../src/kinds/packet-filter/layout.js';
import type { DesiredFilters, FilterOperation } from '../../../src/kinds/packet-filter/model.js';
import type { ObservedFilter, ObservedFilters, RulesetWrite } from '../../../src/kinds/packet-filter/store.js';
import type { PlanEnv } from '../../../src/reconciler/kind.js';
import { ROOT, registeredKind, type ConformanceKit, type Damage, type FakeKernel, type Scenario } from './kit.js';

/** Tags of the filter programs the desired states run. */
export const FILTER_TAGS = { xdp: 'aaaaaaaaaaaaaaaa', tc: 'bbbbbbbbbbbbbbbb' };
/** Tag of an older filter program (what an upgrade replaces). */
export const OLD_FILTER_TAG = 'cccccccccccccccc';
/** The policy files of the random scenarios. */
export const FILTER_FILES = ['/p/one.yaml', '/p/two.yaml', '/p/three.yaml'];
/** The interfaces of every namespace the fake resolver knows. */
export const IFACES: InterfaceInfo[] = [
  { ifindex: 1, name: 'lo', linkType: 'loopback', xdp: [] },
  { ifindex: 2, name: 'eth0', linkType: 'ether', xdp: [] },
  { ifindex: 3, name: 'eth1', linkType: 'ether', xdp: [] },
  { ifindex: 4, name: 'tun0', linkType: 'none', xdp: [] },
];

/** A resolver of namespaces (every path resolves to ino-1 but those containing `missing`), `ifaces` and tcx. */
export function filterResolver(ifaces: InterfaceInfo[] = IFACES): FilterResolver {
  return {
    netnsKey: (path) => (path.includes('missing') ? { ok: false, reason: `network namespace ${path} does not exist` } : { ok: true, key: 'ino-1' }),
    interfaces: () => ({ ok: true, interfaces: ifaces.map((i) => ({ ...i, xdp: [...i.xdp] })) }),
    filterTags: () => FILTER_TAGS,
    tcMethod: () => 'tcx',
  };
}

/** What a desired state was built from, to build it again with other files failed. */
const built = new WeakMap<DesiredFilters, { policies: readonly PacketFilterPolicy[]; failed: ReadonlySet<string>; ifaces: InterfaceInfo[] }>();

/** The desired filters of `policies` with `failed` files, as the kind's `desired` builds them (with {@link filterResolver}). */
export function desiredFilters(policies: readonly PacketFilterPolicy[], failed: Iterable<string> = [], ifaces: InterfaceInfo[] = IFACES): DesiredFilters {
  const failedSet = new Set(failed);
  const d = buildDesiredFilters(policies, failedSet, ROOT, filterResolver(ifaces));
  built.set(d, { policies: [...policies], failed: failedSet, ifaces });
  return d;
}

function rebuild(desired: DesiredFilters, keep: (p: PacketFilterPolicy) => boolean, files: readonly string[]): DesiredFilters {
  const from = built.get(desired);
  if (!from) throw new Error('withFilesFailed: this desired state was not built by desiredFilters()');
  return desiredFilters(from.policies.filter(keep), [...from.failed, ...files], from.ifaces);
}

/** A PacketFilter policy, for examples (fields not given: XDP on eth0 in /run/netns/x, default pass, from /p/f.yaml). */
export function filterPolicy(name: string, rules: PacketFilterRule[], extra: Partial<PacketFilterPolicy> = {}): PacketFilterPolicy {
  return {
    kind: 'PacketFilter',
    name,
    labels: {},
    source: { file: '/p/f.yaml', documentIndex: 0, line: 1, column: 1 },
    netns: '/run/netns/x',
    interfaces: ['eth0'],
    hook: 'xdp',
    mode: 'enforce',
    defaultAction: 'pass',
    rules,
    sampleRate: 0,
    ...extra,
  };
}

const NAMES = ['a', 'b', 'c'];
const arbRule = (i: number): fc.Arbitrary<PacketFilterRule> =>
  fc
    .record({
      // Each policy's port rules use their own ports; rules without a protocol may disagree across policies (a Conflict).
      port: fc.integer({ min: 1, max: 5 }),
      proto: fc.constantFrom('tcp' as const, 'udp' as const, undefined),
      src: fc.option(fc.constantFrom(['10.0.0.0/8'], ['10.1.0.0/16', '2001:db8::/32'], ['192.0.2.0/24']), { nil: undefined }),
      action: fc.constantFrom('pass' as const, 'drop' as const),
      mode: fc.constantFrom('enforce' as const, 'enforce' as const, 'audit' as const),
    })
    .map(({ port, proto, src, action, mode }) => ({
      name: `r${port}`,
      protocol: proto,
      srcPrefixes: src,
      dstPrefixes: undefined,
      srcPorts: undefined,
      dstPorts: proto ? [{ start: 1000 * (i + 1) + port, end: 1000 * (i + 1) + port }] : undefined,
      action,
      mode,
    }));

const arbPolicy = (name: string): fc.Arbitrary<PacketFilterPolicy> =>
  fc
    .record({
      netns: fc.oneof({ weight: 9, arbitrary: fc.constant('/run/netns/x') }, { weight: 1, arbitrary: fc.constant('/run/netns/missing') }),
      interfaces: fc.constantFrom(['lo'], ['eth0'], ['eth*'], ['lo', 'eth1'], ['*'], ['nothing*']),
      hook: fc.constantFrom('xdp' as const, 'tc-ingress' as const, 'tc-egress' as const),
      mode: fc.constantFrom('enforce' as const, 'enforce' as const, 'audit' as const),
      defaultAction: fc.oneof({ weight: 4, arbitrary: fc.constant('pass' as const) }, { weight: 1, arbitrary: fc.constant('drop' as const) }),
      rules: fc.uniqueArray(arbRule(NAMES.indexOf(name)), { maxLength: 4, selector: (r) => r.name }),
      sampleRate: fc.constantFrom(0, 1, 100),
      file: fc.constantFrom(...FILTER_FILES),
    })
    .map(({ netns, interfaces, hook, mode, defaultAction, rules, sampleRate, file }) => ({
      kind: 'PacketFilter' as const,
      name,
      labels: {},
      source: { file, documentIndex: 0, line: 1, column: 1 },
      netns,
      interfaces,
      hook,
      mode,
      defaultAction,
      rules,
      sampleRate,
    }));

/** Random PacketFilter policies (a subset of a, b, c). */
export const arbFilterPolicies: fc.Arbitrary<PacketFilterPolicy[]> = fc.subarray(NAMES).chain((names) => fc.tuple(...names.map(arbPolicy)));

const arbScenario: fc.Arbitrary<Scenario<DesiredFilters>> = arbFilterPolicies.map((policies) => ({
  desired: desiredFilters(policies),
  files: [...new Set(policies.map((p) => p.source.file))].sort(),
}));

/** Thrown where the kernel or the store would fail. */
class FakeKernelError extends Error {
  override name = 'FakeKernelError';
}

/** The fingerprint of the tables a write puts in place (as observe computes it from the maps). */
export function writtenFingerprint(rules: RulesetWrite): string {
  const e = rules.encoded;
  return encodedFingerprint(e);
}

function maxId(s: ObservedFilters): number {
  let max = 0;
  for (const f of s.filters) max = Math.max(max, f.program?.id ?? 0, f.programNext?.id ?? 0, f.link?.id ?? 0, f.link?.progId ?? 0);
  return max;
}

const RULE_MAPS: FilterMapName[] = ['addr_tables', 'port_classes', 'decision_tables', 'config', 'active', 'rule_stats', 'rule_meta'];

/** The filters under ROOT/filters in memory, changed as src/kinds/packet-filter/store.ts changes the pins. */
export const filterFake: FakeKernel<DesiredFilters, ObservedFilters> = {
  unobservable: [],
  apply(observed, actions, desired) {
    const s: ObservedFilters = structuredClone(observed);
    let nextId = maxId(s) + 1;
    const at = (dir: string, op: string, maps: readonly FilterMapName[] = []): ObservedFilter => {
      const f = s.filters.find((x) => x.dir === dir);
      if (!f) throw new FakeKernelError(`${op}: no filter at ${dir} (ENOENT)`);
      if (f.error) throw new FakeKernelError(`${op}: the pins of ${dir} cannot be read (${f.error})`);
      const missing = maps.filter((m) => f.missingMaps.includes(m));
      if (missing.length > 0) throw new FakeKernelError(`${op}: ${missing.map((m) => `${dir}/map_${m}`).join(', ')} missing (ENOENT)`);
      return f;
    };
    const tagOf = (hook: string) => (hook === 'xdp' ? desired.tags.xdp : desired.tags.tc);
    for (const a of actions) {
      const op = a.op as FilterOperation;
      switch (op.type) {
        case 'createFilter': {
          const old = s.filters.find((f) => f.dir === op.dir);
          if (old?.error) throw new FakeKernelError(`createFilter: the pins of ${op.dir} cannot be read (${old.error})`);
          s.filters = s.filters.filter((f) => f.dir !== op.dir);
          const parts = op.dir.split('/');
          const name = parts[parts.length - 1]!;
          const netnsKey = parts[parts.length - 2]!;
          const parsed = parseFilterDirName(name);
          if (!parsed) throw new FakeKernelError(`createFilter: ${op.dir} is not a filter directory`);
          if (parsed.hook !== op.spec.hook || parsed.ifindex !== op.spec.ifindex) throw new FakeKernelError(`createFilter: ${op.dir} does not match ${op.spec.hook} on ifindex ${op.spec.ifindex}`);
          const progId = nextId++;
          s.filters.push({
            key: `${netnsKey}/${name}`,
            netnsKey,
            dir: op.dir,
            hook: parsed.hook,
            ifindex: parsed.ifindex,
            program: { id: progId, tag: tagOf(parsed.hook) },
            link: { method: op.spec.method, id: nextId++, progId, ifindex: parsed.ifindex, attached: true },
            missingMaps: [],
            layoutMismatch: [],
            attachment: { v: 1, ...op.spec, ...(op.spec.hook === 'xdp' ? { xdpMode: 'native' as const } : {}) },
            policies: structuredClone(op.policies).sort((x, y) => (x.name < y.name ? -1 : 1)),
            badRecords: [],
            activeGen: 1,
            fingerprint: writtenFingerprint(op.rules),
            slots: op.rules.newSlots.map((x) => ({ ...x })).sort((x, y) => x.slot - y.slot),
            stray: [],
          });
          s.filters.sort((x, y) => (x.key < y.key ? -1 : 1));
          break;
        }
        case 'writeFilterRules': {
          const f = at(op.dir, op.type, RULE_MAPS);
          if (op.gen === f.activeGen) throw new FakeKernelError(`writeFilterRules: generation ${op.gen} is the one packets use`);
          f.activeGen = op.gen;
          f.fingerprint = writtenFingerprint(op.rules);
          const gone = new Set([...op.rules.staleSlots, ...op.rules.newSlots.map((x) => x.slot)]);
          f.slots = [...f.slots.filter((x) => !gone.has(x.slot)), ...op.rules.newSlots.map((x) => ({ ...x }))].sort((x, y) => x.slot - y.slot);
          break;
        }
        case 'writeFilterRecords': {
          const f = at(op.dir, op.type, ['records']);
          for (const r of op.upserts) {
            if ('name' in r) {
              f.policies = [...f.policies.filter((p) => p.name !== r.name), structuredClone(r)].sort((x, y) => (x.name < y.name ? -1 : 1));
              f.badRecords = f.badRecords.filter((b) => b.name !== r.name);
            } else f.attachment = structuredClone(r);
          }
          f.policies = f.policies.filter((p) => !op.deletes.includes(p.name));
          f.badRecords = f.badRecords.filter((b) => !op.deletes.includes(b.name));
          break;
        }
        case 'replaceFilterProgram': {
          const f = at(op.dir, op.type, FILTER_MAPS);
          if (!f.attachment) throw new FakeKernelError(`replaceFilterProgram: ${op.dir} has no attachment record`);
          if (f.attachment.method !== 'cls_bpf') {
            // Swapped into the link with BPF_F_REPLACE: the link must exist, be attached, and run the expected program.
            if (!f.link) throw new FakeKernelError(`replaceFilterProgram: ${op.dir}/link is missing (ENOENT)`);
            if (!f.link.attached) throw new FakeKernelError(`replaceFilterProgram: link ${f.link.id} is detached (ENOLINK)`);
            if (f.link.progId !== op.expectedProgId)
              throw new FakeKernelError(`replaceFilterProgram: link ${f.link.id} runs program ${f.link.progId}, not ${op.expectedProgId} (EPERM)`);
          }
          // swapPinnedProgram: program_next (whatever a crash left there is unpinned first) is swapped in, then renamed over program.
          f.program = { id: nextId++, tag: tagOf(f.hook) };
          if (f.link) f.link.progId = f.program.id;
          delete f.programNext;
          f.stray = f.stray.filter((p) => p !== `${f.dir}/program_next`);
          break;
        }
        case 'finishUpgrade': {
          // finishPinnedSwap: program_next renamed over program.
          const f = at(op.dir, op.type);
          if (!f.programNext) throw new FakeKernelError(`finishUpgrade: ${op.dir}/program_next is missing (ENOENT)`);
          f.program = f.programNext;
          delete f.programNext;
          f.stray = f.stray.filter((p) => p !== `${f.dir}/program_next`);
          break;
        }
        case 'attachFilter': {
          const f = at(op.dir, op.type, ['records']);
          if (!f.program) throw new FakeKernelError(`attachFilter: ${op.dir}/program is missing (ENOENT)`);
          // One XDP link per interface: a second one is refused while ours is still attached.
          if (op.spec.hook === 'xdp' && f.link?.attached) throw new FakeKernelError(`attachFilter: ifindex ${op.spec.ifindex} already has XDP link ${f.link.id} (EBUSY)`);
          f.link = { method: op.spec.method, id: nextId++, progId: f.program.id, ifindex: op.spec.ifindex, attached: true };
          f.attachment = { v: 1, ...op.spec, ...(op.spec.hook === 'xdp' ? { xdpMode: 'native' as const } : {}) };
          break;
        }
        case 'removeFilter':
          at(op.dir, op.type);
          s.filters = s.filters.filter((f) => f.dir !== op.dir);
          break;
        case 'removeStray': {
          // removePinPath: a path that is gone already is fine; one of the layout's pins is not stray.
          const inside = s.filters.find((f) => op.path === f.dir || op.path.startsWith(`${f.dir}/`));
          if (inside?.error) throw new FakeKernelError(`removeStray: the pins of ${inside.dir} cannot be read (${inside.error})`);
          if (inside && !inside.stray.includes(op.path) && op.path !== `${inside.dir}/program_next`)
            throw new FakeKernelError(`removeStray: ${op.path} is part of filter ${inside.key}, not stray`);
          if (inside && op.path === `${inside.dir}/program_next`) {
            if (inside.programNext && inside.link?.attached && inside.link.progId === inside.programNext.id)
              throw new FakeKernelError(`removeStray: ${op.path} is the program the link runs`);
            delete inside.programNext;
          }
          s.stray = s.stray.filter((p) => p !== op.path);
          for (const f of s.filters) f.stray = f.stray.filter((p) => p !== op.path);
          break;
        }
        case 'none':
          break;
        default:
          throw new FakeKernelError(`PacketFilter has no operation ${(op as { type: string }).type}`);
      }
    }
    return s;
  },
};

/** The kinds of damage {@link damageFilters} does. */
const FILTER_DAMAGES = [
  'old-program', // an older version's filter program (an upgrade is due)
  'link-detached', // the link was detached (e.g. the interface went away)
  'link-missing', // the link pin was removed
  'link-runs-other', // the link runs another program than the pinned one
  'map-missing', // a map pin was removed
  'older-layout', // maps pinned by an older layout
  'no-attachment-record', // the attachment record is gone
  'stray-pin', // link_next of an interrupted attach
  'program-next', // program_next of an upgrade interrupted before the swap (nothing runs it)
  'swap-interrupted', // an upgrade interrupted after the swap: the link runs program_next, program is the old one
  'bad-record', // an unreadable record of no policy
  'bad-own-record', // an unreadable record of a policy the filter serves (e.g. written by a newer version)
  'rules-changed', // the active tables are not the ones written
  'slot-lost', // a counter slot's rule_meta entry is gone
  'stray-top', // something under ROOT/filters that is not a filter
];

/**
 * The observed state after `damages`, as observeFilters would read it (a
 * copy; the input is not changed).
 */
function damageFilters(observed: ObservedFilters, damages: readonly Damage[]): ObservedFilters {
  const s = structuredClone(observed);
  for (const { what, target } of damages) {
    if (what === 'stray-top') {
      const path = target % 2 ? `${ROOT}/filters/leftover` : `${ROOT}/filters/ino-1/junk`;
      if (!s.stray.includes(path)) s.stray = [...s.stray, path].sort();
      continue;
    }
    const f = s.filters[target % Math.max(1, s.filters.length)];
    if (!f || f.error) continue;
    const unreadable = () => {
      // What observe reads from maps it cannot use: nothing.
      f.policies = [];
      f.badRecords = [];
      delete f.attachment;
    };
    switch (what) {
      case 'old-program':
        if (f.program) f.program = { ...f.program, tag: OLD_FILTER_TAG };
        break;
      case 'link-detached':
        if (f.link) f.link = { ...f.link, attached: false };
        break;
      case 'link-missing':
        delete f.link;
        break;
      case 'link-runs-other':
        if (f.link) f.link = { ...f.link, progId: 1 };
        break;
      case 'map-missing': {
        const map = FILTER_MAPS[target % FILTER_MAPS.length]!;
        if (f.missingMaps.includes(map)) break;
        f.missingMaps = [...f.missingMaps, map];
        if (map === 'records') unreadable();
        if (map === 'rule_meta') f.slots = [];
        if (map === 'active') f.activeGen = 0;
        if (['config', 'active', 'addr_tables', 'port_classes', 'decision_tables'].includes(map)) delete f.fingerprint;
        break;
      }
      case 'older-layout':
        f.layoutMismatch = ['map config (key 4/4, value 16/52 bytes)'];
        unreadable();
        f.slots = [];
        f.activeGen = 0;
        delete f.fingerprint;
        break;
      case 'no-attachment-record':
        delete f.attachment;
        break;
      case 'stray-pin':
        if (!f.stray.includes(`${f.dir}/link_next`)) f.stray = [...f.stray, `${f.dir}/link_next`].sort();
        break;
      case 'program-next':
        if (f.programNext) break;
        f.programNext = { id: maxId(s) + 1, tag: f.hook === 'xdp' ? FILTER_TAGS.xdp : FILTER_TAGS.tc };
        f.stray = [...f.stray, `${f.dir}/program_next`].sort();
        break;
      case 'swap-interrupted':
        if (f.programNext || !f.program || !f.link || f.attachment?.method === 'cls_bpf') break;
        f.programNext = { id: maxId(s) + 1, tag: f.program.tag };
        f.program = { ...f.program, tag: OLD_FILTER_TAG };
        f.link = { ...f.link, progId: f.programNext.id };
        f.stray = [...f.stray, `${f.dir}/program_next`].sort();
        break;
      case 'bad-record':
        if (!f.missingMaps.includes('records') && f.layoutMismatch.length === 0 && !f.badRecords.some((b) => b.name === 'zz-bad'))
          f.badRecords.push({ name: 'zz-bad', reason: 'not JSON: Unexpected token' });
        break;
      case 'bad-own-record': {
        const own = f.policies[0];
        if (!own || f.missingMaps.includes('records') || f.layoutMismatch.length > 0) break;
        f.policies = f.policies.slice(1);
        f.badRecords.push({ name: own.name, reason: 'unknown record format' });
        break;
      }
      case 'rules-changed':
        if (f.fingerprint !== undefined) f.fingerprint = 'written by someone else';
        break;
      case 'slot-lost':
        f.slots = f.slots.filter((_, i) => i !== target % Math.max(1, f.slots.length));
        break;
      default:
        throw new Error(`no damage ${what}`);
    }
  }
  return s;
}

/** Filters kept as they are: they serve a policy whose file failed (and that no loaded file defines now) or that cannot be resolved, or their namespace's interfaces cannot be listed. */
function keptFilter(f: ObservedFilter, desired: DesiredFilters, failed: ReadonlySet<string>): boolean {
  const names = new Set(desired.policies.map((p) => p.name));
  return desired.keepNetns.includes(f.netnsKey) || f.policies.some((r) => desired.keepPolicies.includes(r.name) || (failed.has(r.sourceFile) && !names.has(r.name)));
}

function assertFiltersConverged(desired: DesiredFilters, s: ObservedFilters, env: PlanEnv): void {
  const kept = new Set(s.filters.filter((f) => keptFilter(f, desired, env.failedFiles)).map((f) => f.key));
  assert.deepEqual(
    s.filters.map((f) => f.key),
    [...new Set([...desired.filters.map((f) => f.key), ...kept])].sort(),
    'one filter per (interface, hook) a policy covers, and no other but those kept',
  );
  assert.deepEqual(s.stray, [], 'nothing stray under ROOT/filters');
  for (const want of desired.filters) {
    if (kept.has(want.key)) continue;
    const f = s.filters.find((x) => x.key === want.key)!;
    const what = `filter ${want.key}`;
    assert.equal(f.dir, want.dir, `${what} lives where the layout says`);
    assert.equal(f.program?.tag, want.hook === 'xdp' ? desired.tags.xdp : desired.tags.tc, `${what} runs the desired program`);
    assert.ok(f.link?.attached && f.link.method === want.method, `${what} is attached with ${want.method}`);
    assert.equal(f.link.progId, f.program.id, `${what}: the attachment runs the pinned program`);
    assert.deepEqual([f.missingMaps, f.layoutMismatch, f.badRecords, f.stray, f.programNext], [[], [], [], [], undefined], `${what} is complete and clean`);
    assert.deepEqual(
      f.attachment && { ifname: f.attachment.ifname, ifindex: f.attachment.ifindex, hook: f.attachment.hook, method: f.attachment.method, netnsPath: f.attachment.netnsPath },
      { ifname: want.ifname, ifindex: want.ifindex, hook: want.hook, method: want.method, netnsPath: want.netnsPath },
      `${what}: attachment record`,
    );
    assert.deepEqual(
      f.policies,
      want.policies.map((p) => ({ v: 1, name: p.name, sourceFile: p.sourceFile, specHash: p.specHash })),
      `${what}: one record per policy it serves`,
    );
    assert.deepEqual(f.slots.map((x) => `${x.policy}/${x.rule}`).sort(), want.rules.map((r) => `${r.policy}/${r.rule}`).sort(), `${what}: one counter slot per rule`);
    assert.ok(
      f.slots.every((x) => x.slot > 0),
      `${what}: slot 0 is the default's`,
    );
    assert.equal(new Set(f.slots.map((x) => x.slot)).size, f.slots.length, `${what}: slots are distinct`);
    // The active tables are those of the desired rules, each counting into its own slot.
    const slotOf = new Map(f.slots.map((x) => [`${x.policy}\u0000${x.rule}`, x.slot]));
    const compiled = compileRules(
      want.rules.map((r) => ({ ...r, slot: slotOf.get(`${r.policy}\u0000${r.rule}`)! })),
      { action: want.defaultAction, audit: want.defaultAudit, sample: want.defaultSample },
    );
    const encoded = encodeRuleset(compiled);
    assert.equal(f.fingerprint, writtenFingerprint({ encoded, newSlots: [], staleSlots: [] }), `${what}: the active tables are the desired rules`);
  }
}

/** PacketFilter's conformance kit. */
export const packetFilterKit: ConformanceKit<DesiredFilters, ObservedFilters> = {
  kind: registeredKind<DesiredFilters, ObservedFilters>('PacketFilter'),
  empty: () => ({ filters: [], stray: [] }),
  none: () => desiredFilters([]),
  arbScenario,
  withFilesFailed: (desired, files) => rebuild(desired, (p) => !files.includes(p.source.file), files),
  withFilesInvalid: (desired, files) => rebuild(desired, () => true, files),
  damages: FILTER_DAMAGES,
  damage: damageFilters,
  fake: filterFake,
  assertConverged: assertFiltersConverged,
  heldFrom(observed, failed, desired) {
    const takenOver = new Set(desired.policies.filter((p) => !failed.has(p.sourceFile)).map((p) => p.name));
    // Also a policy now defined in a failed file (it moved there from the file its record names).
    const movedIntoFailed = new Set(desired.policies.filter((p) => failed.has(p.sourceFile)).map((p) => p.name));
    // A filter that serves a policy of a failed file is kept whole: its program, attachment, rules and counters.
    return observed.filters.filter((f) => f.policies.some((r) => (failed.has(r.sourceFile) && !takenOver.has(r.name)) || movedIntoFailed.has(r.name)));
  },
  knownBugs: [],
};
