/** `ebpf-policy demo`: the main job on the shipped example policies, in a throwaway namespace. */
import type { Command } from 'commander';

/** Adds the `demo` subcommand. Exit 0 when the example policies steered and cleaned up as they should, 1 otherwise. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('Run reconcile --once on the shipped example policies inside a throwaway network namespace, check the result, clean up')
    .action(async () => {
      try {
        // Loaded here: the demo's modules (the full YAML parser among them) are not needed by other commands.
        const { runMainJobDemo } = await import('../demo/main-job-demo.js');
        const r = await runMainJobDemo((line) => console.log(`demo: ${line}`));
        console.log(r.ok ? 'demo: OK — the example policies steered ports to the server, dropped telnet and denied the metadata address, and nothing is left behind' : 'demo: FAILED');
        process.exitCode = r.ok ? 0 : 1;
      } catch (err) {
        console.error(`demo: failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exitCode = 1;
      }
    });
}
