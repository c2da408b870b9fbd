/**
 * What PortSteering says about its policies for status: per policy the live
 * dispatcher ids and each binding's hit counter; the engine adds the
 * conditions. Also the readable status lines.
 */
import type { PolicyView } from '../../reconciler/kind.js';
import type { PolicyStatus } from '../../reconciler/model.js';
import { renderStatusHead } from '../../reconciler/render.js';
import type { PolicyRecord, SteeringDesired, SteeringObserved } from './model.js';

/** The PortSteering fields of a policy's status. */
export interface SteeringStatusDetails {
  /** Live kernel ids of the dispatcher serving it. */
  programId: number | null;
  linkId: number | null;
  /** Per binding: ports, prefix, hits. */
  bindings: Array<{ id: number; ports: string; prefix: string; hits: string }>;
}

/** A PortSteering policy's status. */
export type SteeringStatus = PolicyStatus & SteeringStatusDetails;

/** Counter reader: hits per binding id of the dispatcher in `dir`. */
export type CounterReader = (dir: string, bindingIds: number[]) => Map<number, bigint>;

/** Every PortSteering policy (desired, or only recorded in a dispatcher) as a status view. */
export function steeringViews(desired: SteeringDesired, observed: SteeringObserved, counters: CounterReader | undefined): PolicyView[] {
  const recordOf = new Map<string, { record: PolicyRecord; dir: string; programId: number | null; linkId: number | null }>();
  for (const d of observed.dispatchers)
    for (const record of d.records)
      recordOf.set(record.name, { record, dir: d.dir, programId: d.program?.id ?? null, linkId: d.link?.attached ? d.link.id : null });
  const byName = new Map(desired.policies.map((p) => [p.name, p]));
  const names = [...new Set([...byName.keys(), ...recordOf.keys()])].sort();
  return names.map((name) => {
    const d = byName.get(name);
    const rec = recordOf.get(name);
    const hits = rec && counters ? counters(rec.dir, rec.record.bindings.map((b) => b.id)) : new Map<number, bigint>();
    const details: SteeringStatusDetails = {
      programId: rec?.programId ?? null,
      linkId: rec?.linkId ?? null,
      bindings: (rec?.record.bindings ?? []).map((b) => ({
        id: b.id,
        ports: b.start === b.end ? String(b.start) : `${b.start}-${b.end}`,
        prefix: b.prefix === '*' ? 'any' : b.prefix,
        hits: (hits.get(b.id) ?? 0n).toString(),
      })),
    };
    return {
      name,
      sourceFile: d?.sourceFile ?? rec?.record.sourceFile ?? null,
      netns: d?.netns ?? rec?.record.netns ?? null,
      desired: d !== undefined,
      domains: [],
      notReady: !rec
        ? { reason: 'NotApplied', message: 'not applied yet' }
        : rec.linkId === null
          ? { reason: 'NotConverged', message: 'the dispatcher link is not attached' }
          : undefined,
      details: { ...details },
    };
  });
}

/** The readable status of PortSteering policies. */
export function renderSteeringStatus(statuses: readonly PolicyStatus[]): string[] {
  const out: string[] = [];
  for (const s of statuses as readonly SteeringStatus[]) {
    out.push(...renderStatusHead(s, `program ${s.programId ?? '-'}  link ${s.linkId ?? '-'}  netns ${s.netns ?? '(own)'}  ${s.sourceFile ?? ''}`));
    for (const b of s.bindings) out.push(`  binding ${b.id}: ports ${b.ports} on ${b.prefix}: ${b.hits} hits`);
  }
  return out;
}
