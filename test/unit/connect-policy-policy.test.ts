/**
 * The ConnectPolicy kind, document half: the shipped example normalizes as
 * documented, defaults and mode inheritance, every check beyond the schema,
 * IPv4-mapped destinations, no conflicts between policies, and properties
 * of normalization and of the match key.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { connectMatchKey, connectPolicyKind, describeConnectMatch, type ConnectPolicyPolicy, type ConnectRule } from '../../src/kinds/connect-policy/document.js';
import { loadPolicies } from '../../src/manager.js';
import { createKindRegistry } from '../../src/policy/kind-registry.js';
import type { AnyPolicyKind } from '../../src/policy/kind.js';
import { parsePolicyText, type PolicySyntax } from '../../src/policy/parse.js';
import { formatProblem } from '../../src/policy/problem.js';
import { validatePolicyDocuments } from '../../src/policy/validate.js';
import type { ConnectPolicy } from '../../src/types/generated/connect-policy.js';
import { REPO_ROOT } from './policy-test-helpers.js';

const KINDS = createKindRegistry([connectPolicyKind as AnyPolicyKind]);

/** Parses and validates one text as file `file` against the ConnectPolicy kind alone. */
function validate(text: string, syntax: PolicySyntax = 'yaml', file = 'test.yaml'): { policies: ConnectPolicyPolicy[]; problems: string[] } {
  const parsed = parsePolicyText(file, text, syntax);
  const result = validatePolicyDocuments(parsed.documents, { kinds: KINDS });
  return { policies: result.policies as ConnectPolicyPolicy[], problems: [...parsed.problems, ...result.problems].map(formatProblem) };
}

/** A ConnectPolicy document in YAML with the given spec lines (indented by two spaces). */
function doc(spec: string, name = 'p'): string {
  const body = spec
    .trim()
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
  return `apiVersion: ebpf-policy/v1\nkind: ConnectPolicy\nmetadata:\n  name: ${name}\nspec:\n${body}\n`;
}

/** The problems of a document with the given spec lines (lines counted from 1; spec starts on line 6). */
function problemsOf(spec: string): string[] {
  return validate(doc(spec)).problems;
}

function rule(fields: Partial<ConnectRule> & Pick<ConnectRule, 'name'>): ConnectRule {
  return { action: 'deny', protocol: undefined, destinations: undefined, ports: undefined, mode: 'enforce', ...fields };
}

test('the example policies/connect-policy.yaml is valid and normalizes as documented', () => {
  const result = loadPolicies({ paths: ['policies/connect-policy.yaml'], cwd: REPO_ROOT, insecurePermissions: true, kinds: KINDS });
  assert.deepEqual(result.problems, []);
  assert.deepEqual(result.policies, [
    {
      kind: 'ConnectPolicy',
      name: 'no-metadata-service',
      labels: { team: 'platform' },
      source: { file: 'policies/connect-policy.yaml', documentIndex: 0, line: 12, column: 1 },
      cgroup: 'ebpf-policy-demo',
      mode: 'enforce',
      defaultAction: 'allow',
      rules: [
        rule({ name: 'block-imds', destinations: ['169.254.169.254/32', 'fd00:ec2::254/128'] }),
        rule({ name: 'audit-smtp', protocol: 'tcp', ports: [{ start: 25, end: 25 }], mode: 'audit' }),
      ],
      sampleRate: 1,
    },
  ]);
});

test('defaults: enforce, allow, no rules, no events; the cgroup path is normalized', () => {
  const { policies, problems } = validate(doc('cgroup: /sys/fs/cgroup/app.slice/'));
  assert.deepEqual(problems, []);
  assert.deepEqual(policies, [
    {
      kind: 'ConnectPolicy',
      name: 'p',
      labels: {},
      source: { file: 'test.yaml', documentIndex: 0, line: 1, column: 1 },
      cgroup: '/sys/fs/cgroup/app.slice',
      mode: 'enforce',
      defaultAction: 'allow',
      rules: [],
      sampleRate: 0,
    },
  ]);
  assert.equal(validate(doc('cgroup: app.slice/web.service/')).policies[0]?.cgroup, 'app.slice/web.service');
  assert.equal(validate(doc('cgroup: .')).policies[0]?.cgroup, '.');
  assert.equal(validate(doc('cgroup: /')).policies[0]?.cgroup, '/');
});

