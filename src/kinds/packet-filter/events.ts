/**
 * Sampled drop and would-drop (audit mode) events of the packet filters under a pin root: opens the
 * `events` ring buffer of every filter (of one policy, or all), reads them
 * with a {@link PinnedRingSet}, and names each event's interface, hook
 * and rule from the filter's records and rule_meta.
 */
import type { EventStream } from '../../reconciler/kind.js';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { monotonicToDate } from '../../common/monotonic-clock.js';
import { decodeEvent, decodeRuleMeta, FILTERS_DIR, parseFilterDirName, u32, type FilterHookName } from './layout.js';
import { observeFilter, type AttachmentRecord } from './store.js';
import { BpfMap } from '../../bpf/map.js';
import { PinnedRingSet } from '../../bpf/ringbuf.js';

/** One sampled packet, decoded and named. */
export interface FilterEvent {
  /** Wall-clock time of the drop (from the kernel's monotonic timestamp). */
  time: Date;
  interface: string;
  ifindex: number;
  netns: string | null;
  hook: FilterHookName;
  /** The action of the rule that decided (always drop: only drops are sampled). */
  action: 'pass' | 'drop';
  /** What the packet got: dropped, or passed by an audited drop (would-drop). */
  verdict: 'drop' | 'would-drop';
  family: 4 | 6;
  /** "tcp", "udp", "icmp", "icmpv6", or the IP protocol number. */
  protocol: string;
  src: string;
  /** Ports, null without a readable TCP/UDP header (other protocols, fragments). */
  srcPort: number | null;
  dst: string;
  dstPort: number | null;
  /** The rule that decided; policy and rule are null for the default action. */
  policy: string | null;
  rule: string | null;
  /** Bytes of the packet. */
  length: number;
}

interface Source {
  dir: string;
  attachment: AttachmentRecord | undefined;
  policies: string[];
  names: Map<number, { policy: string; rule: string }>;
}

const PROTOCOLS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6' };

/**
 * A stream of the sampled events of the filters under `root`. Owns the
 * events maps it opened and the ring buffer reader; close() releases them.
 */
export class FilterEventStream implements Disposable {
  readonly #root: string;
  readonly #policy: string | undefined;
  readonly #rings = new PinnedRingSet<Source>((src, data) => this.#onRecord(src, data));
  #pending: FilterEvent[] = [];

  private constructor(root: string, policy: string | undefined) {
    this.#root = root;
    this.#policy = policy;
  }

  /** Opens the stream for every filter of `policy` (or of every policy). Throws ErrnoError. */
  static open(root: string, policy?: string): FilterEventStream {
    const s = new FilterEventStream(root, policy);
    try {
      s.refresh();
    } catch (err) {
      s.close();
      throw err;
    }
    return s;
  }

  /** How many filters the stream reads. */
  get filterCount(): number {
    return this.#rings.count;
  }

