/**
 * The conformance kit of ConnectPolicy: random policies (resolved with a
 * fake resolver: fixed cgroups, two spellings of one of them, and fixed
 * program tags), a fake kernel of the guards under ROOT/connect, and what a
 * converged guard holds.
 */
import assert from 'node:assert/strict';
import { posix } from 'node:path';
import fc from 'fast-check';
import type { CgroupResolution } from '../../../src/bpf/cgroup.js';
import { compileGuard, type GuardPolicy } from '../../../src/kinds/connect-policy/compile.js';
import { buildDesiredGuards, type GuardResolver } from '../../../src/kinds/connect-policy/desired.js';
import type { ConnectAction, ConnectMode, ConnectPolicyPolicy, ConnectRule } from '../../../src/kinds/connect-policy/document.js';
import {
  encodeGeneration,
  generationFingerprint,
  GUARD_HOOKS,
  GUARD_MAPS,
  GUARDS_DIR,
  parseGuardKey,
  splitEntries,
  type GuardHook,
  type GuardMapName,
} from '../../../src/kinds/connect-policy/layout.js';
import type { DesiredGuard, DesiredGuards, GuardOperation } from '../../../src/kinds/connect-policy/model.js';
import type { GenerationWrite, ObservedGuard, ObservedGuards, ObservedHook } from '../../../src/kinds/connect-policy/store.js';
import type { PlanEnv } from '../../../src/reconciler/kind.js';
import { ROOT, registeredKind, type ConformanceKit, type Damage, type FakeKernel, type Scenario } from './kit.js';

/** Tags of the guard programs the desired states run, per hook. */
export const GUARD_TAGS: Record<GuardHook, string> = {
  connect4: 'a4a4a4a4a4a4a4a4',
  connect6: 'a6a6a6a6a6a6a6a6',
  sendmsg4: 'b4b4b4b4b4b4b4b4',
  sendmsg6: 'b6b6b6b6b6b6b6b6',
};
/** Tag of an older guard program (what an upgrade replaces). */
export const OLD_GUARD_TAG = 'cccccccccccccccc';
/** The policy files of the random scenarios. */
export const CONNECT_FILES = ['/p/one.yaml', '/p/two.yaml', '/p/three.yaml'];
/** Where the fake cgroup2 is mounted. */
export const CGROUP_MOUNT = '/sys/fs/cgroup';
/** The cgroups the fake resolver knows, by absolute path: their ids. */
export const CGROUPS: Record<string, bigint> = {
  '/sys/fs/cgroup/app': 4101n,
  '/sys/fs/cgroup/db': 4202n,
  '/sys/fs/cgroup/web/api': 4303n,
};

/**
 * The fake cgroup resolution: specs containing `missing` do not exist, those
 * containing `unreadable` cannot be read, others resolve (relative to
 * {@link CGROUP_MOUNT} or absolute) to the cgroups of {@link CGROUPS}; any
 * other path does not exist.
 */
export function resolveFakeCgroup(spec: string): CgroupResolution {
  if (spec.includes('missing')) return { ok: false, missing: true, reason: `cgroup ${spec} does not exist (yet)` };
  if (spec.includes('unreadable')) return { ok: false, missing: false, reason: `cgroup ${spec}: EACCES: permission denied` };
  const path = spec.startsWith('/') ? posix.normalize(spec) : posix.join(CGROUP_MOUNT, spec);
  const id = CGROUPS[path];
  return id === undefined ? { ok: false, missing: true, reason: `cgroup ${path} does not exist (yet)` } : { ok: true, path, id };
}

/** A resolver of cgroups ({@link resolveFakeCgroup}) and of the tags {@link GUARD_TAGS}. */
export function guardResolver(): GuardResolver {
  return { cgroup: resolveFakeCgroup, tags: () => ({ ...GUARD_TAGS }) };
}

/** What a desired state was built from, to build it again with other files failed. */
const built = new WeakMap<DesiredGuards, { policies: readonly ConnectPolicyPolicy[]; failed: ReadonlySet<string> }>();

