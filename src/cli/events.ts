/** `ebpf-policy events [NAME]`: streams the sampled drops of PacketFilter policies. */
import { Option, type Command } from 'commander';
import { FilterEventStream, type FilterEvent } from '../kinds/packet-filter/events.js';
import { DEFAULT_ROOT } from '../reconciler/reconcile.js';
import { fatal } from './common.js';

/** One event as a text line: time, interface and hook, action, 5-tuple, rule. */
export function formatEventText(e: FilterEvent): string {
  const addr = (a: string, port: number | null) => (port === null ? a : e.family === 6 ? `[${a}]:${port}` : `${a}:${port}`);
  const rule = e.rule === null ? 'default action' : `rule ${e.policy}/${e.rule}`;
  return `${e.time.toISOString()} ${e.interface} ${e.hook} ${e.action} ${e.protocol} ${addr(e.src, e.srcPort)} -> ${addr(e.dst, e.dstPort)} ${rule} (${e.length} bytes)`;
}

/** One event as a JSON line (keys in a fixed order). */
export function formatEventJson(e: FilterEvent): string {
  return JSON.stringify({
    time: e.time.toISOString(),
    interface: e.interface,
    ifindex: e.ifindex,
    netns: e.netns,
    hook: e.hook,
    action: e.action,
    family: e.family,
    protocol: e.protocol,
    src: e.src,
    srcPort: e.srcPort,
    dst: e.dst,
    dstPort: e.dstPort,
    policy: e.policy,
    rule: e.rule,
    length: e.length,
  });
}

interface EventsOptions {
  bpffsRoot: string;
  output: 'text' | 'json';
  interval: string;
  count?: string;
  timeout?: string;
}

/** Adds the `events` subcommand. */
export function registerEvents(program: Command): void {
  program
    .command('events')
    .description('Stream the sampled drops of PacketFilter policies (spec.events.sampleRate), as text or JSON lines')
    .argument('[name]', 'only the events of this PacketFilter policy')
    .option('--bpffs-root <dir>', 'pin root on bpffs that holds everything ebpf-policy owns', DEFAULT_ROOT)
    .addOption(new Option('--output <format>', 'output format: text, or JSON lines').choices(['text', 'json']).default('text'))
    .option('--interval <ms>', 'how often to read the ring buffers', '100')
    .option('--count <n>', 'exit after this many events')
    .option('--timeout <seconds>', 'exit after this many seconds')
    .action(async (name: string | undefined, opts: EventsOptions) => {
      const interval = Number(opts.interval);
      const count = opts.count === undefined ? Infinity : Number(opts.count);
      const timeout = opts.timeout === undefined ? Infinity : Number(opts.timeout) * 1000;
      if (!(interval > 0) || !(count > 0) || !(timeout > 0)) {
        process.stderr.write('ebpf-policy events: error: --interval, --count and --timeout take positive numbers\n');
        process.exitCode = 2;
        return;
      }
      let stream: FilterEventStream | undefined;
      try {
        stream = FilterEventStream.open(opts.bpffsRoot, name);
        if (stream.filterCount === 0)
          process.stderr.write(`ebpf-policy events: no filter${name ? ` of policy ${name}` : ''} is loaded under ${opts.bpffsRoot} yet; waiting for one\n`);
        const started = Date.now();
        let seen = 0;
        let lastRefresh = started;
        let stop = false;
        const onSignal = () => (stop = true);
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        while (!stop && seen < count && Date.now() - started < timeout) {
          for (const e of stream.poll()) {
            process.stdout.write(`${opts.output === 'json' ? formatEventJson(e) : formatEventText(e)}\n`);
            if (++seen >= count) break;
          }
          if (Date.now() - lastRefresh > 1000) {
            stream.refresh();
            lastRefresh = Date.now();
          }
          await new Promise((r) => setTimeout(r, interval));
        }
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      } catch (err) {
        fatal('events', err);
      } finally {
        stream?.close();
      }
    });
}
