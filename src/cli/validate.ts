/**
 * `ebpf-policy validate`: load and check policy documents without touching
 * the kernel. Exit status 0 when all are valid, 1 when any is invalid, 2 on
 * usage errors.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { DEFAULT_POLICY_DIRECTORY } from '../policy/discover.js';
import { loadPolicies } from '../manager.js';
import type { TrustCheck } from '../policy/permissions.js';
import { renderJsonReport, renderSummary, renderTextReport } from '../policy/report.js';

/** Exit statuses of `validate`. */
export const EXIT_VALID = 0;
export const EXIT_INVALID = 1;
export const EXIT_USAGE = 2;

/** Parsed command-line options of `validate`. */
export interface ValidateOptions {
  /** --policies, repeatable; empty means the default directory. */
  readonly policies: readonly string[];
  readonly output: 'text' | 'json';
  readonly insecurePolicyPerms: boolean;
}

/** Where `validate` writes and what it depends on; replaceable in tests. */
export interface ValidateEnvironment {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  /** Directory relative paths are resolved against. */
  readonly cwd: string;
  /** Permission check to use instead of the default (unless --insecure-policy-perms). */
  readonly trustCheck?: TrustCheck;
}

function defaultEnvironment(): ValidateEnvironment {
  return { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() };
}

/**
 * Runs `validate` with parsed options: prints problems (text or JSON) on
 * stdout and, for text output, a summary line on stderr.
 * @returns the exit status: 0 valid, 1 invalid, 2 usage error (a path given
 *   explicitly does not exist).
 */
export function runValidate(options: ValidateOptions, env: ValidateEnvironment = defaultEnvironment()): number {
  for (const path of options.policies) {
    try {
      statSync(resolve(env.cwd, path));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(error)})`;
      env.stderr.write(`ebpf-policy validate: error: policy path ${path} ${why}\n`);
      return EXIT_USAGE;
    }
  }
  const result = loadPolicies({
    paths: options.policies.length > 0 ? options.policies : undefined,
    cwd: env.cwd,
    insecurePermissions: options.insecurePolicyPerms,
    trustCheck: env.trustCheck,
  });
  if (options.output === 'json') {
    env.stdout.write(renderJsonReport(result));
  } else {
    env.stdout.write(renderTextReport(result));
    env.stderr.write(`ebpf-policy validate: ${renderSummary(result)}\n`);
  }
  return result.ok ? EXIT_VALID : EXIT_INVALID;
}

/**
 * Adds the `validate` subcommand to `program`. Its exit status is set
 * through `exit` (default: process.exitCode).
 * @returns the subcommand.
 */
export function registerValidate(
  program: Command,
  env: ValidateEnvironment = defaultEnvironment(),
  exit: (code: number) => void = (code) => {
    process.exitCode = code;
  },
): Command {
  return program
    .command('validate')
    .description('Check policy documents (schema, semantics, conflicts and file permissions) without touching the kernel')
    .option(
      '--policies <path>',
      `policy file or directory; repeat for several (default: ${DEFAULT_POLICY_DIRECTORY})`,
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .addOption(new Option('--output <format>', 'output format').choices(['text', 'json']).default('text'))
    .option('--insecure-policy-perms', 'accept policy files and directories owned by others than root and you, or writable by group/others', false)
    .addHelpText(
      'after',
      '\nExit status: 0 all policies valid, 1 some policy invalid, 2 usage error.\nFormats and rules: docs/policy-documents.md',
    )
    .action((opts: { policies?: string[]; output: 'text' | 'json'; insecurePolicyPerms: boolean }) => {
      const options = { policies: opts.policies ?? [], output: opts.output, insecurePolicyPerms: opts.insecurePolicyPerms };
      exit(runValidate(options, env));
    });
}
