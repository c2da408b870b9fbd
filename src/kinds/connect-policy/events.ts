/**
 * Sampled deny and would-deny events of the connect guards under a pin
 * root: reads the `events` ring buffer of every guard (of one policy, or
 * all) with a {@link PinnedRingSet}, and names each event's rule from the
 * guard's rule_meta and the process's cgroup from its id.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { monotonicToDate } from '../../common/monotonic-clock.js';
import { cgroupPathOfId } from '../../bpf/cgroup.js';
import { BpfMap } from '../../bpf/map.js';
import { PinnedRingSet } from '../../bpf/ringbuf.js';
import type { EventStream, KindEvent } from '../../reconciler/kind.js';
import { decodeGuardEvent, decodeRuleMeta, GUARDS_DIR, parseGuardKey, u32, type GuardHook } from './layout.js';
import { observeGuard } from './store.js';

/** One sampled connect, decoded and named. */
export interface GuardEvent {
  time: Date;
  /** Thread group id and command name of the process that connected. */
  pid: number;
  comm: string;
  /** The process's cgroup (the guarded one or a descendant); its id when the path cannot be found. */
  cgroup: string;
  cgroupId: string;
  hook: GuardHook;
  verdict: 'deny' | 'would-deny';
  family: 4 | 6;
  protocol: string;
  destination: string;
  port: number;
  policy: string | null;
  /** The rule that decided; null for the policy's default. */
  rule: string | null;
}

interface Source {
  dir: string;
  names: Map<number, { policy: string; rule: string }>;
}

const PROTOCOLS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6' };

/** A stream of the sampled events of the guards under `root`. Owns its rings; close() releases them. */
export class GuardEventStream implements Disposable {
  readonly #root: string;
  readonly #policy: string | undefined;
  readonly #rings = new PinnedRingSet<Source>((src, data) => this.#onRecord(src, data));
  readonly #cgroups = new Map<bigint, string>();
  #pending: GuardEvent[] = [];

  private constructor(root: string, policy: string | undefined) {
    this.#root = root;
    this.#policy = policy;
  }

  /** Opens the stream for every guard of `policy` (or of every policy). Throws ErrnoError. */
  static open(root: string, policy?: string): GuardEventStream {
    const s = new GuardEventStream(root, policy);
    try {
      s.refresh();
    } catch (err) {
      s.close();
      throw err;
    }
    return s;
  }

  /** How many guards the stream reads. */
  get guardCount(): number {
    return this.#rings.count;
  }

  /** Picks up guards that appeared or vanished since the last call. Returns whether the set changed. */
  refresh(): boolean {
    const top = join(this.#root, GUARDS_DIR);
    const wanted: Array<{ pin: string; meta: Source }> = [];
    for (const name of existsSync(top) ? readdirSync(top).sort() : []) {
      if (parseGuardKey(name) === undefined) continue;
      let obs;
      try {
        obs = observeGuard(this.#root, name);
      } catch {
        continue; // removed while we looked
      }
      if (this.#policy !== undefined && !obs.policies.some((p) => p.name === this.#policy)) continue;
      if (obs.missingMaps.includes('events')) continue;
      wanted.push({ pin: join(obs.dir, 'map_events'), meta: { dir: obs.dir, names: new Map() } });
    }
    return this.#rings.set(wanted, (pin) => BpfMap.fromPin(pin));
  }

  /** Every event available now (never waits). Throws ErrnoError. */
  poll(): GuardEvent[] {
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
        // the guard went away: unnamed
      }
    }
    return n;
  }

  #cgroup(id: bigint): string {
    let path = this.#cgroups.get(id);
    if (path === undefined) {
      path = cgroupPathOfId(id) ?? `cgroup id ${id}`;
      if (this.#cgroups.size > 4096) this.#cgroups.clear();
      this.#cgroups.set(id, path);
    }
    return path;
  }

  #onRecord(src: Source, data: Buffer): void {
    const raw = decodeGuardEvent(data);
    const named = this.#name(src, raw.slot);
    if (this.#policy !== undefined && named && named.policy !== this.#policy) return;
    this.#pending.push({
      time: monotonicToDate(raw.timeNs),
      pid: raw.pid,
      comm: raw.comm,
      cgroup: this.#cgroup(raw.cgroupId),
      cgroupId: String(raw.cgroupId),
      hook: raw.hook,
      verdict: raw.verdict,
      family: raw.family,
      protocol: PROTOCOLS[raw.protocol] ?? String(raw.protocol),
      destination: raw.address,
      port: raw.port,
      policy: named?.policy ?? null,
      rule: named ? (named.rule === '' ? null : named.rule) : null,
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

/** One event as text and as a JSON object (keys in a fixed order). */
export function formatGuardEvent(e: GuardEvent): KindEvent {
  const dest = e.family === 6 ? `[${e.destination}]:${e.port}` : `${e.destination}:${e.port}`;
  const rule = e.policy === null ? 'unknown rule' : e.rule === null ? `default of ${e.policy}` : `rule ${e.policy}/${e.rule}`;
  return {
    text: `${e.time.toISOString()} ${e.verdict} ${e.hook} ${e.protocol} -> ${dest} pid ${e.pid} (${e.comm}) cgroup ${e.cgroup} ${rule}`,
    json: {
      time: e.time.toISOString(),
      verdict: e.verdict,
      hook: e.hook,
      family: e.family,
      protocol: e.protocol,
      destination: e.destination,
      port: e.port,
      pid: e.pid,
      comm: e.comm,
      cgroup: e.cgroup,
      cgroupId: e.cgroupId,
      policy: e.policy,
      rule: e.rule,
    },
  };
}

/** The `events` stream of ConnectPolicy: the sampled denies and would-denies of every guard (of one policy, when named). */
export function openGuardEvents(root: string, policy?: string): EventStream {
  const stream = GuardEventStream.open(root, policy);
  return {
    get sources() {
      return stream.guardCount;
    },
    poll: () => stream.poll().map(formatGuardEvent),
    refresh: () => void stream.refresh(),
    close: () => stream.close(),
  };
}