/** The desired guards of `policies` with `failed` files, as the kind's `desired` builds them (with {@link guardResolver}). */
export function desiredGuards(policies: readonly ConnectPolicyPolicy[], failed: Iterable<string> = []): DesiredGuards {
  const failedSet = new Set(failed);
  const d = buildDesiredGuards(policies, failedSet, ROOT, guardResolver());
  built.set(d, { policies: [...policies], failed: failedSet });
  return d;
}

function rebuild(desired: DesiredGuards, keep: (p: ConnectPolicyPolicy) => boolean, files: readonly string[]): DesiredGuards {
  const from = built.get(desired);
  if (!from) throw new Error('withFilesFailed: this desired state was not built by desiredGuards()');
  return desiredGuards(from.policies.filter(keep), [...from.failed, ...files]);
}

/** A ConnectPolicy rule, for examples (fields not given: deny every connect, enforced). */
export function connectRule(name: string, extra: Partial<ConnectRule> = {}): ConnectRule {
  return { name, action: 'deny', protocol: undefined, destinations: undefined, ports: undefined, mode: 'enforce', ...extra };
}

/** A ConnectPolicy policy, for examples (fields not given: on cgroup "app", enforce, default allow, no events, from /p/f.yaml). */
export function connectPolicy(name: string, rules: ConnectRule[], extra: Partial<ConnectPolicyPolicy> = {}): ConnectPolicyPolicy {
  return {
    kind: 'ConnectPolicy',
    name,
    labels: {},
    source: { file: '/p/f.yaml', documentIndex: 0, line: 1, column: 1 },
    cgroup: 'app',
    mode: 'enforce',
    defaultAction: 'allow',
    rules,
    sampleRate: 0,
    ...extra,
  };
}

const NAMES = ['a', 'b', 'c'];
/** Destinations as normalization leaves them (canonical, aggregated, IPv4 first), nested across lists. */
const DESTINATIONS = [['10.0.0.0/8'], ['10.1.0.0/16', '2001:db8::/32'], ['192.0.2.0/24'], ['10.1.2.3/32', '2001:db8:1::/48'], ['::/0']];
const PORTS = [[{ start: 443, end: 443 }], [{ start: 8000, end: 8100 }], [{ start: 53, end: 53 }, { start: 5353, end: 5353 }], [{ start: 1, end: 1023 }]];

const arbRule = (mode: ConnectMode): fc.Arbitrary<ConnectRule> =>
  fc
    .record({
      name: fc.constantFrom('r1', 'r2', 'r3', 'r4'),
      protocol: fc.constantFrom('tcp' as const, 'udp' as const, undefined),
      destinations: fc.option(fc.constantFrom(...DESTINATIONS), { nil: undefined }),
      ports: fc.option(fc.constantFrom(...PORTS), { nil: undefined }),
      action: fc.constantFrom<ConnectAction>('allow', 'deny'),
      ruleMode: fc.option(fc.constantFrom<ConnectMode>('enforce', 'audit'), { nil: undefined, freq: 3 }),
    })
    .map(({ name, protocol, destinations, ports, action, ruleMode }) => ({
      name,
      action,
      protocol,
      destinations: destinations && [...destinations],
      // Ports need a protocol (validation refuses them otherwise).
      ports: protocol && ports ? ports.map((r) => ({ ...r })) : undefined,
      mode: ruleMode ?? mode,
    }));

