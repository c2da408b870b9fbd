/**
 * House rules for the JSON Schemas in schemas/: they compile, every field is
 * described, unknown fields are rejected, and the generated types exist.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { DOCUMENT_KINDS as defaultKindRegistry } from '../../src/kinds/registry.js';
import { findJsonSyntaxError } from '../../src/policy/json-syntax.js';
import { parsePolicyText } from '../../src/policy/parse.js';
import { defaultSchemaSet, GENERATED_VALIDATORS, loadSchemaSet } from '../../src/policy/schema-set.js';
import { FIXTURES_DIR, REPO_ROOT } from './policy-test-helpers.js';

const SCHEMA_DIR = join(REPO_ROOT, 'schemas');
const schemaFiles = readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.schema.json')).sort();

type Schema = Record<string, unknown>;

/** Calls `visit` on every sub-schema with its JSON pointer. */
function walk(schema: Schema, pointer: string, visit: (s: Schema, pointer: string) => void): void {
  visit(schema, pointer);
  for (const key of ['properties', 'definitions']) {
    for (const [name, sub] of Object.entries((schema[key] as Record<string, Schema> | undefined) ?? {})) walk(sub, `${pointer}/${key}/${name}`, visit);
  }
  for (const key of ['items', 'additionalProperties', 'propertyNames']) {
    const sub = schema[key];
    if (sub !== null && typeof sub === 'object') walk(sub as Schema, `${pointer}/${key}`, visit);
  }
  for (const key of ['oneOf', 'anyOf', 'allOf']) {
    ((schema[key] as Schema[] | undefined) ?? []).forEach((sub, i) => walk(sub, `${pointer}/${key}/${i}`, visit));
  }
}

/** Open maps on purpose: label values, the envelope's kind-specific spec, and a Program's entries by map name (names checked against the object). */
const OPEN_OBJECTS = new Set(['common.schema.json#/definitions/labels', 'envelope.schema.json#/properties/spec', 'program.schema.json#/definitions/spec/properties/maps']);

test('the schemas compile, with $id equal to the file name', () => {
  assert.deepEqual(schemaFiles, ['common.schema.json', 'connect-policy.schema.json', 'envelope.schema.json', 'packet-filter.schema.json', 'policy-test.schema.json', 'port-steering.schema.json', 'program.schema.json', 'syscall-counter.schema.json']);
  const set = loadSchemaSet(SCHEMA_DIR);
  for (const file of schemaFiles) assert.equal(typeof set.validatorFor(file), 'function');
  assert.equal(typeof defaultSchemaSet().validatorFor('envelope.schema.json'), 'function');
});

/** Every document of every fixture file (valid, invalid and with warnings), as plain data. */
function fixtureValues(dir = FIXTURES_DIR): unknown[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return fixtureValues(path);
    const syntax = name.endsWith('.json') ? 'json' : name.endsWith('.yaml') || name.endsWith('.yml') ? 'yaml' : undefined;
    return syntax === undefined ? [] : parsePolicyText(path, readFileSync(path, 'utf8'), syntax).documents.map((d) => d.value);
  });
}

test('the precompiled validators are generated from these schemas and agree with ajv on every fixture document, kind by kind', () => {
  const set = loadSchemaSet(SCHEMA_DIR);
  const generated = Object.keys(GENERATED_VALIDATORS.validators).sort();
  assert.deepEqual(generated, schemaFiles.filter((f) => f !== 'common.schema.json'));
  for (const file of generated) assert.equal(set.quickValidatorFor(file), GENERATED_VALIDATORS.validators[file], `${file}: not precompiled (run npm run gen:types)`);
  const values = fixtureValues();
  assert.ok(values.length > 40, `${values.length} fixture documents`);
  let valid = 0;
  for (const value of values) {
    for (const file of generated) {
      const full = set.validatorFor(file)(value);
      assert.equal(set.quickValidatorFor(file)(value), full, `${file}: ${JSON.stringify(value)}`);
      if (full) valid++;
    }
  }
  assert.ok(valid > 10, `${valid} valid (document, schema) pairs`);
});

test('validators generated from other schema files are not used: the schemas are compiled instead', () => {
  const stale = { digest: 'not the digest of these files', validators: { 'envelope.schema.json': () => true } };
  const set = loadSchemaSet(SCHEMA_DIR, stale);
  const quick = set.quickValidatorFor('envelope.schema.json');
  assert.equal(quick, set.validatorFor('envelope.schema.json'));
  assert.equal(quick({ kind: 'PortSteering' }), false);
});

test('every field has a description and every object rejects unknown fields', () => {
  for (const file of schemaFiles) {
    const schema = JSON.parse(readFileSync(join(SCHEMA_DIR, file), 'utf8')) as Schema;
    walk(schema, `${file}#`, (sub, pointer) => {
      if (/\/(properties|definitions)\/[^/]+$/.test(pointer)) {
        assert.equal(typeof sub.description, 'string', `${pointer} has no description`);
      }
      if (sub.type === 'object' && !OPEN_OBJECTS.has(pointer)) {
        assert.equal(sub.additionalProperties, false, `${pointer} accepts unknown fields`);
      }
    });
  }
});

test('every registered kind has its schema and generated types', () => {
  for (const kind of defaultKindRegistry.kinds) {
    assert.ok(schemaFiles.includes(kind.schemaFile), kind.schemaFile);
    const generated = join(REPO_ROOT, 'src', 'types', 'generated', kind.schemaFile.replace('.schema.json', '.ts'));
    assert.ok(existsSync(generated), generated);
  }
});

test('property: the JSON syntax check agrees with JSON.parse', () => {
  const parses = (text: string): boolean => {
    try {
      JSON.parse(text);
      return true;
    } catch {
      return false;
    }
  };
  const jsonish = fc.string({ unit: fc.constantFrom(...'{}[]:,"\\ \n\t0123456789.-+eEtrufalsn\u0001'.split(''), 'true', 'null', '"a"', '\\u00e9'), maxLength: 40 });
  fc.assert(
    fc.property(fc.oneof(fc.json({ maxDepth: 4 }), jsonish), (text) => {
      assert.equal(findJsonSyntaxError(text) === undefined, parses(text), JSON.stringify(text));
    }),
    { numRuns: 2000 },
  );
});
