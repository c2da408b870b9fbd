/**
 * glibc allocator tuning for the long-running daemon.
 *
 * Each reconcile pass reads the dispatcher's maps with batch lookups whose
 * buffers are sized for up to 4 MiB, whatever the number of entries. glibc
 * serves large blocks with mmap and returns them on free, but it raises its
 * mmap threshold dynamically after the first such free: from then on these
 * blocks come from the main heap, which keeps ~40 MB of them resident
 * between passes. Pinning the threshold turns that adjustment off.
 */
import koffi from 'koffi';

/** mallopt parameter number of M_MMAP_THRESHOLD (glibc malloc.h). */
const M_MMAP_THRESHOLD = -3;

/**
 * Pins glibc's mmap threshold at `bytes` (default 128 KiB, glibc's initial
 * value) for this process. Returns false when libc is not glibc or refuses;
 * never throws.
 */
export function pinMmapThreshold(bytes = 128 * 1024): boolean {
  try {
    const mallopt = koffi.load('libc.so.6').func('int mallopt(int param, int value)') as (param: number, value: number) => number;
    return mallopt(M_MMAP_THRESHOLD, bytes) === 1;
  } catch {
    return false;
  }
}
