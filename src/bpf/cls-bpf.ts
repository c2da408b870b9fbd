/**
 * The TC fallback for kernels without tcx (before Linux 6.6): a clsact qdisc
 * and a cls_bpf filter in direct-action mode, managed with iproute2's `tc`
 * inside the namespace (through nsenter, so bpffs pins stay visible). The
 * filter references a pinned program; it is not a BPF link, so it is
 * observed through `tc -json filter show`.
 *
 * Our filter has its own priority ({@link CLS_BPF_PREF}) and handle 1, so it
 * sits beside other tools' filters on the same clsact qdisc; passing packets
 * return TC_ACT_UNSPEC, which lets the next filter run.
 */
import { ErrnoError } from './errors.js';
import { inNetns } from './interfaces.js';
import type { TcxDirection } from './link.js';

/** Priority ("pref") of our cls_bpf filter: 0xeb9f. */
export const CLS_BPF_PREF = 60319;
const HANDLE = '1';

function tc(netnsPath: string, args: string[]): { ok: boolean; stderr: string; stdout: string } {
  const r = inNetns(netnsPath, ['tc', ...args]);
  if (r.error) throw new ErrnoError(2, 'run tc', `(install iproute2): ${r.error.message}`);
  return { ok: r.status === 0, stderr: r.stderr.trim(), stdout: r.stdout };
}

/**
 * Adds the clsact qdisc when missing and installs (or atomically replaces)
 * our cls_bpf filter running the program pinned at `programPin`. Throws
 * ErrnoError naming the interface when tc fails.
 */
export function attachClsBpf(netnsPath: string, ifname: string, direction: TcxDirection, programPin: string): void {
  const qdisc = tc(netnsPath, ['qdisc', 'add', 'dev', ifname, 'clsact']);
  // "Exclusivity flag on, cannot modify" means the qdisc is already there (maybe another tool's): fine.
  if (!qdisc.ok && !/Exclusivity flag on|File exists/.test(qdisc.stderr))
    throw new ErrnoError(22, 'tc qdisc add clsact', `${ifname}: ${qdisc.stderr}`);
  const filter = tc(netnsPath, [
    'filter',
    'replace',
    'dev',
    ifname,
    direction,
    'protocol',
    'all',
    'pref',
    String(CLS_BPF_PREF),
    'handle',
    HANDLE,
    'bpf',
    'direct-action',
    'object-pinned',
    programPin,
  ]);
  if (!filter.ok) throw new ErrnoError(22, 'tc filter replace (cls_bpf)', `${ifname} ${direction}: ${filter.stderr}`);
}

/** Removes our cls_bpf filter. Returns false when it (or the interface) was not there. Leaves the qdisc. */
export function detachClsBpf(netnsPath: string, ifname: string, direction: TcxDirection): boolean {
  return tc(netnsPath, ['filter', 'del', 'dev', ifname, direction, 'protocol', 'all', 'pref', String(CLS_BPF_PREF), 'handle', HANDLE, 'bpf']).ok;
}

/** Id of the program our cls_bpf filter runs, or undefined when there is no such filter (or interface). */
export function clsBpfProgramId(netnsPath: string, ifname: string, direction: TcxDirection): number | undefined {
  const r = tc(netnsPath, ['-json', 'filter', 'show', 'dev', ifname, direction, 'pref', String(CLS_BPF_PREF)]);
  if (!r.ok) return undefined;
  try {
    const list = JSON.parse(r.stdout || '[]') as Array<{ options?: { handle?: string; prog?: { id: number } } }>;
    return list.find((f) => f.options?.prog && Number(f.options.handle) === Number(HANDLE))?.options?.prog?.id;
  } catch {
    return undefined;
  }
}
