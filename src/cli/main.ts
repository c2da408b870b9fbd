#!/usr/bin/env node
/**
 * The `ebpf-policy` command line. Each subcommand lives in its own module
 * under src/cli/ and registers itself on the shared commander program.
 */
import { Command } from 'commander';
import { registerDemo } from './demo.js';
import { registerValidate } from './validate.js';
import { registerReconcile } from './reconcile.js';
import { registerEvents } from './events.js';
import { registerTypes } from './types.js';
import { registerTest } from './test.js';
import { PACKAGE_VERSION } from '../common/package-paths.js';

const program = new Command('ebpf-policy')
  .description('Declarative eBPF policy engine: policy documents in, converged kernel state out.')
  .version(PACKAGE_VERSION)
  .showHelpAfterError()
  .exitOverride((err) => {
    // Usage errors exit 2; --help and --version exit 0.
    process.exit(err.exitCode === 0 ? 0 : 2);
  });

registerDemo(program);
registerValidate(program);
registerReconcile(program);
registerEvents(program);
registerTypes(program);
registerTest(program);

await program.parseAsync(process.argv);
