/**
 * Property tests of the pure PacketFilter plan (desired filters from a fake
 * resolver, a model of the pins under ROOT/filters): applying a plan reaches
 * the desired state, planning again changes nothing, rule changes never
 * rebuild or reattach a filter, counter slots stay with their rules, failed
 * files tear nothing down; and PortSteering's pins and ROOT/filters leave
 * each other alone.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { observeRoot } from '../../src/kinds/port-steering/store.js';
import { rulesetFingerprint, splitEntries } from '../../src/kinds/packet-filter/layout.js';
import { observeFilters, type ObservedFilter, type ObservedFilters } from '../../src/kinds/packet-filter/store.js';
import type { InterfaceInfo } from '../../src/bpf/interfaces.js';
import type { PacketFilterPolicy, PacketFilterRule } from '../../src/kinds/packet-filter/document.js';
import { buildDesiredFilters, type FilterResolver } from '../../src/kinds/packet-filter/desired.js';
import type { DesiredFilters, FilterOperation } from '../../src/kinds/packet-filter/model.js';
import { planFilters } from '../../src/kinds/packet-filter/plan.js';
import type { Action } from '../../src/reconciler/model.js';
import { plan } from '../../src/kinds/port-steering/plan.js';

const ROOT = '/sys/fs/bpf/ebpf-policy';
const TAGS = { xdp: 'aaaaaaaaaaaaaaaa', tc: 'bbbbbbbbbbbbbbbb' };
const IFACES: InterfaceInfo[] = [
  { ifindex: 1, name: 'lo', linkType: 'loopback', xdp: [] },
  { ifindex: 2, name: 'eth0', linkType: 'ether', xdp: [] },
  { ifindex: 3, name: 'eth1', linkType: 'ether', xdp: [] },
  { ifindex: 4, name: 'tun0', linkType: 'none', xdp: [] },
];

function resolver(ifaces = IFACES): FilterResolver {
  return {
    netnsKey: (path) => (path.includes('missing') ? { ok: false, reason: `network namespace ${path} does not exist` } : { ok: true, key: 'ino-1' }),
    interfaces: () => ({ ok: true, interfaces: ifaces.map((i) => ({ ...i, xdp: [...i.xdp] })) }),
    filterTags: () => TAGS,
    tcMethod: () => 'tcx',
  };
}

const NAMES = ['a', 'b', 'c'];
const arbRule = (i: number): fc.Arbitrary<PacketFilterRule> =>
  fc
    .record({
      // Each policy's rules use their own ports, so two policies never disagree on the same match.
      port: fc.integer({ min: 1, max: 5 }),
      proto: fc.constantFrom('tcp' as const, 'udp' as const, undefined),
      src: fc.option(fc.constantFrom(['10.0.0.0/8'], ['10.1.0.0/16', '2001:db8::/32'], ['192.0.2.0/24']), { nil: undefined }),
      action: fc.constantFrom('pass' as const, 'drop' as const),
    })
    .map(({ port, proto, src, action }) => ({
      name: `r${port}`,
      protocol: proto,
      srcPrefixes: src,
      dstPrefixes: undefined,
      srcPorts: undefined,
      dstPorts: proto ? [{ start: 1000 * (i + 1) + port, end: 1000 * (i + 1) + port }] : undefined,
      action,
    }));

const arbPolicy = (name: string): fc.Arbitrary<PacketFilterPolicy> =>
  fc
    .record({
      interfaces: fc.constantFrom(['lo'], ['eth0'], ['eth*'], ['lo', 'eth1'], ['*'], ['nothing*']),
      hook: fc.constantFrom('xdp' as const, 'tc-ingress' as const),
      rules: fc.uniqueArray(arbRule(NAMES.indexOf(name)), { maxLength: 4, selector: (r) => r.name }),
      sampleRate: fc.constantFrom(0, 1, 100),
      file: fc.constantFrom('/p/one.yaml', '/p/two.yaml'),
    })
    .map(({ interfaces, hook, rules, sampleRate, file }) => ({
      kind: 'PacketFilter' as const,
      name,
      labels: {},
      source: { file, documentIndex: 0, line: 1, column: 1 },
      netns: '/run/netns/x',
      interfaces,
      hook,
      defaultAction: 'pass' as const,
      rules,
      sampleRate,
    }));

const arbPolicies = fc.subarray(NAMES).chain((names) => fc.tuple(...names.map(arbPolicy)));

/** Applies filter operations to a copy of `observed`, as src/bpf/filter-store.ts would. */
function simulate(observed: ObservedFilters, actions: Action[], tags = TAGS): ObservedFilters {
  const s: ObservedFilters = structuredClone(observed);
  let nextId = 1000;
  const byDir = (dir: string) => s.filters.find((f) => f.dir === dir)!;
  const fingerprint = (op: Extract<FilterOperation, { type: 'writeFilterRules' }>['rules']) =>
    rulesetFingerprint({ addr: splitEntries(op.encoded.addr), port: splitEntries(op.encoded.port), decision: splitEntries(op.encoded.decision), config: op.encoded.config });
  for (const { op } of actions) {
    switch (op.type) {
      case 'createFilter': {
        s.filters = s.filters.filter((f) => f.dir !== op.dir);
        const parts = op.dir.split('/');
        const [hook, ifindex] = [parts[parts.length - 1]!.replace(/-\d+$/, ''), Number(/(\d+)$/.exec(op.dir)![1])];
        const progId = nextId++;
        const f: ObservedFilter = {
          key: `${parts[parts.length - 2]}/${parts[parts.length - 1]}`,
          netnsKey: parts[parts.length - 2]!,
          dir: op.dir,
          hook: hook as ObservedFilter['hook'],
          ifindex,
          program: { id: progId, tag: hook === 'xdp' ? tags.xdp : tags.tc },
          link: { method: op.spec.method, id: nextId++, progId, ifindex, attached: true },
          missingMaps: [],
          layoutMismatch: [],
          attachment: { v: 1, ...op.spec },
          policies: [...op.policies],
          badRecords: [],
          activeGen: 1,
          fingerprint: fingerprint(op.rules),
          slots: op.rules.newSlots.map((x) => ({ ...x })).sort((a, b) => a.slot - b.slot),
          stray: [],
        };
        s.filters.push(f);
        s.filters.sort((a, b) => (a.key < b.key ? -1 : 1));
        break;
      }
      case 'writeFilterRules': {
        const f = byDir(op.dir);
        f.activeGen = op.gen;
        f.fingerprint = fingerprint(op.rules);
        const stale = new Set([...op.rules.staleSlots, ...op.rules.newSlots.map((x) => x.slot)]);
        f.slots = [...f.slots.filter((x) => !stale.has(x.slot)), ...op.rules.newSlots.map((x) => ({ ...x }))].sort((a, b) => a.slot - b.slot);
        break;
      }
      case 'writeFilterRecords': {
        const f = byDir(op.dir);
        for (const r of op.upserts) {
          if ('name' in r) f.policies = [...f.policies.filter((p) => p.name !== r.name), r].sort((a, b) => (a.name < b.name ? -1 : 1));
          else f.attachment = r;
        }
        f.policies = f.policies.filter((p) => !op.deletes.includes(p.name));
        break;
      }
      case 'replaceFilterProgram': {
        const f = byDir(op.dir);
        f.program = { id: nextId++, tag: f.hook === 'xdp' ? tags.xdp : tags.tc };
        f.link!.progId = f.program.id;
        break;
      }
      case 'attachFilter': {
        const f = byDir(op.dir);
        f.link = { method: op.spec.method, id: nextId++, progId: f.program!.id, ifindex: f.ifindex, attached: true };
        f.attachment = { ...f.attachment!, method: op.spec.method };
        break;
      }
      case 'removeFilter':
        s.filters = s.filters.filter((f) => f.dir !== op.dir);
        break;
      case 'removeStray':
        s.stray = s.stray.filter((p) => p !== op.path);
        for (const f of s.filters) f.stray = f.stray.filter((p) => p !== op.path);
        break;
      default:
        break;
    }
  }
  return s;
}

