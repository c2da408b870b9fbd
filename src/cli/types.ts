/**
 * `ebpf-policy types OBJECT.o [--type NAME...]`: prints TypeScript
 * declarations of what a compiled BPF object's maps hold (and of named C
 * types), read from its BTF. Needs no privileges and no libbpf.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { BtfError } from '../btf/btf.js';
import { CodecError } from '../btf/codec.js';
import { readObjectInfo } from '../btf/object-info.js';
import { typescriptDeclarations } from '../btf/typescript.js';

/** Where `types` writes; replaceable in tests. */
export interface TypesEnvironment {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

/**
 * Runs `types` on object file `file`: prints the declarations on stdout.
 * @returns the exit status: 0 printed, 1 the object or a `--type` cannot be
 *   read (the reason on stderr), 2 the file cannot be opened.
 */
export function runTypes(file: string, types: readonly string[], env: TypesEnvironment = process): number {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    env.stderr.write(`ebpf-policy types: error: ${file} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(err)})`}\n`);
    return 2;
  }
  try {
    env.stdout.write(typescriptDeclarations(readObjectInfo(bytes, file), { types: [...types], source: file }));
    return 0;
  } catch (err) {
    if (!(err instanceof BtfError || err instanceof CodecError)) throw err;
    env.stderr.write(`ebpf-policy types: error: ${err.message}\n`);
    return 1;
  }
}

/** Adds the `types` subcommand. */
export function registerTypes(program: Command): void {
  program
    .command('types')
    .description("Print TypeScript declarations of a BPF object's map keys and values (and of named C types), from its BTF; needs no privileges")
    .argument('<object>', 'a compiled BPF object (ELF with a .BTF section)')
    .option(
      '--type <name>',
      'also declare this struct, union or enum (e.g. a ring buffer record); repeat for several',
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .addHelpText('after', '\nExit status: 0 printed, 1 the object or a --type cannot be read, 2 usage error.\nJSON shapes: docs/btf-codec.md')
    .action((file: string, opts: { type?: string[] }) => {
      process.exitCode = runTypes(file, opts.type ?? []);
    });
}
