/**
 * Generators and oracles shared by the policy fuzz tests (not a test file
 * itself): valid policy documents rendered in several styles, mutations
 * that break them in the ways files break in practice, directories of bad
 * entries (FIFOs, symlink loops, huge and unreadable files, invalid UTF-8),
 * and the checks every problem report must pass. test/unit/policy-fuzz.test.ts
 * feeds them to the loader in process; test/kernel/policy-fuzz.test.ts to
 * the real command line.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import YAML from 'yaml';
import { runBounded } from '../../src/sandbox/bounded-wait.js';

export type Syntax = 'yaml' | 'json';
export type Doc = Record<string, unknown>;

// ---------------------------------------------------------------------------
// Valid documents. Each document gets a slot; documents in different slots
// never conflict (own port window, own interface names), so any set of them
// is valid together and a sibling can only be lost by a loader bug.

/** Ports of slot `slot`: a window of 200 of its own. */
function slotPorts(slot: number): fc.Arbitrary<(number | string)[]> {
  const base = 20000 + (slot % 200) * 200;
  const single = fc.integer({ min: base, max: base + 199 });
  const range = fc.tuple(fc.integer({ min: base, max: base + 199 }), fc.nat(50)).map(([a, w]) => `${a}-${Math.min(a + w, base + 199)}`);
  return fc.array(fc.oneof(single, range), { minLength: 1, maxLength: 4 });
}

const octet = fc.nat(255);
const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
const cidr = fc.oneof(
  fc.tuple(ipv4, fc.nat(32)).map(([a, l]) => `${a}/${l}`),
  fc.constantFrom('2001:db8::/32', 'fe80::/10', '::/0', '::1/128', '::ffff:192.0.2.0/120'),
);
const labels = fc.constantFrom(undefined, { team: 'web' }, { 'app.kubernetes.io/name': 'fuzz', empty: '' });

/** A valid PortSteering or PacketFilter document named `name` in slot `slot`; `netns` as given (undefined: random or none). */
export function validDoc(name: string, slot: number, netns?: string): fc.Arbitrary<Doc> {
  const ns = netns !== undefined ? fc.constant(netns) : fc.constantFrom(undefined, `/run/netns/fuzz-${slot}`);
  const metadata = labels.map((l) => (l === undefined ? { name } : { name, labels: l }));
  const steering = fc
    .record({
      metadata,
      netns: ns,
      protocol: fc.constantFrom('tcp', 'udp'),
      ports: slotPorts(slot),
      addresses: fc.option(fc.array(cidr, { minLength: 1, maxLength: 3 }), { nil: undefined }),
      target: fc.oneof(
        fc.integer({ min: 1, max: 65535 }).map((p) => ({ listen: `127.0.0.1:${p}` })),
        fc.constant({ listen: '[::1]:8080' }),
        fc.record({ pid: fc.integer({ min: 1, max: 4194304 }), fd: fc.nat(1000) }),
      ),
    })
    .map(({ metadata: m, netns: n, ...spec }) => ({
      apiVersion: 'ebpf-policy/v1',
      kind: 'PortSteering',
      metadata: m,
      spec: withoutUndefined({ netns: n, ...spec }),
    }));
  const filterPort = fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.constantFrom('23', '53', '9000-9100'));
  const rule = (i: number): fc.Arbitrary<Doc> =>
    fc
      .record({
        protocol: fc.constantFrom(undefined, 'tcp', 'udp', 'icmp'),
        srcCidrs: fc.option(fc.array(cidr, { minLength: 1, maxLength: 2 }), { nil: undefined }),
        dstCidrs: fc.option(fc.array(cidr, { minLength: 1, maxLength: 2 }), { nil: undefined }),
        dstPorts: fc.option(fc.array(filterPort, { minLength: 1, maxLength: 2 }), { nil: undefined }),
        action: fc.constantFrom('pass', 'drop'),
      })
      .map(({ dstPorts, ...r }) =>
        withoutUndefined({ name: `r${i}`, ...r, dstPorts: r.protocol === 'tcp' || r.protocol === 'udp' ? dstPorts : undefined }),
      );
  const filter = fc
    .record({
      metadata,
      netns: ns,
      interfaces: fc.uniqueArray(fc.constantFrom(`s${slot}-a`, `s${slot}-*`, `s${slot}-?`, `s${slot}-eth0`), { minLength: 1, maxLength: 3 }),
      hook: fc.constantFrom('xdp', 'tc-ingress', 'tc-egress'),
      defaultAction: fc.constantFrom(undefined, 'pass', 'drop'),
      rules: fc.integer({ min: 0, max: 3 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => rule(i)))),
      events: fc.option(fc.record({ sampleRate: fc.integer({ min: 1, max: 1_000_000 }) }), { nil: undefined }),
    })
    .map(({ metadata: m, netns: n, ...spec }) => ({
      apiVersion: 'ebpf-policy/v1',
      kind: 'PacketFilter',
      metadata: m,
      spec: withoutUndefined({ netns: n, ...spec }),
    }));
  return fc.oneof(steering, filter);
}

