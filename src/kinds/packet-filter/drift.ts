/**
 * PacketFilter's drift probe: after a pass, what each filter's attachment
 * should be (its XDP or tcx link attached and running the pinned program, or
 * our cls_bpf filter on the interface); the probe looks again — one link
 * open, or one `tc filter show` for cls_bpf — and names every difference. A
 * difference repairs nothing by itself: the daemon runs a full pass.
 */
import { join } from 'node:path';
import { clsBpfProgramId } from '../../bpf/cls-bpf.js';
import { tryOpen } from '../../bpf/kernel-object.js';
import { Link } from '../../bpf/link.js';
import type { DriftFindings } from '../../reconciler/kind.js';
import type { FilterAttachMethod, FilterHookName } from './layout.js';
import type { DesiredFilters } from './model.js';
import type { ObservedFilters } from './store.js';

/** What one filter's attachment should be. */
export interface ExpectedAttachment {
  key: string;
  dir: string;
  method: FilterAttachMethod;
  /** The program the attachment runs. */
  progId: number;
  /** The link id (0 for cls_bpf). */
  linkId: number;
  /** For cls_bpf: where to look with tc. */
  netnsPath: string;
  ifname: string;
  hook: FilterHookName;
}

/** What PacketFilter expects of the kernel after a pass. */
export interface FilterExpectation {
  attachments: ExpectedAttachment[];
}

/** The expectation for the state a pass left: every filter that is attached now. Pure. */
export function filterExpectation(_desired: DesiredFilters, observed: ObservedFilters): FilterExpectation {
  const attachments: ExpectedAttachment[] = [];
  for (const f of observed.filters) {
    if (f.error || !f.link?.attached || !f.attachment) continue;
    attachments.push({
      key: f.key,
      dir: f.dir,
      method: f.link.method,
      progId: f.link.progId,
      linkId: f.link.id,
      netnsPath: f.attachment.netnsPath,
      ifname: f.attachment.ifname,
      hook: f.hook,
    });
  }
  return { attachments };
}

/** What the probe sees of one attachment: the program it runs, or why it runs none. */
export type AttachmentSight = { progId: number; linkId: number } | { gone: string };

/** Looks at each expected attachment. Never throws for a missing pin or filter. */
export function lookAtAttachments(expected: FilterExpectation): Record<string, AttachmentSight> {
  const out: Record<string, AttachmentSight> = {};
  for (const a of expected.attachments) {
    if (a.method === 'cls_bpf') {
      const progId = clsBpfProgramId(a.netnsPath, a.ifname, a.hook === 'tc-egress' ? 'egress' : 'ingress');
      out[a.key] = progId === undefined ? { gone: `its cls_bpf filter on ${a.ifname} is gone` } : { progId, linkId: 0 };
      continue;
    }
    using link = tryOpen(() => Link.fromPin(join(a.dir, 'link')));
    if (!link) {
      out[a.key] = { gone: 'its link pin is gone' };
      continue;
    }
    const i = link.info();
    out[a.key] = i.target.attached ? { progId: i.progId, linkId: i.id } : { gone: `link ${i.id} was detached` };
  }
  return out;
}

/** Names every difference between the expectation and what the probe saw. Pure. */
export function findFilterDrift(expected: FilterExpectation, seen: Record<string, AttachmentSight>): string[] {
  const out: string[] = [];
  for (const a of expected.attachments) {
    const s = seen[a.key];
    if (!s) continue;
    const what = `filter ${a.hook} on ${a.ifname} (${a.key})`;
    if ('gone' in s) out.push(`${what}: ${s.gone}`);
    else if (s.progId !== a.progId || s.linkId !== a.linkId)
      out.push(`${what}: runs program ${s.progId}${s.linkId ? ` in link ${s.linkId}` : ''}, not program ${a.progId}${a.linkId ? ` in link ${a.linkId}` : ''}`);
  }
  return out;
}

/** The probe. */
export function probeFilters(expected: FilterExpectation): DriftFindings {
  return { drift: findFilterDrift(expected, lookAtAttachments(expected)), unblocked: [] };
}