const arbPolicy = (name: string): fc.Arbitrary<ConnectPolicyPolicy> =>
  fc
    .record({
      // Mostly the same cgroup, in either spelling, so that guards serve several policies.
      cgroup: fc.oneof(
        { weight: 5, arbitrary: fc.constantFrom('app', '/sys/fs/cgroup/app') },
        { weight: 2, arbitrary: fc.constant('db') },
        { weight: 1, arbitrary: fc.constant('/sys/fs/cgroup/web/api') },
        { weight: 1, arbitrary: fc.constant('missing') },
        { weight: 1, arbitrary: fc.constant('unreadable') },
      ),
      mode: fc.oneof({ weight: 3, arbitrary: fc.constant<ConnectMode>('enforce') }, { weight: 1, arbitrary: fc.constant<ConnectMode>('audit') }),
      defaultAction: fc.oneof({ weight: 3, arbitrary: fc.constant<ConnectAction>('allow') }, { weight: 1, arbitrary: fc.constant<ConnectAction>('deny') }),
      sampleRate: fc.constantFrom(0, 1, 100),
      file: fc.constantFrom(...CONNECT_FILES),
    })
    .chain((p) => fc.uniqueArray(arbRule(p.mode), { maxLength: 4, selector: (r) => r.name }).map((rules) => ({ ...p, rules })))
    .map(({ cgroup, mode, defaultAction, sampleRate, file, rules }) => ({
      kind: 'ConnectPolicy' as const,
      name,
      labels: {},
      source: { file, documentIndex: 0, line: 1, column: 1 },
      cgroup,
      mode,
      defaultAction,
      rules,
      sampleRate,
    }));

/** Random ConnectPolicy policies (a subset of a, b, c). */
export const arbConnectPolicies: fc.Arbitrary<ConnectPolicyPolicy[]> = fc.subarray(NAMES).chain((names) => fc.tuple(...names.map(arbPolicy)));

const arbScenario: fc.Arbitrary<Scenario<DesiredGuards>> = arbConnectPolicies.map((policies) => ({
  desired: desiredGuards(policies),
  files: [...new Set(policies.map((p) => p.source.file))].sort(),
}));

/** Thrown where the kernel or the store would fail. */
class FakeKernelError extends Error {
  override name = 'FakeKernelError';
}

/** The fingerprint of the tables a write puts in place (as observe computes it from the maps). */
export function writtenFingerprint(rules: GenerationWrite): string {
  const e = rules.encoded;
  return generationFingerprint({ addr: splitEntries(e.addr), port: splitEntries(e.port), decision: splitEntries(e.decision), config: e.config });
}

function maxId(s: ObservedGuards): number {
  let max = 0;
  for (const g of s.guards)
    for (const hook of GUARD_HOOKS) {
      const h = g.hooks[hook];
      max = Math.max(max, h.program?.id ?? 0, h.programNext?.id ?? 0, h.link?.id ?? 0, h.link?.progId ?? 0);
    }
  return max;
}

function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** The pins (and directories) of the layout of the guard in `dir`: never stray. */
function layoutPins(dir: string): string[] {
  return [dir, ...GUARD_MAPS.map((m) => `${dir}/map_${m}`), ...GUARD_HOOKS.flatMap((h) => [`${dir}/${h}`, `${dir}/${h}/program`, `${dir}/${h}/link`])];
}

const RULE_MAPS: GuardMapName[] = ['addrs', 'ports', 'decisions', 'config', 'active', 'rule_stats', 'rule_meta'];