test('rules inherit spec.mode unless they override it; protocol any is no protocol; "23" port strings', () => {
  const { policies, problems } = validate(
    doc(`
cgroup: app.slice
mode: audit
defaultAction: deny
rules:
  - {name: inherit, action: deny, protocol: any}
  - {name: same, action: deny, protocol: udp, ports: ["53"], mode: audit}
  - {name: own, action: allow, protocol: tcp, ports: [443, "8000-8080", "8081-8443"], mode: enforce}
events: {sampleRate: 2147483647}
`),
  );
  assert.deepEqual(problems, []);
  const p = policies[0]!;
  assert.equal(p.mode, 'audit');
  assert.equal(p.defaultAction, 'deny');
  assert.equal(p.sampleRate, 2147483647);
  assert.deepEqual(p.rules, [
    rule({ name: 'inherit', mode: 'audit' }),
    rule({ name: 'same', protocol: 'udp', ports: [{ start: 53, end: 53 }], mode: 'audit' }),
    rule({ name: 'own', action: 'allow', protocol: 'tcp', ports: [{ start: 443, end: 443 }, { start: 8000, end: 8443 }], mode: 'enforce' }),
  ]);
});

test('a JSON document goes through the same pipeline', () => {
  const text = JSON.stringify({
    apiVersion: 'ebpf-policy/v1',
    kind: 'ConnectPolicy',
    metadata: { name: 'j' },
    spec: { cgroup: '/sys/fs/cgroup/a', rules: [{ name: 'r', action: 'deny', destinations: ['10.0.0.0/8'] }] },
  });
  const { policies, problems } = validate(text, 'json', 'p.json');
  assert.deepEqual(problems, []);
  assert.deepEqual(policies[0]?.rules, [rule({ name: 'r', destinations: ['10.0.0.0/8'] })]);
});

test('unknown fields are errors with file:line:column', () => {
  assert.deepEqual(problemsOf('cgroup: a\nrules:\n  - {name: r, action: deny, port: [80]}\nfoo: 1'), [
    'test.yaml:9:3: error: spec.foo: unknown field "foo"',
    'test.yaml:8:31: error: spec.rules[0].port: unknown field "port" (did you mean "ports"?)',
  ]);
});

test('schema errors: missing cgroup and rule action, bad enums, sampleRate bounds', () => {
  assert.deepEqual(problemsOf('rules:\n  - {name: r, protocol: icmp}\nmode: dry-run\nevents: {sampleRate: 0}'), [
    'test.yaml:6:3: error: spec.cgroup: missing required field "cgroup"',
    'test.yaml:8:9: error: spec.mode: "dry-run" is not one of: enforce, audit',
    'test.yaml:7:7: error: spec.rules[0].action: missing required field "action"',
    'test.yaml:7:27: error: spec.rules[0].protocol: "icmp" is not one of: tcp, udp, any',
    'test.yaml:9:24: error: spec.events.sampleRate: 0 is out of range 1..2147483647',
  ]);
  assert.deepEqual(problemsOf('cgroup: a\nevents: {sampleRate: 2147483648}'), ['test.yaml:7:24: error: spec.events.sampleRate: 2147483648 is out of range 1..2147483647']);
});

test('at most 16384 rules', () => {
  const rules = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `r${i}`, action: 'deny', protocol: 'tcp', ports: [(i % 65535) + 1] }));
  const json = (n: number) => JSON.stringify({ apiVersion: 'ebpf-policy/v1', kind: 'ConnectPolicy', metadata: { name: 'big' }, spec: { cgroup: 'a', rules: rules(n) } });
  assert.deepEqual(validate(json(16384), 'json', 'big.json').problems, []);
  assert.match(validate(json(16385), 'json', 'big.json').problems.join('\n'), /error: spec\.rules: .*16384/);
});

test('ports need protocol tcp or udp', () => {
  assert.deepEqual(problemsOf('cgroup: a\nrules:\n  - {name: r, action: deny, ports: [25]}\n  - {name: s, action: deny, protocol: any, ports: [26]}'), [
    'test.yaml:8:38: error: spec.rules[0].ports: ports needs "protocol: tcp" or "protocol: udp" (ports exist only for TCP and UDP)',
    'test.yaml:9:53: error: spec.rules[1].ports: ports needs "protocol: tcp" or "protocol: udp", not "protocol: any" (ports exist only for TCP and UDP)',
  ]);
});

test('duplicate rule names are errors', () => {
  assert.deepEqual(problemsOf('cgroup: a\nrules:\n  - {name: r, action: deny, protocol: tcp}\n  - {name: r, action: allow, protocol: udp}'), [
    'test.yaml:9:14: error: spec.rules[1].name: duplicate rule name "r": also spec.rules[0]',
  ]);
});

