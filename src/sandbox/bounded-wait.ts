/**
 * Waits that always end. Every wait on a child process, a stream or an event
 * in the demo, the tests and the benchmarks goes through these: each has a
 * bound and, when it runs out, fails with an error that says what it waited
 * for, instead of hanging the run.
 */
import { spawnSync, type ChildProcess, type SpawnSyncOptionsWithStringEncoding, type SpawnSyncReturns } from 'node:child_process';

/** How long a wait may take unless the caller says otherwise. */
export const DEFAULT_WAIT_MS = 30_000;

/**
 * Multiplier of every bound and pause below, from EBPF_POLICY_TIME_SCALE
 * (default 1). The bounds are chosen for a real machine; the kernel matrix
 * (scripts/kernel-matrix) runs the same suite under CPU emulation, 10 to 30
 * times slower, and sets it there so waits stay proportional. Native runs
 * keep the bounds as written.
 */
export const TIME_SCALE = ((): number => {
  const v = Number(process.env.EBPF_POLICY_TIME_SCALE ?? 1);
  return Number.isFinite(v) && v >= 1 ? v : 1;
})();

/** `ms` times {@link TIME_SCALE}. */
export function scaled(ms: number): number {
  return Math.round(ms * TIME_SCALE);
}

/** Thrown when a bounded wait runs out; `what` names what was awaited. */
export class WaitTimeoutError extends Error {
  constructor(
    readonly what: string,
    readonly ms: number,
  ) {
    super(`timed out after ${ms} ms waiting for ${what}`);
    this.name = 'WaitTimeoutError';
  }
}

/** Resolves after `ms` (scaled). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, scaled(ms)));
}

/**
 * Resolves or rejects as `promise` does, or rejects with a `WaitTimeoutError`
 * naming `what` after `ms`. The timer never keeps the process alive.
 */
export function withTimeout<T>(promise: Promise<T>, boundMs: number, what: string): Promise<T> {
  const ms = scaled(boundMs);
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WaitTimeoutError(what, ms)), ms);
    timer.unref();
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

/** How a child process ended. */
export interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function hasEnded(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function streamsClosed(child: ChildProcess): boolean {
  return child.stdio.every((s) => s === null || s === undefined || s.closed || s.destroyed);
}

/**
 * Waits until `child` has exited and its stdio streams are closed (node's
 * `close` event), at most `ms`. Unlike `once(child, 'close')` it also
 * resolves when that already happened before the call, which is the race of a
 * child that dies on its own just before it is killed.
 *
 * @throws WaitTimeoutError naming `what` and the pid when it does not end in time.
 */
export function childClosed(child: ChildProcess, what: string, ms = DEFAULT_WAIT_MS): Promise<ChildEnd> {
  const end = (): ChildEnd => ({ code: child.exitCode, signal: child.signalCode });
  if (hasEnded(child) && streamsClosed(child)) return Promise.resolve(end());
  const closed = new Promise<ChildEnd>((resolve) => {
    const done = (): void => resolve(end());
    child.once('close', done);
    // `close` may have fired between the check above and the listener: look again on the next turn.
    setImmediate(() => {
      if (hasEnded(child) && streamsClosed(child)) done();
    });
  });
  return withTimeout(closed, ms, `${what} (pid ${child.pid ?? '?'}) to exit`);
}

/**
 * Sends `signal` (SIGKILL by default) unless the child already ended, then
 * waits for it as `childClosed` does.
 */
export async function killAndWait(child: ChildProcess, what: string, signal: NodeJS.Signals = 'SIGKILL', ms = DEFAULT_WAIT_MS): Promise<ChildEnd> {
  if (!hasEnded(child)) child.kill(signal);
  return childClosed(child, what, ms);
}

/**
 * `spawnSync` with a bound: the command is killed with SIGKILL after `ms`, and
 * that is an error naming the command, never a silent empty result.
 *
 * @throws WaitTimeoutError when the command ran out of time; Error when it could not be started.
 */
export function runBounded(
  cmd: string,
  args: readonly string[],
  options: Omit<SpawnSyncOptionsWithStringEncoding, 'encoding' | 'timeout' | 'killSignal'> = {},
  boundMs = DEFAULT_WAIT_MS,
): SpawnSyncReturns<string> {
  const ms = scaled(boundMs);
  const r = spawnSync(cmd, args, { maxBuffer: 64 << 20, ...options, encoding: 'utf8', timeout: ms, killSignal: 'SIGKILL' });
  const what = `${cmd} ${args.join(' ')}`.slice(0, 300);
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') throw new WaitTimeoutError(`${what} to finish`, ms);
  if (r.error) throw new Error(`${what}: ${r.error.message}`, { cause: r.error });
  return r;
}
