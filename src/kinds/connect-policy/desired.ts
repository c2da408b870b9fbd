/**
 * From ConnectPolicy policies to desired guards: resolves each policy's
 * cgroup (through a {@link GuardResolver}, which reads the system) and groups
 * the policies on the same cgroup, however it is spelled, into one guard.
 * Policies on one cgroup never conflict: all of them apply, and a deny in
 * any of them denies.
 */
import { resolve } from 'node:path';
import type { CgroupResolution } from '../../bpf/cgroup.js';
import { hashSpec } from '../../common/spec-hash.js';
import type { ConnectPolicyPolicy } from './document.js';
import { guardDir, guardKey, MAX_POLICIES, type GuardHook } from './layout.js';
import type { DesiredConnectPolicy, DesiredGuard, DesiredGuardPolicy, DesiredGuards } from './model.js';

/** Reads the system for desired guards; resolver.ts implements it. */
export interface GuardResolver {
  /** The cgroup a policy names (see resolveCgroup). */
  cgroup(spec: string): CgroupResolution;
  /** Tags of the guard programs we ship. */
  tags(): Record<GuardHook, string>;
}

/** Hash of what defines a ConnectPolicy policy. */
export function connectSpecHash(p: ConnectPolicyPolicy): string {
  return hashSpec({ cgroup: p.cgroup, mode: p.mode, defaultAction: p.defaultAction, rules: p.rules, sampleRate: p.sampleRate });
}

function guardPolicy(p: ConnectPolicyPolicy, sourceFile: string): DesiredGuardPolicy {
  return {
    name: p.name,
    sourceFile,
    specHash: connectSpecHash(p),
    rules: p.rules.map((r) => ({
      rule: r.name,
      action: r.action,
      audit: r.mode === 'audit',
      ...(r.protocol ? { protocol: r.protocol } : {}),
      ...(r.destinations ? { destinations: [...r.destinations] } : {}),
      ...(r.ports ? { ports: r.ports.map((x) => ({ start: x.start, end: x.end })) } : {}),
    })),
    defaultAction: p.defaultAction,
    defaultAudit: p.mode === 'audit',
    sample: p.sampleRate,
  };
}

/**
 * Builds the desired guards. `failedFiles` are absolute paths of files that
 * failed to load: their policies' guards are kept as they are.
 */
export function buildDesiredGuards(policies: readonly ConnectPolicyPolicy[], failedFiles: ReadonlySet<string>, root: string, resolver: GuardResolver): DesiredGuards {
  const out: DesiredGuards = { tags: { connect4: '', connect6: '', sendmsg4: '', sendmsg6: '' }, guards: [], policies: [], keepPolicies: [], problems: [] };
  if (policies.length === 0) return out;
  out.tags = resolver.tags();
  const groups = new Map<string, DesiredGuard>();
  const sorted = [...policies].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const p of sorted) {
    const sourceFile = resolve(p.source.file);
    const status: DesiredConnectPolicy = { name: p.name, sourceFile, cgroup: p.cgroup, mode: p.mode };
    out.policies.push(status);
    const problem = (condition: 'Failed' | 'Degraded', reason: string, message: string) => out.problems.push({ policy: p.name, sourceFile, condition, reason, message });
    if (failedFiles.has(sourceFile)) {
      out.keepPolicies.push(p.name);
      problem('Failed', 'InvalidSourceFile', `${sourceFile} has errors; the policy keeps its last applied state until the file is fixed`);
      continue;
    }
    const cg = resolver.cgroup(p.cgroup);
    if (!cg.ok) {
      // A missing cgroup has nothing to guard (a re-created one is a new cgroup); any other failure keeps what runs.
      if (cg.missing) {
        status.waitingForCgroup = true;
        problem('Degraded', 'CgroupNotFound', `${cg.reason}: nothing to guard until it exists`);
      }
      else {
        out.keepPolicies.push(p.name);
        problem('Failed', 'CgroupUnavailable', cg.reason);
      }
      continue;
    }
    status.cgroupPath = cg.path;
    const key = guardKey(cg.id);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { key, dir: guardDir(root, cg.id), cgroupId: String(cg.id), cgroupPath: cg.path, policies: [] }));
    if (g.policies.length >= MAX_POLICIES) {
      problem('Failed', 'CgroupFull', `cgroup ${cg.path} already has ${MAX_POLICIES} ConnectPolicy policies (${g.policies.map((x) => x.name).join(', ')}), the most one guard serves; ${p.name} is not applied`);
      continue;
    }
    g.policies.push(guardPolicy(p, sourceFile));
    status.guard = key;
  }
  out.guards = [...groups.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return out;
}