test('IPv4-mapped IPv6 prefixes are matched as IPv4; shorter than /96 they are errors', () => {
  const { policies, problems } = validate(
    doc(`
cgroup: a
rules:
  - name: r
    action: deny
    destinations: ["::ffff:169.254.169.254/128", "::ffff:10.0.0.0/104", "::ffff:0:0/96", "2001:db8::/32"]
`),
  );
  assert.deepEqual(problems, [
    'test.yaml:10:22: warning: spec.rules[0].destinations[0]: "::ffff:169.254.169.254/128" is an IPv4-mapped IPv6 prefix: it is matched as IPv4 169.254.169.254/32',
    'test.yaml:10:52: warning: spec.rules[0].destinations[1]: "::ffff:10.0.0.0/104" is an IPv4-mapped IPv6 prefix: it is matched as IPv4 10.0.0.0/8',
    'test.yaml:10:75: warning: spec.rules[0].destinations[2]: "::ffff:0:0/96" is an IPv4-mapped IPv6 prefix: it is matched as IPv4 0.0.0.0/0',
  ]);
  assert.deepEqual(policies[0]?.rules[0]?.destinations, ['0.0.0.0/0', '2001:db8::/32']);
  assert.deepEqual(problemsOf('cgroup: a\nrules: [{name: r, action: deny, destinations: ["::ffff:10.0.0.0/80", "::/0"]}]'), [
    'test.yaml:7:50: error: spec.rules[0].destinations[0]: "::ffff:10.0.0.0/80" is an IPv4-mapped address with a prefix shorter than /96: it would mix IPv4-mapped and other IPv6 addresses; write the IPv4 prefix (a.b.c.d/n) instead',
  ]);
  // A mapped prefix and the IPv4 prefix it stands for are the same destinations.
  assert.match(problemsOf('cgroup: a\nrules: [{name: r, action: deny, destinations: ["10.0.0.0/8", "::ffff:10.1.0.0/112"]}]').join('\n'), /"::ffff:10\.1\.0\.0\/112" is already covered by spec\.rules\[0\]\.destinations\[0\] \(10\.0\.0\.0\/8\)/);
});

test('prefixes are aggregated; host bits, covered prefixes and overlapping ports are warnings', () => {
  const { policies, problems } = validate(
    doc(`
cgroup: a
rules:
  - name: r
    action: deny
    protocol: tcp
    destinations: ["10.128.0.0/9", "fd00::/8", "10.0.0.0/9", "10.1.2.3/16", "10.1.0.0/24"]
    ports: [80, "70-90", "1000-2000", "2001"]
`),
  );
  assert.deepEqual(problems, [
    'test.yaml:12:19: warning: spec.rules[0].ports[1]: 70-90 overlaps spec.rules[0].ports[0] (80)',
    'test.yaml:11:64: warning: spec.rules[0].destinations[3]: "10.1.2.3/16" has host bits set; it means 10.1.0.0/16',
    'test.yaml:11:64: warning: spec.rules[0].destinations[3]: "10.1.2.3/16" is already covered by spec.rules[0].destinations[2] (10.0.0.0/9)',
    'test.yaml:11:79: warning: spec.rules[0].destinations[4]: "10.1.0.0/24" is already covered by spec.rules[0].destinations[2] (10.0.0.0/9)',
  ]);
  assert.deepEqual(policies[0]?.rules[0]?.destinations, ['10.0.0.0/8', 'fd00::/8']);
  assert.deepEqual(policies[0]?.rules[0]?.ports, [{ start: 70, end: 90 }, { start: 1000, end: 2001 }]);
});

test('a rule matching exactly what an earlier rule matches is shadowed', () => {
  assert.deepEqual(
    problemsOf(`
cgroup: a
rules:
  - {name: a, action: allow, protocol: tcp, destinations: ["10.0.0.0/9", "192.0.2.0/24", "10.128.0.0/9"], ports: [443]}
  - {name: b, action: deny, protocol: tcp, destinations: ["192.0.2.0/24", "10.0.0.0/8"], ports: ["443"]}
  - {name: c, action: deny, protocol: any, destinations: ["0.0.0.0/0", "::/0"]}
  - {name: d, action: deny}
  - {name: e, action: deny, protocol: udp}
`),
    [
      'test.yaml:9:7: warning: spec.rules[1]: rule "b" never decides anything: rule "a" (spec.rules[0]) matches the same connects first',
      'test.yaml:11:7: warning: spec.rules[3]: rule "d" never decides anything: rule "c" (spec.rules[2]) matches the same connects first',
    ],
  );
});

