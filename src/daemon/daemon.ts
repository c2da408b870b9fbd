/**
 * The long-running controller behind `ebpf-policy reconcile`: it runs full
 * level-based reconcile passes when the policies change (chokidar), when
 * the kernel drifts (a cheap probe, also woken by a watch on the pin root),
 * every resync interval, and on request (SIGHUP). Passes never overlap and
 * bursts of events are coalesced (see {@link PassScheduler}).
 *
 * Who owns what: the Daemon owns its watchers, timers, scheduler and HTTP
 * server, and releases them all in stop(). It holds no kernel object between
 * passes: the pins are the state, and the flock on the pin root is held only
 * during a pass (by reconcileOnce). Stopping leaves every program attached.
 */
import type { Server } from 'node:http';
import { listPins } from '../bpf/bpffs.js';
import { DaemonLock } from '../bpf/root-lock.js';
import { DEFAULT_REPORT_DIR } from '../reconciler/last-pass.js';
import { FailedPaths } from '../reconciler/failed-paths.js';
import { formatProblem } from '../policy/index.js';
import { computeStatuses, KINDS, reconcileOnce, type ReconcileReport } from '../manager.js';
import type { AnyReconcilerKind, KindEnv, MetricSample } from '../reconciler/kind.js';
import type { Action } from '../reconciler/model.js';
import { formatDuration } from './duration.js';
import { findPinDrift } from './pin-drift.js';
import type { Health, ListenAddress } from './http-server.js';
import type { Logger } from './logger.js';
import type { DaemonMetrics } from './metrics.js';
import { inputFingerprint, summarizePass, total } from './pass-summary.js';
import { PassScheduler } from './scheduler.js';

/**
 * chokidar reports at most one change of a file per 50 ms and drops the
 * others (its `change` throttle): a pass that may have started inside that
 * window is followed by one that starts after it (see PassSchedulerOptions.settleMs).
 */
const WATCHER_CHANGE_THROTTLE_MS = 50;
import { TreeWatcher } from './tree-watcher.js';

/** One kind's drift expectation after a pass, with what its probe needs. */
interface KindExpectation {
  kind: AnyReconcilerKind;
  env: KindEnv;
  expected: unknown;
}

/** Options of the daemon. */
export interface DaemonOptions {
  /** Pin root. */
  root: string;
  /** Policy files and directories (undefined: the default directory). */
  policyPaths?: string[];
  /** The paths to watch for policy changes (default: policyPaths, or /etc/ebpf-policies). */
  watchPaths: string[];
  insecurePermissions: boolean;
  debounceMs: number;
  /** 0 disables the periodic resync. */
  resyncIntervalMs: number;
  /** 0 disables the periodic drift probe (the pin-root watch still wakes it). */
  driftProbeIntervalMs: number;
  /** Where to serve /metrics and /healthz (undefined: no HTTP server). */
  metricsAddress?: ListenAddress;
  logger: Logger;
  /** Options of each kind, by kind name (e.g. another compiled object, for upgrade tests). */
  kindOptions?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Where the daemon lock lives (default /run/ebpf-policy, beside the last-pass reports). */
  lockDir?: string;
  /** How long a pass waits for another run's lock before failing (default 30 s). */
  lockTimeoutMs?: number;
}

/** The longest wait before retrying a pass that threw. */
const MAX_RETRY_MS = 30_000;
/** Pin-root events within this window wake one probe. */
const PIN_EVENT_SETTLE_MS = 20;

function actionFields(pass: number, a: Action): Record<string, unknown> {
  return { pass, policy: a.policy, kind: a.kind, object: a.object, reason: a.reason, before: a.before, after: a.after };
}