const changes = (actions: Action[]) => actions.filter((a) => a.kind !== 'noop');
const empty: ObservedFilters = { filters: [], stray: [] };

function desiredOf(policies: PacketFilterPolicy[], failed: string[] = []): DesiredFilters {
  return buildDesiredFilters(policies, new Set(failed), ROOT, resolver());
}

function assertConverged(d: DesiredFilters, s: ObservedFilters): void {
  assert.deepEqual(s.filters.map((f) => f.key), d.filters.map((f) => f.key), 'one filter per (interface, hook) a policy covers, and no other');
  for (const want of d.filters) {
    const f = s.filters.find((x) => x.key === want.key)!;
    assert.ok(f.link?.attached && f.link.method === want.method);
    assert.deepEqual(f.slots.map((x) => `${x.policy}/${x.rule}`).sort(), want.rules.map((r) => `${r.policy}/${r.rule}`).sort(), 'one counter slot per rule');
    assert.deepEqual(f.policies.map((p) => p.name), want.policies.map((p) => p.name));
  }
}

test('applying a filter plan yields the desired filters, and planning again changes nothing', () => {
  fc.assert(
    fc.property(arbPolicies, arbPolicies, (before, after) => {
      const d1 = desiredOf(before);
      const s1 = simulate(empty, planFilters(d1, empty, []).actions);
      assertConverged(d1, s1);
      assert.deepEqual(changes(planFilters(d1, s1, []).actions), []);

      const d2 = desiredOf(after);
      const p2 = planFilters(d2, s1, []).actions;
      const s2 = simulate(s1, p2);
      assertConverged(d2, s2);
      assert.deepEqual(changes(planFilters(d2, s2, []).actions), [], 'planning twice changes nothing');
      assert.deepEqual(planFilters(d2, s1, []), planFilters(d2, s1, []), 'deterministic');

      // Filters that stay are never rebuilt or reattached, and rules keep their counter slots.
      for (const f of s2.filters) {
        const old = s1.filters.find((x) => x.key === f.key);
        if (!old) continue;
        assert.deepEqual([f.program?.id, f.link?.id], [old.program?.id, old.link?.id], `${f.key}: same program and link`);
        for (const now of f.slots) {
          const was: { slot: number } | undefined = old.slots.find((x) => x.policy === now.policy && x.rule === now.rule);
          if (was) assert.equal(now.slot, was.slot, `${now.policy}/${now.rule} keeps slot ${was.slot}`);
        }
      }
      for (const a of p2) if (['createFilter', 'attachFilter'].includes(a.op.type)) assert.ok(!s1.filters.some((f) => f.dir === (a.op as { dir: string }).dir && f.link?.attached));
    }),
    { numRuns: 200 },
  );
});