  /**
   * Picks up filters that appeared or vanished since the last call (interfaces
   * come and go): reopens the reader when the set changed. Returns whether it
   * changed. Events still queued in a vanished filter's ring are lost.
   */
  refresh(): boolean {
    const dirs: string[] = [];
    const top = join(this.#root, FILTERS_DIR);
    if (existsSync(top))
      for (const ns of readdirSync(top).sort())
        for (const name of existsSync(join(top, ns)) ? readdirSync(join(top, ns)).sort() : [])
          if (parseFilterDirName(name)) dirs.push(join(top, ns, name));
    const wanted: Array<{ pin: string; meta: Source }> = [];
    for (const dir of dirs) {
      const parts = dir.split('/');
      let obs;
      try {
        obs = observeFilter(this.#root, parts[parts.length - 2]!, parts[parts.length - 1]!);
      } catch {
        continue; // removed while we looked
      }
      const policies = obs.policies.map((p) => p.name);
      if (this.#policy !== undefined && !policies.includes(this.#policy)) continue;
      if (obs.missingMaps.includes('events')) continue;
      wanted.push({ pin: join(dir, 'map_events'), meta: { dir, attachment: obs.attachment, policies, names: new Map() } });
    }
    return this.#rings.set(wanted, (pin) => BpfMap.fromPin(pin));
  }

  /** Every event available now (never waits). Throws ErrnoError. */
  poll(): FilterEvent[] {
    this.#rings.consume();
    return this.#pending.splice(0, this.#pending.length);
  }

  #name(src: Source, slot: number): { policy: string; rule: string } | undefined {
    let n = src.names.get(slot);
    if (!n) {
      try {
        using meta = BpfMap.fromPin(join(src.dir, 'map_rule_meta'));
        const v = meta.lookup(u32(slot));
        if (v) src.names.set(slot, (n = decodeRuleMeta(v)));
      } catch {
        // the filter went away: unnamed
      }
    }
    return n;
  }

  #onRecord(src: Source, data: Buffer): void {
    const raw = decodeEvent(data);
    const named = raw.slot === 0 ? undefined : this.#name(src, raw.slot);
    if (this.#policy !== undefined && named && named.policy !== this.#policy) return;
    const hasPorts = !raw.noPorts && (raw.protocol === 6 || raw.protocol === 17);
    const parts = src.dir.split('/');
    const where = parseFilterDirName(parts[parts.length - 1]!)!;
    this.#pending.push({
      time: monotonicToDate(raw.timeNs),
      interface: src.attachment?.ifname ?? `ifindex ${raw.ifindex}`,
      ifindex: raw.ifindex,
      netns: src.attachment?.netns ?? null,
      hook: where.hook,
      action: raw.action === 1 ? 'drop' : 'pass',
      verdict: raw.verdict,
      family: raw.family,
      protocol: PROTOCOLS[raw.protocol] ?? String(raw.protocol),
      src: raw.src,
      srcPort: hasPorts ? raw.srcPort : null,
      dst: raw.dst,
      dstPort: hasPorts ? raw.dstPort : null,
      policy: named?.policy ?? null,
      rule: named?.rule ?? null,
      length: raw.length,
    });
  }

  /** Closes the reader and the maps. Idempotent. */
  close(): void {
    this.#rings.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** One event as a text line: time, interface and hook, verdict (drop or would-drop), 5-tuple, rule. */
export function formatEventText(e: FilterEvent): string {
  const addr = (a: string, port: number | null) => (port === null ? a : e.family === 6 ? `[${a}]:${port}` : `${a}:${port}`);
  const rule = e.rule === null ? 'default action' : `rule ${e.policy}/${e.rule}`;
  return `${e.time.toISOString()} ${e.interface} ${e.hook} ${e.verdict} ${e.protocol} ${addr(e.src, e.srcPort)} -> ${addr(e.dst, e.dstPort)} ${rule} (${e.length} bytes)`;
}

/** One event as a JSON line (keys in a fixed order). */
export function formatEventJson(e: FilterEvent): string {
  return JSON.stringify({
    time: e.time.toISOString(),
    interface: e.interface,
    ifindex: e.ifindex,
    netns: e.netns,
    hook: e.hook,
    action: e.action,
    verdict: e.verdict,
    family: e.family,
    protocol: e.protocol,
    src: e.src,
    srcPort: e.srcPort,
    dst: e.dst,
    dstPort: e.dstPort,
    policy: e.policy,
    rule: e.rule,
    length: e.length,
  });
}

/** The `events` stream of PacketFilter: the sampled drops and would-drops of every filter (of one policy, when named). */
export function openFilterEvents(root: string, policy?: string): EventStream {
  const stream = FilterEventStream.open(root, policy);
  return {
    get sources() {
      return stream.filterCount;
    },
    poll: () => stream.poll().map((ev) => ({ text: formatEventText(ev), json: JSON.parse(formatEventJson(ev)) as Record<string, unknown> })),
    refresh: () => void stream.refresh(),
    close: () => stream.close(),
  };
}