/** The guards under ROOT/connect in memory, changed as src/kinds/connect-policy/store.ts changes the pins. */
export const guardFake: FakeKernel<DesiredGuards, ObservedGuards> = {
  unobservable: [],
  apply(observed, actions, desired) {
    const s: ObservedGuards = structuredClone(observed);
    let nextId = maxId(s) + 1;
    const at = (dir: string, op: string, maps: readonly GuardMapName[] = []): ObservedGuard => {
      const g = s.guards.find((x) => x.dir === dir);
      if (!g) throw new FakeKernelError(`${op}: no guard at ${dir} (ENOENT)`);
      if (g.error) throw new FakeKernelError(`${op}: the pins of ${dir} cannot be read (${g.error})`);
      const missing = maps.filter((m) => g.missingMaps.includes(m));
      if (missing.length > 0) throw new FakeKernelError(`${op}: ${missing.map((m) => `${dir}/map_${m}`).join(', ')} missing (ENOENT)`);
      // Maps of an older layout cannot be written with this one's key and value sizes.
      if (maps.length > 0 && g.layoutMismatch.length > 0) throw new FakeKernelError(`${op}: ${dir} has maps of an older layout (EINVAL)`);
      return g;
    };
    /** The guard and hook of a hook directory (`<guard dir>/<hook>`). */
    const hookAt = (hookDir: string, op: string): { g: ObservedGuard; hook: GuardHook; h: ObservedHook } => {
      const hook = posix.basename(hookDir) as GuardHook;
      if (!GUARD_HOOKS.includes(hook)) throw new FakeKernelError(`${op}: ${hookDir} is not a hook directory`);
      const g = at(posix.dirname(hookDir), op);
      return { g, hook, h: g.hooks[hook] };
    };
    /** attachToCgroup: refuses a cgroup that is not there, or not the recorded one (created again). */
    const checkCgroup = (op: string, guard: { cgroupPath: string; cgroupId: string }) => {
      const cg = resolveFakeCgroup(guard.cgroupPath);
      if (!cg.ok) throw new FakeKernelError(`${op}: ${cg.reason}`);
      if (String(cg.id) !== guard.cgroupId) throw new FakeKernelError(`${op}: cgroup ${guard.cgroupPath} is ${cg.id} now, not ${guard.cgroupId}`);
    };
    const dropStray = (g: ObservedGuard, path: string) => {
      g.stray = g.stray.filter((p) => p !== path);
    };
    for (const a of actions) {
      const op = a.op as GuardOperation;
      switch (op.type) {
        case 'createGuard': {
          // Whatever the directory held is removed first; then maps, programs, the first rule set, the records and the four links.
          const old = s.guards.find((g) => g.dir === op.dir);
          if (old?.error) throw new FakeKernelError(`createGuard: the pins of ${op.dir} cannot be read (${old.error})`);
          const key = posix.basename(op.dir);
          const id = parseGuardKey(key);
          if (id === undefined || op.dir !== posix.join(ROOT, GUARDS_DIR, key)) throw new FakeKernelError(`createGuard: ${op.dir} is not a guard directory`);
          if (String(id) !== op.guard.cgroupId) throw new FakeKernelError(`createGuard: ${op.dir} is not the guard of cgroup ${op.guard.cgroupId}`);
          checkCgroup('createGuard', op.guard);
          s.guards = s.guards.filter((g) => g.dir !== op.dir);
          const hooks = {} as Record<GuardHook, ObservedHook>;
          for (const hook of GUARD_HOOKS) {
            const progId = nextId++;
            hooks[hook] = { program: { id: progId, tag: desired.tags[hook] }, link: { id: nextId++, progId, cgroupId: op.guard.cgroupId, attached: true } };
          }
          s.guards.push({
            key,
            dir: op.dir,
            cgroupId: String(id),
            hooks,
            missingMaps: [],
            layoutMismatch: [],
            guard: structuredClone(op.guard),
            policies: structuredClone(op.policies).sort(byName),
            badRecords: [],
            activeGen: op.rules.encoded.gen,
            fingerprint: writtenFingerprint(op.rules),
            slots: op.rules.newSlots.map((x) => ({ ...x })).sort((x, y) => x.slot - y.slot),
            stray: [],
          });
          s.guards.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
          break;
        }
        case 'writeGuardRules': {
          const g = at(op.dir, op.type, RULE_MAPS);
          const gen = op.rules.encoded.gen;
          if (gen !== 0 && gen !== 1) throw new FakeKernelError(`writeGuardRules: no generation ${gen}`);
          if (gen === g.activeGen) throw new FakeKernelError(`writeGuardRules: generation ${gen} is the one connects use`);
          g.activeGen = gen;
          g.fingerprint = writtenFingerprint(op.rules);
          // rule_meta of the new slots is written before the switch, that of the stale ones deleted after it.
          const slots = new Map(g.slots.map((x) => [x.slot, x]));
          for (const x of op.rules.newSlots) slots.set(x.slot, { ...x });
          for (const slot of op.rules.staleSlots) slots.delete(slot);
          g.slots = [...slots.values()].sort((x, y) => x.slot - y.slot);
          break;
        }
        case 'writeGuardRecords': {
          // Upserts first, then deletes (as store.writeGuardRecords).
          const g = at(op.dir, op.type, ['records']);
          for (const r of op.upserts) {
            if ('name' in r) {
              g.policies = [...g.policies.filter((p) => p.name !== r.name), structuredClone(r)].sort(byName);
              g.badRecords = g.badRecords.filter((b) => b.name !== r.name);
            } else {
              g.guard = structuredClone(r);
              g.badRecords = g.badRecords.filter((b) => b.name !== '@guard');
            }
          }
          g.policies = g.policies.filter((p) => !op.deletes.includes(p.name));
          g.badRecords = g.badRecords.filter((b) => !op.deletes.includes(b.name));
          if (op.deletes.includes('@guard')) delete g.guard;
          break;
        }
        case 'attachGuardHook': {
          const g = at(op.dir, op.type);
          const h = g.hooks[op.hook];
          if (!h.program) throw new FakeKernelError(`attachGuardHook: ${op.dir}/${op.hook}/program is missing (ENOENT)`);
          checkCgroup('attachGuardHook', op.guard);
          if (op.guard.cgroupId !== g.cgroupId) throw new FakeKernelError(`attachGuardHook: ${op.dir} guards cgroup ${g.cgroupId}, not ${op.guard.cgroupId}`);
          // link_next (whatever a crash left there is unpinned first), renamed over link: the old link is released.
          h.link = { id: nextId++, progId: h.program.id, cgroupId: op.guard.cgroupId, attached: true };
          dropStray(g, `${op.dir}/${op.hook}/link_next`);
          break;
        }
        case 'replaceGuardProgram': {
          const g = at(op.dir, op.type, GUARD_MAPS);
          const h = g.hooks[op.hook];
          // Swapped into the link with BPF_F_REPLACE: the link must exist, be attached, and run the expected program.
          if (!h.link) throw new FakeKernelError(`replaceGuardProgram: ${op.dir}/${op.hook}/link is missing (ENOENT)`);
          if (!h.link.attached) throw new FakeKernelError(`replaceGuardProgram: link ${h.link.id} is detached (ENOLINK)`);
          if (h.link.progId !== op.expectedProgId)
            throw new FakeKernelError(`replaceGuardProgram: link ${h.link.id} runs program ${h.link.progId}, not ${op.expectedProgId} (EPERM)`);
          // swapPinnedProgram: program_next (whatever a crash left there is unpinned first) is swapped in, then renamed over program.
          h.program = { id: nextId++, tag: desired.tags[op.hook] };
          h.link.progId = h.program.id;
          delete h.programNext;
          dropStray(g, `${op.dir}/${op.hook}/program_next`);
          break;
        }
        case 'finishUpgrade': {
          // finishPinnedSwap: program_next renamed over program (op.dir is the hook's directory).
          const { g, h } = hookAt(op.dir, op.type);
          if (!h.programNext) throw new FakeKernelError(`finishUpgrade: ${op.dir}/program_next is missing (ENOENT)`);
          h.program = h.programNext;
          delete h.programNext;
          dropStray(g, `${op.dir}/program_next`);
          break;
        }
        case 'removeGuard':
          at(op.dir, op.type);
          s.guards = s.guards.filter((g) => g.dir !== op.dir);
          break;
        case 'removeStray': {
          // removePinPath: a path that is gone already is fine; one of the layout's pins is not stray.
          const inside = s.guards.find((g) => op.path === g.dir || op.path.startsWith(`${g.dir}/`));
          if (inside?.error) throw new FakeKernelError(`removeStray: the pins of ${inside.dir} cannot be read (${inside.error})`);
          if (inside) {
            const nextOf = GUARD_HOOKS.find((hook) => op.path === `${inside.dir}/${hook}/program_next`);
            if (layoutPins(inside.dir).includes(op.path)) throw new FakeKernelError(`removeStray: ${op.path} is part of guard ${inside.key}, not stray`);
            if (nextOf !== undefined) {
              const h = inside.hooks[nextOf];
              if (h.programNext && h.link?.attached && h.link.progId === h.programNext.id) throw new FakeKernelError(`removeStray: ${op.path} is the program the link runs`);
              delete h.programNext;
            }
          }
          s.stray = s.stray.filter((p) => p !== op.path);
          for (const g of s.guards) dropStray(g, op.path);
          break;
        }
        case 'none':
          break;
        default:
          throw new FakeKernelError(`ConnectPolicy has no operation ${(op as { type: string }).type}`);
      }
    }
    return s;
  },
};

