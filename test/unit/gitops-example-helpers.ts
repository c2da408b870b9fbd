/**
 * Helpers of the GitOps example's tests (examples/gitops/; not a test file
 * itself): read the example's CI workflow with the `yaml` package, pick the
 * steps that run `ebpf-policy`, and run them as GitHub Actions would (same
 * shell, same environment), with `ebpf-policy` being this checkout's built
 * CLI, in a private copy of the example.
 */
import { chmodSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { runBounded } from '../../src/sandbox/bounded-wait.js';

/** The repository root (tests run from dist/test/unit/ or dist/test/kernel/). */
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** examples/gitops/ in the source tree. */
export const EXAMPLE_DIR = join(REPO_ROOT, 'examples', 'gitops');
/** The workflow file, relative to the example (the policy repository's root). */
export const WORKFLOW = '.github/workflows/policies.yml';
/** The built CLI: what `ebpf-policy` stands for in the tests. */
export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** One step of a workflow job. */
export interface WorkflowStep {
  name?: string;
  uses?: string;
  run?: string;
  env?: Record<string, string>;
  with?: Record<string, unknown>;
}

/** One job of a workflow. */
export interface WorkflowJob {
  'runs-on': string | string[];
  needs?: string | string[];
  if?: string;
  env?: Record<string, string>;
  steps: WorkflowStep[];
}

/** The parts of a GitHub Actions workflow the tests read. */
export interface Workflow {
  name: string;
  on: Record<string, unknown>;
  env?: Record<string, string>;
  defaults?: { run?: { shell?: string } };
  jobs: Record<string, WorkflowJob>;
}

/** Parses the example's workflow file. */
export function readWorkflow(dir = EXAMPLE_DIR): Workflow {
  return parse(readFileSync(join(dir, WORKFLOW), 'utf8')) as Workflow;
}

/** A line of a `run:` script that invokes ebpf-policy (directly or through sudo). */
const INVOCATION = /^\s*(?:sudo\s+)?ebpf-policy\s/;

/** The steps of `job` whose `run:` script invokes ebpf-policy. */
export function ebpfPolicySteps(workflow: Workflow, job: string): WorkflowStep[] {
  const j = workflow.jobs[job];
  if (!j) throw new Error(`${WORKFLOW} has no job ${job}`);
  return j.steps.filter((s) => typeof s.run === 'string' && s.run.split('\n').some((l) => INVOCATION.test(l)));
}

/**
 * The ebpf-policy command lines of a `run:` script, as argument lists without
 * the leading `sudo ebpf-policy`, up to the first shell operator (`||`, `;`,
 * ...). The example's commands use no quoting, which this checks.
 */
export function ebpfPolicyCommands(run: string): string[][] {
  const out: string[][] = [];
  for (const line of run.replace(/\\\n/g, ' ').split('\n')) {
    if (!INVOCATION.test(line)) continue;
    const words = line.trim().split(/\s+/);
    if (words[0] === 'sudo') words.shift();
    words.shift(); // ebpf-policy
    const end = words.findIndex((w) => /^(\|\||&&|;|\||>|<|2>|&)/.test(w));
    const args = end < 0 ? words : words.slice(0, end);
    if (args.some((a) => /['"`$\\]/.test(a))) throw new Error(`quoting or expansion in an ebpf-policy command the tests read: ${line.trim()}`);
    out.push(args);
  }
  return out;
}

/** The command lines of systemd unit `file`'s `ExecStart=` settings, split on whitespace (the example needs no quoting). */
export function execStarts(file: string): string[][] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => /^ExecStart=/.test(l))
    .map((l) => l.slice('ExecStart='.length).trim().replace(/^[-@:+!]+/, '').split(/\s+/));
}

/** The `--flags` a subcommand accepts, and whether each takes a value, read from `ebpf-policy SUBCOMMAND --help`. */
export function helpFlags(subcommand: string): Map<string, boolean> {
  const r = runBounded(process.execPath, [CLI, subcommand, '--help']);
  if (r.status !== 0) throw new Error(`ebpf-policy ${subcommand} --help exited ${r.status}: ${r.stderr}`);
  const flags = new Map<string, boolean>();
  for (const line of r.stdout.split('\n')) {
    const m = /^\s+(?:-\w, )?(--[a-z][a-z-]*)( <[^>]+>)?/.exec(line);
    if (m) flags.set(m[1]!, m[2] !== undefined);
  }
  return flags;
}

/** The subcommands `ebpf-policy --help` lists. */
export function subcommands(): Set<string> {
  const r = runBounded(process.execPath, [CLI, '--help']);
  const commands = r.stdout.split(/^Commands:$/m)[1] ?? '';
  return new Set([...commands.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!));
}

/**
 * Problems with `args` (without `ebpf-policy`) against the CLI's help: an
 * unknown subcommand, an unknown flag, a flag missing its value. Empty when
 * the CLI knows everything the command line uses.
 */
export function unknownArgs(args: readonly string[]): string[] {
  const [sub, ...rest] = args;
  if (!sub || !subcommands().has(sub)) return [`unknown subcommand ${sub}`];
  const flags = helpFlags(sub);
  const problems: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('-')) continue; // a positional argument (events NAME)
    const name = a.split('=')[0]!;
    if (!flags.has(name)) problems.push(`ebpf-policy ${sub} has no flag ${name}`);
    else if (flags.get(name) && !a.includes('=')) {
      if (rest[i + 1] === undefined || rest[i + 1]!.startsWith('--')) problems.push(`${name} needs a value`);
      i++;
    }
  }
  return problems;
}

