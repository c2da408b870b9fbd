/**
 * The network interfaces of a namespace, with their XDP attachments, as
 * iproute2 reports them (`ip -json -details link show`, run inside the
 * namespace with nsenter). nsenter only switches the network namespace: unlike
 * `ip -n` or `ip netns exec`, it does not remount /sys, so bpffs pins stay
 * reachable for the tc commands of cls-bpf.ts.
 */
import { spawnSync } from 'node:child_process';
import { XdpAttached } from './constants.js';
import { OWN_NETNS } from './netns.js';

/** One interface of a namespace. */
export interface InterfaceInfo {
  ifindex: number;
  name: string;
  /** iproute2's link type: "ether", "loopback", "none", ... */
  linkType: string;
  /** XDP programs attached to it, by mode (native, generic, offload). */
  xdp: Array<{ mode: 'native' | 'generic' | 'offload'; progId: number }>;
}

/** Result of {@link listInterfaces}: the interfaces, or why they could not be listed. */
export type InterfaceList = { ok: true; interfaces: InterfaceInfo[] } | { ok: false; reason: string };

interface IpLink {
  ifindex: number;
  ifname: string;
  link_type?: string;
  xdp?: { mode?: number; prog?: { id: number }; attached?: Array<{ mode: number; prog?: { id: number } }> };
}

const MODE: Record<number, InterfaceInfo['xdp'][number]['mode']> = {
  [XdpAttached.DRV]: 'native',
  [XdpAttached.SKB]: 'generic',
  [XdpAttached.HW]: 'offload',
};

/** Runs `argv` inside the network namespace at `netnsPath` (directly for our own). */
export function inNetns(netnsPath: string, argv: string[]): { status: number | null; stdout: string; stderr: string; error?: Error } {
  const [cmd, ...args] = netnsPath === OWN_NETNS ? argv : ['nsenter', `--net=${netnsPath}`, '--', ...argv];
  const r = spawnSync(cmd!, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

/** Parses `ip -json -details link show` output. Throws SyntaxError on malformed JSON. */
export function parseIpLinks(json: string): InterfaceInfo[] {
  const links = JSON.parse(json || '[]') as IpLink[];
  return links.map((l) => {
    const attached = l.xdp?.attached ?? (l.xdp?.prog ? [{ mode: l.xdp.mode ?? 0, prog: l.xdp.prog }] : []);
    return {
      ifindex: l.ifindex,
      name: l.ifname,
      linkType: l.link_type ?? 'unknown',
      xdp: attached.flatMap((a) => (a.prog && MODE[a.mode] ? [{ mode: MODE[a.mode]!, progId: a.prog.id }] : [])),
    };
  });
}

/** Lists the interfaces of the namespace at `netnsPath`. Never throws: failures are a reason. */
export function listInterfaces(netnsPath: string): InterfaceList {
  const r = inNetns(netnsPath, ['ip', '-json', '-details', 'link', 'show']);
  if (r.error) return { ok: false, reason: `cannot run ip/nsenter (install iproute2 and util-linux): ${r.error.message}` };
  if (r.status !== 0) return { ok: false, reason: `cannot list the interfaces of ${netnsPath}: ${r.stderr.trim() || `exit ${r.status}`}` };
  try {
    return { ok: true, interfaces: parseIpLinks(r.stdout) };
  } catch (err) {
    return { ok: false, reason: `unexpected output of ip -json link show: ${(err as Error).message}` };
  }
}
