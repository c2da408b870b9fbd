/** `ebpf-policy plan`, `reconcile` (`--once`, or the daemon), `status` and `destroy`. */
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { formatProblem } from '../policy/index.js';
import { rmSync } from 'node:fs';
import { listPins, removePinTree } from '../bpf/bpffs.js';
import { DaemonLock, RootLock } from '../bpf/root-lock.js';
import { changes, computeStatuses, KINDS, reconcileExitCode, reconcileOnce } from '../manager.js';
import { DEFAULT_REPORT_DIR, lastPassFile } from '../reconciler/last-pass.js';
import { planJson, renderAction, renderApplyText, renderPlanText, renderStatusText, actionJson } from '../reconciler/render.js';
import { fatal, missingPolicyPath, parseKindOptions, withCommonOptions, type CommonOptions } from './common.js';
import { runDaemon, withDaemonOptions, type DaemonCliOptions } from './daemon.js';
import { requirePrivileges } from './privileges.js';

function usage(command: string, message: string): void {
  process.stderr.write(`ebpf-policy ${command}: error: ${message}\n`);
  process.exitCode = 2;
}

/** Adds plan, reconcile, status and destroy. */
export function registerReconcile(program: Command): void {
  withCommonOptions(
    program
      .command('plan')
      .description('Show what reconcile would change, and why, without changing anything')
      .option('--detailed-exitcode', 'exit 0 when there are no changes, 2 when there are, 1 on errors', false)
      .option('--verbose', 'also list what is up to date', false),
  ).action(async (opts: CommonOptions & { detailedExitcode: boolean; verbose: boolean }) => {
    const missing = missingPolicyPath(opts.policies);
    if (missing) return usage('plan', missing);
    const kindOptions = parseKindOptions(opts.kindOption, KINDS.map((k) => k.kind));
    if (typeof kindOptions === 'string') return usage('plan', kindOptions);
    if (!requirePrivileges('plan')) return;
    try {
      const r = await reconcileOnce({ root: opts.bpffsRoot, policyPaths: opts.policies, insecurePermissions: opts.insecurePolicyPerms, dryRun: true, kindOptions });
      const loadProblems = r.load.problems;
      if (opts.output === 'json') process.stdout.write(`${JSON.stringify(planJson(r.plan, loadProblems), null, 2)}\n`);
      else process.stdout.write(`${renderPlanText(r.plan, loadProblems, opts.verbose)}\n`);
      const errors = reconcileExitCode(r) !== 0;
      const changed = changes(r.plan).length > 0;
      process.exitCode = errors ? 1 : opts.detailedExitcode && changed ? 2 : 0;
    } catch (err) {
      fatal('plan', err);
      if (opts.detailedExitcode) process.exitCode = 1;
    }
  });

  withCommonOptions(
    withDaemonOptions(
      program
        .command('reconcile')
        .description('Converge the kernel to the policies: load, attach, update maps, remove what no policy wants; without --once, keep doing it (see docs/daemon.md)')
        .option('--once', 'run one pass and exit', false),
    ),
  ).action(async (opts: CommonOptions & DaemonCliOptions & { once: boolean }) => {
    const missing = missingPolicyPath(opts.policies);
    if (missing) return usage('reconcile', missing);
    const kindOptions = parseKindOptions(opts.kindOption, KINDS.map((k) => k.kind));
    if (typeof kindOptions === 'string') return usage('reconcile', kindOptions);
    if (!requirePrivileges('reconcile')) return;
    if (!opts.once) return runDaemon(opts, kindOptions, (message) => usage('reconcile', message));
    try {
      const json = opts.output === 'json';
      const r = await reconcileOnce({
        kindOptions,
        root: opts.bpffsRoot,
        policyPaths: opts.policies,
        insecurePermissions: opts.insecurePolicyPerms,
        onAction: json ? undefined : (a, error) => process.stdout.write(`${error ? 'FAILED ' : ''}${renderAction(a)}\n`),
      });
      const code = reconcileExitCode(r);
      if (json) {
        process.stdout.write(
          `${JSON.stringify(
            {
              apiVersion: 'ebpf-policy/v1',
              kind: 'ReconcileResult',
              ...planJson(r.plan, r.load.problems),
              applied: r.result!.applied.map(actionJson),
              failed: r.result!.failed.map((f) => ({ ...actionJson(f.action), error: f.error.message })),
              skipped: r.result!.skipped.map(actionJson),
              durationMs: Math.round(r.durationMs * 10) / 10,
              exitCode: code,
            },
            null,
            2,
          )}\n`,
        );
      } else {
        for (const p of r.load.problems) process.stderr.write(`${formatProblem(p)}\n`);
        for (const p of r.plan.problems) process.stderr.write(`${p.condition === 'Failed' ? 'error' : 'warning'}: policy ${p.policy}: ${p.reason}: ${p.message}\n`);
        process.stdout.write(`${renderApplyText(r.result!, r.durationMs)}\n`);
      }
      process.exitCode = code;
    } catch (err) {
      fatal('reconcile', err);
    }
  });

  withCommonOptions(
    program
      .command('status')
      .description('Show each policy with its conditions, live kernel ids and hit counters')
      .option('--top <N>', 'list at most N of the largest counts per policy where a kind keeps many (e.g. SyscallCounter keys)', '10')
      .option('--show-maps', "list the contents of the policies' own maps, decoded by their BTF types (e.g. a Program's maps)", false),
  ).action(
    async (opts: CommonOptions & { top: string; showMaps: boolean }) => {
      const missing = missingPolicyPath(opts.policies);
      if (missing) return usage('status', missing);
      const kindOptions = parseKindOptions(opts.kindOption, KINDS.map((k) => k.kind));
      if (typeof kindOptions === 'string') return usage('status', kindOptions);
      const top = Number(opts.top);
      if (!Number.isInteger(top) || top < 0) return usage('status', `--top ${opts.top}: expected a whole number of 0 or more`);
      if (!requirePrivileges('status')) return;
      try {
        const r = await reconcileOnce({ root: opts.bpffsRoot, policyPaths: opts.policies, insecurePermissions: opts.insecurePolicyPerms, dryRun: true, kindOptions });
        const statuses = computeStatuses(r, true, { top, showMaps: opts.showMaps });
        if (opts.output === 'json')
          process.stdout.write(`${JSON.stringify({ apiVersion: 'ebpf-policy/v1', kind: 'Status', policies: statuses }, null, 2)}\n`);
        else process.stdout.write(`${renderStatusText(statuses, KINDS)}\n`);
        process.exitCode = statuses.some((s) => s.conditions.some((c) => c.type === 'Failed' && c.status)) ? 1 : 0;
      } catch (err) {
        fatal('status', err);
      }
    },
  );

  withCommonOptions(
    program
      .command('destroy')
      .description('Remove everything ebpf-policy pinned under its root: programs detach, maps are freed')
      .option('--yes', 'do not ask for confirmation', false),
    false,
  ).action(async (opts: CommonOptions & { yes: boolean }) => {
    if (!requirePrivileges('destroy')) return;
    try {
      const pins = listPins(opts.bpffsRoot);
      if (pins.length === 0) {
        rmSync(lastPassFile(DEFAULT_REPORT_DIR, opts.bpffsRoot), { force: true });
        process.stdout.write(`Nothing to remove under ${opts.bpffsRoot}.\n`);
        return;
      }
      process.stdout.write(`This removes ${pins.length} pins under ${opts.bpffsRoot}:\n${pins.map((p) => `  - ${p}`).join('\n')}\n`);
      if (!opts.yes) {
        if (!process.stdin.isTTY) return usage('destroy', 'refusing to destroy without a terminal to confirm on: pass --yes');
        const rl = createInterface({ input: process.stdin, output: process.stdout });
        const answer = await rl.question('Remove them? Type "yes" to confirm: ');
        rl.close();
        if (answer.trim() !== 'yes') {
          process.stdout.write('Nothing removed.\n');
          process.exitCode = 1;
          return;
        }
      }
      if (DaemonLock.isHeld(DEFAULT_REPORT_DIR, opts.bpffsRoot)) {
        const pid = DaemonLock.holder(DEFAULT_REPORT_DIR, opts.bpffsRoot);
        process.stderr.write(
          `ebpf-policy destroy: warning: a daemon${pid ? ` (pid ${pid})` : ''} manages ${opts.bpffsRoot}: it will build again what its policies want; stop it first to keep everything removed\n`,
        );
      }
      // Between two passes of a running daemon, never in the middle of one.
      const removed: string[] = [];
      {
        using _lock = await RootLock.acquire(opts.bpffsRoot);
        removed.push(...KINDS.flatMap((k) => k.teardown?.(opts.bpffsRoot) ?? []), ...removePinTree(opts.bpffsRoot));
      }
      rmSync(lastPassFile(DEFAULT_REPORT_DIR, opts.bpffsRoot), { force: true });
      process.stdout.write(`Removed ${removed.length} pins and ${opts.bpffsRoot}.\n`);
    } catch (err) {
      fatal('destroy', err);
    }
  });
}
