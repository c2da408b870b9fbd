/**
 * The contract between the generic policy pipeline and one kind of policy
 * (PortSteering, ...). Adding a kind means adding a schema file in schemas/
 * and a module implementing {@link PolicyKind}, listed in kinds/index.ts.
 */
import { posix } from 'node:path';
import type { PathSegment } from './json-path.js';
import type { Severity } from './problem.js';

/** Where a policy came from. */
export interface PolicySource {
  /** The file, as the user named it. */
  readonly file: string;
  /** 0-based index of the document within the file (YAML files may hold several). */
  readonly documentIndex: number;
  /** 1-based line and column where the document starts. */
  readonly line: number;
  readonly column: number;
}

/** Fields every normalized (desired-state) policy has. */
export interface DesiredPolicyBase {
  readonly kind: string;
  /** metadata.name, unique across all loaded policies. */
  readonly name: string;
  /** metadata.labels ({} if none). */
  readonly labels: Readonly<Record<string, string>>;
  readonly source: PolicySource;
}

/** A problem in one document, located by its path in the document. */
export interface Finding {
  readonly path: readonly PathSegment[];
  readonly message: string;
  readonly severity: Severity;
  /** Point at the key of the last path segment rather than at its value (e.g. unknown fields). */
  readonly atKey?: boolean;
}

/** A problem between policies, reported on `policy` at `path`. */
export interface PolicyConflict<TDesired> extends Finding {
  readonly policy: TDesired;
}

/**
 * One kind of policy document.
 * @typeParam TDocument the document type generated from the kind's schema.
 * @typeParam TDesired the normalized desired state handed to the reconciler.
 */
export interface PolicyKind<TDocument, TDesired extends DesiredPolicyBase> {
  /** Value of the document's "kind" field. */
  readonly kind: string;
  /** File name of the kind's JSON Schema in schemas/; it describes the whole document. */
  readonly schemaFile: string;
  /**
   * Checks beyond the schema on one document that the schema accepted.
   * `source` says where it came from, for kinds whose documents name files
   * relative to their own (e.g. a Program's object). Returns errors and
   * warnings; never throws.
   */
  check(document: TDocument, source?: PolicySource): Finding[];
  /**
   * Builds the desired state of a document that has passed the schema and
   * {@link PolicyKind.check} without errors. Never throws for such documents.
   */
  normalize(document: TDocument, source: PolicySource): TDesired;
  /**
   * Finds conflicts between the valid policies of this kind (in load order),
   * e.g. two policies claiming the same traffic. Not called when the kind
   * has no valid policy (nor is {@link PolicyKind.crossCheck}). Never throws.
   */
  findConflicts(policies: readonly TDesired[]): PolicyConflict<TDesired>[];
  /**
   * Optional checks of this kind's valid documents against every valid
   * policy of any kind (e.g. a PolicyTest naming the policy it tests).
   * `invalidNames` are the names of documents that failed validation.
   * Never throws.
   */
  crossCheck?(own: readonly TDesired[], all: readonly DesiredPolicyBase[], invalidNames: ReadonlySet<string>): PolicyConflict<TDesired>[];
}

/** A policy kind with its document type erased, as held by the registry. */
export type AnyPolicyKind = PolicyKind<unknown, DesiredPolicyBase>;

/** The metadata every kind's document has, as the schema's envelope defines it. */
export interface DocumentEnvelope {
  readonly metadata: { readonly name: string; readonly labels?: Readonly<Record<string, string>> };
}

/**
 * The fields every normalized policy shares, from a validated document: kind,
 * name, labels ({} if none) and source. Each kind's `normalize` spreads this
 * and adds its spec.
 */
export function normalizeBase<K extends string>(kind: K, document: DocumentEnvelope, source: PolicySource): DesiredPolicyBase & { readonly kind: K } {
  return { kind, name: document.metadata.name, labels: { ...(document.metadata.labels ?? {}) }, source };
}

/** A `spec.netns` path normalized (`/run/netns/./web` is `/run/netns/web`), or undefined for the own namespace. */
export function normalizeNetnsPath(netns: string | undefined): string | undefined {
  return netns === undefined ? undefined : posix.normalize(netns);
}
