/**
 * The Program kind, document half: a program of the user's own BPF object,
 * refused unless the object has the declared SHA-256 digest, attached at one
 * XDP, tc, tracepoint or cgroup hook, with initial map entries typed by the
 * object's BTF. `validate` reads the object (relative to the policy file):
 * digest, program, section, maps and every entry are checked offline, as
 * any user, so CI catches them before a node does.
 */
import type { Program } from '../../types/generated/program.js';
import { checkCgroupPath, normalizeCgroupPath } from '../../policy/cgroup-path.js';
import { normalizeBase, normalizeNetnsPath, type DesiredPolicyBase, type Finding, type PolicyConflict, type PolicyKind } from '../../policy/kind.js';
import { checkObjectAgainstSpec, digestMismatch, encodeEntries, readObjectFile, resolveObjectPath } from './object-file.js';

/** Normalized desired state of one Program policy. */
export interface ProgramPolicy extends DesiredPolicyBase {
  readonly kind: 'Program';
  /** spec.object as written, and resolved against the policy file's directory. */
  readonly object: string;
  readonly objectPath: string;
  readonly sha256: string;
  readonly program: string;
  readonly attach: Program['spec']['attach'];
  readonly netns: string | undefined;
  readonly maps: Readonly<Record<string, { key: unknown; value: unknown }[]>>;
  readonly events: { map: string; type?: string } | undefined;
}

const KIND = 'Program';

/** The attach spec with its paths normalized. */
function normalizeAttach(attach: Program['spec']['attach']): Program['spec']['attach'] {
  if (attach.cgroup) return { cgroup: { ...attach.cgroup, path: normalizeCgroupPath(attach.cgroup.path) } };
  return attach;
}

/** The Program kind module (document half). */
export const programKind: PolicyKind<Program, ProgramPolicy> = {
  kind: KIND,
  schemaFile: 'program.schema.json',

  check(document, source) {
    const { spec } = document;
    const findings: Finding[] = [];
    if (spec.attach.cgroup) findings.push(...checkCgroupPath(spec.attach.cgroup.path, ['spec', 'attach', 'cgroup', 'path']));
    if (spec.netns !== undefined && (spec.attach.tracepoint || spec.attach.cgroup))
      findings.push({ path: ['spec', 'netns'], severity: 'error', message: 'spec.netns applies to xdp and tc attachments only: tracepoints and cgroups are not per network namespace' });
    if (!source) return findings;
    const path = resolveObjectPath(spec.object, source.file);
    let file;
    try {
      file = readObjectFile(path);
    } catch (err) {
      findings.push({ path: ['spec', 'object'], severity: 'error', message: (err as Error).message });
      return findings;
    }
    const mismatch = digestMismatch(path, spec.sha256, file.sha256);
    if (mismatch) {
      findings.push({ path: ['spec', 'sha256'], severity: 'error', message: mismatch });
      return findings;
    }
    const problems = [...checkObjectAgainstSpec(file, spec as Parameters<typeof checkObjectAgainstSpec>[1]), ...encodeEntries(file.info, spec.maps as ProgramPolicy['maps']).problems];
    for (const p of problems) findings.push({ path: p.path, severity: 'error', message: p.message });
    return findings;
  },

  normalize(document, source) {
    const { spec } = document;
    return {
      ...normalizeBase(KIND, document, source),
      object: spec.object,
      objectPath: resolveObjectPath(spec.object, source.file),
      sha256: spec.sha256,
      program: spec.program,
      attach: normalizeAttach(spec.attach),
      netns: normalizeNetnsPath(spec.netns),
      maps: (spec.maps ?? {}) as ProgramPolicy['maps'],
      events: spec.events,
    };
  },

  /**
   * Two Program policies conflict when they attach XDP to the same
   * interface pattern of the same namespace (an interface holds one XDP
   * program), or to the same cgroup hook... the latter is allowed: cgroup
   * links stack. Only exact XDP overlaps are found here; overlapping
   * patterns are found when interfaces are resolved.
   */
  findConflicts(policies) {
    const conflicts: PolicyConflict<ProgramPolicy>[] = [];
    const xdp = new Map<string, string>();
    for (const p of policies) {
      if (!p.attach.xdp) continue;
      p.attach.xdp.interfaces.forEach((pattern, i) => {
        const key = `${p.netns ?? ''}\u0000${pattern}`;
        const first = xdp.get(key);
        if (first !== undefined)
          conflicts.push({ policy: p, path: ['spec', 'attach', 'xdp', 'interfaces', i], severity: 'error', message: `Program "${first}" already attaches XDP to ${pattern}${p.netns ? ` in ${p.netns}` : ''}: an interface runs one XDP program` });
        else xdp.set(key, p.name);
      });
    }
    return conflicts;
  },
};