/** The kinds of damage {@link damageGuards} does. */
const GUARD_DAMAGES = [
  'old-program', // an older version's program on one hook (an upgrade is due)
  'old-programs', // an older version's programs on every hook (a new version was installed)
  'link-detached', // one hook's link was detached
  'all-links-detached', // the cgroup was removed: every link reports attached: false
  'link-missing', // one hook's link pin was removed
  'link-runs-other', // one hook's link runs another program than the pinned one
  'map-missing', // a map pin was removed
  'older-layout', // maps pinned by an older layout
  'no-guard-record', // the "@guard" record is gone
  'stray-pin', // link_next of an interrupted attach in a hook directory
  'stray-top', // something under ROOT/connect (or in a guard directory) that is not part of the layout
  'program-next', // program_next of an upgrade interrupted before the swap (nothing runs it)
  'swap-interrupted', // an upgrade interrupted after the swap: the link runs program_next, program is the old one
  'bad-record', // an unreadable record: of no policy, or a policy's own (e.g. written by a newer version)
  'rules-changed', // the active tables are not the ones written
  'slot-lost', // a counter slot's rule_meta entry is gone
];

/**
 * The observed state after `damages`, as observeGuards would read it (a
 * copy; the input is not changed).
 */
function damageGuards(observed: ObservedGuards, damages: readonly Damage[]): ObservedGuards {
  const s = structuredClone(observed);
  for (const { what, target } of damages) {
    const g = s.guards[target % Math.max(1, s.guards.length)];
    if (what === 'stray-top') {
      const path = target % 2 || !g ? `${ROOT}/${GUARDS_DIR}/leftover` : `${g.dir}/junk`;
      if (path.startsWith(`${ROOT}/${GUARDS_DIR}/leftover`)) {
        if (!s.stray.includes(path)) s.stray = [...s.stray, path].sort();
      } else if (g && !g.error && !g.stray.includes(path)) g.stray = [...g.stray, path].sort();
      continue;
    }
    if (!g || g.error) continue;
    const hook = GUARD_HOOKS[target % GUARD_HOOKS.length]!;
    const h = g.hooks[hook];
    switch (what) {
      case 'old-program':
        if (h.program) h.program = { ...h.program, tag: OLD_GUARD_TAG };
        break;
      case 'old-programs':
        for (const x of GUARD_HOOKS) if (g.hooks[x].program) g.hooks[x].program = { ...g.hooks[x].program!, tag: OLD_GUARD_TAG };
        break;
      case 'link-detached':
        if (h.link) h.link = { ...h.link, attached: false };
        break;
      case 'all-links-detached':
        for (const x of GUARD_HOOKS) if (g.hooks[x].link) g.hooks[x].link = { ...g.hooks[x].link!, attached: false };
        break;
      case 'link-missing':
        delete h.link;
        break;
      case 'link-runs-other':
        if (h.link) h.link = { ...h.link, progId: 90000 + target }; // not a program of ours
        break;
      case 'map-missing': {
        const map = GUARD_MAPS[target % GUARD_MAPS.length]!;
        if (g.missingMaps.includes(map)) break;
        g.missingMaps = [...g.missingMaps, map];
        if (map === 'records') {
          g.policies = [];
          g.badRecords = [];
          delete g.guard;
        }
        if (map === 'rule_meta') g.slots = [];
        if (map === 'active') delete g.activeGen;
        if (['config', 'active', 'addrs', 'ports', 'decisions'].includes(map)) delete g.fingerprint;
        break;
      }
      case 'older-layout':
        // observeGuard stops at a layout mismatch: nothing of the maps is read.
        g.layoutMismatch = ['map config (key 4/4, value 296/552 bytes)'];
        g.policies = [];
        g.badRecords = [];
        delete g.guard;
        g.slots = [];
        delete g.activeGen;
        delete g.fingerprint;
        break;
      case 'no-guard-record':
        delete g.guard;
        break;
      case 'stray-pin': {
        const path = `${g.dir}/${hook}/link_next`;
        if (!g.stray.includes(path)) g.stray = [...g.stray, path].sort();
        break;
      }
      case 'program-next':
        if (h.programNext) break;
        h.programNext = { id: maxId(s) + 1, tag: GUARD_TAGS[hook] };
        g.stray = [...g.stray, `${g.dir}/${hook}/program_next`].sort();
        break;
      case 'swap-interrupted':
        if (h.programNext || !h.program || !h.link) break;
        h.programNext = { id: maxId(s) + 1, tag: h.program.tag };
        h.program = { ...h.program, tag: OLD_GUARD_TAG };
        h.link = { ...h.link, progId: h.programNext.id };
        g.stray = [...g.stray, `${g.dir}/${hook}/program_next`].sort();
        break;
      case 'bad-record': {
        if (g.missingMaps.includes('records') || g.layoutMismatch.length > 0) break;
        // A record of no policy, or a policy's own record that cannot be read any more.
        const own = g.policies[target % Math.max(1, g.policies.length)];
        const name = target % 2 && own ? own.name : 'zz-bad';
        if (g.badRecords.some((b) => b.name === name)) break;
        g.policies = g.policies.filter((p) => p.name !== name);
        g.badRecords = [...g.badRecords, { name, reason: name === 'zz-bad' ? 'not JSON: Unexpected token' : 'unsupported version 2' }];
        break;
      }
      case 'rules-changed':
        if (g.fingerprint !== undefined) g.fingerprint = 'written by someone else';
        break;
      case 'slot-lost':
        g.slots = g.slots.filter((_, i) => i !== target % Math.max(1, g.slots.length));
        break;
      default:
        throw new Error(`no damage ${what}`);
    }
  }
  return s;
}

