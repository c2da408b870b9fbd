/** Options shared by the commands that read policies and the pin root. */
import { Option, type Command } from 'commander';
import { statSync } from 'node:fs';
import { DEFAULT_POLICY_DIRECTORY } from '../policy/discover.js';
import { DEFAULT_ROOT } from '../reconciler/reconcile.js';

/** Parsed shared options. */
export interface CommonOptions {
  policies?: string[];
  /** `KIND.KEY=VALUE` settings of a kind (see docs/architecture.md, "Kind options"). */
  kindOption?: string[];
  bpffsRoot: string;
  insecurePolicyPerms: boolean;
  output: 'text' | 'json';
}

/** Adds --policies, --bpffs-root, --insecure-policy-perms and --output to `cmd`. */
export function withCommonOptions(cmd: Command, policies = true): Command {
  if (policies) {
    cmd
      .option(
        '--policies <path>',
        `policy file or directory; repeat for several (default: ${DEFAULT_POLICY_DIRECTORY})`,
        (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
      )
      .option('--insecure-policy-perms', 'accept policy files owned by others than root and you, or writable by group/others', false)
      .option(
        '--kind-option <KIND.KEY=VALUE>',
        'a setting of one policy kind, e.g. PacketFilter.tcMethod=cls_bpf or PortSteering.objectPath=/path/dispatcher.o; repeat for several',
        (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
      );
  }
  return cmd
    .option('--bpffs-root <dir>', 'pin root on bpffs that holds everything ebpf-policy owns', DEFAULT_ROOT)
    .addOption(new Option('--output <format>', 'output format').choices(['text', 'json']).default('text'));
}

/** Returns an error message when an explicitly given policy path does not exist. */
export function missingPolicyPath(paths: string[] | undefined): string | undefined {
  for (const p of paths ?? []) {
    try {
      statSync(p);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return `policy path ${p} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`;
    }
  }
  return undefined;
}

/** Prints a fatal error and sets exit status 2. */
export function fatal(command: string, err: unknown): void {
  const e = err as Error;
  process.stderr.write(`ebpf-policy ${command}: fatal: ${e?.message ?? String(err)}\n`);
  if (e?.cause instanceof Error && process.env.EBPF_POLICY_DEBUG) process.stderr.write(`  caused by: ${e.cause.message}\n`);
  process.exitCode = 2;
}

/**
 * Parses `--kind-option KIND.KEY=VALUE` settings into per-kind options.
 * Returns an error message for a malformed one or an unknown kind.
 */
export function parseKindOptions(values: readonly string[] | undefined, kinds: readonly string[]): Record<string, Record<string, string>> | string {
  const out: Record<string, Record<string, string>> = {};
  for (const v of values ?? []) {
    const m = /^([A-Za-z][A-Za-z0-9]*)\.([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(v);
    if (!m) return `--kind-option ${v}: expected KIND.KEY=VALUE, e.g. PacketFilter.tcMethod=cls_bpf`;
    if (!kinds.includes(m[1]!)) return `--kind-option ${v}: unknown kind ${m[1]} (known: ${kinds.join(', ')})`;
    (out[m[1]!] ??= {})[m[2]!] = m[3]!;
  }
  return out;
}
