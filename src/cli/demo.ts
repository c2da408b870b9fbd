/** `ebpf-policy demo`: the foundation demo (see src/demo/steer-demo.ts). */
import type { Command } from 'commander';
import { runSteerDemo } from '../demo/steer-demo.js';

/** Adds the `demo` subcommand. Exit 0 when the connection was steered, 1 otherwise. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('Steer one TCP connection with sk_lookup in a throwaway network namespace, then clean up')
    .action(async () => {
      try {
        const r = await runSteerDemo((line) => console.log(`demo: ${line}`));
        const ok = r.steered.startsWith('listener=8080 local=8081') && r.afterCleanup.startsWith('error');
        console.log(ok ? 'demo: OK — the extra port reached the server, and nothing is left behind' : 'demo: FAILED');
        process.exitCode = ok ? 0 : 1;
      } catch (err) {
        console.error(`demo: failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exitCode = 1;
      }
    });
}
