/**
 * Property tests over whole documents: any generated valid policy validates,
 * round-trips through YAML and JSON, and normalizes consistently; random
 * garbage never throws, it only yields problems.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import YAML from 'yaml';
import type { PortSteeringPolicy } from '../../src/kinds/port-steering/document.js';
import { aggregatePrefixes, formatPrefix, parseCidr, prefixContains, prefixMask } from '../../src/policy/net/cidr.js';
import { formatIPv4, formatIPv6 } from '../../src/policy/net/ip.js';
import { parsePolicyText } from '../../src/policy/parse.js';
import { formatProblem } from '../../src/policy/problem.js';
import { validatePolicyDocuments } from '../../src/manager.js';
import type { PortSteering } from '../../src/types/generated/port-steering.js';
import { validateText } from './policy-test-helpers.js';

const dnsLabel = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/);
const labelPart = fc.stringMatching(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?$/);
const labels = fc.dictionary(
  fc.oneof(labelPart, fc.tuple(dnsLabel, labelPart).map(([p, n]) => `${p}.example/${n}`)),
  fc.oneof(fc.constant(''), labelPart),
  { maxKeys: 4, noNullPrototype: true },
);
const port = fc.integer({ min: 1, max: 65535 });
const portSpec = fc.oneof(
  port,
  fc.tuple(port, port).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`),
);
const v4Text = fc.nat(0xffffffff).map((n) => formatIPv4(n));
const v6Text = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }).map(formatIPv6);
const cidr = fc.oneof(
  fc.tuple(v4Text, fc.nat(32)).map(([a, l]) => `${a}/${l}`),
  fc.tuple(v6Text, fc.nat(128)).map(([a, l]) => `${a}/${l}`),
);
const target = fc.oneof(
  fc.tuple(v4Text, port).map(([a, p]) => ({ listen: `${a}:${p}` })),
  fc.tuple(v6Text, port).map(([a, p]) => ({ listen: `[${a}]:${p}` })),
  fc.record({ pid: fc.integer({ min: 1, max: 4194304 }), fd: fc.integer({ min: 0, max: 1 << 20 }) }),
);

const portSteering: fc.Arbitrary<PortSteering> = fc
  .record(
    {
      name: dnsLabel,
      labels,
      netns: dnsLabel.map((n) => `/run/netns/${n}`),
      protocol: fc.constantFrom('tcp' as const, 'udp' as const),
      ports: fc.array(portSpec, { minLength: 1, maxLength: 6 }),
      addresses: fc.array(cidr, { minLength: 1, maxLength: 5 }),
      target,
    },
    { requiredKeys: ['name', 'protocol', 'ports', 'target'] },
  )
  .map(({ name, labels: l, ...spec }) => ({
    apiVersion: 'ebpf-policy/v1' as const,
    kind: 'PortSteering' as const,
    metadata: l === undefined ? { name } : { name, labels: l },
    spec: spec as PortSteering['spec'],
  }))
  .filter((doc) => doc.spec.ports.reduce<number>((n, p) => n + (typeof p === 'number' ? 1 : size(p)), 0) <= 65535);

function size(range: string): number {
  const [a, b] = range.split('-').map(Number);
  return (b as number) - (a as number) + 1;
}

function inPorts(spec: readonly (number | string)[], p: number): boolean {
  return spec.some((s) => {
    if (typeof s === 'number') return s === p;
    const [a, b] = s.split('-').map(Number);
    return (a as number) <= p && p <= (b as number);
  });
}

test('property: every generated valid policy validates, in YAML and in JSON, to the same desired state', () => {
  fc.assert(
    fc.property(portSteering, (doc) => {
      const fromYaml = validateText(YAML.stringify(doc), 'yaml');
      const fromJson = validateText(JSON.stringify(doc, null, 2), 'json', 'test.json');
      for (const result of [fromYaml, fromJson]) {
        const errors = result.problems.filter((p) => p.severity === 'error');
        assert.deepEqual(errors.map(formatProblem), []);
        assert.equal(result.policies.length, 1);
      }
      const a = fromYaml.policies[0] as PortSteeringPolicy;
      const b = fromJson.policies[0] as PortSteeringPolicy;
      assert.deepEqual({ ...a, source: undefined }, { ...b, source: undefined });
    }),
    { numRuns: 200 },
  );
});

test('property: parsing round-trips the document exactly', () => {
  fc.assert(
    fc.property(portSteering, (doc) => {
      const parsed = parsePolicyText('t.yaml', YAML.stringify(doc), 'yaml');
      assert.deepEqual(parsed.problems, []);
      assert.deepEqual(parsed.documents.map((d) => d.value), [JSON.parse(JSON.stringify(doc))]);
    }),
    { numRuns: 200 },
  );
});

test('property: the desired state covers exactly the ports and addresses of the document, and is stable', () => {
  fc.assert(
    fc.property(portSteering, port, fc.nat(0xffffffff), (doc, probePort, probeAddress) => {
      const policy = validateText(YAML.stringify(doc)).policies[0] as PortSteeringPolicy;
      assert.equal(policy.name, doc.metadata.name);
      assert.equal(policy.protocol, doc.spec.protocol);
      assert.equal(policy.netns, doc.spec.netns);
      const inMerged = policy.ports.some((r) => r.start <= probePort && probePort <= r.end);
      assert.equal(inMerged, inPorts(doc.spec.ports, probePort));
      const host = { family: 4 as const, address: BigInt(probeAddress), length: 32 };
      const prefixes = policy.prefixes.map((t) => {
        const parsed = parseCidr(t);
        assert.ok(parsed.ok && !parsed.hostBitsSet, t);
        return parsed.prefix;
      });
      const given = (doc.spec.addresses ?? ['0.0.0.0/0', '::/0']).map((t) => {
        const parsed = parseCidr(t);
        assert.ok(parsed.ok);
        return parsed.prefix;
      });
      assert.equal(prefixes.some((p) => prefixContains(p, host)), given.some((p) => prefixContains(p, host)));
      assert.deepEqual(policy.prefixes, aggregatePrefixes(given).map(formatPrefix));
      // Feeding the desired state back in as a document gives the same desired state.
      const again: PortSteering = {
        ...doc,
        spec: {
          ...doc.spec,
          ports: policy.ports.map((r) => (r.start === r.end ? r.start : `${r.start}-${r.end}`)) as PortSteering['spec']['ports'],
          addresses: [...policy.prefixes] as PortSteering['spec']['addresses'],
        },
      };
      const second = validateText(YAML.stringify(again));
      assert.deepEqual(second.problems, []);
      const policy2 = second.policies[0] as PortSteeringPolicy;
      assert.deepEqual(policy2.ports, policy.ports);
      assert.deepEqual(policy2.prefixes, policy.prefixes);
    }),
    { numRuns: 200 },
  );
});

test('property: host bits in prefixes are cleared and warned about, never an error', () => {
  fc.assert(
    fc.property(fc.nat(0xffffffff), fc.nat(32), (address, length) => {
      const text = `${formatIPv4(address)}/${length}`;
      const doc = `apiVersion: ebpf-policy/v1\nkind: PortSteering\nmetadata: {name: a}\nspec: {protocol: tcp, ports: [1], addresses: ["${text}"], target: {pid: 1, fd: 0}}\n`;
      const result = validateText(doc);
      const policy = result.policies[0] as PortSteeringPolicy;
      const network = formatIPv4(BigInt(address) & prefixMask(4, length));
      assert.deepEqual(policy.prefixes, [`${network}/${length}`]);
      const hostBits = network !== formatIPv4(address);
      assert.equal(result.problems.length, hostBits ? 1 : 0);
    }),
  );
});

/** Parse + validate must never throw, and every problem must be well-formed. */
function assertNeverThrows(text: string, syntax: 'yaml' | 'json'): void {
  const parsed = parsePolicyText('garbage', text, syntax);
  const validated = validatePolicyDocuments(parsed.documents);
  for (const problem of [...parsed.problems, ...validated.problems]) {
    assert.equal(problem.file, 'garbage');
    assert.ok(problem.line >= 1 && problem.column >= 1);
    assert.ok(problem.message.length > 0);
    assert.doesNotThrow(() => formatProblem(problem));
  }
}

