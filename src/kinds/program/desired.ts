/**
 * From Program policies to the desired programs: reads each object (digest
 * checked again: the file may have changed since validation), encodes the
 * declared entries by its BTF, and resolves where it attaches (interfaces of
 * a namespace, a cgroup) through a {@link ProgramResolver}. A policy that
 * cannot be resolved keeps what runs: nothing live is torn down for it.
 */
import { resolve } from 'node:path';
import type { CgroupResolution } from '../../bpf/cgroup.js';
import type { InterfaceList } from '../../bpf/interfaces.js';
import type { NetnsKeyResult } from '../../bpf/netns.js';
import { matchesInterface } from '../../policy/net/interface-pattern.js';
import type { ProgramPolicy } from './document.js';
import { programDir, targetPinName, type AttachTarget } from './layout.js';
import type { DesiredProgram, DesiredPrograms } from './model.js';
import { cgroupAttachType, checkObjectAgainstSpec, digestMismatch, encodeEntries, entriesHash, eventsOf, mapSummaries, mapsSignature, type ObjectFile } from './object-file.js';

/** Reads the system for the desired programs; resolver.ts implements it. */
export interface ProgramResolver {
  /** The object file at `path`. Throws Error naming it when it cannot be read or parsed. */
  object(path: string): ObjectFile;
  netnsKey(path: string): NetnsKeyResult;
  interfaces(netnsPath: string): InterfaceList;
  cgroup(spec: string): CgroupResolution;
  /** The path of the namespace ebpf-policy runs in. */
  ownNetns: string;
}

/** Builds the desired programs. `failedFiles` are absolute paths of files that failed to load: their policies' pins are kept. */
export function buildDesiredPrograms(root: string, policies: readonly ProgramPolicy[], failedFiles: ReadonlySet<string>, resolver: ProgramResolver): DesiredPrograms {
  const out: DesiredPrograms = { policies: [], keep: [], problems: [], status: [] };
  for (const p of [...policies].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const sourceFile = resolve(p.source.file);
    out.status.push({ name: p.name, sourceFile, objectPath: p.objectPath, program: p.program });
    const problem = (condition: 'Failed' | 'Degraded', reason: string, message: string) => out.problems.push({ policy: p.name, sourceFile, condition, reason, message });
    const keep = (reason: string, message: string) => {
      out.keep.push(p.name);
      problem('Failed', reason, `${message}; what runs for this policy stays as it is`);
    };
    if (failedFiles.has(sourceFile)) {
      keep('InvalidSourceFile', `${sourceFile} has errors`);
      continue;
    }
    let file: ObjectFile;
    try {
      file = resolver.object(p.objectPath);
    } catch (err) {
      keep('ObjectUnreadable', (err as Error).message);
      continue;
    }
    const mismatch = digestMismatch(p.objectPath, p.sha256, file.sha256);
    if (mismatch) {
      keep('DigestMismatch', mismatch);
      continue;
    }
    const invalid = [...checkObjectAgainstSpec(file, p), ...encodeEntries(file.info, p.maps).problems];
    if (invalid.length > 0) {
      keep('ObjectInvalid', invalid.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
      continue;
    }
    const entries = encodeEntries(file.info, p.maps).entries;
    const maps = mapSummaries(file.info);
    const events = p.events ? eventsOf(file.info, p.events) : undefined;
    const targets: AttachTarget[] = [];
    const attach = p.attach;
    if (attach.xdp || attach.tc) {
      const netnsPath = p.netns ?? resolver.ownNetns;
      const key = resolver.netnsKey(netnsPath);
      if (!key.ok) {
        out.keep.push(p.name);
        problem('Degraded', 'NetnsNotFound', `${key.reason}: nothing to attach to until it exists`);
        continue;
      }
      const list = resolver.interfaces(netnsPath);
      if (!list.ok) {
        keep('InterfacesUnavailable', list.reason);
        continue;
      }
      const patterns = (attach.xdp ?? attach.tc)!.interfaces;
      const matched = list.interfaces.filter((i) => patterns.some((pat) => matchesInterface(pat, i.name)));
      if (matched.length === 0) problem('Degraded', 'InterfaceNotFound', `no interface of ${p.netns ?? 'the own network namespace'} matches ${patterns.join(', ')}: the program is loaded, attached nowhere yet`);
      const netns = p.netns ?? null;
      for (const i of matched) {
        if (attach.xdp) targets.push({ kind: 'xdp', pin: targetPinName({ kind: 'xdp', netnsKey: key.key, ifindex: i.ifindex }), netns, netnsPath, ifname: i.name, ifindex: i.ifindex, mode: attach.xdp.mode ?? 'auto' });
        else targets.push({ kind: 'tcx', pin: targetPinName({ kind: 'tcx', netnsKey: key.key, ifindex: i.ifindex, direction: attach.tc!.direction }), netns, netnsPath, ifname: i.name, ifindex: i.ifindex, direction: attach.tc!.direction });
      }
    } else if (attach.tracepoint) {
      targets.push({ kind: 'tracepoint', pin: targetPinName({ kind: 'tracepoint' }), category: attach.tracepoint.category, name: attach.tracepoint.name });
    } else if (attach.cgroup) {
      const cg = resolver.cgroup(attach.cgroup.path);
      if (!cg.ok) {
        if (cg.missing) problem('Degraded', 'CgroupNotFound', `${cg.reason}: the program is loaded, attached nowhere until it exists`);
        else {
          keep('CgroupUnavailable', cg.reason);
          continue;
        }
      } else targets.push({ kind: 'cgroup', pin: targetPinName({ kind: 'cgroup' }), cgroupPath: cg.path, id: String(cg.id), type: attach.cgroup.type, attachType: cgroupAttachType(attach.cgroup.type) });
    }
    const desired: DesiredProgram = {
      name: p.name,
      sourceFile,
      dir: programDir(root, p.name),
      objectPath: p.objectPath,
      sha256: file.sha256,
      program: p.program,
      maps,
      mapsSignature: mapsSignature(maps),
      entries,
      entriesHash: entriesHash(entries),
      targets,
      ...(events && typeof events !== 'string' ? { events } : {}),
    };
    out.policies.push(desired);
  }
  return out;
}