test('a failed file never tears down what came from it', () => {
  fc.assert(
    fc.property(arbPolicies, (before) => {
      const s1 = simulate(empty, planFilters(desiredOf(before), empty, []).actions);
      const broken = desiredOf([], ['/p/one.yaml', '/p/two.yaml']);
      assert.deepEqual(changes(planFilters(broken, s1, ['/p/one.yaml', '/p/two.yaml']).actions), []);
    }),
  );
});

function policy(name: string, rules: PacketFilterRule[], extra: Partial<PacketFilterPolicy> = {}): PacketFilterPolicy {
  return {
    kind: 'PacketFilter',
    name,
    labels: {},
    source: { file: '/p/f.yaml', documentIndex: 0, line: 1, column: 1 },
    netns: '/run/netns/x',
    interfaces: ['eth0'],
    hook: 'xdp',
    defaultAction: 'pass',
    rules,
    sampleRate: 0,
    ...extra,
  };
}
const drop23: PacketFilterRule = { name: 'telnet', protocol: 'tcp', srcPrefixes: undefined, dstPrefixes: undefined, srcPorts: undefined, dstPorts: [{ start: 23, end: 23 }], action: 'drop' };

test('a changed program tag is swapped into the link; a detached link is reattached; a vanished interface is removed', () => {
  const d = desiredOf([policy('p', [drop23])]);
  const s = simulate(empty, planFilters(d, empty, []).actions);
  const f = s.filters[0]!;
  f.program = { id: f.program!.id, tag: 'cccccccccccccccc' };
  f.link!.attached = false;
  assert.deepEqual(changes(planFilters(d, s, []).actions).map((a) => `${a.kind} ${a.op.type}`), ['replace replaceFilterProgram', 'replace attachFilter']);

  // The interface is gone: no desired filter, the link reports attached: false.
  const gone = buildDesiredFilters([policy('p', [drop23])], new Set(), ROOT, resolver(IFACES.filter((i) => i.name !== 'eth0')));
  const acts = changes(planFilters(gone, s, []).actions);
  assert.deepEqual(acts.map((a) => `${a.kind} ${a.op.type}`), ['delete removeFilter']);
  assert.match(acts[0]!.reason, /interface eth0 is gone \(its link reports attached: false\)/);
  assert.ok(gone.problems.some((p) => p.reason === 'NoInterface'));
});