test('property: random text never throws, in YAML or JSON', () => {
  const yamlish = fc.string({
    unit: fc.constantFrom(...'abc:-[]{}",\'#&*!|>%@`?~ \n\t0123456789.'.split(''), 'spec', 'ports', 'kind', '---'),
    maxLength: 200,
  });
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: 'grapheme', maxLength: 200 }), yamlish), fc.constantFrom('yaml' as const, 'json' as const), (text, syntax) => {
      assertNeverThrows(text, syntax);
    }),
    { numRuns: 500 },
  );
});

test('property: random data never throws, as a document or in place of any field', () => {
  fc.assert(
    fc.property(fc.anything({ maxDepth: 4 }), (value) => {
      assertNeverThrows(YAML.stringify(value) ?? '', 'yaml');
    }),
    { numRuns: 300 },
  );
  const fieldPaths = [[], ['apiVersion'], ['kind'], ['metadata'], ['metadata', 'name'], ['metadata', 'labels'], ['spec'], ['spec', 'netns'], ['spec', 'protocol'], ['spec', 'ports'], ['spec', 'ports', 0], ['spec', 'addresses'], ['spec', 'addresses', 0], ['spec', 'target'], ['spec', 'target', 'listen'], ['spec', 'target', 'pid'], ['spec', 'extra']];
  fc.assert(
    fc.property(portSteering, fc.constantFrom(...fieldPaths), fc.jsonValue({ maxDepth: 3 }), (doc, path, value) => {
      const copy = structuredClone(doc) as unknown as Record<string | number, unknown>;
      if (path.length === 0) {
        assertNeverThrows(YAML.stringify(value) ?? '', 'yaml');
        return;
      }
      let node = copy as Record<string | number, unknown> | undefined;
      for (const segment of path.slice(0, -1)) {
        const next: unknown = node?.[segment];
        node = next !== null && typeof next === 'object' ? (next as Record<string | number, unknown>) : undefined;
      }
      if (node !== undefined) node[path[path.length - 1] as string | number] = value;
      const text = JSON.stringify(copy);
      assertNeverThrows(text, 'json');
      assertNeverThrows(YAML.stringify(copy), 'yaml');
    }),
    { numRuns: 500 },
  );
});
