/**
 * Where the package's own files are, wherever it is installed: the compiled
 * BPF objects (build/bpf/), the schemas and the example policies. Computed
 * once from this module's place in dist/src/common/.
 */
import { fileURLToPath } from 'node:url';

/** The package's root directory (holds package.json, build/, schemas/). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Path of a compiled BPF object shipped in build/bpf/, e.g. `builtBpfObject('dispatcher.o')`. */
export function builtBpfObject(file: string): string {
  return `${PACKAGE_ROOT}build/bpf/${file}`;
}