function withoutUndefined(o: Doc): Doc {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** How a document is written. */
export type Style = 'yaml-block' | 'yaml-flow' | 'yaml-quoted' | 'json-pretty' | 'json-compact' | 'json-escaped';
export const STYLES: readonly Style[] = ['yaml-block', 'yaml-flow', 'yaml-quoted', 'json-pretty', 'json-compact', 'json-escaped'];

export function syntaxOfStyle(style: Style): Syntax {
  return style.startsWith('json') ? 'json' : 'yaml';
}

/** The text of `doc` in `style` (YAML texts end with a newline). */
export function render(doc: unknown, style: Style): string {
  switch (style) {
    case 'yaml-block':
      return YAML.stringify(doc, { lineWidth: 0 });
    case 'yaml-flow':
      return YAML.stringify(doc, { lineWidth: 0, collectionStyle: 'flow' });
    case 'yaml-quoted':
      return YAML.stringify(doc, { lineWidth: 0, defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN' });
    case 'json-pretty':
      return `${JSON.stringify(doc, null, 2)}\n`;
    case 'json-compact':
      return JSON.stringify(doc);
    case 'json-escaped':
      // The same data with \u escapes and escaped slashes: gives truncation mid-escape something to cut.
      return JSON.stringify(doc, null, '\t').replace(/-/g, '\\u002d').replace(/\//g, '\\/');
  }
}

// ---------------------------------------------------------------------------
// Mutations. Each is a small record fast-check can shrink; `applyMutation`
// turns it into text deterministically, with what the result must show.

/** Where a truncation cuts. */
export const CUTS = [
  'any',
  'after-colon',
  'in-quotes',
  'after-open-bracket',
  'after-comma',
  'line-start',
  'mid-indent',
  'after-dash',
  'mid-key',
  'before-newline',
  'mid-escape',
  'last-char',
] as const;
export type Cut = (typeof CUTS)[number];

/** Numbers too large, too small, signed zero and NaN-like words, in YAML and JSON spellings. */
export const HUGE_NUMBERS = [
  '1e308', '-1e308', '1e309', '-1e309', '18446744073709551616', '18446744073709551615', '9007199254740993', '-0', '-0.0', '0e0',
  '1e-400', '0.0000001', '4294967296', '2147483648', '-2147483649', '65536', '0', '-1', '1.5', '80.0', '8.08e1', '1E2',
  '0x7fffffffffffffff', '0x50', '0o777', '0b101', '1_000', '+80', '080', '.nan', '.NaN', '.inf', '-.inf', '+.inf',
  'NaN', 'nan', 'Infinity', '-Infinity', '"NaN"', '"Infinity"', '"1e308"', '"-0"', '"80"', '"0x50"', '9'.repeat(400), `-${'9'.repeat(400)}`,
  `0.${'0'.repeat(400)}1`,
] as const;

/** Values of the wrong type (or out of range) put in place of a field. */
export const WRONG_VALUES: readonly unknown[] = [
  null, true, false, 0, -1, 1.5, -0, 1e308, Number.MAX_SAFE_INTEGER + 2, '', 'x', 'NaN', '8080', '1-2', '0.0.0.0', '/', [], [null], [[]], {}, { a: 1 },
  [1, 'two', { three: 3 }], { apiVersion: 'ebpf-policy/v1' }, 'a'.repeat(300), '\u0000', '\uFEFF', '\uD800', 'é'.repeat(70), { __proto__: null, x: 1 },
];

/** Keys that collide with Object.prototype members, or look like them. */
export const PROTO_KEYS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype', '__defineGetter__', 'isPrototypeOf'] as const;

/** Anchor names, including those a quick "&\w" test misses. */
export const ANCHORS = ['a', 'lol', 'ä', '-x', '😀', 'a.b', '_', '1'] as const;

export const NEST_STYLES = ['flow-seq', 'flow-map', 'json-map', 'block-map', 'block-seq', 'compact-seq'] as const;

/** Explicit tags: core ones, YAML 1.1 ones the 1.2 core schema does not have, local and verbatim ones. */
export const TAGS = [
  '!!str', '!!int', '!!float', '!!bool', '!!null', '!!map', '!!seq', '!!binary', '!!set', '!!omap', '!!pairs', '!!timestamp', '!!merge', '!!value',
  '!custom', '!', '!<tag:yaml.org,2002:str>', '!<tag:yaml.org,2002:timestamp>',
] as const;

export type Mutation =
  | { kind: 'truncate'; cut: Cut; pick: number }
  | { kind: 'wrong-type'; path: number; value: number }
  | { kind: 'huge-number'; pick: number; token: number }
  | { kind: 'deep-nest'; pick: number; depth: number; style: (typeof NEST_STYLES)[number] }
  | { kind: 'duplicate-key'; pick: number }
  | { kind: 'bom'; where: 'start' | 'double-start' | 'mid' | 'line-start' | 'end'; pick: number }
  | { kind: 'nul'; pick: number; replace: boolean }
  | { kind: 'tabs'; pick: number; mode: 'indent' | 'after-colon' | 'line' | 'all' }
  | { kind: 'alias-bomb'; anchor: number; width: number; depth: number; top: boolean }
  | { kind: 'garbage'; pick: number; char: string }
  | { kind: 'delete-range'; pick: number; length: number }
  | { kind: 'duplicate-range'; pick: number; length: number }
  | { kind: 'newlines'; mode: 'crlf' | 'cr' | 'none' | 'mixed' }
  | { kind: 'long-string'; pick: number; length: number; asKey: boolean }
  | { kind: 'proto-key'; path: number; key: number }
  | { kind: 'replacement-char'; pick: number; char: string }
  | { kind: 'tag'; pick: number; tag: number };

const pick = fc.nat(1 << 20);

/** Mutations; `heavy` allows the costly ones (thousands of nesting levels, 100 KB strings) at their full size. */
export function mutationArb(heavy = false): fc.Arbitrary<Mutation> {
  const depth = heavy ? fc.constantFrom(1000, 2500, 5000, 10000) : fc.constantFrom(63, 64, 65, 66, 100, 200);
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('truncate' as const), cut: fc.constantFrom(...CUTS), pick }) },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('wrong-type' as const), path: pick, value: fc.nat(WRONG_VALUES.length - 1) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('huge-number' as const), pick, token: fc.nat(HUGE_NUMBERS.length - 1) }) },
    { weight: heavy ? 6 : 2, arbitrary: fc.record({ kind: fc.constant('deep-nest' as const), pick, depth, style: fc.constantFrom(...NEST_STYLES) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('duplicate-key' as const), pick }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('bom' as const), where: fc.constantFrom('start', 'double-start', 'mid', 'line-start', 'end'), pick }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('nul' as const), pick, replace: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('tabs' as const), pick, mode: fc.constantFrom('indent', 'after-colon', 'line', 'all') }) },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('alias-bomb' as const),
        anchor: fc.nat(ANCHORS.length - 1),
        width: fc.integer({ min: 2, max: 10 }),
        depth: fc.integer({ min: 1, max: heavy ? 9 : 6 }),
        top: fc.boolean(),
      }),
    },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('garbage' as const), pick, char: fc.constantFrom(...':{}[],"\'#&*!|>%@`?-\\\n\t .0'.split('')) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete-range' as const), pick, length: fc.integer({ min: 1, max: 40 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate-range' as const), pick, length: fc.integer({ min: 1, max: 40 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('newlines' as const), mode: fc.constantFrom('crlf', 'cr', 'none', 'mixed') }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('long-string' as const),
        pick,
        length: heavy ? fc.constantFrom(100_000, 1_000_000) : fc.constantFrom(64, 1000, 10_000),
        asKey: fc.boolean(),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('proto-key' as const), path: pick, key: fc.nat(PROTO_KEYS.length - 1) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('replacement-char' as const), pick, char: fc.constantFrom('\uFFFD', '\uD800', '\uDFFF', '\u2028', '\u0085', '\u001b') }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('tag' as const), pick, tag: fc.nat(TAGS.length - 1) }) },
  );
}

