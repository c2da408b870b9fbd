/** `ebpf-policy events [NAME]`: streams the events of every kind that emits some (e.g. PacketFilter's sampled drops). */
import { Option, type Command } from 'commander';
import { KINDS } from '../manager.js';
import type { EventStream } from '../reconciler/kind.js';
import { DEFAULT_ROOT } from '../reconciler/reconcile.js';
import { fatal } from './common.js';
import { requirePrivileges } from './privileges.js';

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
    .description(`Stream the events of policies (${KINDS.filter((k) => k.events).map((k) => k.kind).join(', ')}: e.g. sampled drops, spec.events.sampleRate), as text or JSON lines`)
    .argument('[name]', 'only the events of this policy')
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
      if (!requirePrivileges('events')) return;
      const streams: EventStream[] = [];
      try {
        for (const k of KINDS) if (k.events) streams.push(k.events.open(opts.bpffsRoot, name));
        if (streams.every((s) => s.sources === 0))
          process.stderr.write(`ebpf-policy events: nothing${name ? ` of policy ${name}` : ''} emits events under ${opts.bpffsRoot} yet; waiting\n`);
        const started = Date.now();
        let seen = 0;
        let lastRefresh = started;
        let stop = false;
        const onSignal = () => (stop = true);
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        while (!stop && seen < count && Date.now() - started < timeout) {
          for (const e of streams.flatMap((s) => s.poll())) {
            process.stdout.write(`${opts.output === 'json' ? JSON.stringify(e.json) : e.text}\n`);
            if (++seen >= count) break;
          }
          if (Date.now() - lastRefresh > 1000) {
            for (const s of streams) s.refresh();
            lastRefresh = Date.now();
          }
          await new Promise((r) => setTimeout(r, interval));
        }
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      } catch (err) {
        fatal('events', err);
      } finally {
        for (const s of streams) s.close();
      }
    });
}