/** Whether the cgroup of `g` is gone as the plan sees it: it has links, and none is attached. */
function cgroupGone(g: ObservedGuard): boolean {
  const links = GUARD_HOOKS.map((h) => g.hooks[h].link);
  return links.some((l) => l !== undefined) && links.every((l) => l === undefined || !l.attached);
}

/**
 * Guards kept as they are: they serve a policy whose file failed (and that no loaded file defines now) or whose
 * cgroup cannot be read now, unless their cgroup is gone and no policy wants them.
 */
function keptGuard(g: ObservedGuard, desired: DesiredGuards, failed: ReadonlySet<string>): boolean {
  const names = new Set(desired.policies.map((p) => p.name));
  const wanted = desired.guards.some((w) => w.key === g.key);
  return (
    !g.error &&
    (wanted || !cgroupGone(g)) &&
    g.policies.some((r) => desired.keepPolicies.includes(r.name) || (failed.has(r.sourceFile) && !names.has(r.name)))
  );
}

/** The compiled policies of `want` counting into `slots` (undefined where a slot is missing). */
export function guardPolicies(want: DesiredGuard, slots: ObservedGuard['slots']): GuardPolicy[] {
  const slotOf = new Map(slots.map((x) => [`${x.policy}\u0000${x.rule}`, x.slot]));
  return want.policies.map((p) => ({
    rules: p.rules.map((r) => ({ ...r, slot: slotOf.get(`${p.name}\u0000${r.rule}`)! })),
    defaultAction: p.defaultAction,
    defaultAudit: p.defaultAudit,
    defaultSlot: slotOf.get(`${p.name}\u0000`)!,
    sample: p.sample,
  }));
}