test('events on a policy that never denies or audits anything is a warning', () => {
  assert.deepEqual(problemsOf('cgroup: a\nrules: [{name: r, action: allow}]\nevents: {sampleRate: 10}'), [
    'test.yaml:8:11: warning: spec.events: nothing is ever denied or audited (no deny rule, defaultAction allow), so no event will be reported',
  ]);
  assert.deepEqual(problemsOf('cgroup: a\ndefaultAction: deny\nmode: audit\nevents: {sampleRate: 10}'), []);
  assert.deepEqual(problemsOf('cgroup: a\nrules: [{name: r, action: deny, mode: audit}]\nevents: {sampleRate: 10}'), []);
});

test('cgroup paths: ".." segments are errors, paths that are not normalized are warnings', () => {
  assert.deepEqual(problemsOf('cgroup: app.slice/../../etc'), [
    'test.yaml:6:11: error: spec.cgroup: "app.slice/../../etc" is not a valid cgroup path (".." segments are not allowed in a path relative to the cgroup2 mount (it must stay below the mount))',
  ]);
  assert.match(problemsOf('cgroup: /sys/fs/cgroup/a/..').join('\n'), /error: spec\.cgroup: .*"\.\." segments are not allowed/);
  assert.match(problemsOf('cgroup: ""').join('\n'), /error: spec\.cgroup: /);
  assert.match(problemsOf('cgroup: "a\\0b"').join('\n'), /error: spec\.cgroup: .*NUL/);
  assert.deepEqual(problemsOf('cgroup: /sys/fs//cgroup/./app.slice'), [
    'test.yaml:6:11: warning: spec.cgroup: "/sys/fs//cgroup/./app.slice" is not a normalized path; it means the cgroup directory "/sys/fs/cgroup/app.slice"',
  ]);
  assert.deepEqual(problemsOf('cgroup: ./app.slice'), [
    'test.yaml:6:11: warning: spec.cgroup: "./app.slice" is not a normalized path; it means the cgroup directory (relative to the cgroup2 mount) "app.slice"',
  ]);
  assert.equal(validate(doc('cgroup: ./app.slice')).policies[0]?.cgroup, 'app.slice');
  // "..." is a name, not a ".." segment.
  assert.deepEqual(problemsOf('cgroup: a/.../b'), []);
});

test('two policies on the same cgroup, even with opposite rules, are no conflict', () => {
  const text = [
    doc('cgroup: /sys/fs/cgroup/app\ndefaultAction: deny\nrules: [{name: r, action: allow, protocol: tcp, ports: [443]}]', 'one'),
    doc('cgroup: /sys/fs/cgroup//app/\nrules: [{name: r, action: deny, protocol: tcp, ports: [443]}]', 'two'),
  ].join('---\n');
  const { policies, problems } = validate(text);
  assert.deepEqual(problems, [
    'test.yaml:15:11: warning: spec.cgroup: "/sys/fs/cgroup//app/" is not a normalized path; it means the cgroup directory "/sys/fs/cgroup/app"',
  ]);
  assert.deepEqual(
    policies.map((p) => [p.name, p.cgroup]),
    [
      ['one', '/sys/fs/cgroup/app'],
      ['two', '/sys/fs/cgroup/app'],
    ],
  );
  assert.deepEqual(connectPolicyKind.findConflicts(policies), []);
});

test('describeConnectMatch puts a rule into words', () => {
  assert.equal(describeConnectMatch(rule({ name: 'r', protocol: 'tcp', destinations: ['10.0.0.5/32'], ports: [{ start: 3128, end: 3128 }] })), 'tcp to 10.0.0.5/32 port 3128');
  assert.equal(describeConnectMatch(rule({ name: 'r' })), 'every connect');
  assert.equal(describeConnectMatch(rule({ name: 'r', protocol: 'udp' })), 'every udp connect');
  assert.equal(describeConnectMatch(rule({ name: 'r', destinations: ['169.254.169.254/32', 'fd00:ec2::254/128'] })), 'to 169.254.169.254/32, fd00:ec2::254/128');
  assert.equal(describeConnectMatch(rule({ name: 'r', protocol: 'tcp', ports: [{ start: 25, end: 25 }, { start: 465, end: 587 }] })), 'tcp to ports 25, 465-587');
});

