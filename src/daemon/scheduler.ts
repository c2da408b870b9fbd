/**
 * When the daemon runs a reconcile pass. Requests carry only a reason (the
 * pass itself is level-based and reads everything again): bursts of requests
 * are coalesced by a trailing debounce, passes never overlap, and a request
 * that arrives during a pass buys exactly one more pass after it. With
 * `leading`, the first request after a quiet spell starts a pass at once
 * (a lone change is applied without waiting out the debounce); what follows
 * it is coalesced into one trailing pass as before.
 */

/** The clock and timers the scheduler uses; tests pass fake ones. */
export interface SchedulerClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's own timers. */
export const SYSTEM_CLOCK: SchedulerClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Options of {@link PassScheduler}. */
export interface PassSchedulerOptions {
  /** A pass starts this long after the last request of a burst. */
  debounceMs: number;
  /**
   * A pass starts at most this long after the first request it serves, even
   * when requests keep coming (so a steady stream cannot starve it).
   * Default: max(1000, 4 × debounceMs).
   */
  maxDelayMs?: number;
  /**
   * Leading edge: a request that comes after a quiet spell (no request for at
   * least `debounceMs`, no pass running and none pending but a settle pass)
   * starts a pass at once; requests after it are debounced into a trailing pass.
   * Default: false (every pass waits for the debounce).
   */
  leading?: boolean;
  /**
   * A pass that starts less than this long after the last `settle` request it
   * serves is followed by one more pass this long after that request (reason
   * `settle`), even with no request in between. The daemon's watcher drops a
   * file's change events for 50 ms after one it reported (chokidar's change
   * throttle), so a write in that window is only seen by a pass that starts
   * after it: a leading pass, or one started by `maxDelayMs` in a stream of
   * writes, would miss it. Default: 0 (no follow-up pass).
   * The settle pass's reason is `settleReason`.
   */
  settleMs?: number;
  /** The reason a settle pass is given. Default: `settle`. */
  settleReason?: string;
  clock?: SchedulerClock;
  /** Hears of a pass that threw (the scheduler goes on). */
  onError?: (err: unknown) => void;
}

/**
 * Runs `pass(reasons)` in response to {@link request}s, one at a time.
 * The scheduler owns its timer; {@link stop} cancels it and waits for the
 * running pass.
 */
export class PassScheduler {
  readonly #pass: (reasons: string[]) => Promise<void>;
  readonly #debounceMs: number;
  readonly #maxDelayMs: number;
  readonly #clock: SchedulerClock;
  readonly #onError: (err: unknown) => void;
  readonly #leading: boolean;
  readonly #settleMs: number;
  readonly #settleReason: string;
  /** The pending pass starts no earlier than this (a settle pass). */
  #notBefore = -Infinity;
  /** The only pending reason is a settle pass (no request since): it waits for `settleMs`, not the debounce. */
  #settleOnly = false;
  /** When the last pending request that needs settling came (-Infinity: none pending). */
  #settleFrom = -Infinity;
  /** When the last request came (-Infinity: never). */
  #lastRequestAt = -Infinity;
  /** Reasons waiting for the next pass, in arrival order, without duplicates. */
  #reasons: string[] = [];
  #firstAt = 0;
  #lastAt = 0;
  #immediate = false;
  #timer: unknown;
  #running: Promise<void> | undefined;
  #stopped = false;
  #passes = 0;

  constructor(pass: (reasons: string[]) => Promise<void>, opts: PassSchedulerOptions) {
    if (!(opts.debounceMs >= 0)) throw new RangeError(`debounce must be >= 0, got ${opts.debounceMs}`);
    this.#pass = pass;
    this.#debounceMs = opts.debounceMs;
    this.#maxDelayMs = opts.maxDelayMs ?? Math.max(1000, 4 * opts.debounceMs);
    this.#clock = opts.clock ?? SYSTEM_CLOCK;
    this.#onError = opts.onError ?? (() => undefined);
    this.#leading = opts.leading ?? false;
    this.#settleMs = opts.settleMs ?? 0;
    this.#settleReason = opts.settleReason ?? 'settle';
  }

  /** True while a pass runs. */
  get running(): boolean {
    return this.#running !== undefined;
  }

  /** True when a pass is wanted and has not started yet. */
  get pending(): boolean {
    return this.#reasons.length > 0;
  }

  /** Number of passes started so far. */
  get passes(): number {
    return this.#passes;
  }

  /**
   * Asks for a pass. `immediate` skips the debounce (SIGHUP, startup); the
   * pass still waits for a running one to end. `settle`: the request is a
   * watcher's event, whose pass must start `settleMs` after it or be followed
   * by one that does. Ignored after {@link stop}.
   */
  request(reason: string, opts: { immediate?: boolean; settle?: boolean } = {}): void {
    if (this.#stopped) return;
    const now = this.#clock.now();
    // A pending settle pass is no request: a leading pass now settles later itself.
    const quiet = this.#leading && !this.#running && (this.#reasons.length === 0 || this.#settleOnly) && now - this.#lastRequestAt >= this.#debounceMs;
    this.#lastRequestAt = now;
    this.#settleOnly = false;
    if (this.#reasons.length === 0) this.#firstAt = now;
    this.#lastAt = now;
    if (opts.settle) this.#settleFrom = now;
    if (!this.#reasons.includes(reason)) this.#reasons.push(reason);
    if (opts.immediate || quiet) this.#immediate = true;
    if (!this.#running) this.#arm();
  }

  /**
   * Cancels what is pending and resolves once the running pass (if any) has
   * ended. No pass starts afterwards.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#disarm();
    this.#reasons = [];
    await this.#running;
  }

  #arm(): void {
    this.#disarm();
    const now = this.#clock.now();
    const dueByDebounce = this.#lastAt + this.#debounceMs;
    const dueByMax = this.#firstAt + this.#maxDelayMs;
    const due = this.#immediate ? now : this.#settleOnly ? this.#notBefore : Math.min(dueByDebounce, dueByMax);
    // An immediate pass may come before a pending settle pass's time: it is followed by its own, which covers that one's.
    const delay = Math.max(0, due - now, this.#immediate ? 0 : this.#notBefore - now);
    this.#timer = this.#clock.setTimeout(() => this.#fire(), delay);
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.#stopped || this.#running || this.#reasons.length === 0) return;
    const reasons = this.#reasons;
    const servedUpTo = this.#settleFrom;
    const unsettled = this.#settleMs > 0 && this.#clock.now() - servedUpTo < this.#settleMs;
    this.#settleFrom = -Infinity;
    this.#reasons = [];
    this.#immediate = false;
    this.#notBefore = -Infinity;
    this.#settleOnly = false;
    this.#passes++;
    this.#running = (async () => {
      try {
        await null; // #running is set before the pass can end, even when it throws at once
        await this.#pass(reasons);
      } catch (err) {
        this.#onError(err);
      } finally {
        this.#running = undefined;
        if (!this.#stopped && unsettled && this.#reasons.length === 0) {
          // Not a request: lastAt stays that of the requests served.
          this.#reasons = [this.#settleReason];
          this.#settleOnly = true;
          this.#firstAt = this.#clock.now();
          this.#notBefore = servedUpTo + this.#settleMs;
        } else if (unsettled) this.#notBefore = Math.max(this.#notBefore, servedUpTo + this.#settleMs);
        if (!this.#stopped && this.#reasons.length > 0) this.#arm();
      }
    })();
  }
}
