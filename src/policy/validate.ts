/**
 * Validates parsed policy documents: the schema of their kind, the kind's
 * own checks, and checks across all documents (unique names, conflicting
 * claims). Produces the normalized desired state of the valid policies.
 */
import { closestMatch, describeValue } from './describe.js';
import { STRING_FORMATS } from './formats.js';
import { formatPath } from './json-path.js';
import type { DesiredPolicyBase, Finding, PolicySource } from './kind.js';
import type { KindRegistry } from './kind-registry.js';
import type { PolicyDocument } from './parse.js';
import type { PolicyProblem } from './problem.js';
import { explainSchemaErrors } from './schema-errors.js';
import { defaultSchemaSet, type SchemaSet } from './schema-set.js';

/** Schema of the fields common to all kinds, used when the kind is missing or unknown. */
const ENVELOPE_SCHEMA = 'envelope.schema.json';

/** What to validate against; defaults are the installed schemas and all kinds. */
export interface ValidateOptions {
  /** The policy kinds to validate against (src/kinds/registry.ts has the shipped ones). */
  readonly kinds: KindRegistry;
  readonly schemas?: SchemaSet;
}

/** Result of {@link validatePolicyDocuments}. */
export interface ValidationResult {
  /** Desired state of each document that passed its own checks, in load order. */
  readonly policies: DesiredPolicyBase[];
  /** Every problem found, unsorted. */
  readonly problems: PolicyProblem[];
}

function toProblem(document: PolicyDocument, finding: Finding): PolicyProblem {
  const { line, column } = document.locate(finding.path, finding.atKey === true);
  return {
    file: document.file,
    line,
    column,
    path: formatPath(finding.path),
    message: finding.message,
    severity: finding.severity,
  };
}