/** CIDR texts: IPv4, IPv6, IPv4-mapped (valid and too short), some with host bits. */
const cidrArb = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 })).map(([a, n]) => `${[a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.')}/${n}`),
  fc.tuple(fc.constantFrom('2001:db8', 'fd00', 'fe80', ''), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 128 })).map(([head, g, n]) => `${head}::${g.toString(16)}/${n}`),
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 80, max: 128 })).map(([a, n]) => `::ffff:10.${a}.0.1/${n}`),
);
const portArb = fc.oneof(
  fc.integer({ min: 1, max: 65535 }),
  fc.integer({ min: 1, max: 65535 }).map(String),
  fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 500 })).map(([a, d]) => `${a}-${Math.min(65535, a + d)}`),
);
const ruleDocArb = fc.record(
  {
    name: fc.constantFrom('a', 'b', 'c', 'd', 'e'),
    action: fc.constantFrom('allow', 'deny'),
    protocol: fc.constantFrom('tcp', 'udp', 'any'),
    destinations: fc.array(cidrArb, { minLength: 1, maxLength: 6 }),
    ports: fc.array(portArb, { minLength: 1, maxLength: 4 }),
    mode: fc.constantFrom('enforce', 'audit'),
  },
  { requiredKeys: ['name', 'action'] },
);
const documentArb = fc.record(
  {
    cgroup: fc.constantFrom('a', '/sys/fs/cgroup/a/', './x//y', '.', '/', 'a/../b', '/sys/fs/cgroup/..'),
    mode: fc.constantFrom('enforce', 'audit'),
    defaultAction: fc.constantFrom('allow', 'deny'),
    rules: fc.array(ruleDocArb, { maxLength: 5 }),
    events: fc.record({ sampleRate: fc.integer({ min: 1, max: 2147483647 }) }),
  },
  { requiredKeys: ['cgroup'] },
);

test('property: documents that pass validation always normalize (and check never throws)', () => {
  let valid = 0;
  fc.assert(
    fc.property(documentArb, (spec) => {
      const document = { apiVersion: 'ebpf-policy/v1', kind: 'ConnectPolicy', metadata: { name: 'prop' }, spec };
      const { policies, problems } = validate(JSON.stringify(document), 'json', 'prop.json');
      const hasErrors = problems.some((p) => p.includes(': error: '));
      assert.equal(policies.length, hasErrors ? 0 : 1, problems.join('\n'));
      if (!hasErrors) {
        valid++;
        const direct = connectPolicyKind.normalize(document as ConnectPolicy, policies[0]!.source);
        assert.deepEqual(direct, policies[0]);
        for (const r of direct.rules) assert.equal(r.mode, (spec.rules ?? []).find((d) => d.name === r.name)?.mode ?? direct.mode);
      }
    }),
    { numRuns: 500 },
  );
  assert.ok(valid > 50, `only ${valid} valid documents generated`);
});

test('property: connectMatchKey is equal for rules whose destinations are permutations of each other', () => {
  const listAndPermutation = fc
    .array(cidrArb, { minLength: 1, maxLength: 8 })
    .chain((list) => fc.tuple(fc.constant(list), fc.shuffledSubarray(list, { minLength: list.length, maxLength: list.length })));
  fc.assert(
    fc.property(listAndPermutation, fc.constantFrom('tcp', 'udp', undefined), ([list, permuted], protocol) => {
      const spec = (destinations: string[]) => ({ cgroup: 'a', rules: [{ name: 'r', action: 'deny', protocol, destinations }] });
      const policy = (destinations: string[]) => {
        const document = { apiVersion: 'ebpf-policy/v1', kind: 'ConnectPolicy', metadata: { name: 'k' }, spec: spec(destinations) } as ConnectPolicy;
        if (connectPolicyKind.check(document).some((f) => f.severity === 'error')) return undefined;
        return connectPolicyKind.normalize(document, { file: 'k.yaml', documentIndex: 0, line: 1, column: 1 });
      };
      const a = policy(list);
      const b = policy(permuted);
      assert.equal(a === undefined, b === undefined);
      if (a === undefined || b === undefined) return;
      assert.equal(connectMatchKey(a.rules[0]!), connectMatchKey(b.rules[0]!));
      assert.deepEqual(a.rules[0]!.destinations, b.rules[0]!.destinations);
    }),
    { numRuns: 1000 },
  );
  // And it tells different matches apart.
  assert.notEqual(connectMatchKey(rule({ name: 'r', protocol: 'tcp' })), connectMatchKey(rule({ name: 'r', protocol: 'udp' })));
  assert.notEqual(connectMatchKey(rule({ name: 'r', destinations: ['0.0.0.0/0'] })), connectMatchKey(rule({ name: 'r' })));
  assert.equal(connectMatchKey(rule({ name: 'r', destinations: ['0.0.0.0/0', '::/0'] })), connectMatchKey(rule({ name: 'r' })));
});
