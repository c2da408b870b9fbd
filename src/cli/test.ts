/**
 * `ebpf-policy test`: runs the PolicyTest documents of the --policies set
 * through the tested policies' real programs (each kind's runner, with
 * private maps: no pin, link or interface is touched) and prints each case
 * with PASS or FAIL. Exit status 0 when every case passes, 1 when some case
 * fails, 2 on errors (invalid documents, a kind without test support, a
 * case that cannot run here, missing privileges).
 */
import type { Command } from 'commander';
import { KINDS, loadPolicies } from '../manager.js';
import type { DesiredPolicyBase } from '../policy/kind.js';
import { describeOutcome, POLICY_TEST_KIND, type PolicyTestPolicy, type PolicyTestResult } from '../policy/policy-test.js';
import { formatProblem } from '../policy/problem.js';
import { missingPolicyPath, parseKindOptions, withCommonOptions, type CommonOptions } from './common.js';
import { requirePrivileges } from './privileges.js';

/** Exit statuses of `test`. */
export const EXIT_PASSED = 0;
export const EXIT_FAILED = 1;
export const EXIT_ERROR = 2;

/** The results of one PolicyTest document. */
interface TestReport {
  test: string;
  file: string;
  policy: string;
  kind: string;
  results: PolicyTestResult[];
  /** Why the document's cases could not run at all. */
  error?: string;
}

function isPolicyTest(p: DesiredPolicyBase): p is PolicyTestPolicy {
  return p.kind === POLICY_TEST_KIND;
}

/** Runs every PolicyTest document; never throws (a failed run is the report's error). */
function runTests(tests: readonly PolicyTestPolicy[], policies: readonly DesiredPolicyBase[], kindOptions: Record<string, Record<string, string>>): TestReport[] {
  const byName = new Map(policies.map((p) => [p.name, p]));
  return tests.map((t) => {
    const target = byName.get(t.policy)!; // validation refused a test of an unknown policy
    const report: TestReport = { test: t.name, file: t.source.file, policy: target.name, kind: target.kind, results: [] };
    const kind = KINDS.find((k) => k.kind === target.kind);
    if (!kind?.policyTest) {
      const supported = KINDS.filter((k) => k.policyTest).map((k) => k.kind);
      report.error = `ebpf-policy test does not support ${target.kind} policies yet (supported: ${supported.join(', ')})`;
      return report;
    }
    try {
      report.results = kind.policyTest.run(target, t.cases, { options: kindOptions[target.kind] ?? {} });
    } catch (err) {
      const e = err as Error;
      report.error = `cannot run the cases of ${t.name}: ${e.message}${e.cause instanceof Error ? ` (${e.cause.message})` : ''}`;
    }
    return report;
  });
}

function renderText(reports: readonly TestReport[]): string {
  const lines: string[] = [];
  for (const r of reports) {
    lines.push(`${r.test} (${r.file}): ${r.kind} ${r.policy}`);
    if (r.error) lines.push(`  ERROR ${r.error}`);
    for (const c of r.results) {
      if (c.status === 'pass') lines.push(`  PASS  ${c.name}`);
      else if (c.status === 'fail') lines.push(`  FAIL  ${c.name}: expected ${describeOutcome(c.expect)}; the program gave ${describeOutcome(c.actual ?? {})}`);
      else lines.push(`  ERROR ${c.name}: ${c.error ?? 'unknown error'}`);
    }
  }
  return lines.map((l) => `${l}\n`).join('');
}

function summarize(reports: readonly TestReport[]): { cases: number; passed: number; failed: number; errors: number } {
  const all = reports.flatMap((r) => r.results);
  const count = (s: PolicyTestResult['status']) => all.filter((c) => c.status === s).length;
  return { cases: all.length, passed: count('pass'), failed: count('fail'), errors: count('error') + reports.filter((r) => r.error).length };
}

/** Adds the `test` subcommand. */
export function registerTest(program: Command): void {
  const cmd = program
    .command('test')
    .description('Run the PolicyTest documents through the real programs of the policies they test (BPF_PROG_TEST_RUN, private maps: nothing live is touched)');
  withCommonOptions(cmd)
    .addHelpText('after', '\nExit status: 0 every case passes, 1 some case fails, 2 an error (invalid documents, unsupported kind, a case that cannot run here).\nFormat: docs/policy-tests.md')
    .action((opts: CommonOptions) => {
      process.exitCode = runTestCommand(opts);
    });
}

/** Runs `test` with parsed options; returns the exit status. */
export function runTestCommand(opts: CommonOptions): number {
  const err = (message: string) => {
    process.stderr.write(`ebpf-policy test: error: ${message}\n`);
    return EXIT_ERROR;
  };
  const missing = missingPolicyPath(opts.policies);
  if (missing) return err(missing);
  const kindOptions = parseKindOptions(opts.kindOption, KINDS.map((k) => k.kind));
  if (typeof kindOptions === 'string') return err(kindOptions);
  if (!requirePrivileges('test')) return EXIT_ERROR;
  const load = loadPolicies({ paths: opts.policies, insecurePermissions: opts.insecurePolicyPerms });
  for (const p of load.problems) process.stderr.write(`${formatProblem(p)}\n`);
  if (!load.ok) return err('the policies have errors (see above; `ebpf-policy validate` checks them); no case was run');
  const tests = load.policies.filter(isPolicyTest);
  if (tests.length === 0) return err(`no PolicyTest document in ${(opts.policies ?? []).join(', ') || 'the policy directory'}: nothing to test (docs/policy-tests.md)`);
  const reports = runTests(tests, load.policies, kindOptions);
  const summary = summarize(reports);
  if (opts.output === 'json') {
    process.stdout.write(`${JSON.stringify({ formatVersion: 1, ok: summary.failed + summary.errors === 0, summary, tests: reports }, null, 2)}\n`);
  } else {
    process.stdout.write(renderText(reports));
    process.stderr.write(`ebpf-policy test: ${summary.cases} cases: ${summary.passed} passed, ${summary.failed} failed, ${summary.errors} errors\n`);
  }
  return summary.errors > 0 ? EXIT_ERROR : summary.failed > 0 ? EXIT_FAILED : EXIT_PASSED;
}