function assertGuardsConverged(desired: DesiredGuards, s: ObservedGuards, env: PlanEnv): void {
  const kept = new Set(s.guards.filter((g) => keptGuard(g, desired, env.failedFiles)).map((g) => g.key));
  assert.deepEqual(
    s.guards.map((g) => g.key),
    [...new Set([...desired.guards.map((g) => g.key), ...kept])].sort(),
    'one guard per cgroup a policy guards, and no other but those kept',
  );
  assert.deepEqual(s.stray, [], 'nothing stray under ROOT/connect');
  for (const want of desired.guards) {
    if (kept.has(want.key)) continue;
    const g = s.guards.find((x) => x.key === want.key)!;
    const what = `guard ${want.key}`;
    assert.equal(g.dir, want.dir, `${what} lives where the layout says`);
    assert.equal(g.cgroupId, want.cgroupId, `${what}: cgroup id`);
    assert.deepEqual(
      [g.missingMaps, g.layoutMismatch, g.badRecords, g.stray, GUARD_HOOKS.filter((h) => g.hooks[h].programNext)],
      [[], [], [], [], []],
      `${what} is complete and clean`,
    );
    for (const hook of GUARD_HOOKS) {
      const h = g.hooks[hook];
      assert.equal(h.program?.tag, desired.tags[hook], `${what}: ${hook} runs the desired program`);
      assert.ok(h.link?.attached, `${what}: ${hook} is attached`);
      assert.equal(h.link.progId, h.program.id, `${what}: the ${hook} link runs the pinned program`);
      assert.equal(h.link.cgroupId, want.cgroupId, `${what}: the ${hook} link is on its cgroup`);
    }
    assert.deepEqual(g.guard, { v: 1, cgroupPath: want.cgroupPath, cgroupId: want.cgroupId }, `${what}: guard record`);
    assert.deepEqual(
      g.policies,
      want.policies.map((p) => ({ v: 1, name: p.name, sourceFile: p.sourceFile, specHash: p.specHash })).sort(byName),
      `${what}: one record per policy it serves`,
    );
    assert.deepEqual(
      g.slots.map((x) => `${x.policy}/${x.rule}`).sort(),
      want.policies.flatMap((p) => [`${p.name}/`, ...p.rules.map((r) => `${p.name}/${r.rule}`)]).sort(),
      `${what}: one counter slot per rule and one per policy default`,
    );
    assert.ok(
      g.slots.every((x) => x.slot > 0),
      `${what}: slots are > 0`,
    );
    assert.equal(new Set(g.slots.map((x) => x.slot)).size, g.slots.length, `${what}: slots are distinct`);
    // The active tables are those of the desired rules, each counting into its own slot.
    assert.ok(g.activeGen === 0 || g.activeGen === 1, `${what}: a generation is active`);
    const encoded = encodeGeneration(0, compileGuard(guardPolicies(want, g.slots)));
    assert.equal(g.fingerprint, writtenFingerprint({ encoded, newSlots: [], staleSlots: [] }), `${what}: the active tables are the desired rules`);
  }
}

