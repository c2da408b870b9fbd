#!/usr/bin/env node
// Generates TypeScript declarations of this project's own BPF objects from their BTF
// (what `ebpf-policy types` prints), so a change to a C struct shows up in review.
//
//   node scripts/gen-bpf-types.mjs            write src/types/bpf/*.ts       (npm run gen:bpf-types)
//   node scripts/gen-bpf-types.mjs --check    regenerate in memory and fail if the
//                                             committed files differ          (npm run check:bpf-types, run by CI)
//
// Reads build/bpf/*.o and dist/ (run `npm run build` first).
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'src', 'types', 'bpf');

// The shipped objects, and the structs our hand-written layouts encode that no map names as its key or value type.
const OBJECTS = {
  'dispatcher.o': [],
  'packet_filter.o': ['pf_addr_key', 'pf_class', 'pf_decision_key', 'pf_decision'],
  'connect_policy.o': [],
  'syscall_counter.o': ['sc_key'],
};

const modules = ['object-info.js', 'typescript.js'].map((m) => join(root, 'dist', 'src', 'btf', m));
for (const [path, what] of [...modules.map((m) => [m, 'dist/']), ...Object.keys(OBJECTS).map((o) => [join(root, 'build', 'bpf', o), 'build/bpf/'])]) {
  if (!existsSync(path)) {
    console.error(`gen-bpf-types: ${relative(root, path)} is missing: run \`npm run build\` first (it writes ${what})`);
    process.exit(2);
  }
}
const { readObjectInfo } = await import(modules[0]);
const { typescriptDeclarations } = await import(modules[1]);

/** The generated files: name -> text. */
function generate() {
  const out = new Map();
  for (const [object, types] of Object.entries(OBJECTS)) {
    const source = `build/bpf/${object}`;
    const info = readObjectInfo(readFileSync(join(root, source)), source);
    const text = typescriptDeclarations(info, { types, source }).replace(
      ' * (src/btf/codec.ts, docs/btf-codec.md) encodes and decodes. Do not edit.',
      ' * (src/btf/codec.ts, docs/btf-codec.md) encodes and decodes. Do not edit: change the C source and run\n * `npm run build && npm run gen:bpf-types`.',
    );
    out.set(`${object.replace(/\.o$/, '').replace(/_/g, '-')}.ts`, text);
  }
  return out;
}

const fresh = generate();
if (process.argv.includes('--check')) {
  const committed = existsSync(outDir) ? readdirSync(outDir).filter((f) => f.endsWith('.ts')) : [];
  const problems = [];
  for (const [name, text] of fresh) {
    const path = relative(root, join(outDir, name));
    if (!committed.includes(name)) {
      problems.push(`${path}: missing`);
      continue;
    }
    const want = text.split('\n');
    const have = readFileSync(join(outDir, name), 'utf8').split('\n');
    const line = want.findIndex((t, i) => t !== have[i]);
    if (line >= 0 || want.length !== have.length) {
      const at = line >= 0 ? line : Math.min(want.length, have.length);
      problems.push(`${path}:${at + 1}: differs from the object's BTF\n  expected: ${want[at] ?? '<end of file>'}\n  found:    ${have[at] ?? '<end of file>'}`);
    }
  }
  for (const name of committed.filter((n) => !fresh.has(n))) problems.push(`${relative(root, join(outDir, name))}: not generated from any object (stale?)`);
  if (problems.length > 0) {
    console.error(problems.join('\n'));
    console.error('check:bpf-types: BPF object types are out of date; run `npm run build && npm run gen:bpf-types` and commit the result.');
    process.exitCode = 1;
  } else {
    console.error(`check:bpf-types: ${fresh.size} generated files are up to date.`);
  }
} else {
  mkdirSync(outDir, { recursive: true });
  for (const [name, text] of fresh) writeFileSync(join(outDir, name), text);
  console.error(`gen:bpf-types: wrote ${[...fresh.keys()].map((n) => relative(root, join(outDir, n))).join(', ')}`);
}
