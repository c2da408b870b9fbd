/**
 * The `yaml` package (the precise parser: full syntax trees with positions),
 * loaded on first use. Well-formed files take js-yaml's fast path and never
 * need it, so a daemon whose policies are valid does not carry it (~9 MB of
 * resident memory); it is loaded for a file with problems or when a position
 * is asked for.
 */
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

let lib: typeof Yaml | undefined;

/** The `yaml` module, loaded synchronously on the first call. */
export function yamlLib(): typeof Yaml {
  lib ??= createRequire(import.meta.url)('yaml') as typeof Yaml;
  return lib;
}