/** What a mutated text must show beyond the general oracles. */
export interface Expectation {
  /** Some error matches this (the mutation certainly broke the document this way). */
  readonly mustError?: RegExp;
  /** Parses to exactly the policies of the unmutated text (the mutation is harmless). */
  readonly sameAsBase?: boolean;
  /** The mutated text contains a document marker line of its own: other documents of the file may merge with it. */
  readonly addsMarker?: boolean;
}

/** Offsets of `text` of the given kind of position (never empty: falls back to every offset). */
function cutPositions(text: string, cut: Cut): number[] {
  const out: number[] = [];
  const each = (re: RegExp, shift = 0): void => {
    for (const m of text.matchAll(re)) out.push((m.index ?? 0) + shift);
  };
  switch (cut) {
    case 'after-colon':
      each(/:/g, 1);
      break;
    case 'in-quotes':
      for (const m of text.matchAll(/"[^"\n]+"/g)) for (let i = 1; i < m[0].length - 1; i++) out.push((m.index ?? 0) + i);
      break;
    case 'after-open-bracket':
      each(/[[{]/g, 1);
      break;
    case 'after-comma':
      each(/,/g, 1);
      break;
    case 'line-start':
      each(/\n/g, 1);
      break;
    case 'mid-indent':
      each(/\n {2,}/g, 2);
      break;
    case 'after-dash':
      each(/- /g, 1);
      break;
    case 'mid-key':
      each(/[A-Za-z]{2,}(?=":|:)/g, 1);
      break;
    case 'before-newline':
      each(/\n/g);
      break;
    case 'mid-escape':
      for (const m of text.matchAll(/\\u[0-9a-fA-F]{4}|\\./g)) for (let i = 1; i < m[0].length; i++) out.push((m.index ?? 0) + i);
      break;
    case 'last-char':
      out.push(Math.max(0, text.length - 1));
      break;
    case 'any':
      break;
  }
  if (out.length === 0) for (let i = 0; i <= text.length; i++) out.push(i);
  return out;
}

function at<T>(items: readonly T[], n: number): T {
  return items[n % items.length] as T;
}

/** Every path into `doc` (objects and arrays, not the root). */
function pathsOf(doc: unknown): (string | number)[][] {
  const out: (string | number)[][] = [];
  const walk = (node: unknown, path: (string | number)[]): void => {
    if (Array.isArray(node)) node.forEach((v, i) => (out.push([...path, i]), walk(v, [...path, i])));
    else if (node !== null && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        out.push([...path, k]);
        walk(v, [...path, k]);
      }
    }
  };
  walk(doc, []);
  return out;
}

/** Mapping paths of `doc`, the root included. */
function mappingPaths(doc: unknown): (string | number)[][] {
  const out: (string | number)[][] = [[]];
  for (const p of pathsOf(doc)) {
    const v = getPath(doc, p);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) out.push(p);
  }
  return out;
}

function getPath(doc: unknown, path: readonly (string | number)[]): unknown {
  let node = doc;
  for (const s of path) node = (node as Record<string | number, unknown>)[s];
  return node;
}

function setPath(doc: unknown, path: readonly (string | number)[], value: unknown): void {
  const parent = getPath(doc, path.slice(0, -1)) as Record<string | number, unknown>;
  Object.defineProperty(parent, path[path.length - 1] as string | number, { value, enumerable: true, writable: true, configurable: true });
}

const MARKER_LINE = /^(---|\.\.\.)([ \t\r\n]|$)/m;

/** Positions of values in `text` (after "key: " in YAML, after '": ' in JSON) where a new value can replace the old one. */
function valueSpans(text: string, syntax: Syntax): { start: number; end: number }[] {
  const spans: { start: number; end: number }[] = [];
  const re = syntax === 'json' ? /":\s*(-?\d[\d.eE+-]*|"(?:[^"\\]|\\.)*"|true|false|null)/g : /(?:^|[{,\s])[A-Za-z]+: (-?\d[\d.eE+-]*|"[^"\n]*"|[A-Za-z][\w.:/-]*)(?=[,}\n]|$)/gm;
  for (const m of text.matchAll(re)) {
    const value = m[1] as string;
    const end = (m.index ?? 0) + m[0].length;
    const lineStart = text.lastIndexOf('\n', end - value.length - 1) + 1;
    if (syntax === 'yaml' && text.slice(lineStart, end).includes('#')) continue; // in a comment
    spans.push({ start: end - value.length, end });
  }
  return spans;
}

/** The nested text of `depth` levels in `style`, with the (block) indentation `indent` of the line it replaces a value on. */
function nested(style: (typeof NEST_STYLES)[number], depth: number, indent: number, syntax: Syntax): string {
  if (syntax === 'json' || style === 'json-map') return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
  switch (style) {
    case 'flow-seq':
      return `${'['.repeat(depth)}1${']'.repeat(depth)}`;
    case 'flow-map':
      return `${'{a: '.repeat(depth)}1${'}'.repeat(depth)}`;
    case 'compact-seq':
      return `\n${' '.repeat(indent + 2)}${'- '.repeat(depth)}1`;
    case 'block-seq':
    case 'block-map': {
      // Block nesting needs a line per level: keep it within reason (the text grows with depth squared).
      const levels = Math.min(depth, 400);
      const lines: string[] = [];
      for (let i = 0; i < levels; i++) lines.push(`${' '.repeat(indent + 2 + i * 2)}${style === 'block-seq' ? '-' : 'k:'}`);
      return `\n${lines.join('\n')} 1`;
    }
  }
}

/** Whether `style` at `depth` certainly nests deeper than the 64 levels allowed (when put at a value position). */
function certainlyTooDeep(style: (typeof NEST_STYLES)[number], depth: number, syntax: Syntax): boolean {
  const levels = syntax === 'yaml' && (style === 'block-map' || style === 'block-seq') ? Math.min(depth, 400) : depth;
  return levels >= 70;
}

/**
 * Applies `m` to `text` (a rendering of `doc` in `syntax`, or of no known
 * data when `doc` is undefined). Returns the new text and what it must show.
 */
export function applyMutation(text: string, syntax: Syntax, doc: Doc | undefined, m: Mutation, style?: Style): { text: string } & Expectation {
  const splice = (start: number, end: number, insert: string): string => text.slice(0, start) + insert + text.slice(end);
  switch (m.kind) {
    case 'truncate': {
      const cut = at(cutPositions(text, m.cut), m.pick);
      return { text: text.slice(0, cut) };
    }
    case 'wrong-type': {
      if (doc === undefined || style === undefined) return { text: splice(0, 0, '[') };
      const copy = structuredClone(doc);
      const path = at(pathsOf(copy), m.path);
      setPath(copy, path, structuredClone(WRONG_VALUES[m.value]));
      return { text: render(copy, style) };
    }
    case 'proto-key': {
      if (doc === undefined || style === undefined) return { text: `${PROTO_KEYS[m.key]}: 1\n${text}` };
      const copy = structuredClone(doc);
      const path = at(mappingPaths(copy), m.path);
      const target = path.length === 0 ? copy : (getPath(copy, path) as Doc);
      Object.defineProperty(target, PROTO_KEYS[m.key] as string, { value: { x: 1 }, enumerable: true, writable: true, configurable: true });
      // A new key is an unknown field everywhere except under metadata.labels (where values are strings).
      // Its value is a mapping, which no field of that name (or label) accepts.
      return { text: render(copy, style), mustError: /./ };
    }
    case 'huge-number': {
      const numbers = [...text.matchAll(/(?<![\w.-])\d+(?![\w.-])/g)];
      if (numbers.length === 0) return { text: `${text}${HUGE_NUMBERS[m.token]}` };
      const n = at(numbers, m.pick);
      return { text: splice(n.index ?? 0, (n.index ?? 0) + n[0].length, HUGE_NUMBERS[m.token] as string) };
    }
    case 'deep-nest': {
      const spans = valueSpans(text, syntax);
      if (spans.length === 0) return { text: nested(m.style, m.depth, 0, syntax) };
      const span = at(spans, m.pick);
      const lineStart = text.lastIndexOf('\n', span.start - 1) + 1;
      const indent = /^ */.exec(text.slice(lineStart))?.[0].length ?? 0;
      const flowContext = /[[{]/.test(text.slice(lineStart, span.start)) || syntax === 'json';
      const style = flowContext && (m.style === 'block-map' || m.style === 'block-seq' || m.style === 'compact-seq') ? 'flow-seq' : m.style;
      const inserted = nested(style, m.depth, indent, syntax);
      return { text: splice(span.start, span.end, inserted), mustError: certainlyTooDeep(style, m.depth, syntax) ? /nested more than 64 levels deep/ : undefined };
    }
    case 'duplicate-key': {
      if (syntax === 'json') {
        // Repeat a member "key": scalar right after itself.
        const members = [...text.matchAll(/"(?:[^"\\]|\\.)*"\s*:\s*(?:-?\d[\d.eE+-]*|"(?:[^"\\]|\\.)*"|true|false|null)/g)];
        if (members.length === 0) return { text };
        const member = at(members, m.pick);
        const end = (member.index ?? 0) + member[0].length;
        return { text: splice(end, end, `,${member[0]}`), mustError: /duplicate key/ };
      }
      // Repeat a "key: ..." line of a block mapping (not a list item's first line, not inside a flow collection).
      const lines = text.split('\n');
      const candidates = lines.flatMap((line, i) => (/^ *[A-Za-z][\w.-]*:( |$)/.test(line) && !/[[{]$/.test(line) ? [i] : []));
      if (candidates.length === 0) return { text };
      const i = at(candidates, m.pick);
      lines.splice(i + 1, 0, lines[i] as string);
      return { text: lines.join('\n'), mustError: /Map keys must be unique/ };
    }
    case 'bom': {
      switch (m.where) {
        case 'start':
          return { text: `\uFEFF${text}`, sameAsBase: true };
        case 'double-start':
          return { text: `\uFEFF\uFEFF${text}` };
        case 'mid':
          return { text: splice(m.pick % (text.length + 1), m.pick % (text.length + 1), '\uFEFF') };
        case 'line-start': {
          const starts = cutPositions(text, 'line-start');
          const p = at(starts, m.pick);
          return { text: splice(p, p, '\uFEFF') };
        }
        case 'end':
          return { text: `${text}\uFEFF` };
      }
      break;
    }
    case 'nul': {
      const p = m.pick % (text.length + 1);
      return { text: splice(p, m.replace ? Math.min(p + 1, text.length) : p, '\u0000') };
    }
    case 'tabs': {
      switch (m.mode) {
        case 'indent': {
          const indents = [...text.matchAll(/\n( +)/g)];
          if (indents.length === 0) return { text: `\t${text}` };
          const ind = at(indents, m.pick);
          const start = (ind.index ?? 0) + 1;
          return { text: splice(start, start + (ind[1] as string).length, '\t') };
        }
        case 'after-colon': {
          const p = at(cutPositions(text, 'after-colon'), m.pick);
          return { text: splice(p, p, '\t') };
        }
        case 'line': {
          const p = at(cutPositions(text, 'line-start'), m.pick);
          return { text: splice(p, p, '\t\n') };
        }
        case 'all':
          return { text: text.replace(/ {2}/g, '\t') };
      }
      break;
    }
    case 'alias-bomb': {
      // Billion laughs: each level a list of `width` aliases of the level below.
      const a = ANCHORS[m.anchor] as string;
      const lines = [`x0: &${a}0 [${Array(m.width).fill('"lol"').join(', ')}]`];
      for (let d = 1; d <= m.depth; d++) lines.push(`x${d}: &${a}${d} [${Array(m.width).fill(`*${a}${d - 1}`).join(', ')}]`);
      const explodes = m.width ** m.depth >= 10_000; // far past the 100 nodes an alias may expand to
      if (syntax === 'json') return { text: `${lines.join('\n')}\n${text}`, mustError: /JSON syntax error/ };
      const spec = text.indexOf('\nspec:\n');
      // Before a flow mapping ("{apiVersion: …}") the bomb is a syntax error instead.
      const blockText = /^[A-Za-z#]/.test(text);
      if (m.top || spec < 0) return { text: `${lines.join('\n')}\n${text}`, mustError: explodes ? (blockText ? /alias/i : /alias|YAML syntax error/i) : undefined };
      const where = spec + '\nspec:\n'.length;
      return { text: splice(where, where, `${lines.map((l) => `  ${l}`).join('\n')}\n`), mustError: explodes ? /alias/i : undefined };
    }
    case 'garbage': {
      const p = m.pick % (text.length + 1);
      const out = splice(p, p, m.char);
      return { text: out, addsMarker: MARKER_LINE.test(out) && !MARKER_LINE.test(text) };
    }
    case 'delete-range': {
      const p = m.pick % (text.length + 1);
      const out = splice(p, Math.min(text.length, p + m.length), '');
      return { text: out, addsMarker: MARKER_LINE.test(out) && !MARKER_LINE.test(text) };
    }
    case 'duplicate-range': {
      const p = m.pick % (text.length + 1);
      const out = splice(p, p, text.slice(p, p + m.length));
      return { text: out, addsMarker: MARKER_LINE.test(out) && !MARKER_LINE.test(text) };
    }
    case 'newlines':
      switch (m.mode) {
        case 'crlf':
          return { text: text.replace(/\n/g, '\r\n'), sameAsBase: true };
        case 'cr':
          return { text: text.replace(/\n/g, '\r') };
        case 'none':
          return { text: text.replace(/\n/g, ' ') };
        case 'mixed':
          return { text: text.replace(/\n/g, (_, i: number) => (i % 3 === 0 ? '\r\n' : i % 3 === 1 ? '\r' : '\n')) };
      }
      break;
    case 'long-string': {
      const long = 'x'.repeat(m.length);
      const spans = valueSpans(text, syntax);
      if (spans.length === 0) return { text: `${text}${long}` };
      const span = at(spans, m.pick);
      if (m.asKey) {
        const lineStart = text.lastIndexOf('\n', span.start - 1) + 1;
        return { text: splice(lineStart, lineStart, syntax === 'json' ? '' : `${long}: 1\n`) };
      }
      return { text: splice(span.start, span.end, syntax === 'json' ? `"${long}"` : long) };
    }
    case 'replacement-char': {
      const p = m.pick % (text.length + 1);
      return { text: splice(p, p, m.char) };
    }
    case 'tag': {
      const spans = valueSpans(text, syntax);
      const span = spans.length === 0 ? { start: 0, end: 0 } : at(spans, m.pick);
      return { text: splice(span.start, span.start, `${TAGS[m.tag]} `), mustError: syntax === 'json' ? /JSON syntax error/ : undefined };
    }
  }
  return { text };
}

// ---------------------------------------------------------------------------
// Oracles.

/** The shape every problem has, whoever produced it. */
export interface ProblemLike {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly path: string;
  readonly message: string;
  readonly severity: string;
}

/**
 * Messages of problems about a whole file or directory, which have no
 * position (docs/policy-documents.md: "FILE: SEVERITY: MESSAGE").
 */
export const FILE_LEVEL_MESSAGE =
  /^(cannot read: |cannot read directory: |file is too large: \d+ bytes|not a regular file|skipped: |contains no policy documents$|does not exist; )/;

/**
 * Checks one problem: a known file, a severity, a message, and a position
 * inside the text (`text` undefined: the file's content is unknown, only
 * line, column >= 1 are checked). `fileLevel` says whether the file may
 * have a problem without a position.
 */
export function checkProblem(p: ProblemLike, text: string | undefined, fileLevel: boolean, context: string): void {
  const where = `${context}: ${JSON.stringify(p)}`;
  assert.ok(p.severity === 'error' || p.severity === 'warning', `bad severity: ${where}`);
  assert.equal(typeof p.message, 'string', where);
  assert.ok(p.message.trim().length > 0, `empty message: ${where}`);
  assert.ok(!/^\s+at .*\(.*:\d+:\d+\)$/m.test(p.message), `stack trace in a message: ${where}`);
  assert.ok(Number.isInteger(p.line) && Number.isInteger(p.column), `non-integer position: ${where}`);
  if (p.line === 0) {
    assert.equal(p.column, 0, `line 0 with a column: ${where}`);
    // Any file may turn out to hold no document (a warning); only files that cannot be read may have other problems without a position.
    const empty = p.severity === 'warning' && p.message === 'contains no policy documents';
    assert.ok(fileLevel || empty, `a problem without file:line:column in a file whose content was read: ${where}`);
    assert.match(p.message, FILE_LEVEL_MESSAGE, `a problem without a position that is not about the whole file: ${where}`);
    return;
  }
  assert.ok(p.line >= 1 && p.column >= 1, `position below 1:1: ${where}`);
  if (text === undefined) return;
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const lines = source.split('\n');
  assert.ok(p.line <= lines.length, `line ${p.line} past the end of the file (${lines.length} lines): ${where}`);
  const lineText = lines[p.line - 1] as string;
  assert.ok(p.column <= lineText.length + 1, `column ${p.column} past the end of line ${p.line} (${lineText.length} characters): ${where}`);
}

/** Every number of a normalized policy is a safe integer (no Infinity, NaN or 2**64 gets through), and it survives JSON. */
export function checkPolicyNumbers(policy: unknown, context: string): void {
  const walk = (v: unknown, path: string): void => {
    if (typeof v === 'number') assert.ok(Number.isSafeInteger(v), `${context}: ${path} is ${v} in ${JSON.stringify(policy)}`);
    else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`));
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
  };
  walk(policy, 'policy');
}

/** Parsed documents hold plain data only: no Date, Map, Set or byte array from a YAML tag, no function, no undefined. */
export function checkPlainData(value: unknown, context: string): void {
  const stack: [unknown, string][] = [[value, '']];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [v, path] = item;
    if (v === null || typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number') continue;
    assert.equal(typeof v, 'object', `${context}: ${path || 'the document'} is a ${typeof v}`);
    const proto = Object.getPrototypeOf(v) as unknown;
    if (Array.isArray(v)) {
      assert.equal(proto, Array.prototype, `${context}: ${path} is an array of another kind`);
      v.forEach((x, i) => stack.push([x, `${path}[${i}]`]));
    } else {
      assert.ok(proto === Object.prototype || proto === null, `${context}: ${path || 'the document'} is a ${(v as object).constructor?.name ?? 'strange object'}, not plain data`);
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) stack.push([x, `${path}.${k}`]);
    }
  }
}

/** A line of `validate`/`plan` text output about a policy file: `FILE:LINE:COL: SEVERITY: ...` or, for whole files, `FILE: SEVERITY: ...`. */
export const PROBLEM_LINE = /^(?<file>.+?):(?<line>[1-9]\d*):(?<column>[1-9]\d*): (?<severity>error|warning): \S/;
export const FILE_PROBLEM_LINE = /^(?<file>.+?): (?<severity>error|warning): (?<message>.+)$/;

/** Signs of a crash in output: stack frames, uncaught error names, node's own crash banners. */
export function assertNoCrash(output: string, context: string): void {
  for (const line of output.split('\n')) {
    assert.ok(!/^\s+at /.test(line), `${context}: a stack frame in the output: ${line}\n${output.slice(0, 4000)}`);
    assert.ok(!/^(Uncaught |node:internal|file:\/\/\/)/.test(line), `${context}: a crash banner: ${line}`);
    // An error name is fine inside a problem message (it names a user mistake); anywhere else it is a crash.
    if (/\b(TypeError|RangeError|ReferenceError|SyntaxError|Maximum call stack|FATAL ERROR|heap out of memory)\b/.test(line)) {
      assert.ok(PROBLEM_LINE.test(line) || FILE_PROBLEM_LINE.test(line), `${context}: an error name outside a problem line: ${line}`);
    }
  }
}

// ---------------------------------------------------------------------------
// Directories of bad entries, for the loader (unit) and the CLI (kernel).

/** Kinds of bad directory entries. */
export const BAD_ENTRIES = [
  'mutated',
  'invalid-utf8',
  'truncated-utf8',
  'bom-bytes',
  'nul-bytes',
  'huge',
  'fifo',
  'fifo-link',
  'symlink-loop',
  'self-link',
  'dir-loop',
  'dangling',
  'unreadable',
  'unreadable-dir',
  'eio',
  'dev-null',
  'dir-named-yaml',
  'empty',
  'multi-doc-broken',
] as const;
export type BadEntryKind = (typeof BAD_ENTRIES)[number];

/** Bytes that are never well-formed UTF-8 where they are put. */
export const INVALID_UTF8: readonly number[][] = [[0xff], [0xfe], [0xc0, 0x80], [0xc1, 0xbf], [0x80], [0xbf], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xf0, 0x8f, 0xbf, 0xbf], [0xe0, 0x80, 0xaf]];

export interface BadEntrySpec {
  readonly kind: BadEntryKind;
  readonly syntax: Syntax;
  readonly mutation: Mutation;
  readonly pick: number;
  readonly bytes: number;
}

export const badEntryArb: fc.Arbitrary<BadEntrySpec> = fc.record({
  kind: fc.constantFrom(...BAD_ENTRIES),
  syntax: fc.constantFrom('yaml' as const, 'json' as const),
  mutation: mutationArb(),
  pick,
  bytes: fc.nat(INVALID_UTF8.length - 1),
});

/** What a directory holds, and what loading it must give. */
export interface DirectoryPlan {
  /** Names of the valid policies that must be loaded whatever else is in the directory. */
  readonly siblings: string[];
  /** Files (as named under the given directory path) with valid siblings. */
  readonly siblingFiles: string[];
  /** Relative paths that may have problems without a position (read errors, huge files, links). */
  readonly fileLevel: Set<string>;
  /** Relative paths whose errors must match the given pattern (at least one such error). */
  readonly mustError: Map<string, RegExp>;
  /** Relative path -> text content (decoded as the loader would), for the position checks. */
  readonly texts: Map<string, string>;
  /** FIFOs created (absolute paths). */
  readonly fifos: string[];
}

/** Creates a FIFO at `path` (mkfifo(1), bounded). */
export function mkfifo(path: string): void {
  const r = runBounded('mkfifo', ['-m', '0644', path], {}, 10_000);
  assert.equal(r.status, 0, `mkfifo ${path}: ${r.stderr}`);
}

/**
 * Writes, under `dir` (which exists), `siblings.length` valid files and
 * one bad entry per spec, and says what loading `dir` must give.
 */
export function buildDirectory(dir: string, siblingDocs: readonly { doc: Doc; style: Style }[], bad: readonly BadEntrySpec[]): DirectoryPlan {
  const plan: DirectoryPlan = { siblings: [], siblingFiles: [], fileLevel: new Set(), mustError: new Map(), texts: new Map(), fifos: [] };
  const write = (rel: string, content: string | Buffer): void => {
    const full = join(dir, rel);
    writeFileSync(full, content, { mode: 0o644 });
    chmodSync(full, 0o644);
    plan.texts.set(rel, typeof content === 'string' ? content : content.toString('utf8'));
  };
  siblingDocs.forEach(({ doc, style }, i) => {
    const rel = `good-${i}.${syntaxOfStyle(style)}`;
    write(rel, render(doc, style));
    plan.siblings.push((doc.metadata as { name: string }).name);
    plan.siblingFiles.push(rel);
  });
  const base = siblingDocs[0];
  const baseText = (syntax: Syntax): string => (base === undefined ? '' : render(base.doc, syntax === 'json' ? 'json-pretty' : 'yaml-block'));
  bad.forEach((spec, i) => {
    const ext = spec.syntax;
    const rel = `bad-${i}.${ext}`;
    const full = join(dir, rel);
    switch (spec.kind) {
      case 'mutated': {
        // A mutated copy of the first sibling, under its name: at worst a duplicate-name or overlap error on the sibling, which still loads.
        const mutated = applyMutation(baseText(ext), ext, base?.doc, spec.mutation, ext === 'json' ? 'json-pretty' : 'yaml-block');
        write(rel, mutated.text);
        if (mutated.mustError) plan.mustError.set(rel, mutated.mustError);
        break;
      }
      case 'invalid-utf8':
      case 'truncated-utf8': {
        const text = `# café ☃ 😀 ünïcödé\n${baseText(ext === 'json' ? 'yaml' : ext)}`;
        let bytes = Buffer.from(text, 'utf8');
        if (spec.kind === 'invalid-utf8') {
          const p = spec.pick % (bytes.length + 1);
          bytes = Buffer.concat([bytes.subarray(0, p), Buffer.from(INVALID_UTF8[spec.bytes] as number[]), bytes.subarray(p)]);
          plan.mustError.set(`bad-${i}.yaml`, /not valid UTF-8/);
        } else {
          // Cut inside the first line's multi-byte characters (or anywhere).
          bytes = bytes.subarray(0, spec.pick % 2 === 0 ? 3 + (spec.pick % 20) : spec.pick % (bytes.length + 1));
        }
        writeFileSync(join(dir, `bad-${i}.yaml`), bytes, { mode: 0o644 });
        plan.texts.set(`bad-${i}.yaml`, bytes.toString('utf8'));
        break;
      }
      case 'bom-bytes': {
        // A byte order mark is allowed: the policy inside loads (it is a sibling under another name).
        const doc = base === undefined ? undefined : structuredClone(base.doc);
        if (doc !== undefined) {
          (doc.metadata as { name: string }).name = `bom-${i}`;
          shiftSlot(doc, 150 + i);
          write(rel, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(render(doc, ext === 'json' ? 'json-pretty' : 'yaml-block'))]));
          plan.siblings.push(`bom-${i}`);
          plan.siblingFiles.push(rel);
        }
        break;
      }
      case 'nul-bytes': {
        const text = baseText(ext);
        const p = spec.pick % (text.length + 1);
        write(rel, `${text.slice(0, p)}\u0000\u0000${text.slice(p)}`);
        break;
      }
      case 'huge':
        // 10 MB: refused by size, before it is read.
        writeFileSync(full, Buffer.alloc(10 * 1024 * 1024, spec.pick % 2 === 0 ? 0x20 : 0x5b));
        plan.fileLevel.add(rel);
        plan.mustError.set(rel, /file is too large/);
        break;
      case 'fifo':
        mkfifo(full);
        plan.fifos.push(full);
        plan.fileLevel.add(rel);
        break;
      case 'fifo-link': {
        const fifo = join(dir, `.fifo-${i}`);
        mkfifo(fifo);
        plan.fifos.push(fifo);
        symlinkSync(`.fifo-${i}`, full);
        plan.fileLevel.add(rel);
        break;
      }
      case 'symlink-loop':
        symlinkSync(`loop-b-${i}.yaml`, join(dir, `loop-a-${i}.yaml`));
        symlinkSync(`loop-a-${i}.yaml`, join(dir, `loop-b-${i}.yaml`));
        plan.fileLevel.add(`loop-a-${i}.yaml`).add(`loop-b-${i}.yaml`);
        break;
      case 'self-link':
        symlinkSync(rel, full);
        plan.fileLevel.add(rel);
        break;
      case 'dir-loop':
        mkdirSync(join(dir, `sub-${i}`), { mode: 0o755 });
        symlinkSync('..', join(dir, `sub-${i}`, 'up'));
        symlinkSync('.', join(dir, `sub-${i}`, 'here'));
        symlinkSync(`../sub-${i}`, join(dir, `sub-${i}`, 'again.yaml'));
        break;
      case 'dangling':
        symlinkSync(`missing-${i}.yaml`, full);
        plan.fileLevel.add(rel);
        break;
      case 'unreadable': {
        // Mode 000 (root reads it anyway; others get a "cannot read" error): a copy of a sibling under its own name.
        const doc = base === undefined ? undefined : structuredClone(base.doc);
        if (doc !== undefined) {
          (doc.metadata as { name: string }).name = `locked-${i}`;
          shiftSlot(doc, 170 + i);
          write(rel, render(doc, ext === 'json' ? 'json-pretty' : 'yaml-block'));
          chmodSync(full, 0o000);
          plan.fileLevel.add(rel);
        }
        break;
      }
      case 'unreadable-dir': {
        mkdirSync(join(dir, `locked-${i}`), { mode: 0o755 });
        writeFileSync(join(dir, `locked-${i}`, 'inner.yaml'), 'kind: [\n', { mode: 0o644 });
        plan.texts.set(`locked-${i}/inner.yaml`, 'kind: [\n');
        chmodSync(join(dir, `locked-${i}`), 0o000);
        plan.fileLevel.add(`locked-${i}`).add(`locked-${i}/inner.yaml`);
        break;
      }
      case 'eio':
        // Opens, stats as a regular file of size 0, and fails to read: EIO.
        symlinkSync('/proc/self/mem', full);
        plan.fileLevel.add(rel);
        // A file reached twice is read once: only the first link to it is read.
        if (!bad.slice(0, i).some((b) => b.kind === 'eio')) plan.mustError.set(rel, /cannot read: EIO/);
        break;
      case 'dev-null':
        symlinkSync('/dev/null', full);
        plan.fileLevel.add(rel);
        break;
      case 'dir-named-yaml': {
        // A directory named like a policy file is read as a directory: the policy inside (CRLF line ends) loads.
        mkdirSync(full, { mode: 0o755 });
        const doc = base === undefined ? undefined : structuredClone(base.doc);
        if (doc !== undefined) {
          (doc.metadata as { name: string }).name = `inner-${i}`;
          shiftSlot(doc, 190 + i);
          write(`${rel}/inner.yaml`, render(doc, 'yaml-block').replace(/\n/g, '\r\n'));
          plan.siblings.push(`inner-${i}`);
          plan.siblingFiles.push(`${rel}/inner.yaml`);
        }
        break;
      }
      case 'empty':
        write(rel, spec.pick % 3 === 0 ? '' : spec.pick % 3 === 1 ? '# nothing\n---\n---\n' : '\uFEFF');
        plan.fileLevel.add(rel);
        break;
      case 'multi-doc-broken': {
        // Three documents, the middle one broken: the other two load.
        if (base === undefined) break;
        const docs = [0, 1, 2].map((k) => {
          const d = structuredClone(base.doc);
          (d.metadata as { name: string }).name = `multi-${i}-${k}`;
          shiftSlot(d, 100 + i * 3 + k);
          return d;
        });
        const texts = docs.map((d) => render(d, 'yaml-block'));
        const broken = applyMutation(texts[1] as string, 'yaml', docs[1], spec.mutation, 'yaml-block');
        const text = `---\n${texts[0]}\n---\n${broken.text}\n---\n${texts[2]}`;
        writeFileSync(join(dir, `multi-${i}.yaml`), text, { mode: 0o644 });
        plan.texts.set(`multi-${i}.yaml`, text);
        if (!broken.addsMarker) plan.siblings.push(`multi-${i}-0`, `multi-${i}-2`);
        plan.siblingFiles.push(`multi-${i}.yaml`);
        break;
      }
    }
  });
  return plan;
}

/** Moves a generated document to another slot's ports and interfaces (so copies never conflict). */
export function shiftSlot(doc: Doc, slot: number): void {
  const spec = doc.spec as Record<string, unknown>;
  if (Array.isArray(spec.ports)) {
    const base = 20000 + (slot % 200) * 200;
    spec.ports = [base + 1, `${base + 2}-${base + 20}`];
  }
  if (Array.isArray(spec.interfaces)) spec.interfaces = [`s${slot}-x`];
}

/**
 * fast-check settings: FUZZ_SEED and FUZZ_PATH replay a failure (fast-check
 * prints both), FUZZ_SCALE multiplies the number of runs (a longer hunt).
 */
export function replay(numRuns: number): { numRuns: number; seed?: number; path?: string; includeErrorInReport: boolean } {
  const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
  const path = process.env.FUZZ_PATH;
  const scale = Number(process.env.FUZZ_SCALE ?? 1) || 1;
  return { numRuns: Math.max(1, Math.round(numRuns * scale)), includeErrorInReport: true, ...(seed === undefined ? {} : { seed }), ...(path === undefined ? {} : { path }) };
}
