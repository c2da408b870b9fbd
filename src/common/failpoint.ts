/**
 * Failpoints: an off-by-default way to make the process kill itself with
 * SIGKILL at a chosen point of an apply, so tests can prove that a crash at
 * any point leaves state the next run converges from.
 *
 * `EBPF_POLICY_FAILPOINT=NAME:N` (read once, at the first check) kills the
 * process right after the Nth time the point NAME is reached. NAME is
 * `apply-step` (after every kernel-changing action of an apply) or one of the
 * named points inside multi-step operations (see {@link FailpointName}). When
 * the variable is unset a check is one comparison.
 *
 * This module sits below every layer (it imports nothing of the project), so
 * the kernel layer and the engine can both mark points.
 */

/** Every point the process can be told to die at; `docs/reliability.md` explains each. */
export const FAILPOINTS = [
  /** After each kernel-changing action of an apply. */
  'apply-step',
  /** An atomic program swap: after pinning program_next, before the link update. */
  'swap-after-pin-next',
  /** An atomic program swap: after the link update, before renaming program_next over program. */
  'swap-after-update',
  /** A new dispatcher, filter or connect guard: after its maps are pinned, before its link is attached. */
  'create-after-maps',
  /** A rule change (filter or connect guard): after the inactive generation is written, before `active` is switched. */
  'rules-after-generation',
] as const;

/** A failpoint's name. */
export type FailpointName = (typeof FAILPOINTS)[number];

/** The environment variable that arms a failpoint. */
export const FAILPOINT_ENV = 'EBPF_POLICY_FAILPOINT';

let armed: { name: string; at: number } | null | undefined;
const seen = new Map<string, number>();

function parse(value: string | undefined): { name: string; at: number } | null {
  if (!value) return null;
  const m = /^([a-z-]+):(\d+)$/.exec(value);
  if (!m || !(FAILPOINTS as readonly string[]).includes(m[1]!) || Number(m[2]) < 1) {
    throw new Error(`${FAILPOINT_ENV}=${value}: expected NAME:N with N ≥ 1 and NAME one of ${FAILPOINTS.join(', ')}`);
  }
  return { name: m[1]!, at: Number(m[2]) };
}

/**
 * Marks that the process reached `name`. When `EBPF_POLICY_FAILPOINT` names
 * this point and this is its Nth time, the process is killed with SIGKILL at
 * once (no cleanup, no finally blocks: a real crash).
 *
 * @throws Error when the variable is set but malformed (at the first check).
 */
export function failpoint(name: FailpointName): void {
  if (armed === undefined) armed = parse(process.env[FAILPOINT_ENV]);
  if (armed === null || armed.name !== name) return;
  const n = (seen.get(name) ?? 0) + 1;
  seen.set(name, n);
  if (n === armed.at) process.kill(process.pid, 'SIGKILL');
}
