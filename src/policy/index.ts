/**
 * The policy-document layer: load, validate and normalize policy documents
 * into the desired state the reconciler applies. No kernel access.
 */
export { loadPolicies, readPolicyDocuments, MAX_POLICY_FILE_BYTES } from './load.js';
export type { LoadPoliciesOptions, PolicyLoadResult } from './load.js';
export { discoverPolicyFiles, DEFAULT_POLICY_DIRECTORY, isIgnoredEntry } from './discover.js';
export type { PolicyFile } from './discover.js';
export { parsePolicyText } from './parse.js';
export type { PolicyDocument, PolicySyntax } from './parse.js';
export { validatePolicyDocuments } from './validate.js';
export { createStrictModesCheck } from './permissions.js';
export type { TrustCheck, StrictModesOptions } from './permissions.js';
export { formatProblem, sortProblems, countProblems } from './problem.js';
export type { PolicyProblem, Severity } from './problem.js';
export type { PolicySource, DesiredPolicyBase, PolicyKind, AnyPolicyKind } from './kind.js';
export { createKindRegistry } from './kind-registry.js';
export type { KindRegistry } from './kind-registry.js';
export type { PortRange } from './net/ports.js';
