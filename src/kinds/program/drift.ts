/**
 * The Program kind's drift probe: after a pass, each policy's links are
 * expected to stay attached to its program; between passes the probe looks
 * at those links only (no object is read).
 */
import { join } from 'node:path';
import { tryOpen } from '../../bpf/kernel-object.js';
import { Link } from '../../bpf/link.js';
import type { DriftFindings } from '../../reconciler/kind.js';
import type { DesiredPrograms, ObservedPrograms } from './model.js';

/** Per policy: the link pins that should be attached and run the program `programId`. */
export interface ProgramExpectation {
  programs: { name: string; dir: string; programId: number; pins: string[] }[];
}

/** What the probe expects after a pass: the links the desired state has and the observed state runs. */
export function programExpectation(desired: DesiredPrograms, observed: ObservedPrograms): ProgramExpectation {
  const programs: ProgramExpectation['programs'] = [];
  for (const d of desired.policies) {
    const o = observed.programs.find((x) => x.name === d.name);
    if (!o?.program) continue;
    programs.push({ name: d.name, dir: d.dir, programId: o.program.id, pins: d.targets.map((t) => t.pin) });
  }
  return { programs };
}

/** Looks at every expected link: missing, detached, or running another program is drift. */
export function probePrograms(e: ProgramExpectation): DriftFindings {
  const drift: string[] = [];
  for (const p of e.programs)
    for (const pin of p.pins) {
      using link = tryOpen(() => Link.fromPin(join(p.dir, pin)));
      const i = link?.info();
      if (!i) drift.push(`program ${p.name}: link ${pin} is gone`);
      else if (!i.target.attached) drift.push(`program ${p.name}: link ${pin} (id ${i.id}) was detached`);
      else if (i.progId !== p.programId) drift.push(`program ${p.name}: link ${pin} runs program ${i.progId}, not ${p.programId}`);
    }
  return { drift, unblocked: [] };
}
