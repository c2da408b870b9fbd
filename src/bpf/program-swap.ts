/**
 * The pin side of an atomic program upgrade, shared by the dispatcher and
 * the packet filters: the new program is pinned in full as `program_next`,
 * swapped into its hook by the caller, and only then renamed over
 * `program`. A crash in between leaves a stray `program_next` that the next
 * run removes; a failed swap removes it at once.
 */
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { unpin } from './bpffs.js';
import type { Program } from './program.js';
import { failpoint } from '../common/failpoint.js';

/**
 * Pins `next` as DIR/program_next, runs `swap` (which attaches it in place of
 * the old program, e.g. with an atomic link update), then renames the pin over
 * DIR/program. Throws what `swap` throws, after unpinning program_next.
 */
export function swapPinnedProgram(dir: string, next: Program, swap: (nextPin: string) => void): void {
  const nextPin = join(dir, 'program_next');
  unpin(nextPin);
  next.pin(nextPin);
  failpoint('swap-after-pin-next');
  try {
    swap(nextPin);
  } catch (err) {
    unpin(nextPin);
    throw err;
  }
  failpoint('swap-after-update');
  renameSync(nextPin, join(dir, 'program'));
}
