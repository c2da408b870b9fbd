/**
 * The JSON Schemas of policy documents (the files in schemas/), compiled
 * once with ajv and indexed so that any sub-schema can be validated on its
 * own (used to explain oneOf/anyOf failures).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type AnySchemaObject, type ValidateFunction } from 'ajv';
import { STRING_FORMATS } from './formats.js';

/** Suffix of schema file names in the schema directory. */
export const SCHEMA_FILE_SUFFIX = '.schema.json';

/**
 * Non-validating keyword used on oneOf/anyOf schemas: how to describe the
 * alternatives to a person ("a port number (1..65535) or ...").
 */
export const EXPECTED_KEYWORD = 'x-expected';

/** Compiled schemas plus the lookups needed to explain their errors. */
export interface SchemaSet {
  /** Validator for a whole schema file, e.g. "port-steering.schema.json". @throws Error if no such file was loaded. */
  validatorFor(schemaFile: string): ValidateFunction;
  /**
   * Validator for the sub-schema at `pointer` below the sub-schema object
   * `base` (an object from one of the loaded files, such as an ajv error's
   * `parentSchema`). Undefined if `base` is not part of a loaded file.
   */
  validatorBelow(base: object, pointer: string): ValidateFunction | undefined;
}

/**
 * Finds the schemas/ directory shipped with the package: it sits at the
 * package root, next to dist/ (compiled code runs from dist/src/policy/).
 */
export function defaultSchemaDirectory(): string {
  const candidates = ['../../../schemas', '../../schemas'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  return candidates.find((dir) => existsSync(join(dir, `envelope${SCHEMA_FILE_SUFFIX}`))) ?? (candidates[0] as string);
}

function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Records the "$id#/json/pointer" of every object inside a schema document. */
function indexSubschemas(id: string, schema: unknown, index: WeakMap<object, string>): void {
  const visit = (node: unknown, pointer: string): void => {
    if (node === null || typeof node !== 'object') return;
    if (!Array.isArray(node)) index.set(node, `${id}#${pointer}`);
    for (const [key, child] of Object.entries(node)) visit(child, `${pointer}/${escapePointerToken(key)}`);
  };
  visit(schema, '');
}

/**
 * Loads every `*.schema.json` file of `directory` into one ajv instance with
 * `allErrors` and `verbose` on and the custom formats of {@link STRING_FORMATS}.
 * Validators are compiled on first use and cached.
 * @throws Error if a schema file cannot be read or is not a valid schema
 *   (a broken installation, not a user error).
 */
export function loadSchemaSet(directory: string = defaultSchemaDirectory()): SchemaSet {
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
  ajv.addVocabulary([EXPECTED_KEYWORD]);
  for (const [name, format] of Object.entries(STRING_FORMATS)) {
    ajv.addFormat(name, { type: 'string', validate: (value: string) => format.explain(value) === undefined });
  }
  const pointers = new WeakMap<object, string>();
  const files = readdirSync(directory)
    .filter((name) => name.endsWith(SCHEMA_FILE_SUFFIX))
    .sort();
  for (const file of files) {
    const schema = JSON.parse(readFileSync(join(directory, file), 'utf8')) as AnySchemaObject;
    if (schema.$id !== file) throw new Error(`schema ${join(directory, file)}: "$id" must be "${file}"`);
    ajv.addSchema(schema);
    indexSubschemas(file, schema, pointers);
  }
  const getValidator = (ref: string): ValidateFunction => {
    const validate = ajv.getSchema(ref);
    if (validate === undefined) throw new Error(`no schema "${ref}" in ${directory}`);
    return validate;
  };
  return {
    validatorFor: getValidator,
    validatorBelow(base, pointer) {
      const basePointer = pointers.get(base);
      return basePointer === undefined ? undefined : getValidator(basePointer + pointer);
    },
  };
}

let defaultSet: SchemaSet | undefined;

/**
 * The schema set of the installed package, loaded and compiled once per process.
 * @throws Error if the package's schema files are missing or broken.
 */
export function defaultSchemaSet(): SchemaSet {
  defaultSet ??= loadSchemaSet();
  return defaultSet;
}