test('another tool\'s XDP program is a conflict: no filter is created, the policy fails with the program named', () => {
  const taken = IFACES.map((i) => (i.name === 'eth0' ? { ...i, xdp: [{ mode: 'native' as const, progId: 77 }] } : i));
  const d = buildDesiredFilters([policy('p', [drop23])], new Set(), ROOT, resolver(taken));
  const p = planFilters(d, empty, []);
  assert.deepEqual(changes(p.actions), []);
  assert.deepEqual(
    p.problems.map((x) => `${x.condition} ${x.reason}: ${x.message}`),
    ['Failed XdpConflict: interface eth0 already runs XDP program 77 (native mode) of another tool: not replacing it'],
  );
});

test('policies that disagree on an interface only their patterns share are reported at runtime, naming both', () => {
  const a = policy('a', [drop23], { interfaces: ['eth*'] });
  const b = policy('b', [{ ...drop23, name: 'telnet-ok', action: 'pass' }], { interfaces: ['*0'] });
  const d = desiredOf([a, b]);
  assert.deepEqual(
    d.problems.map((x) => `${x.policy} ${x.reason}: ${x.message}`),
    ['b Conflict: rule "telnet-ok" of policy "b" passes tcp to port 23, but rule "telnet" of policy "a" drops the same packets on xdp of eth0; b is not applied there'],
  );
  assert.deepEqual(d.filters.map((f) => `${f.ifname}: ${f.policies.map((x) => x.name).join(',')}`), ['eth0: a', 'eth1: a']);
  assert.ok(d.problems.every((x) => x.policy !== 'a'));
});

test('non-Ethernet interfaces are left out: named ones with a warning, glob matches silently', () => {
  const d = desiredOf([policy('p', [drop23], { interfaces: ['tun0', 'eth0'] }), policy('q', [drop23], { interfaces: ['*'], hook: 'tc-ingress' })]);
  assert.deepEqual(d.problems.map((x) => `${x.policy} ${x.condition} ${x.reason}`), ['p Degraded UnsupportedInterface']);
  assert.deepEqual(d.policies.find((x) => x.name === 'q')?.skipped.map((x) => x.ifname), ['tun0']);
});

test('PortSteering planning leaves ROOT/filters alone, and filter planning leaves ROOT/netns alone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ebpf-policy-root-'));
  try {
    mkdirSync(join(dir, 'filters', 'ino-1'), { recursive: true });
    mkdirSync(join(dir, 'netns'));
    mkdirSync(join(dir, 'junk'));
    assert.deepEqual(observeRoot(dir).stray, [join(dir, 'junk')], 'filters is part of the layout, junk is not');
    assert.deepEqual(observeFilters(dir), { filters: [], stray: [] }, 'the filter side does not look at netns/ or junk');
  } finally {
    rmSync(dir, { recursive: true });
  }
  // A steering-only plan with filters observed but not resolved: not one action touches them.
  const s = simulate(empty, planFilters(desiredOf([policy('p', [drop23])]), empty, []).actions);
  const steeringOnly = plan({ root: ROOT, dispatcherTag: 'x', policies: [], failedFiles: [] }, { dispatchers: [], stray: [], filters: s });
  assert.deepEqual(changes(steeringOnly.actions), []);
  // With filters resolved and no PacketFilter policy: only filter actions, removing them.
  const filtersGone = plan({ root: ROOT, dispatcherTag: 'x', policies: [], failedFiles: [], filters: desiredOf([]) }, { dispatchers: [], stray: [], filters: s });
  assert.deepEqual(changes(filtersGone.actions).map((a) => a.op.type), ['removeFilter']);
});

test('maps of an older layout are rebuilt, saying why', () => {
  const d = desiredOf([policy('p', [drop23])]);
  const s = simulate(empty, planFilters(d, empty, []).actions);
  s.filters[0]!.layoutMismatch = ['map config (key 4/4, value 16/52 bytes)'];
  const acts = changes(planFilters(d, s, []).actions);
  assert.deepEqual(acts.map((a) => `${a.kind} ${a.op.type}`), ['replace createFilter']);
  assert.match(acts[0]!.reason, /older layout \(map config \(key 4\/4, value 16\/52 bytes\)\): rebuilding it \(counters restart\)/);
});