/** A running daemon; {@link Daemon.start} creates one, {@link Daemon.stop} ends it. */
export class Daemon {
  readonly #o: DaemonOptions;
  readonly #log: Logger;
  readonly #scheduler: PassScheduler;
  /** Created in start() when metrics are asked for: prom-client (~12 MB resident) is loaded only then. */
  #metrics: DaemonMetrics | undefined;
  #server: Server | undefined;
  #policyWatcher: TreeWatcher | undefined;
  #pinWatcher: TreeWatcher | undefined;
  #timers: NodeJS.Timeout[] = [];
  #probeTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryMs = 1000;
  #pass = 0;
  #stopping = false;
  #health: Health = { ok: false, message: 'starting: no pass has run yet' };
  #fingerprint: string | undefined;
  /** What the kernel should look like after the last pass: every pin, and each kind's drift expectation. */
  #expectation: { root: string; pins: string[]; kinds: KindExpectation[] } | undefined;
  /** The settled state of each kind after the last pass (metrics read their counters). */
  #lastStates: ReconcileReport['settled']['kinds'] = [];
  #problems = new Set<string>();
  /** Held from start to stop: no second daemon on this root. */
  #lock: DaemonLock | undefined;

  private constructor(o: DaemonOptions) {
    this.#o = o;
    this.#log = o.logger;
    this.#scheduler = new PassScheduler((reasons) => this.#runPass(reasons), {
      debounceMs: o.debounceMs,
      // A lone policy change is applied at once; a burst after it waits for the debounce (one trailing pass).
      leading: true,
      settleMs: WATCHER_CHANGE_THROTTLE_MS,
      // It serves policy changes whose events the watcher may have dropped.
      settleReason: 'policy change',
      onError: (err) => this.#log.error('internal error in a pass', { error: (err as Error)?.stack ?? String(err) }),
    });
  }

  /**
   * Starts serving metrics (when asked), watching, the timers, and the first
   * pass. Throws when the HTTP server cannot listen or a watcher cannot start
   * (everything started so far is stopped again).
   */
  static async start(o: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(o);
    try {
      await d.#start();
    } catch (err) {
      await d.stop();
      throw err;
    }
    return d;
  }

  async #start(): Promise<void> {
    const o = this.#o;
    const lockDir = o.lockDir ?? DEFAULT_REPORT_DIR;
    const lock = DaemonLock.tryAcquire(lockDir, o.root);
    if (!(lock instanceof DaemonLock))
      throw new Error(
        `another ebpf-policy daemon${lock.heldBy ? ` (pid ${lock.heldBy})` : ''} already manages ${o.root} (lock ${lock.path}): stop it first, or give this one another --bpffs-root`,
      );
    this.#lock = lock;
    this.#log.info('starting', {
      root: o.root,
      policies: o.watchPaths,
      debounce: formatDuration(o.debounceMs),
      resyncInterval: formatDuration(o.resyncIntervalMs),
      driftProbeInterval: formatDuration(o.driftProbeIntervalMs),
      pid: process.pid,
    });
    if (o.metricsAddress) {
      // prom-client and the HTTP server are loaded only when metrics are asked for.
      const [{ DaemonMetrics }, { startHttpServer }] = await Promise.all([import('./metrics.js'), import('./http-server.js')]);
      const metrics = new DaemonMetrics({ families: KINDS.flatMap((k) => k.metrics?.families ?? []), collect: () => this.#collectKindMetrics() });
      this.#metrics = metrics;
      const { server, bound } = await startHttpServer(o.metricsAddress, { metrics: () => metrics.render(), health: () => this.#health });
      this.#server = server;
      this.#log.info('serving metrics', { address: bound, paths: ['/metrics', '/healthz'] });
    }
    const onError = (what: string) => (err: Error) => this.#log.warn(`cannot watch ${what}`, { error: err.message });
    this.#policyWatcher = await TreeWatcher.start(o.watchPaths, (event, path) => this.#onPolicyEvent(event, path), onError('policies'));
    this.#pinWatcher = await TreeWatcher.start([o.root], (event, path) => this.#onPinEvent(event, path), onError('the pin root'));
    this.#scheduler.request('startup', { immediate: true });
    if (o.resyncIntervalMs > 0) this.#timers.push(setInterval(() => this.#scheduler.request('resync'), o.resyncIntervalMs));
    if (o.driftProbeIntervalMs > 0) this.#timers.push(setInterval(() => this.#probe('interval'), o.driftProbeIntervalMs));
  }

  /** Health as /healthz reports it. */
  get health(): Health {
    return this.#health;
  }

  /** Asks for a pass (SIGHUP does this with immediate = true). */
  requestPass(reason: string, immediate = false): void {
    this.#scheduler.request(reason, { immediate });
  }

  /**
   * Stops watching and timing, lets a running pass finish, and closes the
   * HTTP server. Leaves the kernel state as it is. Idempotent.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    try {
      await this.#stopServing();
    } finally {
      this.#lock?.close();
    }
  }

  async #stopServing(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    clearTimeout(this.#probeTimer);
    clearTimeout(this.#retryTimer);
    await Promise.all([this.#policyWatcher?.close(), this.#pinWatcher?.close()]);
    await this.#scheduler.stop();
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }

  #onPolicyEvent(event: string, path: string): void {
    this.#log.debug('policy change', { event, path });
    this.#scheduler.request('policy change', { settle: true });
  }

  #onPinEvent(event: string, path: string): void {
    if (this.#scheduler.running) return; // our own pass; its expectation is taken when it ends
    this.#log.debug('pin change', { event, path });
    if (this.#probeTimer) return;
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      this.#probe('pin change');
    }, PIN_EVENT_SETTLE_MS);
  }

  /** Compares the kernel with what the last pass left (every pin, and each kind's probe); requests a pass when they differ. */
  #probe(why: string): void {
    const expected = this.#expectation;
    if (this.#stopping || !expected || this.#scheduler.running || this.#scheduler.pending) return;
    try {
      const drift = findPinDrift(expected.pins, listPins(expected.root));
      const unblocked: string[] = [];
      for (const k of expected.kinds) {
        const found = k.kind.drift!.probe(k.expected, k.env);
        drift.push(...found.drift);
        unblocked.push(...found.unblocked);
      }
      if (drift.length === 0 && unblocked.length === 0) return;
      if (drift.length > 0) this.#log.info('drift detected', { drift, probe: why });
      if (unblocked.length > 0) this.#log.info('a waiting policy can make progress', { policies: unblocked });
      // The expectation is spent: the pass that repairs this takes a new one.
      this.#expectation = undefined;
      this.#scheduler.request(drift.length > 0 ? 'drift' : 'dependency appeared', { immediate: true });
    } catch (err) {
      this.#log.warn('drift probe failed', { error: (err as Error).message });
    }
  }

  /** Every kind's metric samples for the state of the last pass, read from the kernel now. */
  #collectKindMetrics(): Record<string, MetricSample[]> {
    const out: Record<string, MetricSample[]> = {};
    for (const s of this.#lastStates) {
      if (!s.kind.metrics || s.observeError) continue;
      try {
        Object.assign(out, s.kind.metrics.collect(s.desired, s.observed));
      } catch (err) {
        this.#log.warn('reading metrics failed', { kind: s.kind.kind, error: (err as Error).message });
      }
    }
    return out;
  }

  async #runPass(reasons: string[]): Promise<void> {
    const pass = ++this.#pass;
    const started = performance.now();
    this.#log.debug('pass starting', { pass, trigger: reasons });
    let report: ReconcileReport;
    try {
      report = await reconcileOnce({
        root: this.#o.root,
        policyPaths: this.#o.policyPaths,
        insecurePermissions: this.#o.insecurePermissions,
        kindOptions: this.#o.kindOptions,
        settle: true,
        lockTimeoutMs: this.#o.lockTimeoutMs,
        onAction: (a, error) => {
          if (error) this.#log.error('action failed', { ...actionFields(pass, a), error: error.message });
          else this.#log.info('applied', actionFields(pass, a));
        },
      });
    } catch (err) {
      const durationMs = performance.now() - started;
      this.#metrics?.passErrored(durationMs);
      this.#health = { ok: false, message: `failing: pass ${pass} failed: ${(err as Error).message}` };
      this.#log.error('pass failed', { pass, trigger: reasons, error: (err as Error).message, retryIn: formatDuration(this.#retryMs), durationMs: round(durationMs) });
      if (!this.#stopping) {
        clearTimeout(this.#retryTimer);
        this.#retryTimer = setTimeout(() => this.#scheduler.request('retry after a failed pass', { immediate: true }), this.#retryMs);
        this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS);
      }
      return;
    }
    this.#retryMs = 1000;
    // Conditions only: counters are read at scrape time.
    const statuses = report.conditionStatuses ?? computeStatuses(report, false);
    const fingerprint = inputFingerprint(report);
    const summary = summarizePass(report, statuses, fingerprint === this.#fingerprint);
    summary.durationMs = performance.now() - started;
    this.#fingerprint = fingerprint;
    this.#remember(report);
    this.#logProblems(report);
    this.#metrics?.passFinished(summary);
    this.#health = summary.ok
      ? { ok: true, message: `ok: ${summary.policies} policies, ${summary.conditions.Ready} ready, ${summary.conditions.Degraded} degraded (pass ${pass})` }
      : { ok: false, message: `failing: ${summary.failing.slice(0, 3).join('; ')}${summary.failing.length > 3 ? `; and ${summary.failing.length - 3} more` : ''}` };
    if (summary.driftRepair)
      this.#log.info('drift repaired', { pass, trigger: reasons, repairs: (report.result?.applied ?? []).map((a) => `${a.object}: ${a.reason}`) });
    this.#log.log(summary.ok ? 'info' : 'warn', 'reconcile pass', {
      pass,
      trigger: reasons,
      changes: total(summary.applied),
      failed: total(summary.failed),
      skipped: summary.skipped,
      policies: summary.policies,
      ready: summary.conditions.Ready,
      degraded: summary.conditions.Degraded,
      failedPolicies: summary.conditions.Failed,
      invalidFiles: summary.invalidFiles,
      durationMs: round(summary.durationMs),
    });
    if (!this.#stopping) {
      const restarted = (await Promise.all([this.#policyWatcher?.refresh(), this.#pinWatcher?.refresh()]))[0];
      if (restarted) this.#scheduler.request('policy paths appeared or were replaced');
    }
  }

  /** What the probe and the metrics need from a pass: its settled state, every pin, each kind's drift expectation. */
  #remember(r: ReconcileReport): void {
    this.#lastStates = r.settled.kinds;
    const failedFiles = new FailedPaths(r.failedFiles);
    const kinds: KindExpectation[] = [];
    for (const s of r.settled.kinds) {
      if (!s.kind.drift || s.observeError) continue;
      const env: KindEnv = { root: r.root, failedFiles, options: this.#o.kindOptions?.[s.kind.kind] ?? {} };
      kinds.push({ kind: s.kind, env, expected: s.kind.drift.expect(s.desired, s.observed, env) });
    }
    this.#expectation = { root: r.root, pins: listPins(r.root).sort(), kinds };
  }

  /** Logs each problem once when it appears (at debug while it stays). */
  #logProblems(r: ReconcileReport): void {
    const now = new Set<string>();
    for (const p of r.load.problems) {
      const line = formatProblem(p);
      now.add(line);
      this.#log.log(this.#problems.has(line) ? 'debug' : 'warn', 'policy file problem', { problem: line, severity: p.severity });
    }
    for (const p of r.plan.problems) {
      const line = `policy ${p.policy}: ${p.condition}: ${p.reason}: ${p.message}`;
      now.add(line);
      this.#log.log(this.#problems.has(line) ? 'debug' : 'warn', 'policy problem', { policy: p.policy, condition: p.condition, reason: p.reason, detail: p.message });
    }
    this.#problems = now;
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
