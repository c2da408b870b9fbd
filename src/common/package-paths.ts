/**
 * Where the package's own files are, wherever it is installed (a clone, or
 * `npm install -g`): the compiled BPF objects (build/bpf/), the schemas and
 * the example policies. Computed once from this module's place in
 * dist/src/common/. Every file read through here must be listed in
 * package.json "files", or the installed package lacks it
 * (test/kernel/npm-package.test.ts runs the installed package).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The package's root directory (holds package.json, build/, schemas/). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The package's version, from its package.json. */
export const PACKAGE_VERSION = (JSON.parse(readFileSync(`${PACKAGE_ROOT}package.json`, 'utf8')) as { version: string }).version;

/**
 * Path of a compiled BPF object in build/bpf/, e.g. `builtBpfObject('dispatcher.o')`.
 * Only the objects a kind loads at run time ship in the npm package (package.json
 * "files"); variants and test_*.o exist in a build tree only, for tests and benchmarks.
 */
export function builtBpfObject(file: string): string {
  return `${PACKAGE_ROOT}build/bpf/${file}`;
}
