/**
 * Loading policies end to end: find the files, check their permissions,
 * parse them and validate every document, collecting all problems of all
 * files in one pass.
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { DEFAULT_POLICY_DIRECTORY, discoverPolicyFiles, type PolicyFile } from './discover.js';
import type { DesiredPolicyBase } from './kind.js';
import type { KindRegistry } from './kind-registry.js';
import { parsePolicyText, type PolicyDocument } from './parse.js';
import { createStrictModesCheck, type TrustCheck } from './permissions.js';
import { countProblems, sortProblems, type PolicyProblem } from './problem.js';
import type { SchemaSet } from './schema-set.js';
import { validatePolicyDocuments } from './validate.js';

/** Files larger than this are refused (a ConfigMap holds at most 1 MiB). */
export const MAX_POLICY_FILE_BYTES = 4 * 1024 * 1024;

/** Options of {@link loadPolicies}. */
export interface LoadPoliciesOptions {
  /** Files and directories to read. Default: [{@link DEFAULT_POLICY_DIRECTORY}]. */
  readonly paths?: readonly string[];
  /** Directory relative paths are resolved against. Default: process.cwd(). */
  readonly cwd?: string;
  /** A missing path is only a warning. Default: true when `paths` is not given, else false. */
  readonly allowMissing?: boolean;
  /** Skip the ownership and mode checks (--insecure-policy-perms). Default: false. */
  readonly insecurePermissions?: boolean;
  /** Replaces the default permission check (root-owned, not group/other-writable). */
  readonly trustCheck?: TrustCheck;
  /** The policy kinds to validate against (src/kinds/registry.ts has the shipped ones). */
  readonly kinds: KindRegistry;
  readonly schemas?: SchemaSet;
}

/** Everything learned from loading policies. */
export interface PolicyLoadResult {
  /** True when there is no error (warnings allowed): the desired state may be applied. */
  readonly ok: boolean;
  /** The files read, as shown to the user, in load order. */
  readonly files: string[];
  /** Number of (non-empty) documents parsed. */
  readonly documentCount: number;
  /** Desired state of each valid policy, in load order. Apply only when `ok`. */
  readonly policies: DesiredPolicyBase[];
  /** All problems, sorted by file (load order), line and column. */
  readonly problems: PolicyProblem[];
}

/** Reads a policy file's text, or explains why it cannot be read. */
function readPolicyFile(file: PolicyFile): { text: string } | { error: string } {
  let fd: number | undefined;
  try {
    fd = openSync(file.realPath, 'r');
    const size = fstatSync(fd).size;
    if (size > MAX_POLICY_FILE_BYTES) {
      return { error: `file is too large: ${size} bytes, at most ${MAX_POLICY_FILE_BYTES} allowed` };
    }
    return { text: readFileSync(fd, 'utf8') };
  } catch (error) {
    return { error: `cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Parsed documents of the files read last time, by path: a file whose text
 * is unchanged is not parsed again (parsing dominates the cost of a pass;
 * the daemon re-reads every file on each pass). Documents are never mutated
 * after parsing, so sharing them is safe. Files not read in a call are
 * dropped from the cache.
 */
const parseCache = new Map<string, { syntax: PolicyFile['syntax']; text: string; parsed: ReturnType<typeof parsePolicyText> }>();

/**
 * Parses the given files into documents.
 * @returns the documents and the read/parse problems; never throws.
 */
export function readPolicyDocuments(files: readonly PolicyFile[]): { documents: PolicyDocument[]; problems: PolicyProblem[] } {
  const documents: PolicyDocument[] = [];
  const problems: PolicyProblem[] = [];
  const seen = new Set<string>();
  for (const file of files) {
    const read = readPolicyFile(file);
    if ('error' in read) {
      problems.push({ file: file.path, line: 0, column: 0, path: '', message: read.error, severity: 'error' });
      continue;
    }
    const hit = parseCache.get(file.path);
    const parsed =
      hit && hit.text === read.text && hit.syntax === file.syntax ? hit.parsed : parsePolicyText(file.path, read.text, file.syntax);
    parseCache.set(file.path, { syntax: file.syntax, text: read.text, parsed });
    seen.add(file.path);
    documents.push(...parsed.documents);
    problems.push(...parsed.problems);
    if (parsed.documents.length === 0 && parsed.problems.length === 0) {
      problems.push({ file: file.path, line: 0, column: 0, path: '', message: 'contains no policy documents', severity: 'warning' });
    }
  }
  for (const path of parseCache.keys()) if (!seen.has(path)) parseCache.delete(path);
  return { documents, problems };
}

/**
 * Loads and validates all policies under the given paths: every problem of
 * every file is collected in one run (as data, never thrown).
 * @throws Error only if the installed schemas are broken.
 */
export function loadPolicies(options: LoadPoliciesOptions): PolicyLoadResult {
  const paths = options.paths ?? [DEFAULT_POLICY_DIRECTORY];
  const trustCheck = options.insecurePermissions === true ? undefined : (options.trustCheck ?? createStrictModesCheck());
  const discovered = discoverPolicyFiles(paths, {
    cwd: options.cwd,
    allowMissing: options.allowMissing ?? options.paths === undefined,
    trustCheck,
  });
  const read = readPolicyDocuments(discovered.files);
  const validated = validatePolicyDocuments(read.documents, { kinds: options.kinds, schemas: options.schemas });
  const problems = sortProblems([...discovered.problems, ...read.problems, ...validated.problems], discovered.visited);
  return {
    ok: countProblems(problems).errors === 0,
    files: discovered.files.map((f) => f.path),
    documentCount: read.documents.length,
    policies: validated.policies,
    problems,
  };
}
