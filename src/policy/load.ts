/**
 * Loading policies end to end: find the files, check their permissions,
 * parse them and validate every document, collecting all problems of all
 * files in one pass.
 */
import { isUtf8 } from 'node:buffer';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
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

/** Why a file's text could not be read; at a position when the problem is in the bytes. */
interface ReadFailure {
  readonly error: string;
  readonly line?: number;
  readonly column?: number;
}

/**
 * Offset of the first byte of `bytes` that is not part of well-formed UTF-8
 * (WHATWG: no overlong forms, surrogates or code points above U+10FFFF), or
 * undefined if it is all well-formed.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number | undefined {
  if (isUtf8(bytes)) return undefined;
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let low = 0x80;
    let high = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) low = 0xa0;
      if (b === 0xed) high = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) low = 0x90;
      if (b === 0xf4) high = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || c < (k === 1 ? low : 0x80) || c > (k === 1 ? high : 0xbf)) return i;
    }
    i += need + 1;
  }
  return undefined; // isUtf8 and this loop disagree: trust the decoder's replacement
}

/**
 * 1-based line and column of byte `offset`, counted as the parser counts
 * (lines end at "\n"; columns in UTF-16 code units, a leading byte order
 * mark not counted).
 */
function bytePosition(bytes: Buffer, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = bytes.indexOf(0x0a); i !== -1 && i < offset; i = bytes.indexOf(0x0a, i + 1)) {
    line++;
    lineStart = i + 1;
  }
  if (lineStart === 0 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf && offset >= 3) lineStart = 3;
  return { line, column: bytes.toString('utf8', lineStart, offset).length + 1 };
}

/**
 * Reads a policy file's text, or explains why it cannot be read. The file
 * is opened without blocking (a file replaced by a FIFO since it was listed
 * must not wait for a writer), must still be a regular file, is read up to
 * {@link MAX_POLICY_FILE_BYTES} (whatever size it claims: procfs files claim
 * 0) and must be UTF-8, as JSON (RFC 8259) and YAML require: bytes that are
 * not would be read as U+FFFD and could silently change a value, such as a
 * namespace path.
 */
function readPolicyFile(file: PolicyFile): { text: string } | ReadFailure {
  let fd: number | undefined;
  try {
    fd = openSync(file.realPath, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    const stat = fstatSync(fd);
    if (!stat.isFile()) return { error: 'not a regular file' };
    const tooLarge = (size: number): ReadFailure => ({ error: `file is too large: ${size} bytes, at most ${MAX_POLICY_FILE_BYTES} allowed` });
    if (stat.size > MAX_POLICY_FILE_BYTES) return tooLarge(stat.size);
    // One byte more than the file claims, so that the read finding the end needs no other buffer; grown
    // (at most to one byte past the limit) when the file is longer than it claimed.
    let buffer = Buffer.allocUnsafe(stat.size + 1);
    let total = 0;
    for (;;) {
      if (total === buffer.length) {
        const grown = Buffer.allocUnsafe(Math.min(Math.max(2 * buffer.length, 64 * 1024), MAX_POLICY_FILE_BYTES + 1));
        buffer.copy(grown, 0, 0, total);
        buffer = grown;
      }
      const n = readSync(fd, buffer, total, buffer.length - total, null);
      if (n === 0) break;
      total += n;
      if (total > MAX_POLICY_FILE_BYTES) return tooLarge(Math.max(total, stat.size));
    }
    const bytes = buffer.subarray(0, total);
    const bad = firstInvalidUtf8(bytes);
    if (bad !== undefined) {
      const hex = (bytes[bad] as number).toString(16).toUpperCase().padStart(2, '0');
      return { error: `not valid UTF-8 (byte 0x${hex}); policy files must be encoded in UTF-8`, ...bytePosition(bytes, bad) };
    }
    return { text: bytes.toString('utf8') };
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
      problems.push({ file: file.path, line: read.line ?? 0, column: read.column ?? 0, path: '', message: read.error, severity: 'error' });
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
