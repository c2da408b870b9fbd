/**
 * Turns ajv's validation errors into findings people understand: friendly
 * paths, one message per problem, the reason a formatted string is invalid,
 * and a single message for a failed oneOf/anyOf instead of one error per
 * alternative.
 */
import type { ErrorObject } from 'ajv';
import { closestMatch, describeType, describeValue } from './describe.js';
import { STRING_FORMATS } from './formats.js';
import { formatPath, pointerToPath, type PathSegment } from './json-path.js';
import type { Finding } from './kind.js';
import { EXPECTED_KEYWORD, type SchemaSet } from './schema-set.js';

/** Keywords whose message is superseded by a "format" error on the same value. */
const SUPERSEDED_BY_FORMAT = new Set(['pattern', 'minLength', 'maxLength']);

interface KeyedFinding extends Finding {
  readonly keyword: string;
}

function isAtOrBelow(pointer: string, ancestor: string): boolean {
  return pointer === ancestor || pointer.startsWith(`${ancestor}/`);
}

function schemaObject(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
}

/**
 * Explains the errors of one ajv validation of `data`.
 * @param errors the validator's `errors` (ajv must run with `verbose: true`).
 * @param data the validated value.
 * @param schemas used to re-validate the alternatives of a failed oneOf/anyOf.
 * @param base path of `data` within the document, prefixed to every finding.
 * @returns findings (all errors), without duplicates. Never throws on user data.
 */
export function explainSchemaErrors(
  errors: readonly ErrorObject[],
  data: unknown,
  schemas: SchemaSet,
  base: readonly PathSegment[] = [],
): Finding[] {
  // The errors of a oneOf/anyOf's alternatives come right before it, at or
  // below its instance path; they are replaced by one explanation.
  const replaced = new Set<number>();
  errors.forEach((error, i) => {
    if (error.keyword !== 'oneOf' && error.keyword !== 'anyOf') return;
    for (let j = i - 1; j >= 0 && isAtOrBelow((errors[j] as ErrorObject).instancePath, error.instancePath); j--) {
      replaced.add(j);
    }
  });
  const findings: KeyedFinding[] = [];
  errors.forEach((error, i) => {
    if (!replaced.has(i)) findings.push(...explainError(error, data, schemas, base));
  });
  return withoutRedundant(findings).map(({ path, message, severity, atKey }) =>
    atKey === true ? { path, message, severity, atKey } : { path, message, severity },
  );
}

/**
 * Drops findings that add nothing: anything else about a value of the wrong
 * type, pattern/length errors explained by a format error, and duplicates.
 */
