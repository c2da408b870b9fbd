/** `ebpf-policy types`: TypeScript for each of our objects and the fixture, compiled with the TypeScript compiler (strict). */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { runTypes } from '../../src/cli/types.js';
import { REPO_ROOT } from './policy-test-helpers.js';

const OBJECTS = ['dispatcher.o', 'packet_filter.o', 'connect_policy.o', 'syscall_counter.o'];

function types(file: string, names: string[] = []): { code: number; stdout: string; stderr: string } {
  let stdout = '';
  let stderr = '';
  const code = runTypes(file, names, { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) } });
  return { code, stdout, stderr };
}

/** Type-checks files (name -> source) with --strict; returns the diagnostics as text. */
function compile(files: Record<string, string>): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'ebpf-policy-types-'));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    const program = ts.createProgram(
      Object.keys(files).map((n) => join(dir, n)),
      { strict: true, noEmit: true, noUncheckedIndexedAccess: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: [], lib: ['lib.es2022.d.ts'] },
    );
    return ts.getPreEmitDiagnostics(program).map((d) => `${d.file?.fileName ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('types prints declarations for every map of our objects, and they compile with --strict', () => {
  const files: Record<string, string> = {};
  for (const name of OBJECTS) {
    const out = types(`${REPO_ROOT}build/bpf/${name}`);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /export type \w+MapKey = /);
    files[name.replace('.o', '.ts')] = out.stdout;
  }
  assert.match(files['dispatcher.ts']!, /export interface BindingKey \{\n {2}prefixlen: number;\n {2}protocol: number;\n {2}port: number;\n {2}addr: string;\n\}/);
  assert.match(files['syscall_counter.ts']!, /export type CgroupsMapKey = string;/);
  assert.deepEqual(compile(files), []);
});

test('types --type declares a ring buffer record; values the codec decodes type-check against the output', () => {
  const out = types(`${REPO_ROOT}build/bpf/fixture_btf_types.o`, ['event', 'color']);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /export interface Event \{\n {2}time_ns: number \| string;\n {2}tuple: Tuple;\n {2}comm: string;\n\}/);
  assert.match(out.stdout, /export type Choice = \{ as_u32: number \} \| \{ bytes: number\[\] \} \| \{ pair: Inner \};/);
  const use = [
    "import type { Event, TuplesMapKey, TuplesMapValue, RawMapValue } from './fixture.js';",
    "export const key: TuplesMapKey = { saddr: '10.0.0.1', sport: 80, proto: 6, pad: 0 };",
    "export const event: Event = { time_ns: '18446744073709551615', tuple: key, comm: 'curl' };",
    "export const raw: RawMapValue = '00';",
    "export function port(v: TuplesMapValue): number { return v.sport + v.pairs.length + (v.color === 'BLUE' ? 1 : 0); }",
  ].join('\n');
  assert.deepEqual(compile({ 'fixture.ts': out.stdout, 'use.ts': use }), []);
  // The harness does see errors: a wrong field type is reported.
  const wrong = compile({ 'fixture.ts': out.stdout, 'use.ts': "import type { TuplesMapKey } from './fixture.js';\nexport const k: TuplesMapKey = { saddr: 1, sport: 80, proto: 6, pad: 0 };" });
  assert.equal(wrong.length, 1, wrong.join('\n'));
});

test('types refuses an unknown --type (listing the known ones) and a missing file', () => {
  const unknown = types(`${REPO_ROOT}build/bpf/syscall_counter.o`, ['nope']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no struct, union or enum named nope .*sc_key/);
  assert.equal(types(`${REPO_ROOT}build/bpf/nothing-here.o`).code, 2);
  const notElf = types(`${REPO_ROOT}package.json`);
  assert.equal(notElf.code, 1);
  assert.match(notElf.stderr, /not an ELF file/);
});
