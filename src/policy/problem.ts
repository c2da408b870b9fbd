/**
 * Problems found in policy documents. User mistakes are reported as data
 * (lists of {@link PolicyProblem}), never thrown.
 */

import { compareCodeUnits } from '../common/compare.js';

/** "error" makes the policy set invalid; "warning" is advice only. */
export type Severity = 'error' | 'warning';

/** One problem in one policy file, with a position people and editors can jump to. */
export interface PolicyProblem {
  /** The file or directory, as the user named it (relative paths stay relative). */
  readonly file: string;
  /** 1-based line; 0 when the problem concerns the file as a whole (e.g. its permissions). */
  readonly line: number;
  /** 1-based column; 0 when `line` is 0. */
  readonly column: number;
  /** Friendly path of the offending value in the document ("spec.ports[2]"); "" if none. */
  readonly path: string;
  /** What is wrong, in words a person understands. */
  readonly message: string;
  readonly severity: Severity;
}

/** Number of problems of each severity. */
export function countProblems(problems: readonly PolicyProblem[]): { errors: number; warnings: number } {
  let errors = 0;
  for (const p of problems) if (p.severity === 'error') errors++;
  return { errors, warnings: problems.length - errors };
}

/**
 * Sorts problems by file (in the order given by `fileOrder`, then by name
 * for files not in it), line, column, path and message. Returns a new array.
 */
export function sortProblems(problems: readonly PolicyProblem[], fileOrder: readonly string[] = []): PolicyProblem[] {
  const rank = new Map<string, number>();
  fileOrder.forEach((file, i) => {
    if (!rank.has(file)) rank.set(file, i);
  });
  const fileRank = (file: string): number => rank.get(file) ?? Number.MAX_SAFE_INTEGER;
  const cmp = compareCodeUnits;
  return [...problems].sort(
    (a, b) =>
      fileRank(a.file) - fileRank(b.file) ||
      cmp(a.file, b.file) ||
      a.line - b.line ||
      a.column - b.column ||
      cmp(a.path, b.path) ||
      cmp(a.message, b.message),
  );
}

/**
 * Formats a problem as one grep- and editor-friendly line:
 * `file:line:column: severity: path: message` (position and path are left
 * out when absent; line breaks in the message become spaces).
 */
export function formatProblem(problem: PolicyProblem): string {
  const where = problem.line > 0 ? `${problem.file}:${problem.line}:${problem.column}` : problem.file;
  const path = problem.path === '' ? '' : `${problem.path}: `;
  const message = problem.message.replace(/\s*[\r\n]+\s*/g, ' ');
  return `${where}: ${problem.severity}: ${path}${message}`;
}
