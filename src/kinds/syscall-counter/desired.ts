/**
 * From SyscallCounter policies to the desired counter: resolves each
 * policy's cgroup (through a {@link CounterResolver}, which reads the
 * system). Policies never conflict: each keeps its own counts, even of the
 * same syscalls.
 */
import { resolve } from 'node:path';
import type { CgroupResolution } from '../../bpf/cgroup.js';
import { hashSpec } from '../../common/spec-hash.js';
import type { SyscallCounterPolicy } from './document.js';
import { MAX_POLICIES } from './layout.js';
import type { DesiredCounters } from './model.js';

/** Reads the system for the desired counter; resolver.ts implements it. */
export interface CounterResolver {
  cgroup(spec: string): CgroupResolution;
  /** Tag of the counter program we ship. */
  tag(): string;
}

/** Hash of what defines a SyscallCounter policy. */
export function counterSpecHash(p: SyscallCounterPolicy): string {
  return hashSpec({ syscalls: p.syscalls, groupBy: p.groupBy, cgroup: p.cgroup ?? null, maxKeys: p.maxKeys });
}

/** Builds the desired counter. `failedFiles` are absolute paths of files that failed to load: their policies' slots are kept. */
export function buildDesiredCounters(policies: readonly SyscallCounterPolicy[], failedFiles: ReadonlySet<string>, resolver: CounterResolver): DesiredCounters {
  const out: DesiredCounters = { tag: '', policies: [], status: [], keepPolicies: [], problems: [] };
  if (policies.length === 0) return out;
  out.tag = resolver.tag();
  for (const p of [...policies].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const sourceFile = resolve(p.source.file);
    const status: DesiredCounters['status'][number] = { name: p.name, sourceFile, syscalls: p.syscalls, groupBy: p.groupBy, cgroup: p.cgroup ?? null, applied: false };
    out.status.push(status);
    const problem = (condition: 'Failed' | 'Degraded', reason: string, message: string) => out.problems.push({ policy: p.name, sourceFile, condition, reason, message });
    if (failedFiles.has(sourceFile)) {
      out.keepPolicies.push(p.name);
      problem('Failed', 'InvalidSourceFile', `${sourceFile} has errors; the policy keeps its last applied state until the file is fixed`);
      continue;
    }
    let cgroup: { path: string; id: string } | null = null;
    if (p.cgroup !== undefined) {
      const cg = resolver.cgroup(p.cgroup);
      if (!cg.ok) {
        if (cg.missing) {
          status.waitingForCgroup = true;
          problem('Degraded', 'CgroupNotFound', `${cg.reason}: nothing to count until it exists`);
        } else {
          out.keepPolicies.push(p.name);
          problem('Failed', 'CgroupUnavailable', cg.reason);
        }
        continue;
      }
      cgroup = { path: cg.path, id: String(cg.id) };
    }
    if (out.policies.length >= MAX_POLICIES) {
      problem('Failed', 'CounterFull', `${MAX_POLICIES} SyscallCounter policies are counting already, the most the counter holds; ${p.name} is not applied`);
      continue;
    }
    out.policies.push({ name: p.name, sourceFile, specHash: counterSpecHash(p), syscalls: p.syscalls, groupBy: p.groupBy, cgroup, maxKeys: p.maxKeys });
    status.applied = true;
  }
  return out;
}