function withoutRedundant(findings: readonly KeyedFinding[]): KeyedFinding[] {
  const where = (f: KeyedFinding): string => `${JSON.stringify(f.path)}${f.atKey === true ? ':key' : ''}`;
  const formatted = new Set(findings.filter((f) => f.keyword === 'format').map(where));
  const mistyped = new Set(findings.filter((f) => f.keyword === 'type').map(where));
  const seen = new Set<string>();
  return findings.filter((f) => {
    if (mistyped.has(where(f)) && f.keyword !== 'type') return false;
    if (SUPERSEDED_BY_FORMAT.has(f.keyword) && formatted.has(where(f))) return false;
    const key = `${where(f)}\n${f.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function explainError(
  error: ErrorObject,
  data: unknown,
  schemas: SchemaSet,
  base: readonly PathSegment[],
): KeyedFinding[] {
  const path = [...base, ...pointerToPath(error.instancePath, data)];
  const params = error.params as Record<string, unknown>;
  const parent = schemaObject(error.parentSchema);
  const value: unknown = error.data;
  const finding = (message: string, at: PathSegment[] = path, atKey = false): KeyedFinding[] => [
    { path: at, message, severity: 'error', keyword: error.keyword, ...(atKey ? { atKey } : {}) },
  ];

  // Errors about an object's property name (propertyNames) concern the key.
  if (error.propertyName !== undefined && error.keyword !== 'propertyNames') {
    const keyPath = [...path, error.propertyName];
    const inner = explainValueError(error.keyword, params, parent, error.propertyName, error.message);
    return finding(inner, keyPath, true);
  }

  switch (error.keyword) {
    case 'propertyNames':
      return []; // explained by the errors about the name itself
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const known = Object.keys(schemaObject(parent.properties));
      const suggestion = closestMatch(key, known);
      const hint = suggestion === undefined ? '' : ` (did you mean "${suggestion}"?)`;
      return finding(`unknown field "${key}"${hint}`, [...path, key], true);
    }
    case 'required': {
      const missing = String(params.missingProperty);
      return finding(`missing required field "${missing}"`, [...path, missing]);
    }
    case 'uniqueItems': {
      // ajv reports one pair of equal entries (in either order); point at the later one.
      const [first, second] = [Number(params.i), Number(params.j)].sort((a, b) => a - b) as [number, number];
      const entry = Array.isArray(value) ? describeValue(value[second]) : 'an entry';
      return finding(`duplicate entry ${entry}: also ${formatPath([...path, first])}`, [...path, second]);
    }
    case 'oneOf':
    case 'anyOf':
      return explainAlternatives(error, path, schemas).map((f) => ({ ...f, keyword: error.keyword }));
    default:
      return finding(explainValueError(error.keyword, params, parent, value, error.message));
  }
}

/** Message for an error about a single value (not about an object's fields). */
function explainValueError(
  keyword: string,
  params: Record<string, unknown>,
  parent: Record<string, unknown>,
  value: unknown,
  fallback: string | undefined,
): string {
  const shown = describeValue(value);
  const count = (n: unknown, one: string, many: string): string => `${String(n)} ${n === 1 ? one : many}`;
  switch (keyword) {
    case 'type':
      return `expected ${describeType(params.type as string | string[])}, got ${shown}`;
    case 'const':
      return `must be ${JSON.stringify(params.allowedValue)}, got ${shown}`;
    case 'enum':
      return `${shown} is not one of: ${(params.allowedValues as unknown[]).map((v) => String(v)).join(', ')}`;
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      if (typeof parent.minimum === 'number' && typeof parent.maximum === 'number') {
        return `${shown} is out of range ${parent.minimum}..${parent.maximum}`;
      }
      return `must be ${params.comparison as string} ${String(params.limit)}, got ${shown}`;
    case 'minLength':
      return params.limit === 1 ? 'must not be empty' : `must be at least ${count(params.limit, 'character', 'characters')} long`;
    case 'maxLength':
      return `is too long: ${count(typeof value === 'string' ? value.length : '?', 'character', 'characters')}, at most ${String(params.limit)} allowed`;
    case 'minItems':
      return `must have at least ${count(params.limit, 'entry', 'entries')}`;
    case 'maxItems':
      return `has ${Array.isArray(value) ? value.length : '?'} entries, at most ${String(params.limit)} allowed`;
    case 'maxProperties':
      return `has ${value !== null && typeof value === 'object' ? Object.keys(value).length : '?'} entries, at most ${String(params.limit)} allowed`;
    case 'pattern':
      return `${shown} is not valid: it must match the pattern ${String(params.pattern)}`;
    case 'format': {
      const format = STRING_FORMATS[String(params.format)];
      const reason = format !== undefined && typeof value === 'string' ? format.explain(value) : undefined;
      const noun = format?.noun ?? String(params.format);
      return reason === undefined ? `${shown} is not a valid ${noun}` : `${shown} is not a valid ${noun} (${reason})`;
    }
    default:
      return fallback ?? `is invalid (${keyword})`;
  }
}

interface AlternativeResult {
  readonly errors: readonly ErrorObject[];
  /** The value is not even of this alternative's type. */
  readonly wrongType: boolean;
  /** How many fields of the value this alternative does not know. */
  readonly unknownFields: number;
}

/**
 * Explains a failed oneOf/anyOf by re-validating the value against each
 * alternative: if exactly one alternative fits the value's shape best, its
 * own errors are explained; otherwise one message lists what is expected.
 */
function explainAlternatives(error: ErrorObject, path: PathSegment[], schemas: SchemaSet): Finding[] {
  const value: unknown = error.data;
  const parent = schemaObject(error.parentSchema);
  const alternatives = Array.isArray(error.schema) ? error.schema : [];
  const results: AlternativeResult[] = [];
  const passing = (error.params as { passingSchemas?: unknown }).passingSchemas;
  if (passing === null || passing === undefined) {
    for (let i = 0; i < alternatives.length; i++) {
      const validate = schemas.validatorBelow(parent, `/${error.keyword}/${i}`);
      if (validate === undefined || validate(value)) continue;
      const errors = [...(validate.errors ?? [])];
      results.push({
        errors,
        wrongType: errors.some((e) => e.instancePath === '' && (e.keyword === 'type' || e.keyword === 'const')),
        unknownFields: errors.filter((e) => e.instancePath === '' && e.keyword === 'additionalProperties').length,
      });
    }
  }
  const fitting = results.filter((r) => !r.wrongType);
  const fewestUnknown = Math.min(...fitting.map((r) => r.unknownFields));
  const best = fitting.filter((r) => r.unknownFields === fewestUnknown);
  if (best.length === 1 && results.length === alternatives.length) {
    return explainSchemaErrors((best[0] as AlternativeResult).errors, value, schemas, path);
  }
  const expected =
    typeof parent[EXPECTED_KEYWORD] === 'string'
      ? (parent[EXPECTED_KEYWORD] as string)
      : alternatives.map((a) => String(schemaObject(a).title ?? 'an alternative')).join(' or ');
  const verb = error.keyword === 'oneOf' && Array.isArray(passing) ? 'must be exactly one of' : 'must be';
  return [{ path, message: `${verb} ${expected}, got ${describeValue(value)}`, severity: 'error' }];
}