/** ConnectPolicy's conformance kit. */
export const connectPolicyKit: ConformanceKit<DesiredGuards, ObservedGuards> = {
  kind: registeredKind<DesiredGuards, ObservedGuards>('ConnectPolicy'),
  empty: () => ({ guards: [], stray: [] }),
  none: () => desiredGuards([]),
  arbScenario,
  withFilesFailed: (desired, files) => rebuild(desired, (p) => !files.includes(p.source.file), files),
  withFilesInvalid: (desired, files) => rebuild(desired, () => true, files),
  damages: GUARD_DAMAGES,
  damage: damageGuards,
  fake: guardFake,
  assertConverged: assertGuardsConverged,
  heldFrom(observed, failed, desired) {
    const takenOver = new Set(desired.policies.filter((p) => !failed.has(p.sourceFile)).map((p) => p.name));
    // Also a policy now defined in a failed file (it moved there from the file its record names).
    const movedIntoFailed = new Set(desired.policies.filter((p) => failed.has(p.sourceFile)).map((p) => p.name));
    // A guard that serves a policy of a failed file is kept whole: its programs, links, rules, records and counters.
    return observed.guards.filter((g) => g.policies.some((r) => (failed.has(r.sourceFile) && !takenOver.has(r.name)) || movedIntoFailed.has(r.name)));
  },
  knownBugs: [],
};
