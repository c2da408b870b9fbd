/**
 * The JSON Schemas of policy documents (the files in schemas/), compiled
 * once with ajv and indexed so that any sub-schema can be validated on its
 * own (used to explain oneOf/anyOf failures). Whether a document is valid is
 * first asked of ajv's standalone validators generated from the same files
 * at build time (src/types/generated/schema-validators.ts): ajv itself is
 * loaded, and the schemas compiled, only to explain a document that is not.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Ajv as AjvInstance, AnySchemaObject, ValidateFunction } from 'ajv';
import { SCHEMA_DIGEST, VALIDATORS } from '../types/generated/schema-validators.js';
import { AJV_FORMATS } from './formats.js';

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
  /**
   * Whether a value is valid against a whole schema file: the same answer
   * as {@link SchemaSet.validatorFor}'s validator, without error details;
   * from the precompiled validators when they were generated from these
   * very schema files. @throws Error if no such file was loaded.
   */
  quickValidatorFor(schemaFile: string): (value: unknown) => boolean;
}

/** Precompiled validators, by schema file, and the digest of the schema files they were generated from. */
export interface PrecompiledValidators {
  readonly digest: string;
  readonly validators: Readonly<Record<string, (data: unknown) => boolean>>;
}

/** The validators generated from the package's schemas (`npm run gen:types`). */
export const GENERATED_VALIDATORS: PrecompiledValidators = { digest: SCHEMA_DIGEST, validators: VALIDATORS };

/** The digest {@link PrecompiledValidators} are checked against: sha256 over "FILE\0TEXT\0" of each schema file, in name order. */
export function schemaDigest(files: readonly (readonly [file: string, text: string])[]): string {
  const hash = createHash('sha256');
  for (const [file, text] of files) hash.update(`${file}\0${text}\0`);
  return hash.digest('hex');
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
 * `allErrors` and `verbose` on and the custom formats of {@link AJV_FORMATS}.
 * Validators are compiled on first use and cached. When `precompiled` was
 * generated from exactly these files, {@link SchemaSet.quickValidatorFor}
 * answers with it, and ajv is loaded and the schemas added to it only when
 * a validator with error details is first asked for.
 * @throws Error if a schema file cannot be read or is not a valid schema
 *   (a broken installation, not a user error).
 */
export function loadSchemaSet(directory: string = defaultSchemaDirectory(), precompiled: PrecompiledValidators = GENERATED_VALIDATORS): SchemaSet {
  const texts = readdirSync(directory)
    .filter((name) => name.endsWith(SCHEMA_FILE_SUFFIX))
    .sort()
    .map((file) => [file, readFileSync(join(directory, file), 'utf8')] as const);
  const schemas = texts.map(([file, text]) => {
    const schema = JSON.parse(text) as AnySchemaObject;
    if (schema.$id !== file) throw new Error(`schema ${join(directory, file)}: "$id" must be "${file}"`);
    return schema;
  });
  const pointers = new WeakMap<object, string>();
  let ajv: AjvInstance | undefined;
  const instance = (): AjvInstance => {
    if (ajv === undefined) {
      // ajv is CommonJS: required here, when first needed, rather than imported by every command that loads policies.
      const { Ajv } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
      const created = new Ajv({ allErrors: true, verbose: true, strict: true });
      created.addVocabulary([EXPECTED_KEYWORD]);
      for (const [name, format] of Object.entries(AJV_FORMATS)) created.addFormat(name, format);
      schemas.forEach((schema, i) => {
        created.addSchema(schema);
        indexSubschemas((texts[i] as readonly [string, string])[0], schema, pointers);
      });
      ajv = created;
    }
    return ajv;
  };
  const upToDate = precompiled.digest === schemaDigest(texts);
  if (!upToDate) instance(); // not generated from these files: a broken schema is refused now, as without them
  const getValidator = (ref: string): ValidateFunction => {
    const validate = instance().getSchema(ref);
    if (validate === undefined) throw new Error(`no schema "${ref}" in ${directory}`);
    return validate;
  };
  return {
    validatorFor: getValidator,
    validatorBelow(base, pointer) {
      instance(); // the index of sub-schemas is built with it
      const basePointer = pointers.get(base);
      return basePointer === undefined ? undefined : getValidator(basePointer + pointer);
    },
    quickValidatorFor(schemaFile) {
      const generated = upToDate ? precompiled.validators[schemaFile] : undefined;
      return generated ?? getValidator(schemaFile);
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
