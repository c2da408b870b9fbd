/**
 * Renders the result of loading policies for people (text) and programs
 * (JSON, format documented in docs/policy-documents.md).
 */
import type { PolicyLoadResult } from './load.js';
import { countProblems, formatProblem } from './problem.js';

/** Version of the JSON report format; bumped on incompatible changes. */
export const REPORT_FORMAT_VERSION = 1;

/** One line per problem, `file:line:column: severity: path: message`, each ending in "\n". */
export function renderTextReport(result: PolicyLoadResult): string {
  return result.problems.map((p) => `${formatProblem(p)}\n`).join('');
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The one-line summary: "valid: 3 policies in 2 files" or "invalid: 2 errors, 1 warning (...)". */
export function renderSummary(result: PolicyLoadResult): string {
  const { errors, warnings } = countProblems(result.problems);
  const files = plural(result.files.length, 'file', 'files');
  const warned = warnings > 0 ? `, ${plural(warnings, 'warning', 'warnings')}` : '';
  if (result.ok) return `valid: ${plural(result.policies.length, 'policy', 'policies')} in ${files}${warned}`;
  return `invalid: ${plural(errors, 'error', 'errors')}${warned} (${plural(result.documentCount, 'document', 'documents')} in ${files})`;
}

/**
 * The JSON report: `{formatVersion, ok, summary, files, problems, policies}`,
 * pretty-printed, keys in a fixed order, absent optional values as null.
 */
export function renderJsonReport(result: PolicyLoadResult): string {
  const { errors, warnings } = countProblems(result.problems);
  const report = {
    formatVersion: REPORT_FORMAT_VERSION,
    ok: result.ok,
    summary: {
      files: result.files.length,
      documents: result.documentCount,
      policies: result.policies.length,
      errors,
      warnings,
    },
    files: result.files,
    problems: result.problems.map((p) => ({
      severity: p.severity,
      file: p.file,
      line: p.line,
      column: p.column,
      path: p.path,
      message: p.message,
    })),
    policies: result.policies,
  };
  return `${JSON.stringify(report, (_key, value: unknown) => (value === undefined ? null : value), 2)}\n`;
}
