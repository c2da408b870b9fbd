/** Kernel timestamps in user space. */

/** Converts a CLOCK_MONOTONIC timestamp in nanoseconds (bpf_ktime_get_ns) to wall-clock time. */
export function monotonicToDate(monotonicNs: bigint): Date {
  return new Date(Date.now() - Number(process.hrtime.bigint() - monotonicNs) / 1e6);
}
