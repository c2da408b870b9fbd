/**
 * The daemon's Prometheus metrics (prom-client), in a registry of their own.
 * Pass metrics are updated when a pass ends; each kind's own families (hit
 * counters, rule counters, attachments) are read from the kernel at scrape
 * time for the state of the last pass.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MetricFamily, MetricSample } from '../reconciler/kind.js';
import type { ActionKind } from '../reconciler/model.js';
import type { PassSummary } from './pass-summary.js';

/** Prefix of every metric name. */
export const METRIC_PREFIX = 'ebpf_policy_';

/** What the metrics read at scrape time: each kind's families, and their samples as of the last pass. */
export interface MetricsSource {
  families: readonly MetricFamily[];
  /** Samples of every family, keyed by family name (read from the kernel now). */
  collect(): Record<string, MetricSample[]>;
}

const CHANGE_KINDS: Array<Exclude<ActionKind, 'noop'>> = ['create', 'update', 'replace', 'delete'];
const CONDITIONS = ['Ready', 'Degraded', 'Failed'] as const;

/** Owns the registry and every metric the daemon exports. */
export class DaemonMetrics {
  readonly registry = new Registry();
  readonly #passes: Counter;
  readonly #failures: Counter;
  readonly #duration: Histogram;
  readonly #applied: Counter<'kind'>;
  readonly #failedChanges: Counter<'kind'>;
  readonly #policies: Gauge<'condition'>;
  readonly #driftRepairs: Counter;
  readonly #lastSuccess: Gauge;
  readonly #lastPass: Gauge;

  constructor(source: MetricsSource) {
    const registers = [this.registry];
    const p = METRIC_PREFIX;
    this.#passes = new Counter({ name: `${p}reconciles_total`, help: 'Reconcile passes run', registers });
    this.#failures = new Counter({
      name: `${p}reconcile_failures_total`,
      help: 'Reconcile passes that failed: a fatal error, a failed action, an invalid policy file or a Failed policy',
      registers,
    });
    this.#duration = new Histogram({
      name: `${p}reconcile_duration_seconds`,
      help: 'Duration of reconcile passes (load, resolve, observe, plan, apply)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.#applied = new Counter({ name: `${p}changes_applied_total`, help: 'Changes applied to the kernel, by action kind', labelNames: ['kind'], registers });
    this.#failedChanges = new Counter({ name: `${p}changes_failed_total`, help: 'Changes that failed, by action kind', labelNames: ['kind'], registers });
    for (const kind of CHANGE_KINDS) {
      this.#applied.inc({ kind }, 0);
      this.#failedChanges.inc({ kind }, 0);
    }
    this.#policies = new Gauge({
      name: `${p}policies`,
      help: 'Policies with each condition true, as of the last pass (a policy may be Ready and Degraded)',
      labelNames: ['condition'],
      registers,
    });
    for (const condition of CONDITIONS) this.#policies.set({ condition }, 0);
    this.#driftRepairs = new Counter({
      name: `${p}drift_repairs_total`,
      help: 'Passes that changed the kernel although the policies had not changed (pins removed, links detached, target sockets restarted)',
      registers,
    });
    this.#lastSuccess = new Gauge({ name: `${p}last_reconcile_success`, help: '1 when the last pass succeeded, else 0', registers });
    this.#lastPass = new Gauge({ name: `${p}last_reconcile_timestamp_seconds`, help: 'Unix time the last pass ended', registers });

    // The kinds' own families, read from the kernel at scrape time (one read serves every family).
    let scrape: Record<string, MetricSample[]> | undefined;
    for (const family of source.families) {
      const Metric = family.type === 'counter' ? Counter : Gauge;
      new Metric({
        name: family.name,
        help: family.help,
        labelNames: [...family.labelNames],
        registers,
        collect() {
          if (family === source.families[0] || !scrape) scrape = source.collect();
          this.reset();
          for (const sample of scrape[family.name] ?? []) (this as Counter<string>).inc(sample.labels, sample.value);
        },
      });
    }
    new Gauge({
      name: 'process_resident_memory_bytes',
      help: 'Resident memory size in bytes',
      registers,
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
    new Counter({
      name: 'process_cpu_seconds_total',
      help: 'User and system CPU time spent in seconds',
      registers,
      collect() {
        const u = process.cpuUsage();
        this.reset();
        this.inc((u.user + u.system) / 1e6);
      },
    });
  }

  /** Records a pass that ran to its end (its policies may still have failed). */
  passFinished(s: PassSummary): void {
    this.#passes.inc();
    if (!s.ok) this.#failures.inc();
    this.#duration.observe(s.durationMs / 1000);
    for (const kind of CHANGE_KINDS) {
      if (s.applied[kind] > 0) this.#applied.inc({ kind }, s.applied[kind]);
      if (s.failed[kind] > 0) this.#failedChanges.inc({ kind }, s.failed[kind]);
    }
    for (const condition of CONDITIONS) this.#policies.set({ condition }, s.conditions[condition]);
    if (s.driftRepair) this.#driftRepairs.inc();
    this.#lastSuccess.set(s.ok ? 1 : 0);
    this.#lastPass.set(Date.now() / 1000);
  }

  /** Records a pass that threw (nothing was learned about the policies). */
  passErrored(durationMs: number): void {
    this.#passes.inc();
    this.#failures.inc();
    this.#duration.observe(durationMs / 1000);
    this.#lastSuccess.set(0);
    this.#lastPass.set(Date.now() / 1000);
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
