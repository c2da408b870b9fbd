/**
 * The pin side of an atomic program upgrade, shared by every kind: the new
 * program is pinned in full as `program_next`, swapped into its hook by the
 * caller, and only then renamed over `program`. A crash before the swap
 * leaves a stray `program_next` (nothing runs it) that the next run removes;
 * a crash after the swap leaves `program_next` running in the hook, which the
 * next run sees ({@link observePrograms}) and finishes
 * ({@link finishPinnedSwap}); a failed swap removes it at once.
 */
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { unpin } from './bpffs.js';
import { tryOpen } from './kernel-object.js';
import { Program } from './program.js';
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

/** A pinned program as observed: id and tag. */
export interface PinnedProgram {
  id: number;
  tag: string;
}

/**
 * Reads DIR/program and, when an upgrade was interrupted, DIR/program_next.
 * Only a missing pin reads as absent (see tryOpen).
 */
export function observePrograms(dir: string): { program?: PinnedProgram; programNext?: PinnedProgram } {
  const read = (name: string): PinnedProgram | undefined => {
    using p = tryOpen(() => Program.fromPin(join(dir, name)));
    if (!p) return undefined;
    const i = p.info();
    return { id: i.id, tag: i.tag };
  };
  const program = read('program');
  const programNext = read('program_next');
  return { ...(program ? { program } : {}), ...(programNext ? { programNext } : {}) };
}

/**
 * Finishes an upgrade whose swap happened before a crash: renames
 * DIR/program_next (the program the hook runs) over DIR/program.
 */
export function finishPinnedSwap(dir: string): void {
  renameSync(join(dir, 'program_next'), join(dir, 'program'));
}

/**
 * Whether an interrupted upgrade left `programNext` running in the hook (the
 * link or filter runs it): then the next run finishes the swap instead of
 * upgrading again or removing it as a stray.
 */
export function swapInterruptedAfterUpdate(o: { programNext?: PinnedProgram }, runningProgId: number | undefined): boolean {
  return o.programNext !== undefined && runningProgId === o.programNext.id;
}
