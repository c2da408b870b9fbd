/**
 * `ebpf-policy reconcile` without `--once`: the daemon's options, signals
 * and exit. SIGTERM and SIGINT stop it (the programs stay attached), SIGHUP
 * runs a pass now; a second SIGTERM/SIGINT exits at once.
 */
import { Option, type Command } from 'commander';
import { pinMmapThreshold } from '../bpf/malloc-tuning.js';
import { DEFAULT_POLICY_DIRECTORY } from '../policy/discover.js';
import type { Daemon } from '../daemon/daemon.js';
import { parseDuration } from '../daemon/duration.js';
import { parseListenAddress, type ListenAddress } from '../daemon/http-server.js';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../daemon/log-options.js';
import type { CommonOptions } from './common.js';

/** The daemon's own options, as commander parses them. */
export interface DaemonCliOptions {
  debounce: string;
  resyncInterval: string;
  driftProbeInterval: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  metricsAddress?: string;
}

/** How long a stopping daemon waits for a pass that is still waiting for another run's lock. */
const SHUTDOWN_GRACE_MS = 10_000;

/** Adds the daemon's options to the reconcile command. */
export function withDaemonOptions(cmd: Command): Command {
  return cmd
    .option('--debounce <duration>', 'daemon: in a burst of policy changes, wait this long after the last one before a pass (a lone change is applied at once)', '100ms')
    .option('--resync-interval <duration>', 'daemon: run a full pass this often to repair any drift (0 = never)', '30s')
    .option('--drift-probe-interval <duration>', 'daemon: check links, pins and sockets this often; a pass follows only on drift (0 = never)', '1s')
    .addOption(new Option('--log-level <level>', 'daemon: least severe level logged').choices([...LOG_LEVELS]).default('info'))
    .addOption(new Option('--log-format <format>', 'daemon: json lines, readable text, or auto (text on a terminal)').choices([...LOG_FORMATS]).default('auto'))
    .option('--metrics-address <host:port>', 'daemon: serve Prometheus /metrics and /healthz here, e.g. 127.0.0.1:9890 (default: off)');
}

interface ParsedDaemonOptions {
  debounceMs: number;
  resyncIntervalMs: number;
  driftProbeIntervalMs: number;
  metricsAddress?: ListenAddress;
}

/** Parses the duration and address options; returns an error message for the first bad one. */
export function parseDaemonOptions(o: DaemonCliOptions): ParsedDaemonOptions | string {
  try {
    return {
      debounceMs: parseDuration(o.debounce),
      resyncIntervalMs: parseDuration(o.resyncInterval),
      driftProbeIntervalMs: parseDuration(o.driftProbeInterval),
      metricsAddress: o.metricsAddress === undefined ? undefined : parseListenAddress(o.metricsAddress),
    };
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Runs the daemon until SIGTERM or SIGINT. Sets process.exitCode: 0 after a
 * clean stop, 2 when it cannot start (bad option, metrics address taken).
 */
export async function runDaemon(
  opts: CommonOptions & DaemonCliOptions,
  kindOptions: Record<string, Record<string, string>>,
  usage: (message: string) => void,
): Promise<void> {
  const parsed = parseDaemonOptions(opts);
  if (typeof parsed === 'string') return usage(parsed);
  // The daemon (chokidar) and its logger (winston) are loaded when it runs, not by every other command.
  const [{ Daemon }, { closeLogger, createLogger }] = await Promise.all([import('../daemon/daemon.js'), import('../daemon/logger.js')]);
  const logger = createLogger({ level: opts.logLevel, format: opts.logFormat });
  if (!pinMmapThreshold()) logger.debug('cannot pin the malloc mmap threshold (not glibc?): memory use may be higher');
  let daemon: Daemon;
  try {
    daemon = await Daemon.start({
      root: opts.bpffsRoot,
      policyPaths: opts.policies,
      watchPaths: opts.policies ?? [DEFAULT_POLICY_DIRECTORY],
      insecurePermissions: opts.insecurePolicyPerms,
      kindOptions,
      logger,
      ...parsed,
    });
  } catch (err) {
    logger.error('cannot start', { error: (err as Error).message });
    await closeLogger(logger);
    process.exitCode = 2;
    return;
  }

  await new Promise<void>((done) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn('second signal: exiting at once', { signal });
        process.exit(1);
      }
      stopping = true;
      logger.info('stopping: programs stay attached', { signal });
      const grace = setTimeout(() => {
        logger.warn('a pass is still waiting for the pin root lock: abandoning it (it changed nothing)');
        done();
      }, SHUTDOWN_GRACE_MS);
      daemon.stop().then(
        () => {
          clearTimeout(grace);
          done();
        },
        (err: unknown) => {
          logger.error('error while stopping', { error: (err as Error).message });
          clearTimeout(grace);
          done();
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGHUP', () => {
      logger.info('SIGHUP: reconciling now');
      daemon.requestPass('SIGHUP', true);
    });
  });
  logger.info('stopped');
  await closeLogger(logger);
  process.exitCode = 0;
  // A pass abandoned while waiting for the lock would keep polling it: leave now.
  process.exit();
}