function sourceOf(document: PolicyDocument): PolicySource {
  return { file: document.file, documentIndex: document.index, line: document.line, column: document.column };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Validates one document; returns its findings and, if it has no errors, its desired state. */
function validateDocument(
  document: PolicyDocument,
  kinds: KindRegistry,
  schemas: SchemaSet,
): { findings: Finding[]; desired?: DesiredPolicyBase } {
  const value = document.value;
  if (!isRecord(value)) {
    const message = `expected a mapping with apiVersion, kind, metadata and spec, got ${describeValue(value)}`;
    return { findings: [{ path: [], message, severity: 'error' }] };
  }
  const kind = typeof value.kind === 'string' ? kinds.get(value.kind) : undefined;
  const schemaFile = kind?.schemaFile ?? ENVELOPE_SCHEMA;
  let findings: Finding[] = [];
  if (!schemas.quickValidatorFor(schemaFile)(value)) {
    // Invalid: ask the validator that collects every error, to explain them all.
    const validate = schemas.validatorFor(schemaFile);
    findings = validate(value) ? [] : explainSchemaErrors(validate.errors ?? [], value, schemas);
  }
  if (kind === undefined) {
    if (typeof value.kind === 'string') {
      const suggestion = closestMatch(value.kind, kinds.names);
      const hint = suggestion === undefined ? '' : `; did you mean "${suggestion}"?`;
      const message = `unknown kind "${value.kind}" (known: ${kinds.names.join(', ')}${hint})`;
      findings.push({ path: ['kind'], message, severity: 'error' });
    }
    return { findings };
  }
  if (findings.length > 0) return { findings };
  const source = sourceOf(document);
  const checked = kind.check(value, source);
  if (checked.some((f) => f.severity === 'error')) return { findings: checked };
  return { findings: checked, desired: kind.normalize(value, source) };
}

/**
 * What validating one document found, by document, for each (kinds, schemas)
 * pair. The loader hands out the same document objects again for files whose
 * text did not change (its parse cache), and documents are never mutated
 * after parsing, so an unchanged document is not validated again: a pass of
 * the daemon over unchanged files pays for the cross-document checks only.
 * Weak: documents of files that changed or went away are dropped with them.
 */
const validatedDocuments = new WeakMap<KindRegistry, WeakMap<SchemaSet, WeakMap<PolicyDocument, ReturnType<typeof validateDocument>>>>();

function documentCache(kinds: KindRegistry, schemas: SchemaSet): WeakMap<PolicyDocument, ReturnType<typeof validateDocument>> {
  let bySchemas = validatedDocuments.get(kinds);
  if (bySchemas === undefined) validatedDocuments.set(kinds, (bySchemas = new WeakMap()));
  let byDocument = bySchemas.get(schemas);
  if (byDocument === undefined) bySchemas.set(schemas, (byDocument = new WeakMap()));
  return byDocument;
}

/**
 * The last call's input and result: the same documents (the same objects, in
 * the same order) against the same kinds and schemas give the same result,
 * cross-document checks included, so a no-op pass validates nothing again.
 */
let lastValidation:
  | { documents: readonly PolicyDocument[]; kinds: KindRegistry; schemas: SchemaSet; result: ValidationResult }
  | undefined;

/** metadata.name of a document, if it is a valid name whatever else is wrong. */
function nameOf(document: PolicyDocument): string | undefined {
  const value = document.value;
  const name = isRecord(value) && isRecord(value.metadata) ? value.metadata.name : undefined;
  return typeof name === 'string' && STRING_FORMATS['dns1123-label']?.explain(name) === undefined ? name : undefined;
}

/** Reports every document whose metadata.name (`names[i]`, from {@link nameOf}) was already used by an earlier one. */
function findDuplicateNames(documents: readonly PolicyDocument[], names: readonly (string | undefined)[]): PolicyProblem[] {
  const first = new Map<string, PolicyDocument>();
  const problems: PolicyProblem[] = [];
  documents.forEach((document, i) => {
    const name = names[i];
    if (name === undefined) return;
    const earlier = first.get(name);
    if (earlier === undefined) {
      first.set(name, document);
      return;
    }
    const at = earlier.locate(['metadata', 'name']);
    const message = `duplicate policy name "${name}": also defined at ${earlier.file}:${at.line}:${at.column}`;
    problems.push(toProblem(document, { path: ['metadata', 'name'], message, severity: 'error' }));
  });
  return problems;
}

/**
 * Validates documents against their kind's schema and checks, then across
 * documents. User mistakes are returned as problems; this never throws for
 * any document content.
 * @throws Error only if the installed schemas are broken.
 */
export function validatePolicyDocuments(
  documents: readonly PolicyDocument[],
  options: ValidateOptions,
): ValidationResult {
  const kinds = options.kinds;
  const schemas = options.schemas ?? defaultSchemaSet();
  const last = lastValidation;
  if (
    last !== undefined &&
    last.kinds === kinds &&
    last.schemas === schemas &&
    last.documents.length === documents.length &&
    last.documents.every((d, i) => d === documents[i])
  ) {
    return { policies: [...last.result.policies], problems: [...last.result.problems] };
  }
  const perDocument = documentCache(kinds, schemas);
  const problems: PolicyProblem[] = [];
  const policies: DesiredPolicyBase[] = [];
  const documentOf = new Map<DesiredPolicyBase, PolicyDocument>();

  for (const document of documents) {
    let validated = perDocument.get(document);
    if (validated === undefined) {
      validated = validateDocument(document, kinds, schemas);
      perDocument.set(document, validated);
    }
    const { findings, desired } = validated;
    for (const finding of findings) problems.push(toProblem(document, finding));
    if (desired !== undefined) {
      policies.push(desired);
      documentOf.set(desired, document);
    }
  }

  const names = documents.map(nameOf);
  problems.push(...findDuplicateNames(documents, names));
  // Each kind's valid policies, in load order, gathered in one pass; a kind without any has nothing to check.
  const byKind = new Map<string, DesiredPolicyBase[]>();
  for (const policy of policies) {
    const ofKind = byKind.get(policy.kind);
    if (ofKind === undefined) byKind.set(policy.kind, [policy]);
    else ofKind.push(policy);
  }
  let invalidNames: Set<string> | undefined;
  const invalid = (): Set<string> => {
    if (invalidNames === undefined) {
      const validNames = new Set(policies.map((p) => p.name));
      invalidNames = new Set(names.filter((n): n is string => n !== undefined && !validNames.has(n)));
    }
    return invalidNames;
  };
  for (const kind of kinds.kinds) {
    const ofKind = byKind.get(kind.kind);
    if (ofKind === undefined) continue;
    for (const conflict of [...kind.findConflicts(ofKind), ...(kind.crossCheck?.(ofKind, policies, invalid()) ?? [])]) {
      const document = documentOf.get(conflict.policy);
      if (document !== undefined) problems.push(toProblem(document, conflict));
    }
  }
  lastValidation = { documents: [...documents], kinds, schemas, result: { policies: [...policies], problems: [...problems] } };
  return { policies, problems };
}