/**
 * A private copy of the example: a fresh directory under the temporary
 * directory, directories 0700 and files 0600, owned by whoever runs the test.
 * The copy does not depend on the umask the checkout was made with (a
 * group-writable checkout would be refused by the permission checks), and
 * nothing a test runs writes into the source tree.
 */
export class ExampleCopy implements Disposable {
  readonly dir: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'ebpf-policy-gitops-'));
    cpSync(EXAMPLE_DIR, this.dir, { recursive: true });
    const walk = (d: string): void => {
      chmodSync(d, 0o700);
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else chmodSync(join(d, e.name), 0o600);
      }
    };
    walk(this.dir);
  }

  [Symbol.dispose](): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One ebpf-policy invocation as the shim saw it. */
export interface Invocation {
  /** Arguments as written in the workflow (without what the shim adds). */
  args: string;
  code: number;
}

/**
 * A directory to put first on PATH: `ebpf-policy` runs this checkout's
 * built CLI (with `--bpffs-root ROOT` added to the commands that touch the
 * kernel, when given) and logs each call with its exit status; `sudo` just
 * runs its command (the kernel tests already run as root).
 */
export class Shim implements Disposable {
  readonly dir: string;
  readonly #log: string;

  /** `stubExit`: instead of running the CLI, exit with this status (to test how a step treats it). */
  constructor(opts: { bpffsRoot?: string; stubExit?: number } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'ebpf-policy-gitops-bin-'));
    this.#log = join(this.dir, 'calls.log');
    writeFileSync(this.#log, '');
    const root = opts.bpffsRoot === undefined ? '' : `case "$1" in plan|reconcile|status|destroy|events) set -- "$@" --bpffs-root '${opts.bpffsRoot}' ;; esac\n`;
    const run = opts.stubExit === undefined ? `'${process.execPath}' '${CLI}' "$@"` : `(exit ${opts.stubExit})`;
    writeFileSync(
      join(this.dir, 'ebpf-policy'),
      `#!/bin/sh\n# ebpf-policy as the tests run it\nargs="$*"\n${root}${run}\ncode=$?\nprintf '%s %s\\n' "$code" "$args" >> '${this.#log}'\nexit $code\n`,
      { mode: 0o700 },
    );
    writeFileSync(join(this.dir, 'sudo'), '#!/bin/sh\nexec "$@"\n', { mode: 0o700 });
  }

  /** The calls so far, in order. */
  calls(): Invocation[] {
    return readFileSync(this.#log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const i = l.indexOf(' ');
        return { code: Number(l.slice(0, i)), args: l.slice(i + 1) };
      });
  }

  [Symbol.dispose](): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** GitHub's command line for `shell: bash` (docs: "Workflow syntax", jobs.<job_id>.steps[*].shell). */
export const GITHUB_BASH = ['bash', '--noprofile', '--norc', '-eo', 'pipefail'];

/**
 * Runs a step's `run:` script as GitHub Actions does with `shell: bash`, in
 * `cwd` (the policy repository's checkout), with the workflow's, the job's
 * and the step's `env`, and `shim` first on PATH.
 */
export function runStep(workflow: Workflow, job: string, step: WorkflowStep, cwd: string, shim: Shim): { status: number | null; stdout: string; stderr: string } {
  const script = join(shim.dir, 'step.sh');
  writeFileSync(script, step.run ?? '', { mode: 0o600 });
  const env = {
    ...process.env,
    ...workflow.env,
    ...workflow.jobs[job]?.env,
    ...step.env,
    PATH: `${shim.dir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
  };
  const [cmd, ...args] = GITHUB_BASH;
  const r = runBounded(cmd!, [...args, script], { cwd, env }, 60_000);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
