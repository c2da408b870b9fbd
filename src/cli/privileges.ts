/**
 * The privileges the commands that touch the kernel need, checked before
 * they start so that a user without them gets one line naming what is
 * missing instead of a raw EPERM from the first bpf(2) call.
 *
 * plan, reconcile, status, destroy and events need root, or the effective
 * capabilities CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN: CAP_BPF to load
 * programs (plan and status too: they load each object once to learn its
 * program tags) and create maps, CAP_NET_ADMIN for networking programs, their
 * attachments and `tc`, CAP_SYS_ADMIN to open live programs, maps and links
 * by id, to enter network namespaces and to mount bpffs. As in the kernel
 * (bpf_capable()), CAP_SYS_ADMIN stands in for CAP_BPF: kernels before 5.8
 * have no CAP_BPF. PortSteering targets held by another user's process also
 * need CAP_SYS_PTRACE (pidfd_getfd); whose a target is is only known once it
 * is resolved, so that is not checked here: such a policy is Degraded with
 * the reason. `validate` needs nothing.
 */
import { readFileSync } from 'node:fs';

/** Capability bit numbers, from linux/capability.h. */
export const CAP = {
  CAP_NET_ADMIN: 12,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_ADMIN: 21,
  CAP_BPF: 39,
} as const;

/** A capability name of {@link CAP}. */
export type CapabilityName = keyof typeof CAP;

/** What the kernel-touching commands require, in the order messages name them. */
export const REQUIRED_CAPABILITIES: readonly CapabilityName[] = ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN'];

/** What the check needs to know about the process. */
export interface Credentials {
  /** Effective uid. */
  readonly uid: number;
  /** Effective capability set (CapEff of /proc/self/status). */
  readonly capEff: bigint;
  /**
   * Whether the process is in the initial user namespace. The kernel checks
   * these capabilities there: those of a user namespace (a rootless
   * container) do not count. Default: true.
   */
  readonly initialUserNamespace?: boolean;
}

/** Whether bit `cap` is set in `mask`. */
function has(mask: bigint, cap: CapabilityName): boolean {
  return ((mask >> BigInt(CAP[cap])) & 1n) === 1n;
}

/** A mask with the named capabilities set (for tests and callers that build one). */
export function capabilityMask(...names: readonly CapabilityName[]): bigint {
  return names.reduce((m, n) => m | (1n << BigInt(CAP[n])), 0n);
}

/**
 * The required capabilities missing from `capEff`, in {@link REQUIRED_CAPABILITIES}
 * order. CAP_BPF counts as present when CAP_SYS_ADMIN is, as the kernel's
 * bpf_capable() has it.
 */
export function missingCapabilities(capEff: bigint): CapabilityName[] {
  return REQUIRED_CAPABILITIES.filter((c) => !has(capEff, c) && !(c === 'CAP_BPF' && has(capEff, 'CAP_SYS_ADMIN')));
}

/** Commands whose policies may name PortSteering targets (they resolve them), so the message mentions CAP_SYS_PTRACE. */
const RESOLVES_TARGETS = new Set(['test', 'plan', 'reconcile', 'status']);

/**
 * The pure decision: undefined when `creds` suffice for `command`, else the
 * one line to print (without a newline).
 */
export function privilegeProblem(command: string, creds: Credentials): string | undefined {
  const namespaced = creds.initialUserNamespace === false;
  const missing = namespaced ? [...REQUIRED_CAPABILITIES] : missingCapabilities(creds.capEff);
  if (missing.length === 0) return undefined;
  const why = namespaced
    ? '; this process is in a user namespace, whose capabilities do not count'
    : creds.uid === 0
      ? '; this process runs as root without them, e.g. in a container or under a capability bounding set'
      : '';
  const ptrace = RESOLVES_TARGETS.has(command) ? ", and CAP_SYS_PTRACE for PortSteering targets held by another user's process" : '';
  return `ebpf-policy ${command}: needs root, or the capabilities CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (missing: ${missing.join(', ')}${why})${ptrace}`;
}

/**
 * Reads the effective uid and capabilities from the text of /proc/PID/status.
 * Returns undefined when it has no `Uid:` or `CapEff:` line.
 */
export function parseProcStatus(text: string): Credentials | undefined {
  const uid = /^Uid:\s+\d+\s+(\d+)/m.exec(text);
  const capEff = /^CapEff:\s+([0-9a-fA-F]+)\s*$/m.exec(text);
  if (!uid || !capEff) return undefined;
  return { uid: Number(uid[1]), capEff: BigInt(`0x${capEff[1]}`) };
}

/** Whether the text of /proc/PID/uid_map is the initial user namespace's: every uid mapped to itself. */
export function isInitialUidMap(text: string): boolean {
  const lines = text.trim().split('\n');
  return lines.length === 1 && lines[0]!.trim().split(/\s+/).join(' ') === '0 0 4294967295';
}

/** This process's credentials, or undefined when /proc/self/status cannot be read (no /proc: let the kernel decide). */
export function currentCredentials(): Credentials | undefined {
  let creds: Credentials | undefined;
  try {
    creds = parseProcStatus(readFileSync('/proc/self/status', 'utf8'));
  } catch {
    return undefined;
  }
  if (creds === undefined) return undefined;
  try {
    return { ...creds, initialUserNamespace: isInitialUidMap(readFileSync('/proc/self/uid_map', 'utf8')) };
  } catch {
    return creds; // no user namespaces in this kernel
  }
}

/**
 * Checks this process's privileges for `command`. When they fall short,
 * prints the one line on stderr, sets exit status 2 and returns false.
 */
export function requirePrivileges(command: string, creds: Credentials | undefined = currentCredentials()): boolean {
  if (creds === undefined) return true;
  const problem = privilegeProblem(command, creds);
  if (problem === undefined) return true;
  process.stderr.write(`${problem}\n`);
  process.exitCode = 2;
  return false;
}
